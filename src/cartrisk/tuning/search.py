"""The maths of tuning: search spaces as data, the inner-CV objective, samplers and pruners.

Nothing here knows about MLflow or about where a study is stored: :class:`Objective`
is a callable class that Optuna (or anything else that hands it a trial) calls, and
tracking is attached around it by :mod:`cartrisk.tuning`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone
from sklearn.utils import _safe_indexing
from sksurv.util import check_y_survival

from cartrisk.config import OBJECTIVE_METRICS, ExperimentConfig, ModelConfig, SearchParam
from cartrisk.estimators import make_estimator
from cartrisk.evaluation import IBS_GRID_POINTS, harrell_c, integrated_brier, uno_c
from cartrisk.exceptions import ConfigError
from cartrisk.modelling.pipeline import SurvivalPipeline, build_pipeline
from cartrisk.units import months_to_days

__all__ = ["FAMILY_PARAM", "Objective", "ObjectiveSpec", "SearchSpace", "fingerprint", "make_pruner", "make_sampler"]

#: Name of the categorical parameter that picks the family when several are searched in one study.
FAMILY_PARAM = "family"


@dataclass(frozen=True)
class ObjectiveSpec:
    """The tuned quantity: one metric, or a weighted mix maximised as sum(weight * signed metric).

    Uno's and Harrell's C count positive, the integrated Brier score negative. A single
    lower-is-better metric (``ibs``) is minimised as it is, so its values read as Brier scores.
    """

    weights: tuple[tuple[str, float], ...]

    @classmethod
    def from_weights(cls, weights: dict[str, float]) -> ObjectiveSpec:
        return cls(tuple(sorted(weights.items())))

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(m for m, _ in self.weights)

    @property
    def direction(self) -> str:
        if len(self.weights) == 1:
            return "maximize" if OBJECTIVE_METRICS[self.weights[0][0]] else "minimize"
        return "maximize"

    @property
    def label(self) -> str:
        if len(self.weights) == 1:
            return self.weights[0][0]
        return " ".join(f"{'+' if OBJECTIVE_METRICS[m] else '-'} {w:g}*{m}" for m, w in self.weights).lstrip("+ ")

    def combine(self, values: dict[str, float]) -> float:
        """The objective from the metrics' values."""
        if len(self.weights) == 1:
            return float(values[self.weights[0][0]])
        return float(sum(w * (values[m] if OBJECTIVE_METRICS[m] else -values[m]) for m, w in self.weights))


@dataclass(frozen=True)
class Family:
    """One estimator family of a study: its model entry, fixed parameters and search space."""

    model: ModelConfig

    @property
    def label(self) -> str:
        return self.model.label


