"""Internal-external validation across clusters (centres or periods), pooled by random-effects meta-analysis.

Each centre is left out in turn (centres with fewer deaths than ``min_events`` are grouped, smallest first), the
model is developed on the others and validated on it; for periods (a numeric cluster column such as
``infusion_year``) the model is developed on the earlier periods and validated on the next one (periods grouped
likewise). Per cluster: Harrell's C, the O/E ratio and the calibration slope at a horizon, pooled by REML
(:func:`cartrisk.evaluation.meta.random_effects`) on the scales of Debray et al. (BMJ 2017;356:i6460): logit C
(bootstrap standard error within the cluster), log O/E (standard error ``1 / sqrt(deaths)``), slope (Cox standard
error). Royston, Parmar & Sylvester (Stat Med 2004) and Steyerberg & Harrell (J Clin Epidemiol 2016) describe the
design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import clone
from sklearn.utils import _safe_indexing
from sksurv.util import check_y_survival

from cartrisk.evaluation import _fastsurv as fs
from cartrisk.evaluation.calibration import calibration_slope
from cartrisk.evaluation.crossval import seed_estimator
from cartrisk.evaluation.meta import random_effects
from cartrisk.exceptions import ConfigError
from cartrisk.units import interval_text, months_to_days

__all__ = ["ClusterFold", "ClusterValidation", "cluster_splits", "internal_external_validation"]

DESIGNS = ("auto", "leave-one-out", "temporal")


@dataclass(frozen=True)
class ClusterFold:
    """One held-out cluster (or group of small ones): its name and the positions of development and validation."""

    name: str
    train: np.ndarray
    test: np.ndarray


def _resolve(labels: pd.Series, design: str) -> str:
    if design not in DESIGNS:
        raise ConfigError(f"evaluation.cluster_design must be one of {', '.join(DESIGNS)}, got {design!r}")
    if design == "auto":
        return "temporal" if pd.api.types.is_numeric_dtype(labels) else "leave-one-out"
    return design


def _merge_small(order: list, events: dict, min_events: int) -> list[list]:
    groups, current = [], []
    for label in order:
        current.append(label)
        if sum(events[c] for c in current) >= min_events:
            groups.append(current)
            current = []
    if current:
        if groups:
            groups[-1] += current
        else:
            groups.append(current)
    return groups


def cluster_splits(labels, event, *, design: str = "auto", min_events: int = 10) -> tuple[list[ClusterFold], str]:
    """The folds of internal-external validation, and the design used (see the module docstring).

    Parameters
    ----------
    labels : array-like
        Cluster of each patient (missing values are never validated on, but developed on in leave-one-out).
    event : array-like of bool
        Deaths (for grouping small clusters).
    design : {"auto", "leave-one-out", "temporal"}
        "auto": temporal for a numeric column (periods), leave-one-out otherwise.
    min_events : int, default 10
        Clusters (or periods) with fewer deaths are grouped with others.
    """
    labels = pd.Series(labels).reset_index(drop=True)
    event = np.asarray(event, dtype=bool)
    design = _resolve(labels, design)
    present = labels.notna().to_numpy()
    keys = labels[present].unique().tolist()
    if len(keys) < 2:
        raise ConfigError(f"internal-external validation needs at least two clusters; the cluster column has "
                          f"{len(keys)} distinct value(s)")
    events = {k: int(event[(labels == k).to_numpy()].sum()) for k in keys}
    positions = np.arange(labels.shape[0])
    folds = []
    if design == "temporal":
        order = sorted(keys)
        for group in _merge_small(order, events, min_events):
            test = positions[labels.isin(group).to_numpy()]
            train = positions[present & (labels < min(group)).to_numpy()]
            if event[train].sum() < min_events:  # too little earlier data to develop on
                continue
            folds.append(ClusterFold(f"{min(group)}" if len(group) == 1 else f"{min(group)}-{max(group)}", train, test))
    else:
        order = sorted(keys, key=lambda k: (events[k], str(k)))
        for group in _merge_small(order, events, min_events):
            member = labels.isin(group).to_numpy()
            folds.append(ClusterFold("+".join(map(str, sorted(group, key=str))), positions[~member],
                                     positions[member]))
    if len(folds) < 2:
        raise ConfigError(f"internal-external validation ({design}) left {len(folds)} cluster(s) with at least "
                          f"{min_events} deaths to validate on; lower evaluation.cluster_min_events or use another "
                          "cluster column")
    return folds, design


@dataclass(frozen=True)
class ClusterValidation:
    """What :func:`internal_external_validation` found.

    Attributes
    ----------
    per_cluster : DataFrame
        ``cluster, n, events, harrell_c, harrell_c_lower, harrell_c_upper, oe_ratio, oe_ratio_lower, oe_ratio_upper,
        calibration_slope, calibration_slope_lower, calibration_slope_upper`` (95% intervals; NaN where undefined).
    pooled : DataFrame
        ``metric, scale, k, estimate, lower, upper, pi_lower, pi_upper, tau2, tau2_lower, tau2_upper, i2`` (back on the
        metric's scale; ``tau2`` on the pooling scale: logit, log or identity).
    design : str
    horizon_months : float
    """

    per_cluster: pd.DataFrame
    pooled: pd.DataFrame
    design: str
    horizon_months: float

    def answer(self, what: str) -> str:
        p = self.pooled.set_index("metric")

        def f(m: str) -> str:
            r = p.loc[m]
            ci, pi = (interval_text(r[lo], r[hi], "{:.2f}".format) or "n/a"
                      for lo, hi in (("lower", "upper"), ("pi_lower", "pi_upper")))
            return f"{r['estimate']:.2f} (95% CI {ci}; prediction interval {pi})"

        return (f"Across {int(p.loc['harrell_c', 'k'])} held-out clusters ({self.design}), {what} has pooled "
                f"Harrell's C {f('harrell_c')}, O/E {f('oe_ratio')} and calibration slope {f('calibration_slope')} at "
                f"{self.horizon_months:g} months; between-cluster variance of log O/E "
                f"{p.loc['oe_ratio', 'tau2']:.3f} (I^2 {p.loc['oe_ratio', 'i2']:.0f}%).")


def _cluster_row(name, y_test, risk, pred_risk, h, n_boot, rng) -> dict:
    event, time = check_y_survival(y_test)
    order, t, e = fs.censored_at(time, event, h)
    r, F = risk[order], pred_risk[order]
    deaths = int(e.sum())
    c, oe = (fs.concordance(t, e, r), (1.0 - fs.Distinct.of(t, e).survival_at(h)) / F.mean()) if deaths \
        else (np.nan, np.nan)
    slope, se_slope = calibration_slope(t, e, F) if deaths else (np.nan, np.nan)  # one fit: slope and its SE
    logit_c = []
    for _ in range(n_boot if deaths else 0):
        idx = np.sort(rng.integers(0, t.size, t.size))
        cb = fs.concordance(t[idx], e[idx], r[idx])
        if np.isfinite(cb) and 0 < cb < 1:
            logit_c.append(np.log(cb / (1 - cb)))
    se_c = float(np.std(logit_c, ddof=1)) if len(logit_c) > 1 else np.nan
    se_oe = 1.0 / np.sqrt(deaths) if deaths else np.nan
    lc = np.log(c / (1 - c)) if 0 < c < 1 else np.nan
    return {"cluster": name, "n": int(t.size), "events": deaths,
            "harrell_c": c, "harrell_c_lower": expit(lc - 1.96 * se_c), "harrell_c_upper": expit(lc + 1.96 * se_c),
            "oe_ratio": oe, "oe_ratio_lower": oe * np.exp(-1.96 * se_oe), "oe_ratio_upper": oe * np.exp(1.96 * se_oe),
            "calibration_slope": slope, "calibration_slope_lower": slope - 1.96 * se_slope,
            "calibration_slope_upper": slope + 1.96 * se_slope,
            "_logit_c": lc, "_var_logit_c": se_c ** 2, "_log_oe": np.log(oe) if oe > 0 else np.nan,
            "_var_log_oe": se_oe ** 2, "_var_slope": se_slope ** 2}


_POOL = (("harrell_c", "logit", "_logit_c", "_var_logit_c", expit),
         ("oe_ratio", "log", "_log_oe", "_var_log_oe", np.exp),
         ("calibration_slope", "identity", "calibration_slope", "_var_slope", lambda x: x))


def pool_clusters(rows: pd.DataFrame) -> pd.DataFrame:
    """REML random-effects pooling of per-cluster C (logit), O/E (log) and calibration slope."""
    out = []
    for metric, scale, column, var, back in _POOL:
        ok = np.isfinite(rows[column]) & np.isfinite(rows[var]) & (rows[var] > 0)
        if ok.sum() < 2:
            out.append({"metric": metric, "scale": scale, "k": int(ok.sum())})
            continue
        m = random_effects(rows.loc[ok, column], rows.loc[ok, var])
        out.append({"metric": metric, "scale": scale, "k": m.k, "estimate": back(m.estimate),
                    "lower": back(m.lower), "upper": back(m.upper), "pi_lower": back(m.pi_lower),
                    "pi_upper": back(m.pi_upper), "tau2": m.tau2, "tau2_lower": m.tau2_lower,
                    "tau2_upper": m.tau2_upper, "i2": m.i2})
    return pd.DataFrame(out)


def internal_external_validation(estimator, X, y, labels, *, design: str = "auto", horizon_months: float = 6.0,
                                 min_events: int = 10, n_boot: int = 200, random_state: int = 0
                                 ) -> ClusterValidation:
    """Develop on all clusters but one (or on earlier periods) and validate on the one held out, in turn.

    Parameters
    ----------
    estimator : model or pipeline
        ``fit``, ``predict`` (risk) and ``predict_survival_at``; cloned and seeded per cluster.
    X, y : covariates and structured survival target (days)
    labels : array-like
        Cluster of each patient (e.g. ``centre_id`` or ``infusion_year``).
    design, min_events : see :func:`cluster_splits`
    horizon_months : float, default 6
    n_boot : int, default 200
        Resamples of the bootstrap standard error of C within each cluster.
    """
    event, _ = check_y_survival(y)
    folds, design = cluster_splits(labels, event, design=design, min_events=min_events)
    h = months_to_days(horizon_months)
    rng = np.random.default_rng(random_state)
    seeds = np.random.SeedSequence(random_state).generate_state(len(folds))
    rows = []
    for fold, seed in zip(folds, seeds, strict=True):
        est = seed_estimator(clone(estimator), int(seed)).fit(_safe_indexing(X, fold.train), y[fold.train])
        X_test, y_test = _safe_indexing(X, fold.test), y[fold.test]
        risk = np.asarray(est.predict(X_test), dtype=float)
        pred = 1.0 - np.clip(np.asarray(est.predict_survival_at(X_test, [h]), dtype=float)[:, 0], 0.0, 1.0)
        rows.append(_cluster_row(fold.name, y_test, risk, pred, h, n_boot, rng))
    table = pd.DataFrame(rows)
    pooled = pool_clusters(table)
    return ClusterValidation(table[[c for c in table.columns if not c.startswith("_")]], pooled, design,
                             float(horizon_months))
