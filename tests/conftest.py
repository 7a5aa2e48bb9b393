"""Shared fixtures: simulated registry cohorts, a Weibull truth, MLflow trackers and a small model bundle.

The cohort and tracker fixtures are factories (call them with the size and seed a test needs); nothing is
written outside a temporary folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sksurv.util import Surv

from cartrisk.data.schema import to_xy, validate
from cartrisk.data.simulate import simulate


def _registry(n: int, seed: int, *, ids: bool = False, truth: bool = False):
    frame, true = simulate(n, seed)
    typed = validate(frame).raise_if_invalid()
    X, y = to_xy(typed)
    if ids:
        X = X.assign(patient_id=typed["patient_id"].to_numpy())
    return (X, y, true) if truth else (X, y)


@pytest.fixture(scope="session")
def registry_cohort() -> Callable:
    """``registry_cohort(n, seed, ids=False, truth=False)``: a validated simulated registry as ``(X, y)``.

    ``ids`` keeps ``patient_id`` in ``X``; ``truth`` adds the simulator's truth frame: ``(X, y, truth)``.
    """
    return _registry


@dataclass(frozen=True)
class WeibullTruth:
    """A Weibull proportional-hazards truth, S(t | x) = exp(-(t / scale)^shape exp(x'beta)), with uniform censoring."""

    scale_days: float = 250.0
    shape: float = 0.9
    beta: tuple[float, ...] = (0.7, -0.5, 0.3)

    def cohort(self, n: int, seed: int, censor_max_days: float = 1100.0):
        """``(X, linear predictor, y)`` of ``n`` patients, censored uniformly between 60 and ``censor_max_days``."""
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, len(self.beta)))
        lp = X @ np.asarray(self.beta)
        t_event = self.scale_days * (rng.exponential(size=n) / np.exp(lp)) ** (1 / self.shape)
        t_cens = rng.uniform(60, censor_max_days, n)
        y = Surv.from_arrays(event=t_event <= t_cens, time=np.minimum(t_event, t_cens), name_event="os2_event",
                             name_time="os2_days")
        return X, lp, y

    def survival(self, lp: np.ndarray, times_days) -> np.ndarray:
        """True survival at ``times_days``, shape (n, n_times)."""
        t = np.atleast_1d(np.asarray(times_days, dtype=float))
        return np.exp(-((t[None, :] / self.scale_days) ** self.shape) * np.exp(lp)[:, None])

    def survival_at_own_time(self, lp: np.ndarray, times_days) -> np.ndarray:
        """True survival of each patient at its own time, shape (n,)."""
        return np.exp(-((np.asarray(times_days, dtype=float) / self.scale_days) ** self.shape) * np.exp(lp))


@pytest.fixture(scope="session")
def weibull() -> WeibullTruth:
    """The Weibull truth of the metric and calibration tests (scale 250 days, shape 0.9, beta 0.7 / -0.5 / 0.3)."""
    return WeibullTruth()


@pytest.fixture(scope="session")
def make_tracker() -> Callable:
    """``make_tracker(root, experiment="test")``: an MLflow tracker on ``sqlite:///<root>/mlruns/mlflow.db``."""
    from cartrisk.tracking import Tracker

    def make(root: str | Path, experiment: str = "test"):
        return Tracker(f"sqlite:///{root}/mlruns/mlflow.db", experiment)

    return make


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A Cox bundle trained on 300 simulated patients (seed 3): ``(bundle folder, validated training frame)``."""
    from cartrisk.bundle import export_bundle
    from cartrisk.modelling import make_pipeline

    typed = validate(simulate(300, 3)[0]).raise_if_invalid()
    X, y = to_xy(typed)
    pipe = make_pipeline("infusion+relapse", "coxph").fit(X, y)
    return export_bundle(pipe, tmp_path_factory.mktemp("models"), name="cox", training_frame=typed), typed


def _planted_leaks(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """A simulated registry with three leaks that real extracts have carried.

    - ``vital_status_cutoff``: a copy of os2_event under another name;
    - ``cause_of_death``: filled in only for the dead;
    - ``last_status``: the status at last contact as recorded at extraction: dead, alive at the data cut-off, or
      lost to follow-up before it.
    """
    frame, _ = simulate(n, seed)
    typed = validate(frame).raise_if_invalid()
    X, y = to_xy(typed)
    rng = np.random.default_rng(seed)
    dead = typed["os2_event"].to_numpy() == 1
    cutoff = (typed["failure_date"].max() - typed["failure_date"]).dt.days.to_numpy()
    lost = ~dead & (typed["os2_days"].to_numpy() < cutoff)
    X = X.assign(vital_status_cutoff=dead.astype(float),
                 cause_of_death=np.where(dead, rng.choice(["lymphoma", "infection", "toxicity"], n), None),
                 last_status=np.where(dead, "dead", np.where(lost, "lost to follow-up", "alive")))
    return X, y, typed


@pytest.fixture(scope="session")
def planted_leaks() -> Callable:
    """``planted_leaks(n, seed)``: ``(X, y, typed)`` of a simulated registry with three leaked columns
    (``vital_status_cutoff``, ``cause_of_death``, ``last_status``; see :func:`_planted_leaks`)."""
    return _planted_leaks
# ---- servers (issue 15): PostgreSQL and an MLflow tracking server on 127.0.0.1, started and stopped here ----

@pytest.fixture(scope="session")
def postgres_url():
    """URL of a PostgreSQL server (CI's, or a throwaway cluster); the test is skipped when none can be started."""
    import servers

    stack = __import__("contextlib").ExitStack()
    try:
        url = stack.enter_context(servers.postgres_server())
    except servers.Unavailable as err:
        stack.close()
        pytest.skip(f"PostgreSQL tests skipped: {err}")
    with stack:
        yield url


@pytest.fixture
def postgres_db(postgres_url):
    """A fresh, empty PostgreSQL database for one test (dropped afterwards); its URL."""
    import servers

    with servers.fresh_database(postgres_url) as url:
        yield url