class SearchSpace:
    """The search space of an experiment's ``[[models]]`` entries.

    One family: its parameters under their own names. Several: a categorical ``family``
    parameter picks one, and each family's parameters are named ``label.param``, so that
    the conditional spaces never share a name.
    """

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg
        self.families = tuple(Family(m) for m in cfg.models)
        for i, fam in enumerate(self.families):
            try:
                known = set(make_estimator(fam.model.estimator).get_params())
            except ValueError as err:
                raise ConfigError(f"models[{i}].estimator: {err}") from None
            unknown = sorted(set(fam.model.search) - known)
            if unknown:
                raise ConfigError(f"models[{i}].search: {fam.model.estimator} has no parameter(s) "
                                  f"{', '.join(map(repr, unknown))}; its parameters: {', '.join(sorted(known))}")

    @property
    def multi(self) -> bool:
        return len(self.families) > 1

    def _name(self, fam: Family, param: str) -> str:
        return f"{fam.label}.{param}" if self.multi else param

    def suggest(self, trial: optuna.Trial) -> tuple[str, dict[str, Any]]:
        """Draw a family and its parameters from ``trial``; returns ``(label, params)``."""
        fam = self.families[0]
        if self.multi:
            label = trial.suggest_categorical(FAMILY_PARAM, [f.label for f in self.families])
            fam = next(f for f in self.families if f.label == label)
        params = {p: _suggest(trial, self._name(fam, p), spec) for p, spec in fam.model.search.items()}
        return fam.label, params

    def decode(self, flat: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """``(label, params)`` from a trial's flat parameters (the inverse of the names :meth:`suggest` uses)."""
        fam = self.families[0]
        if self.multi:
            fam = next(f for f in self.families if f.label == flat[FAMILY_PARAM])
        return fam.label, {p: flat[self._name(fam, p)] for p in fam.model.search if self._name(fam, p) in flat}

    def pipeline(self, label: str, params: dict[str, Any]) -> SurvivalPipeline:
        """The experiment's pipeline for family ``label`` with the searched ``params`` over its fixed ones."""
        fam = next(f for f in self.families if f.label == label)
        model = replace(fam.model, params={**fam.model.params, **params}, search={})
        return build_pipeline(self.cfg, model)


def _suggest(trial: optuna.Trial, name: str, spec: SearchParam):
    kind = spec.kind
    if kind == "categorical":
        return trial.suggest_categorical(name, list(spec.choices or ()))
    if kind == "int":
        step = 1 if spec.step is None else int(spec.step)
        return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
    return trial.suggest_float(name, float(spec.low), float(spec.high), step=spec.step, log=spec.log)


def score_fold(est, X_test, y_train, y_test, metrics: Sequence[str], horizon_days: float) -> dict[str, float]:
    """The objective's metrics on one held-out fold, as :func:`cartrisk.evaluation.cross_validate_survival` defines
    them: Uno's C truncated at the largest horizon, the integrated Brier score on 50 points from the first test
    time to it, Harrell's C on the whole follow-up."""
    out: dict[str, float] = {}
    risk = np.asarray(est.predict(X_test), dtype=float)
    if "uno_c" in metrics:
        out["uno_c"] = uno_c(y_train, y_test, risk, [horizon_days])
    if "harrell_c" in metrics:
        out["harrell_c"] = harrell_c(y_train, y_test, risk)
    if "ibs" in metrics:
        time_test = check_y_survival(y_test)[1]
        grid = np.linspace(time_test.min(), horizon_days, IBS_GRID_POINTS)
        out["ibs"] = integrated_brier(y_train, y_test, est.predict_survival_at(X_test, grid), grid)
    return out


class Objective:
    """Inner cross-validation of one trial's pipeline: the value Optuna optimises.

    Each inner fold's objective value is reported with ``trial.report(value, fold)``, so a
    pruner compares trials fold by fold (the same folds for every trial) and stops a hopeless
    one early. The trial's user attribute ``inner_cv`` keeps the per-fold metrics and the
    seconds spent fitting, predicting and scoring (the work, as opposed to bookkeeping).

    Parameters
    ----------
    space : SearchSpace
    X : DataFrame
        The study's data (an outer training part, or all data for the final study).
    y : structured array
    splits : sequence of (train_index, test_index)
        Inner folds, positions into ``X``.
    objective : ObjectiveSpec
    horizon_days : float
        Truncation time of Uno's C and end of the integrated Brier score's grid.
    """

    def __init__(self, space: SearchSpace, X: pd.DataFrame, y: np.ndarray, splits: Sequence[tuple[np.ndarray,
                 np.ndarray]], objective: ObjectiveSpec, horizon_days: float) -> None:
        self.space = space
        self.X = X
        self.y = y
        self.splits = [(np.asarray(tr), np.asarray(te)) for tr, te in splits]
        self.objective = objective
        self.horizon_days = float(horizon_days)

    def __call__(self, trial: optuna.Trial) -> float:
        label, params = self.space.suggest(trial)
        template = self.space.pipeline(label, params)
        prunes = not isinstance(getattr(getattr(trial, "study", None), "pruner", None), optuna.pruners.NopPruner)
        fold_metrics: dict[str, list[float]] = {m: [] for m in self.objective.metrics}
        values: list[float] = []
        work = 0.0
        for k, (train, test) in enumerate(self.splits):
            start = time.perf_counter()
            est = clone(template).fit(_safe_indexing(self.X, train), self.y[train])
            scores = score_fold(est, _safe_indexing(self.X, test), self.y[train], self.y[test],
                                self.objective.metrics, self.horizon_days)
            work += time.perf_counter() - start
            for m, v in scores.items():
                fold_metrics[m].append(v)
            values.append(self.objective.combine(scores))
            if prunes:  # each report is a write to the storage: only when a pruner reads it
                trial.report(values[-1], k)
            if prunes and k + 1 < len(self.splits) and trial.should_prune():
                trial.set_user_attr("inner_cv", {"fold_values": values, "metrics": fold_metrics,
                                                 "work_seconds": work})
                raise optuna.TrialPruned(f"fold {k + 1} of {len(self.splits)}: {values[-1]:.4f}")
        trial.set_user_attr("inner_cv", {"fold_values": values, "metrics": fold_metrics, "work_seconds": work})
        return float(np.mean(values))


def inner_horizon_days(cfg: ExperimentConfig) -> float:
    """The largest evaluation horizon, in days: the truncation time of the objective's metrics."""
    return float(months_to_days(max(cfg.evaluation.horizons_months)))


def make_sampler(kind: str, seed: int, startup_trials: int) -> optuna.samplers.BaseSampler:
    """A seeded sampler (``tpe``, ``random`` or ``cmaes``)."""
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ConfigError("sampler = 'cmaes' needs the optional 'cmaes' package (pip install cmaes)") from None
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup_trials,
                                            warn_independent_sampling=False)
    raise ConfigError(f"unknown sampler {kind!r}")


def make_pruner(kind: str, startup_trials: int, warmup_folds: int) -> optuna.pruners.BasePruner:
    """``median``: prune below the median of earlier trials on the same fold; ``none``: never prune."""
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_folds)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {kind!r}")


def fingerprint(cfg: ExperimentConfig, data_hash: str) -> str:
    """SHA-256 of what makes a study's trials comparable: data, features, spaces, objective, folds, seed.

    The number of trials, the time budget, the workers and the storage are left out: a
    study may be resumed with more trials or more workers.
    """
    t = cfg.tuning
    if t is None:
        raise ConfigError(f"{cfg.name}: no [tuning] table; a study fingerprint needs one")
    content = {"data": data_hash, "features": asdict(cfg.features), "models": [asdict(m) for m in cfg.models],
               "seed": cfg.seed, "horizons_months": list(cfg.evaluation.horizons_months),
               "tuning": {k: getattr(t, k) for k in ("objective", "outer_folds", "inner_folds", "sampler",
                                                      "startup_trials", "pruner", "prune_warmup_folds")}}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
