"""Performance by subgroup: Harrell's C, the O/E ratio and the calibration slope at a horizon, with bootstrap
intervals, flagging a subgroup whose interval excludes the overall value (TRIPOD+AI items 14 and 23b).

The registry's subgroups are sex, age band (below / at or above the literature's age cut-point, 65 years),
CAR T-cell product, histology and failure window (D0-30 / D31-90 / >D90); any other column can be named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sksurv.util import check_y_survival

from cartrisk.data.derive import derive_features
from cartrisk.data.literature import feature_codings
from cartrisk.evaluation import _fastsurv as fs
from cartrisk.evaluation.calibration import calibration_slope

__all__ = ["SUBGROUP_COLUMNS", "SUBGROUP_METRICS", "core_metrics", "subgroup_labels", "subgroup_performance"]

#: The registry's subgroups: the column each is read from.
SUBGROUP_COLUMNS = {"sex": "sex", "age_band": "age_years", "product": "product", "histology": "histology",
                    "failure_window": "days_to_failure"}
SUBGROUP_METRICS = ("harrell_c", "oe_ratio", "calibration_slope")
#: Subgroups with fewer deaths by the horizon are reported without intervals or flags.
MIN_EVENTS = 5


def _age_cut() -> float:
    return float(next(c["threshold"] for c in feature_codings() if c["column"] == "age_years"))


def subgroup_labels(frame: pd.DataFrame, variables: Sequence[str] | None = None) -> dict[str, pd.Series]:
    """The subgroup of each patient for each variable present in ``frame`` (missing values stay missing).

    ``variables`` default to :data:`SUBGROUP_COLUMNS`' names; ``age_band`` and ``failure_window`` are derived, any
    other name is read as a column.
    """
    out: dict[str, pd.Series] = {}
    for name in variables if variables is not None else SUBGROUP_COLUMNS:
        if name == "age_band" and "age_years" in frame:
            cut = _age_cut()
            age = pd.to_numeric(frame["age_years"], errors="coerce")
            out[name] = pd.Series(np.where(age < cut, f"<{cut:g}", f">={cut:g}"), index=frame.index,
                                  dtype=object).where(age.notna())
        elif name == "failure_window" and "days_to_failure" in frame:
            out[name] = derive_features(frame[["days_to_failure"]])["failure_window"]
        elif name in frame and name not in ("age_band", "failure_window"):
            out[name] = frame[name].astype(object).where(frame[name].notna())
    return out


def core_metrics(t: np.ndarray, e: np.ndarray, r: np.ndarray, F: np.ndarray, h: float) -> tuple[float, float, float]:
    """Harrell's C, O/E and calibration slope of time-sorted data censored at ``h`` (NaN where undefined)."""
    if not e.any():
        return np.nan, np.nan, np.nan
    d = fs.Distinct.of(t, e)
    return fs.concordance(t, e, r), (1.0 - d.survival_at(h)) / F.mean(), calibration_slope(t, e, F)[0]


def _with_intervals(t, e, r, F, h, n_boot, rng, conf_level):
    est = np.array(core_metrics(t, e, r, F, h))
    if n_boot == 0 or e.sum() < MIN_EVENTS:
        return est, np.full(3, np.nan), np.full(3, np.nan)
    reps = np.empty((n_boot, 3))
    n = t.shape[0]
    for b in range(n_boot):
        idx = np.sort(rng.integers(0, n, n))
        reps[b] = core_metrics(t[idx], e[idx], r[idx], F[idx], h)
    return (est, *fs.percentile_interval(reps, conf_level))


def subgroup_performance(y, risk, pred_risk, horizon_days: float, groups: Mapping[str, Sequence],
                         *, n_boot: int = 200, conf_level: float = 0.95, random_state=0) -> pd.DataFrame:
    """C, O/E and calibration slope overall and in each subgroup, with percentile bootstrap intervals.

    Parameters
    ----------
    y : structured array
        Outcome (event, time in days).
    risk : array-like
        Risk scores (higher = worse).
    pred_risk : array-like
        Predicted risk of death by the horizon, ``1 - S(h | x)``.
    horizon_days : float
    groups : mapping of variable -> labels
        One label per patient (missing values are left out), e.g. :func:`subgroup_labels`.
    n_boot : int, default 200
        Bootstrap resamples within each subgroup (and overall).

    Returns
    -------
    DataFrame
        ``variable, subgroup, n, events, metric, estimate, lower, upper, overall, flag`` (the subgroup's interval
        excludes the overall estimate); the overall rows have ``variable`` "all". Subgroups with fewer than
        :data:`MIN_EVENTS` deaths by the horizon get no interval and no flag.
    """
    event, time = check_y_survival(y)
    h = float(horizon_days)
    order, t, e = fs.censored_at(time, event, h)
    r, F = np.asarray(risk, float)[order], np.asarray(pred_risk, float)[order]
    rng = np.random.default_rng(random_state)
    rows = []
    est, lo, hi = _with_intervals(t, e, r, F, h, n_boot, rng, conf_level)
    overall = dict(zip(SUBGROUP_METRICS, est, strict=True))
    for k, m in enumerate(SUBGROUP_METRICS):
        rows.append({"variable": "all", "subgroup": "all", "n": int(t.size), "events": int(e.sum()), "metric": m,
                     "estimate": est[k], "lower": lo[k], "upper": hi[k], "overall": est[k], "flag": False})
    for variable, labels in groups.items():
        labels = pd.Series(np.asarray(labels, dtype=object)[order])
        for level in sorted(labels.dropna().astype(str).unique()):
            m_ = (labels.astype(str) == level).to_numpy() & labels.notna().to_numpy()
            est, lo, hi = _with_intervals(t[m_], e[m_], r[m_], F[m_], h, n_boot, rng, conf_level)
            for k, m in enumerate(SUBGROUP_METRICS):
                flag = bool(np.isfinite(lo[k]) and not lo[k] <= overall[m] <= hi[k])
                rows.append({"variable": variable, "subgroup": level, "n": int(m_.sum()), "events": int(e[m_].sum()),
                             "metric": m, "estimate": est[k], "lower": lo[k], "upper": hi[k], "overall": overall[m],
                             "flag": flag})
    return pd.DataFrame(rows)
