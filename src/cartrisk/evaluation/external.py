"""External validation at a horizon: discrimination, calibration, overall accuracy and net benefit, with
bootstrap 95% intervals, on any cohort the model was not built on.

Definitions (McLernon et al., Ann Intern Med 2023;176:105-14, and the R code that goes with it; every metric is
computed on the validation outcome administratively censored at the horizon ``h``):

``harrell_c``          Harrell's C of the risk score (R ``survival::concordance`` rules).
``uno_c``              Uno's C: each comparable pair weighted by 1 / G(t_i-)^2, G the censoring distribution of
                       the validation cohort (reverse Kaplan-Meier).
``auc``                Uno's cumulative/dynamic AUC at h: cases died by h (weight 1 / G(t_i-)), controls alive at h.
``oe_ratio``           (1 - Kaplan-Meier survival at h) / mean predicted risk of death by h.
``calibration_slope``  Cox regression of the outcome on the complementary log-log of predicted risk, which for a
                       Cox model is its linear predictor plus a constant (and the log cumulative hazard at h for
                       any other family).
``ici``, ``e50``, ``e90``, ``emax``
                       Austin, Harrell & van Klaveren (Stat Med 2020;39:2714-42): observed risk from a Cox model on
                       a 3-knot restricted cubic spline of the complementary log-log of predicted risk (knots as
                       ``rms::rcs``); mean, median, 90th percentile and maximum of |predicted - observed| over the
                       validation patients.
``brier``              Brier score of the predicted risk at h with inverse-probability-of-censoring weights.
``ipa``                1 - brier / brier of the null model (Kaplan-Meier risk at h for everyone).
``net_benefit@p``      Vickers, Cronin, Elkin & Gonen (BMC Med Inform Decis Mak 2008;8:53): treat when the
                       predicted risk is >= p; true and false positives from the Kaplan-Meier risk of the treated.

Intervals are percentiles of the statistics over nonparametric bootstrap resamples of the validation cohort.
Times are days in arguments; tables say months.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sksurv.util import check_y_survival

from cartrisk.evaluation import _fastsurv as fs
from cartrisk.evaluation.calibration import calibration_slope, group_table, smoothed_observed_risk
from cartrisk.exceptions import StatisticalWarning
from cartrisk.units import days_to_months

__all__ = ["METRICS", "ExternalValidation", "external_validation", "validation_metrics"]

#: The metrics of :func:`validation_metrics`, in the order of ``metrics.csv`` (net benefit rows follow).
METRICS = ("harrell_c", "uno_c", "auc", "oe_ratio", "calibration_slope", "ici", "e50", "e90", "emax", "brier", "ipa")
_EPS = 1e-10
_GRID_POINTS = 100


@dataclass(frozen=True)
class ExternalValidation:
    """What :func:`external_validation` found.

    Attributes
    ----------
    metrics : DataFrame
        ``metric, estimate, lower, upper`` (percentile bootstrap interval), one row per metric of :data:`METRICS`
        and one ``net_benefit@<p>`` row per threshold.
    calibration_curve : DataFrame
        ``predicted, observed, observed_lower, observed_upper``: the smoothed calibration curve (risk of death by
        the horizon) on a grid from the 1st to the 99th percentile of predicted risk, with its bootstrap band.
    deciles : DataFrame
        ``group, n, events, mean_predicted, observed, observed_lower, observed_upper``: deciles of predicted
        risk against their Kaplan-Meier risk (95% log-log interval).
    decision_curve : DataFrame
        ``threshold, model, treat_all, treat_none`` net benefit.
    horizon_months : float
    n, n_events : int
        Patients, and deaths by the horizon.
    n_boot, n_failed : int
        Resamples drawn, and those on which a statistic could not be computed (left out of its interval).
    conf_level : float
    """

    metrics: pd.DataFrame
    calibration_curve: pd.DataFrame
    deciles: pd.DataFrame
    decision_curve: pd.DataFrame
    horizon_months: float
    n: int
    n_events: int
    n_boot: int
    n_failed: int
    conf_level: float

    def estimate(self, metric: str) -> float:
        """The point estimate of one metric."""
        return float(self.metrics.set_index("metric").loc[metric, "estimate"])


def _net_benefit(t, e, F, thresholds, h) -> np.ndarray:
    out = np.zeros(len(thresholds))
    for k, p in enumerate(thresholds):
        treat = F >= p
        if treat.any():
            s = fs.Distinct.of(t[treat], e[treat]).survival_at(h)
            out[k] = treat.mean() * ((1.0 - s) - s * p / (1.0 - p))
    return out


def _statistics(t, e, r, F, h: float, thresholds, grid_risk) -> tuple[np.ndarray, np.ndarray]:
    """Every metric, and the smoothed observed risk on ``grid_risk``, of sorted data censored at ``h``."""
    nan = np.full(len(METRICS) + len(thresholds), np.nan)
    curve = np.full(grid_risk.shape[0], np.nan)
    if not e.any():
        return nan, curve
    d = fs.Distinct.of(t, e)
    surv_h = d.survival_at(h)
    g = d.censoring_left(t)
    uno_w = np.where(e, 1.0 / np.maximum(g, _EPS) ** 2, 0.0)
    slope = calibration_slope(t, e, F)[0]
    observed, curve = smoothed_observed_risk(t, e, F, h, grid_risk)
    err = np.abs(F - observed)
    brier = fs.brier_at(t, e, F, h, d)
    brier_null = fs.brier_at(t, e, np.full_like(F, 1.0 - surv_h), h, d)
    values = [fs.concordance(t, e, r), fs.concordance(t, e, r, uno_w), fs.auc_at(t, e, r, h, d),
              (1.0 - surv_h) / F.mean(), slope, err.mean(), np.median(err), np.quantile(err, 0.9), err.max(),
              brier, 1.0 - brier / brier_null if brier_null > 0 else np.nan]
    return np.array([*values, *_net_benefit(t, e, F, thresholds, h)], dtype=float), curve


def _prepare(y, risk_score, pred_risk, horizon_days: float):
    event, time = check_y_survival(y)
    risk_score = np.asarray(risk_score, dtype=float)
    pred_risk = np.asarray(pred_risk, dtype=float)
    n = time.shape[0]
    if risk_score.shape != (n,) or pred_risk.shape != (n,):
        raise ValueError(f"risk_score and pred_risk must hold one value per patient ({n}), got shapes "
                         f"{risk_score.shape} and {pred_risk.shape}")
    if not (np.isfinite(risk_score).all() and np.isfinite(pred_risk).all()):
        raise ValueError("risk_score and pred_risk must be finite")
    if pred_risk.min() < 0 or pred_risk.max() > 1:
        raise ValueError("pred_risk must be probabilities of death by the horizon, in [0, 1]")
    h = float(horizon_days)
    if not np.isfinite(h) or h <= 0 or h < time.min():
        raise ValueError(f"horizon {days_to_months(h):g} months ({h:.0f} days) is before the first observed time "
                         f"({time.min():.0f} days); use a later horizon")
    if h > time.max():
        raise ValueError(f"horizon {days_to_months(h):g} months ({h:.0f} days) is beyond the follow-up of the "
                         f"validation cohort (last observed time {time.max():.0f} days); use an earlier horizon")
    order, t, e = fs.censored_at(time, event, h)
    if not e.any():
        raise ValueError(f"no deaths by the horizon {days_to_months(h):g} months in the validation cohort; use a "
                         "later horizon")
    return t, e, risk_score[order], pred_risk[order], h


def validation_metrics(y, risk_score, pred_risk, horizon_days: float, thresholds: Sequence[float] = ()
                       ) -> dict[str, float]:
    """The point estimates of :func:`external_validation` (no bootstrap), keyed by metric name.

    Parameters
    ----------
    y : structured array
        Validation outcome (event, time in days).
    risk_score : array-like of shape (n_samples,)
        The model's risk score (higher = worse; a Cox model's linear predictor) for the concordance metrics.
    pred_risk : array-like of shape (n_samples,)
        Predicted probability of death by the horizon, ``1 - S(h | x)``.
    horizon_days : float
    thresholds : sequence of float
        Risk thresholds of the net benefit rows.
    """
    t, e, r, F, h = _prepare(y, risk_score, pred_risk, horizon_days)
    thresholds = tuple(float(p) for p in thresholds)
    values, _ = _statistics(t, e, r, F, h, thresholds, np.empty(0))
    return dict(zip(_names(thresholds), values.tolist(), strict=True))


def _names(thresholds) -> list[str]:
    return [*METRICS, *(f"net_benefit@{p:g}" for p in thresholds)]


def external_validation(y, risk_score, pred_risk, horizon_days: float, *, thresholds: Sequence[float] = (),
                        n_boot: int = 1000, conf_level: float = 0.95, random_state=0) -> ExternalValidation:
    """Validate predictions on a cohort: every metric of :data:`METRICS` with bootstrap intervals, and the tables
    behind the calibration plot and the decision curve.

    Parameters are those of :func:`validation_metrics`, and

    n_boot : int, default 1000
        Bootstrap resamples of the validation cohort (0: no intervals).
    conf_level : float, default 0.95
    random_state : int or Generator
        Seed of the resampling.

    Warns
    -----
    StatisticalWarning
        When some resamples gave no value for a metric (e.g. no deaths drawn): they are left out of its interval.
    """
    t, e, r, F, h = _prepare(y, risk_score, pred_risk, horizon_days)
    thresholds = tuple(float(p) for p in thresholds)
    if any(not 0 < p < 1 for p in thresholds):
        raise ValueError(f"net-benefit thresholds must lie strictly between 0 and 1, got {thresholds}")
    if n_boot < 0 or not 0 < conf_level < 1:
        raise ValueError(f"n_boot must be >= 0 and conf_level in (0, 1), got {n_boot} and {conf_level}")
    lo_q, hi_q = np.quantile(F, [0.01, 0.99])
    grid = np.linspace(lo_q, hi_q, _GRID_POINTS) if hi_q > lo_q else np.array([lo_q])
    estimate, curve = _statistics(t, e, r, F, h, thresholds, grid)
    rng = np.random.default_rng(random_state)
    n = t.shape[0]
    reps = np.full((n_boot, estimate.shape[0]), np.nan)
    curves = np.full((n_boot, grid.shape[0]), np.nan)
    for b in range(n_boot):
        idx = np.sort(rng.integers(0, n, n))
        reps[b], curves[b] = _statistics(t[idx], e[idx], r[idx], F[idx], h, thresholds, grid)
    failed = ~np.isfinite(reps)
    if n_boot and failed.any():
        warnings.warn(f"{int(failed.any(axis=1).sum())} of {n_boot} bootstrap resamples gave no value for some "
                      "metric and were left out of its interval", StatisticalWarning, stacklevel=2)
    lower, upper = fs.percentile_interval(reps, conf_level)
    band = fs.percentile_interval(curves, conf_level)
    metrics = pd.DataFrame({"metric": _names(thresholds), "estimate": estimate, "lower": lower, "upper": upper})
    return ExternalValidation(
        metrics=metrics,
        calibration_curve=pd.DataFrame({"predicted": grid, "observed": curve, "observed_lower": band[0],
                                        "observed_upper": band[1]}),
        deciles=_deciles(t, e, F, h), decision_curve=_decision_curve(t, e, F, h),
        horizon_months=float(days_to_months(h)), n=int(n), n_events=int(e.sum()), n_boot=int(n_boot),
        n_failed=int(failed.any(axis=1).sum()), conf_level=conf_level)


def _deciles(t, e, F, h, n_groups: int = 10) -> pd.DataFrame:
    """calibration_at_horizon's groups of predicted risk, on the risk scale."""
    g = group_table(e, t, 1.0 - F, h, n_groups)
    return pd.DataFrame({"group": g["group"], "n": g["n"], "events": g["n_events"],
                         "mean_predicted": 1.0 - g["mean_predicted"], "observed": 1.0 - g["observed"],
                         "observed_lower": 1.0 - g["observed_upper"], "observed_upper": 1.0 - g["observed_lower"]})


def _decision_curve(t, e, F, h) -> pd.DataFrame:
    thresholds = np.round(np.arange(0.01, 0.991, 0.01), 10)
    surv = fs.Distinct.of(t, e).survival_at(h)
    treat_all = (1.0 - surv) - surv * thresholds / (1.0 - thresholds)
    return pd.DataFrame({"threshold": thresholds, "model": _net_benefit(t, e, F, thresholds, h),
                         "treat_all": treat_all, "treat_none": 0.0})
