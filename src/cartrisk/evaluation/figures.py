"""Figures of model performance: the calibration curve at a horizon (one external validation with its bootstrap
band, or several sets of predictions such as as-fitted and recalibrated) and the case-mix comparison of risk
scores (forest plots of clusters or subgroups are :func:`cartrisk.plotting.forest_figure`).
Each returns a :class:`matplotlib.figure.Figure`; the caller saves it (:func:`cartrisk.plotting.save_figure`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cartrisk.evaluation.calibration import HorizonCalibration
from cartrisk.evaluation.external import ExternalValidation
from cartrisk.plotting import GROUP_COLOURS, SERIES_COLOURS, error_bars, new_figure

__all__ = ["case_mix_figure", "horizon_calibration_figure"]


def case_mix_figure(development: Mapping[str, float | Sequence[float]] | None, validation: np.ndarray, *,
                    membership_c: float | None = None, title: str | None = None) -> Figure:
    """Distribution of the risk score (the linear predictor of a Cox model) in the validation cohort, against
    the development cohort's percentiles (stored in the bundle), with the C of membership."""
    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    validation = np.asarray(validation, dtype=float)
    pct = np.asarray(development["percentiles"], dtype=float) if development else np.empty(0)
    lo = np.nanmin(np.concatenate([validation, pct]))
    hi = np.nanmax(np.concatenate([validation, pct]))
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 31)
    ax.hist(validation, bins=bins, density=True, color=GROUP_COLOURS[3], alpha=0.45,
            label=f"validation (n={validation.size:,})")
    if pct.size:
        # each of the 99 percentiles stands for 1% of the development cohort
        ax.hist(pct, bins=bins, density=True, histtype="step", color=GROUP_COLOURS[0], lw=1.8,
                label=f"development (n={int(development['n']):,}; percentiles)")
    ax.set_xlabel("risk score (linear predictor)")
    ax.set_ylabel("density")
    ax.grid(alpha=0.3)
    note = "" if membership_c is None or not np.isfinite(membership_c) else f"; membership C {membership_c:.2f}"
    ax.set_title((title or "case mix: development vs validation") + note, fontsize="medium")
    ax.legend(fontsize="small", frameon=False)
    return fig


@dataclass(frozen=True)
class _Series:
    """One set of predictions as the calibration figure draws it (risk of death by the horizon)."""

    curve: pd.DataFrame  # predicted, observed [, observed_lower, observed_upper]: the smoothed curve (and band)
    points: pd.DataFrame  # mean_predicted, observed, observed_lower, observed_upper: groups of predicted risk
    ici: float
    slope: float
    horizon_months: float
    predictions: np.ndarray | None  # each patient's predicted risk (the histogram), when known


def _series(cal: HorizonCalibration | ExternalValidation) -> _Series:
    if isinstance(cal, ExternalValidation):
        return _Series(cal.calibration_curve, cal.deciles, cal.estimate("ici"), cal.estimate("calibration_slope"),
                       cal.horizon_months, None)
    t = cal.table  # groups of predicted risk on the survival scale: turned into risks of death
    points = pd.DataFrame({"mean_predicted": 1.0 - t["mean_predicted"], "observed": 1.0 - t["observed"],
                           "observed_lower": 1.0 - t["observed_upper"], "observed_upper": 1.0 - t["observed_lower"]})
    return _Series(cal.curve, points, cal.ici, cal.slope, cal.horizon_months, cal.curve["predicted"].to_numpy(float))


def horizon_calibration_figure(curves: Mapping[str, HorizonCalibration | ExternalValidation], *,
                               title: str | None = None) -> Figure:
    """Observed against predicted probability of death by a horizon, one curve per set of predictions.

    Each curve is the smoothed observed probability (Austin et al. 2020: a Cox model on a spline of the
    predictions; :func:`~cartrisk.evaluation.calibration_at_horizon` or
    :func:`~cartrisk.evaluation.external_validation`), with its 95% bootstrap band where the validation has one;
    the dots are groups of predicted risk (deciles) with their Kaplan-Meier estimate and its 95% interval. Below,
    the distribution of the predictions (where the patients' predictions are known). The axes end just above the
    largest risk drawn.

    Parameters
    ----------
    curves : mapping of label -> HorizonCalibration or ExternalValidation
        For example ``{"as fitted": ..., "recalibrated": ...}``, all at the same horizon.
    title : str, optional
    """
    if not curves:
        raise ValueError("curves is empty: give at least one HorizonCalibration")
    series = {label: _series(cal) for label, cal in curves.items()}
    horizons = {round(s.horizon_months, 6) for s in series.values()}
    if len(horizons) != 1:
        raise ValueError(f"curves must share one horizon, got {sorted(horizons)} months")
    histogram = any(s.predictions is not None for s in series.values())
    fig = new_figure(6.0, 6.4 if histogram else 5.2)
    ax, hist = fig.subplots(2, 1, sharex=True, height_ratios=[4.0, 1.0]) if histogram else (fig.add_subplot(), None)
    drawn = [0.05]
    for s in series.values():
        drawn += [s.curve["predicted"].max(), s.points["mean_predicted"].max(), s.curve["observed"].max(),
                  np.nanmax(s.points["observed_upper"].to_numpy(float), initial=0.0)]
    top = min(1.0, 1.05 * float(np.nanmax(drawn)))
    ax.plot([0, top], [0, top], color="#7F7F7F", lw=0.9, ls="--", label="ideal")
    for k, (label, s) in enumerate(series.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        if {"observed_lower", "observed_upper"} <= set(s.curve.columns) and s.curve["observed_lower"].notna().any():
            ax.fill_between(s.curve["predicted"], s.curve["observed_lower"], s.curve["observed_upper"], color=colour,
                            alpha=0.15, lw=0, label=f"{label}: 95% bootstrap band")
        ax.plot(s.curve["predicted"], s.curve["observed"], color=colour, lw=1.8,
                label=f"{label}: ICI {s.ici:.3f}, slope {s.slope:.2f}")
        p = s.points
        error_bars(ax, p["mean_predicted"], p["observed"], p["observed_lower"], p["observed_upper"], fmt="o", ms=4,
                   color=colour, capsize=2, lw=0.9, mfc="white" if k else colour)
        if hist is not None and s.predictions is not None:
            hist.hist(s.predictions, bins=40, range=(0, top), color=colour, alpha=0.3 if k == 0 else 1.0,
                      histtype="stepfilled" if k == 0 else "step", lw=1.2)
    months = round(next(iter(series.values())).horizon_months, 1)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_ylabel(f"observed probability of death by {months:g} months")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    bottom = hist if hist is not None else ax
    bottom.set_xlabel(f"predicted probability of death by {months:g} months")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if hist is not None:
        hist.set_ylabel("patients")
        hist.set_yticks([])
        for side in ("top", "right"):
            hist.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig
