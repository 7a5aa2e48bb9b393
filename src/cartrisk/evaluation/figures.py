"""Figures of model performance: the calibration curve of predicted survival at one horizon.

Drawn on matplotlib Figures with their own Agg canvas (:func:`cartrisk.plotting.new_figure`); the caller
writes them (:func:`cartrisk.plotting.save_figure`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from cartrisk.evaluation.calibration import HorizonCalibration
from cartrisk.plotting import SERIES_COLOURS, new_figure

__all__ = ["calibration_curve_figure"]


def calibration_curve_figure(curves: Mapping[str, HorizonCalibration], *, title: str | None = None) -> Figure:
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
