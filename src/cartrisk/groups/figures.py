"""Figures shared by reports: Kaplan-Meier curves with at-risk tables, group calibration, decision curves.

Every function returns a :class:`matplotlib.figure.Figure` drawn on its own Agg canvas; pyplot
and its global state are never touched, so figures can be made in threads, tests and servers
without a display and without leaking. Times are in months on every axis (data in days).
:func:`write_comparison_figures` writes the figures of a
:class:`~cartrisk.groups.rulecomparison.RuleComparison` as PNG files and returns their paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sksurv.nonparametric import kaplan_meier_estimator

from cartrisk.groups._stats import encode_groups
from cartrisk.groups.rulecomparison import grouping_title
from cartrisk.plotting import SERIES_COLOURS, error_bars, figure_stem, new_figure, risk_colours, save_figure
from cartrisk.units import DAYS_PER_MONTH

if TYPE_CHECKING:
    from cartrisk.groups.rulecomparison import RuleComparison

__all__ = [
    "calibration_figure",
    "comparison_figures",
    "decision_curve_figure",
    "group_histogram_figure",
    "km_figure",
    "plot_km",
    "write_comparison_figures",
]

def _default_months(time_days: np.ndarray) -> tuple[float, np.ndarray]:
    last = float(np.max(time_days)) / DAYS_PER_MONTH
    max_months = min(24.0, last)
    return max_months, np.arange(0.0, max_months + 1e-9, 3.0)


def plot_km(ax, time_days, event, groups, *, table_ax=None, tick_months=None, max_months=None, title=None,
            conf_level: float = 0.95, show_ci: bool = True) -> None:
    """Kaplan-Meier OS-2 per group on ``ax``; numbers at risk on ``table_ax`` (optional).

    Parameters
    ----------
    ax : matplotlib Axes
    time_days, event : array-like of shape (n_samples,)
    groups : Categorical or integer codes of shape (n_samples,)
        Ordered low -> high risk (the legend and table follow that order).
    table_ax : matplotlib Axes, optional
        Axes under ``ax`` (sharing its x axis) for the at-risk table.
    tick_months : array-like, optional
        Times of the x ticks and of the at-risk counts (default every 3 months).
    max_months : float, optional
        Right end of the x axis (default: the follow-up, at most 24 months).
    title : str, optional
    conf_level : float
        Level of the log-log pointwise band.
    show_ci : bool
    """
    time = np.asarray(time_days, dtype=float)
    event = np.asarray(event, dtype=bool)
    codes, labels = encode_groups(groups, name="groups")
    default_max, default_ticks = _default_months(time)
    max_months = default_max if max_months is None else float(max_months)
    ticks = default_ticks if tick_months is None else np.asarray(tick_months, dtype=float)
    ticks = ticks[ticks <= max_months + 1e-9]
    colours = risk_colours(len(labels))
    for k, label in enumerate(labels):
        m = codes == k
        if not m.any():
            continue
        colour = colours[k]
        t, s, ci = kaplan_meier_estimator(event[m], time[m], conf_type="log-log", conf_level=conf_level)
        t_m = np.r_[0.0, t / DAYS_PER_MONTH]
        ax.step(t_m, np.r_[1.0, s], where="post", color=colour, lw=1.6, label=f"{label} (n={m.sum():,})")
        if show_ci:
            ax.fill_between(t_m, np.r_[1.0, ci[0]], np.r_[1.0, ci[1]], step="post", color=colour, alpha=0.15, lw=0)
    ax.set_xlim(0, max_months)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(ticks)
    ax.set_ylabel("OS-2 (probability)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    if table_ax is None:
        ax.set_xlabel("months since failure")
        return
    ax.tick_params(labelbottom=False)
    n_groups = len(labels)
    for k in range(n_groups):
        at_risk = [(time[codes == k] >= tm * DAYS_PER_MONTH).sum() for tm in ticks]
        y = n_groups - 1 - k
        for tm, n_risk in zip(ticks, at_risk, strict=True):
            table_ax.text(tm, y, f"{n_risk:,}", ha="center", va="center", fontsize="x-small", color=colours[k])
    table_ax.set_ylim(-0.6, n_groups - 0.4)
    table_ax.set_yticks(range(n_groups), [str(lab) for lab in labels[::-1]], fontsize="x-small")
    for tick, k in zip(table_ax.get_yticklabels(), range(n_groups - 1, -1, -1), strict=True):
        tick.set_color(colours[k])
    table_ax.set_xlim(0, max_months)
    table_ax.set_xticks(ticks)
    table_ax.set_xlabel("months since failure")
    table_ax.set_title("at risk", fontsize="x-small", loc="left")
    for side in ("top", "right", "left"):
        table_ax.spines[side].set_visible(False)
    table_ax.tick_params(axis="y", length=0, pad=16)


def km_figure(panels: Mapping[str, tuple[object, object, object]], *, max_months=None, tick_months=None,
              title: str | None = None, panel_width: float = 5.0) -> Figure:
    """Kaplan-Meier curves side by side, each panel with its at-risk table.

    Parameters
    ----------
    panels : mapping of title -> (time_days, event, groups)
        One panel per grouping (e.g. ``{"D0-30 rule": (...), "model": (...)}``), sharing one x axis.
    max_months, tick_months : optional
        As in :func:`plot_km` (default from the longest follow-up of all panels).
    title : str, optional
    panel_width : float
        Inches per panel.
    """
    if not panels:
        raise ValueError("panels is empty: give at least one (time_days, event, groups)")
    all_time = np.concatenate([np.asarray(p[0], dtype=float) for p in panels.values()])
    default_max, default_ticks = _default_months(all_time)
    max_months = default_max if max_months is None else max_months
    tick_months = default_ticks if tick_months is None else tick_months
    n_rows = max(len(encode_groups(p[2])[1]) for p in panels.values())
    fig = new_figure(panel_width * len(panels), 4.2 + 0.22 * n_rows)
    grid = fig.add_gridspec(2, len(panels), height_ratios=[4.0, 0.35 + 0.22 * n_rows])
    for j, (name, (time_days, event, groups)) in enumerate(panels.items()):
        ax = fig.add_subplot(grid[0, j])
        table_ax = fig.add_subplot(grid[1, j], sharex=ax)
        plot_km(ax, time_days, event, groups, table_ax=table_ax, tick_months=tick_months, max_months=max_months,
                title=name)
    if title:
        fig.suptitle(title)
    return fig


def calibration_figure(table: pd.DataFrame, *, title: str | None = None, panel_size: float = 3.6) -> Figure:
    """Observed (Kaplan-Meier, with CI) against mean predicted OS-2 per group, one panel per horizon.

    Parameters
    ----------
    table : DataFrame
        Rows of one grouping, as :attr:`RuleComparison.calibration` or
        :func:`~cartrisk.groups.calibration_before_after` give them: ``horizon_months, group,
        predicted, observed, observed_lower, observed_upper`` and optionally ``stage`` (each stage
        gets its own marker: "before" hollow, "after" filled).
    title : str, optional
    panel_size : float
        Inches per (square) panel.
    """
    needed = {"horizon_months", "group", "predicted", "observed", "observed_lower", "observed_upper"}
    if not needed <= set(table.columns):
        raise ValueError(f"calibration table lacks column(s) {sorted(needed - set(table.columns))}")
    if table.empty:
        raise ValueError("calibration table is empty")
    table = table.assign(stage=table["stage"] if "stage" in table else "")
    horizons = sorted(table["horizon_months"].unique())
    groups = list(dict.fromkeys(table["group"].astype(str)))
    stages = list(dict.fromkeys(table["stage"]))
    markers = {"before": ("o", "none"), "after": ("o", "full"), "rule KM": ("s", "full")}
    fig = new_figure(panel_size * len(horizons), panel_size + 0.5)
    axes = fig.subplots(1, len(horizons), squeeze=False)[0]
    colours = risk_colours(len(groups))
    for ax, h in zip(axes, horizons, strict=True):
        sub = table[table["horizon_months"] == h]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for k, group in enumerate(groups):
            colour = colours[k]
            for stage in stages:
                row = sub[(sub["group"].astype(str) == group) & (sub["stage"] == stage)]
                if row.empty or not np.isfinite(row["observed"].iloc[0]):
                    continue
                r = row.iloc[0]
                marker, fill = markers.get(stage, ("D", "full"))
                error_bars(ax, [r["predicted"]], [r["observed"]], [r["observed_lower"]], [r["observed_upper"]],
                           fmt=marker, color=colour, mfc=colour if fill == "full" else "white", ms=6, capsize=3,
                           label=f"{group} ({stage})" if stage else group)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"{h:g} months")
        ax.set_xlabel("predicted OS-2 (group mean)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("observed OS-2 (Kaplan-Meier, 95% CI)")
    axes[-1].legend(loc="upper left", fontsize="x-small", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def decision_curve_figure(curve: pd.DataFrame, *, horizon_months: float | None = None, title: str | None = None
                          ) -> Figure:
    """Net benefit against the threshold probability of death for each strategy (model, rules, treat all/none).

    Parameters
    ----------
    curve : DataFrame
        :func:`~cartrisk.groups.decision_curve` output (``strategy, threshold, net_benefit``).
    horizon_months : float, optional
        For the axis label.
    title : str, optional
    """
    needed = {"strategy", "threshold", "net_benefit"}
    if not needed <= set(curve.columns):
        raise ValueError(f"decision curve lacks column(s) {sorted(needed - set(curve.columns))}")
    fig = new_figure(6.0, 4.2)
    ax = fig.add_subplot()
    styles = {"treat all": {"color": "#7F7F7F", "ls": "--"}, "treat none": {"color": "#7F7F7F", "ls": ":"}}
    others = [s for s in dict.fromkeys(curve["strategy"]) if s not in styles]
    palette = [c for c in SERIES_COLOURS if c != "#7F7F7F"]
    dashes = ("-", "-", "-.", (0, (5, 2)), "-", "-")
    for k, strategy in enumerate(others + [s for s in styles if s in set(curve["strategy"])]):
        sub = curve[curve["strategy"] == strategy].sort_values("threshold")
        style = styles.get(strategy, {"color": palette[k % len(palette)], "ls": dashes[k % len(dashes)]})
        ax.plot(sub["threshold"], sub["net_benefit"], lw=1.6, label=strategy, **style)
    top = np.nanmax(curve["net_benefit"].to_numpy(dtype=float))
    ax.set_ylim(-0.05, max(0.05, top * 1.1))
    ax.set_xlim(0, 1)
    what = "death" if horizon_months is None else f"death by {horizon_months:g} months"
    ax.set_xlabel(f"threshold probability of {what}")
    ax.set_ylabel("net benefit")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    return fig


def group_histogram_figure(values, groups, *, xlabel: str, cutpoints=None, title: str | None = None,
                           bins: int = 30) -> Figure:
    """How a quantity (a risk score, a predicted survival) is distributed in each risk group: stacked histograms
    in the groups' risk colours, with the cut-points as vertical lines.

    Parameters
    ----------
    values : array-like of shape (n_samples,)
    groups : Categorical or codes of shape (n_samples,)
        Ordered low -> high risk.
    xlabel : str
    cutpoints : array-like, optional
        Values that separate the groups (drawn as dashed lines).
    title : str, optional
    bins : int
    """
    values = np.asarray(values, dtype=float)
    codes, labels = encode_groups(groups, name="groups")
    colours = risk_colours(len(labels))
    fig = new_figure(6.5, 3.6)
    ax = fig.add_subplot()
    finite = np.isfinite(values)
    edges = np.histogram_bin_edges(values[finite], bins=bins)
    cuts = np.atleast_1d(cutpoints if cutpoints is not None else []).astype(float)
    if cuts.size:  # bins that start at the first cut-point, so that no bin straddles it
        width = edges[1] - edges[0]
        first = cuts[0] - np.ceil((cuts[0] - edges[0]) / width) * width
        edges = np.arange(first, edges[-1] + width, width)
    data = [values[finite & (codes == k)] for k in range(len(labels))]
    ax.hist(data, bins=edges, stacked=True, color=list(colours),
            label=[f"{lab} (n={len(d):,})" for lab, d in zip(labels, data, strict=True)])
    for cut in cuts:
        ax.axvline(float(cut), color="#000000", lw=0.9, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("patients")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig


def comparison_figures(comparison: RuleComparison, *, max_months=None) -> dict[str, Figure]:
    """The figures of a rule comparison by file stem: ``km_<rule>``, ``calibration_<grouping>``, ``decision_curve``."""
    pts = comparison.patients
    time_days, event = pts["os2_days"].to_numpy(float), pts["os2_event"].to_numpy(bool)
    figures: dict[str, Figure] = {}
    for rule in comparison.rules:
        panels = {grouping_title(rule): (time_days, event, pts[rule].array)}
        for model_grouping, ref in comparison.pairs:
            if ref == rule and model_grouping in pts:
                panels[grouping_title(model_grouping)] = (time_days, event, pts[model_grouping].array)
        figures[f"km_{figure_stem(rule)}"] = km_figure(panels, max_months=max_months,
                                                 title=f"OS-2 by group, test patients (n={len(pts):,})")
    for grouping in comparison.calibration["grouping"].unique():
        figures[f"calibration_{figure_stem(grouping)}"] = calibration_figure(
            comparison.group_calibration(grouping), title=f"group calibration: {grouping_title(grouping)}")
    curve = comparison.comparison.decision_curve
    if curve is not None:
        figures["decision_curve"] = decision_curve_figure(curve, horizon_months=comparison.horizon_months,
                                                          title="decision curve, test patients")
    return figures


def write_comparison_figures(comparison: RuleComparison, out_dir: str | Path, *, dpi: int = 120, max_months=None
                             ) -> list[Path]:
    """Write the figures of :func:`comparison_figures` as PNG files (existing files of the same names are replaced).

    Parameters
    ----------
    comparison : RuleComparison
    out_dir : str or Path
        Created if missing.
    dpi : int
    max_months : float, optional
        Right end of the Kaplan-Meier x axes.

    Returns
    -------
    list of Path
        The files written, in the order of :func:`comparison_figures`.
    """
    out = Path(out_dir)
    return [save_figure(fig, out / f"{stem}.png", dpi=dpi)
            for stem, fig in comparison_figures(comparison, max_months=max_months).items()]
