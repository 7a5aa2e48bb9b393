"""Figures of model performance: calibration curves (one validation with its bootstrap band, or several sets of
predictions at one horizon) and the case-mix comparison of risk scores (forest plots of clusters or subgroups are
:func:`cartrisk.plotting.forest_figure`).
Each returns a :class:`matplotlib.figure.Figure`; the caller saves it (:func:`cartrisk.plotting.save_figure`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cartrisk.evaluation.calibration import HorizonCalibration
from cartrisk.plotting import GROUP_COLOURS, SERIES_COLOURS, new_figure

__all__ = ["calibration_curve_figure", "case_mix_figure", "horizon_calibration_figure"]


def calibration_curve_figure(curve: pd.DataFrame, deciles: pd.DataFrame, *, horizon_months: float,
                             title: str | None = None) -> Figure:
    """Observed against predicted risk of death by the horizon: the smoothed curve (Austin et al. 2020) with its
    bootstrap band, deciles of predicted risk with their Kaplan-Meier risk (95% CI), and the diagonal."""
    fig = new_figure(5.2, 5.0)
    ax = fig.add_subplot()
    top = float(np.nanmax([curve["predicted"].max(), deciles["mean_predicted"].max(),
                           np.nanmax(deciles["observed_upper"].to_numpy(float)), 0.05]))
    top = min(1.0, top * 1.05)
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--", label="ideal")
    ax.fill_between(curve["predicted"], curve["observed_lower"], curve["observed_upper"], color=GROUP_COLOURS[0],
                    alpha=0.2, lw=0, label="95% bootstrap band")
    ax.plot(curve["predicted"], curve["observed"], color=GROUP_COLOURS[0], lw=1.8, label="smoothed (RCS Cox)")
    err = np.vstack([deciles["observed"] - deciles["observed_lower"], deciles["observed_upper"] - deciles["observed"]])
    ax.errorbar(deciles["mean_predicted"], deciles["observed"], yerr=np.clip(np.nan_to_num(err), 0, None), fmt="o",
                color=GROUP_COLOURS[3], ms=4, capsize=2, label="deciles (Kaplan-Meier, 95% CI)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_xlabel(f"predicted risk of death by {horizon_months:g} months")
    ax.set_ylabel(f"observed risk of death by {horizon_months:g} months")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    return fig


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


def horizon_calibration_figure(curves: Mapping[str, HorizonCalibration], *, title: str | None = None) -> Figure:
    """Observed against predicted probability of death by a horizon, one curve per set of predictions.

    Each curve is the smoothed observed probability (:func:`~cartrisk.evaluation.calibration_at_horizon`:
    a Cox model on a spline of the predictions); the dots are groups of predicted risk (deciles) with their
    Kaplan-Meier estimate and its 95% interval. Below, the distribution of the predictions.

    Parameters
    ----------
    curves : mapping of label -> HorizonCalibration
        For example ``{"as fitted": ..., "recalibrated": ...}``, all at the same horizon.
    title : str, optional
    """
    if not curves:
        raise ValueError("curves is empty: give at least one HorizonCalibration")
    horizons = {round(c.horizon_months, 6) for c in curves.values()}
    if len(horizons) != 1:
        raise ValueError(f"curves must share one horizon, got {sorted(horizons)} months")
    fig = new_figure(6.0, 6.4)
    ax, hist = fig.subplots(2, 1, sharex=True, height_ratios=[4.0, 1.0])
    ax.plot([0, 1], [0, 1], color="#7F7F7F", lw=0.9, ls="--", label="ideal")
    for k, (label, cal) in enumerate(curves.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        ax.plot(cal.curve["predicted"], cal.curve["observed"], color=colour, lw=1.8,
                label=f"{label}: ICI {cal.ici:.3f}, slope {cal.slope:.2f}")
        t = cal.table
        pred, obs = 1.0 - t["mean_predicted"].to_numpy(float), 1.0 - t["observed"].to_numpy(float)
        low, high = 1.0 - t["observed_upper"].to_numpy(float), 1.0 - t["observed_lower"].to_numpy(float)
        err = np.clip(np.nan_to_num(np.vstack([obs - low, high - obs])), 0, None)
        ax.errorbar(pred, obs, yerr=err, fmt="o", ms=4, color=colour, capsize=2, lw=0.9,
                    mfc="white" if k else colour)
        hist.hist(cal.curve["predicted"], bins=40, range=(0, 1), color=colour, alpha=0.3 if k == 0 else 1.0,
                  histtype="stepfilled" if k == 0 else "step", lw=1.2)
    months = round(next(iter(curves.values())).horizon_months, 1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"observed probability of death by {months:g} months")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    hist.set_xlabel(f"predicted probability of death by {months:g} months")
    hist.set_ylabel("patients")
    hist.set_yticks([])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
        hist.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig
