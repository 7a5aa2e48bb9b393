"""Calibration of risk groups: observed (Kaplan-Meier) against predicted OS-2, and recalibration.

:func:`group_calibration` sets each group's Kaplan-Meier OS-2 at the horizons beside the mean
predicted survival of its members; :class:`Recalibrator` maps predicted survival at the
horizons onto what held-out data show (slope and baseline hazard per horizon), and
:func:`calibration_before_after` tabulates both. The public names are re-exported by
:mod:`cartrisk.groups`. Times are days in arguments and months in result tables.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from cartrisk.data.survstats import km_at, km_median
from cartrisk.evaluation.calibration import check_horizons, check_survival_probabilities, cloglog
from cartrisk.evaluation.coxreg import baseline_cumhaz, fit_cox
from cartrisk.exceptions import StatisticalWarning
from cartrisk.groups._stats import as_vector, encode_groups, survival_arrays
from cartrisk.units import DEFAULT_HORIZONS_MONTHS, days_to_months, months_to_days

__all__ = [
    "GroupCalibration",
    "Recalibrator",
    "calibration_before_after",
    "group_calibration",
    "group_survival_curves",
]


def check_curves(surv_curves, times_days, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted curves (n x n_times survival probabilities) and their grid, checked; helper of RiskGrouper too."""
    curves = np.asarray(surv_curves, dtype=float)
    times = as_vector(times_days, "times_days")
    if curves.ndim != 2 or curves.shape != (n, len(times)):
        raise ValueError(f"surv_curves has shape {curves.shape}, expected ({n}, {len(times)}) (samples x times_days)")
    if np.any((curves < 0) | (curves > 1)) or np.isnan(curves).any():
        raise ValueError("surv_curves must be survival probabilities in [0, 1]")
    return curves, times


def curve_median_days(times: np.ndarray, curve: np.ndarray) -> float:
    """First grid time at which a survival curve reaches 0.5 (NaN when it stays above)."""
    hit = np.flatnonzero(curve <= 0.5)
    return float(times[hit[0]]) if hit.size else np.nan


def group_survival_curves(groups, surv_curves, times_days) -> pd.DataFrame:
    """Predicted survival curve of each group: the mean of its members' predicted curves.

    Parameters
    ----------
    groups : Categorical or integer codes of shape (n_samples,)
        Group of each patient (categories ordered low -> high risk).
    surv_curves : ndarray of shape (n_samples, n_times)
        ``predict_survival_at(X, times_days)`` output.
    times_days : array-like of shape (n_times,)

    Returns
    -------
    DataFrame indexed by ``time_days``, one column per group (NaN for an empty group).
    """
    codes, labels = encode_groups(groups, name="groups")
    curves, times = check_curves(surv_curves, times_days, len(codes))
    data = {lab: curves[codes == k].mean(axis=0) if (codes == k).any() else np.full(len(times), np.nan)
            for k, lab in enumerate(labels)}
    return pd.DataFrame(data, index=pd.Index(times, name="time_days"))


# --------------------------------------------------------------------------- calibration of groups
@dataclass(frozen=True)
class GroupCalibration:
    """Observed (Kaplan-Meier) against predicted OS-2 of each risk group.

    Attributes
    ----------
    horizons : DataFrame
        One row per group and horizon: ``group, horizon_months, n, events, events_by_horizon,
        observed, observed_lower, observed_upper`` (KM with log-log CI), ``predicted`` (mean
        predicted survival of the members) and ``difference`` (predicted - observed).
    medians : DataFrame
        One row per group: ``group, n, events, observed_median_months`` with its CI, and
        ``predicted_median_months`` (median of the group's mean predicted curve; NaN when no
        curves were given or the curve stays above 0.5).
    conf_level : float
    """

    horizons: pd.DataFrame
    medians: pd.DataFrame
    conf_level: float


def group_calibration(
    y,
    groups,
    surv_pred_at_horizons,
    horizons_months=DEFAULT_HORIZONS_MONTHS,
    *,
    surv_curves=None,
    times_days=None,
    conf_level: float = 0.95,
) -> GroupCalibration:
    """Per group: n, events, observed KM OS-2 (95% log-log CI) against mean predicted, and medians.

    Parameters
    ----------
    y : structured array
        Survival target (``os2_event``, ``os2_days``).
    groups : Categorical or integer codes of shape (n_samples,)
        Risk group of each patient (categories low -> high risk).
    surv_pred_at_horizons : array-like of shape (n_samples, n_horizons)
        Predicted survival probabilities at ``horizons_months`` (1-D for one horizon).
    horizons_months : sequence of float
    surv_curves, times_days : optional
        Predicted curves on a grid, for the predicted median of each group.
    conf_level : float

    Returns
    -------
    GroupCalibration
    """
    event, time = survival_arrays(y, allow_all_censored=True)
    codes, labels = encode_groups(groups, name="groups")
    if len(codes) != len(time):
        raise ValueError(f"groups has {len(codes)} values, expected {len(time)}")
    horizons = np.atleast_1d(np.asarray(horizons_months, dtype=float))
    pred = np.asarray(surv_pred_at_horizons, dtype=float)
    pred = pred[:, None] if pred.ndim == 1 else pred
    if pred.shape != (len(time), len(horizons)):
        raise ValueError(f"surv_pred_at_horizons has shape {pred.shape}, expected ({len(time)}, {len(horizons)})")
    group_curves = None if surv_curves is None else group_survival_curves(
        pd.Categorical.from_codes(codes, categories=labels), surv_curves, times_days)
    hdays = months_to_days(horizons)
    rows, med_rows = [], []
    for k, lab in enumerate(labels):
        m = codes == k
        e, t = event[m], time[m]
        obs, lo, hi = km_at(e, t, hdays, conf_level)
        for j, h in enumerate(horizons):
            mean_pred = float(pred[m, j].mean()) if m.any() else np.nan
            rows.append({"group": lab, "horizon_months": h, "n": int(m.sum()), "events": int(e.sum()),
                         "events_by_horizon": int((e & (t <= hdays[j])).sum()), "observed": obs[j],
                         "observed_lower": lo[j], "observed_upper": hi[j], "predicted": mean_pred,
                         "difference": mean_pred - obs[j]})
        med = days_to_months(np.array(km_median(e, t, conf_level)))
        pred_med = np.nan if group_curves is None else days_to_months(
            curve_median_days(group_curves.index.to_numpy(), group_curves[lab].to_numpy()))
        med_rows.append({"group": lab, "n": int(m.sum()), "events": int(e.sum()), "observed_median_months": med[0],
                         "observed_median_lower": med[1], "observed_median_upper": med[2],
                         "predicted_median_months": pred_med})
    cat = pd.CategoricalDtype(labels, ordered=True)
    table, medians = pd.DataFrame(rows), pd.DataFrame(med_rows)
    table["group"], medians["group"] = table["group"].astype(cat), medians["group"].astype(cat)
    return GroupCalibration(table, medians, conf_level)


