"""Figures of the cohort: the simulated (or real) registry against the published figures it is calibrated to.

Drawn on matplotlib Figures with their own Agg canvas (:func:`cartrisk.plotting.new_figure`); the caller
writes them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cartrisk.plotting import SERIES_COLOURS, new_figure

__all__ = ["OUTCOME_TARGETS", "target_label", "targets_figure"]

_QUANTITY_WORDS = {
    "window_share_pct": "share of patients", "median_time_to_failure_months": "median time to failure",
    "median_os2_months": "median OS-2", "median_pfs2_months": "median PFS-2", "os2_6mo_pct": "OS-2 at 6 months",
    "os2_12mo_pct": "OS-2 at 12 months", "pfs2_progressed_6mo_pct": "progressed by 6 months",
    "pfs2_progressed_12mo_pct": "progressed by 12 months",
}


def target_label(quantity: str, group: str) -> str:
    """A published target's name for people: ``median_os2_months, D0-30`` -> "median OS-2, D0-30"."""
    words = _QUANTITY_WORDS.get(quantity, quantity.replace("_", " "))
    return words if group in ("all", "", None) else f"{words}, {group}"


#: The outcome targets: failure-window shares, survival and progression figures.
OUTCOME_TARGETS = tuple(_QUANTITY_WORDS)


def targets_figure(report: pd.DataFrame, *, use: str = "calibration", quantities=OUTCOME_TARGETS) -> Figure:
    """Published against simulated value of each target (:func:`cartrisk.data.simreport.simulation_report`), one
    panel per unit: the published value with its tolerance as a grey bar, the simulated value as a dot
    (filled within tolerance, hollow outside).

    Parameters
    ----------
    report : DataFrame
        ``quantity, group, published, simulated, unit, use, tolerance, tolerance_kind, within``.
    use : str
        Which rows to draw (``"calibration"``: the targets the simulator is calibrated to).
    quantities : sequence of str, optional
        Only these quantities (default the outcome targets; None: all).
    """
    rows = report[report["use"] == use] if use else report
    if quantities is not None:
        rows = rows[rows["quantity"].isin(quantities)]
    if rows.empty:
        raise ValueError(f"the report has no rows with use == {use!r}")
    units = list(dict.fromkeys(rows["unit"]))
    heights = [len(rows[rows["unit"] == u]) for u in units]
    fig = new_figure(7.5, 1.2 + 0.3 * sum(heights) + 0.5 * len(units))
    axes = fig.subplots(len(units), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, unit in zip(axes, units, strict=True):
        sub = rows[rows["unit"] == unit]
        y = np.arange(len(sub))[::-1]
        pub, sim = sub["published"].to_numpy(float), sub["simulated"].to_numpy(float)
        limit = np.where(sub["tolerance_kind"] == "relative", sub["tolerance"] * pub, sub["tolerance"])
        ax.barh(y, 2 * limit, left=pub - limit, height=0.55, color="#D9D9D9", label="published ± tolerance")
        ax.plot(pub, y, "|", color="#555555", ms=12, mew=1.6, label="published")
        within = sub["within"].to_numpy(bool)
        colour = SERIES_COLOURS[0]
        ax.plot(sim[within], y[within], "o", color=colour, ms=6, label="simulated, within tolerance")
        ax.plot(sim[~within], y[~within], "o", mfc="white", color=colour, ms=6, label="simulated, outside")
        ax.set_yticks(y, labels=[target_label(q, g) for q, g in zip(sub["quantity"], sub["group"], strict=True)],
                      fontsize=8)
        ax.set_xlabel(unit if unit != "%" else "percent")
        ax.grid(axis="x", alpha=0.3)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize="small", frameon=False, loc="outside lower center", ncols=4)
    n_in = int(rows["within"].sum())
    axes[0].set_title(f"{n_in} of {len(rows)} published figures matched within tolerance", fontsize=10, loc="left")
    return fig