# --------------------------------------------------------------------------- recalibration
class Recalibrator(TransformerMixin, BaseEstimator):
    """Recalibrate predicted survival at horizons on held-out data (Cox model on cloglog S(h)).

    At each horizon h, x = log(-log S_pred(h)) enters a Cox model of the held-out outcomes
    administratively censored at h; the recalibrated prediction is

        S_new(h | x) = exp(-H0(h) exp(b x)),

    with b the Cox slope (the calibration slope) and H0(h) Breslow's cumulative baseline hazard.
    Why this rather than an isotonic map per risk bin: it needs only S(h), so it serves every
    model family (random survival forests and boosting have no linear predictor); for a Cox
    model cloglog S(h) = LP + log H0(h), so with ``fit_slope=False`` (b = 1) it *is* the refit of
    the baseline hazard with the linear predictor as offset, and with the slope it is van
    Houwelingen's recalibration (Stat Med 2000;19:3401-15; Crowson et al., Stat Methods Med Res
    2016;25:1692-706). Two parameters per horizon are stable on a few hundred patients, whereas
    binning plus isotonic regression needs many events per bin and maps patients to steps.
    With b > 0 it keeps the ranking, so discrimination is untouched. Recalibrated values are
    made non-increasing across horizons (cumulative minimum in time order).

    Parameters
    ----------
    horizons_months : sequence of float
        Horizons of the columns of ``X``.
    fit_slope : bool
        Estimate the slope b (default) or fix it at 1 (recalibration in the large).

    Attributes
    ----------
    slope_ : ndarray of shape (n_horizons,)
    baseline_cumhaz_ : ndarray of shape (n_horizons,)
        H0(h) of each horizon.
    """

    _parameter_constraints: dict = {"horizons_months": ["array-like"], "fit_slope": ["boolean"]}

    def __init__(self, horizons_months=DEFAULT_HORIZONS_MONTHS, fit_slope=True) -> None:
        self.horizons_months = horizons_months
        self.fit_slope = fit_slope

    def _check_X(self, X, n: int | None = None) -> np.ndarray:
        k = len(np.atleast_1d(self.horizons_months))
        X = np.asarray(X, dtype=float)
        X = X[:, None] if X.ndim == 1 else X
        if X.ndim != 2 or X.shape[1] != k or (n is not None and X.shape[0] != n):
            raise ValueError(f"X must hold predicted survival at the {k} horizons, got shape {X.shape}")
        return check_survival_probabilities(X, X.shape, "X")

    def fit(self, X, y):
        """Fit slope and baseline hazard at each horizon.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_horizons)
            Predicted survival at ``horizons_months`` on held-out patients.
        y : structured array
            Their outcomes.

        Returns
        -------
        self
        """
        self._validate_params()
        horizons = np.atleast_1d(np.asarray(self.horizons_months, dtype=float))
        if horizons.ndim != 1 or np.any(horizons <= 0):
            raise ValueError(f"horizons_months must be positive, got {self.horizons_months!r}")
        event, time = survival_arrays(y)
        X = self._check_X(X, len(time))
        check_horizons(months_to_days(horizons), y, require_events=True)
        self.slope_, self.baseline_cumhaz_ = np.empty(len(horizons)), np.empty(len(horizons))
        for j, h in enumerate(horizons):
            hd = months_to_days(h)
            e_h, t_h = event & (time <= hd), np.minimum(time, hd)
            x = cloglog(X[:, j])
            if self.fit_slope:  # the fit's own baseline: its risk sets are worked out once
                fit = fit_cox(x, e_h, t_h, ties="breslow")
                self.slope_[j], self.baseline_cumhaz_[j] = float(fit.coef[0]), float(fit.cumhaz(hd))
            else:
                self.slope_[j] = 1.0
                self.baseline_cumhaz_[j] = float(baseline_cumhaz(x, e_h, t_h, [1.0], hd, ties="breslow"))
        if np.any(self.slope_ <= 0):
            warnings.warn(f"calibration slope <= 0 at some horizon ({self.slope_}): recalibration reverses the "
                          "ranking; the predictions carry no usable signal there", StatisticalWarning, stacklevel=2)
        return self

    def transform(self, X) -> np.ndarray:
        """Recalibrated survival at the horizons, shape (n_samples, n_horizons)."""
        check_is_fitted(self, "slope_")
        X = self._check_X(X)
        out = np.exp(-self.baseline_cumhaz_[None, :] * np.exp(self.slope_[None, :] * cloglog(X)))
        order = np.argsort(np.atleast_1d(np.asarray(self.horizons_months, dtype=float)), kind="mergesort")
        out[:, order] = np.minimum.accumulate(out[:, order], axis=1)
        return out


def calibration_before_after(
    y, groups, surv_pred_at_horizons, recalibrator: Recalibrator, *, conf_level: float = 0.95
) -> pd.DataFrame:
    """Group calibration before and after a fitted :class:`Recalibrator`, as one long table.

    Evaluate on patients other than those the recalibrator was fitted on, or the "after"
    rows are optimistic. Returns the rows of :attr:`GroupCalibration.horizons` with a leading
    ``stage`` column ("before" / "after").
    """
    check_is_fitted(recalibrator, "slope_")
    horizons = recalibrator.horizons_months
    stages = {"before": np.asarray(surv_pred_at_horizons, dtype=float),
              "after": recalibrator.transform(surv_pred_at_horizons)}
    frames = [group_calibration(y, groups, pred, horizons, conf_level=conf_level).horizons.assign(stage=stage)
              for stage, pred in stages.items()]
    out = pd.concat(frames, ignore_index=True)
    return out[["stage"] + [c for c in out.columns if c != "stage"]]
