"""Figures of an explanation: a beeswarm summary, dependence plots of the most important features, and
per-patient waterfalls.

Drawn on matplotlib Figures with their own Agg canvas (:func:`cartrisk.plotting.new_figure`) and written
as PNG files; :func:`write_figures` returns the paths, and the caller decides whether to log them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from cartrisk.data.dictionary import column_title
from cartrisk.explain.explanation import Explanation
from cartrisk.plotting import SERIES_COLOURS, new_figure, save_figure

__all__ = ["concordance_points", "explanation_overview_figure", "write_figures"]

_WORSE, _BETTER = "#c0392b", "#2471a3"  # pushes towards a worse / a better outcome
_MAX_POINTS = 5000  # patients drawn in a beeswarm (a seeded sample beyond)


def _unit_scale(v: np.ndarray) -> np.ndarray:
    """Values to [0, 1] between their 5th and 95th percentiles (NaN kept), for colouring."""
    known = v[~np.isnan(v)]
    if known.size == 0:
        return v
    low, high = np.percentile(known, [5, 95])
    if high <= low:
        low, high = known.min(), known.max()
    return np.clip((v - low) / (high - low), 0, 1) if high > low else np.where(np.isnan(v), np.nan, 0.5)


def _swarm(s: np.ndarray, width: float = 0.4, bins: int = 60) -> np.ndarray:
    """Vertical offsets that stack points of similar value side by side (a beeswarm)."""
    if s.size == 0:
        return s
    b = np.floor((s - s.min()) / (np.ptp(s) or 1.0) * (bins - 1)).astype(int)
    order = np.argsort(b, kind="stable")
    k = np.arange(s.size) - np.searchsorted(b[order], b[order], side="left")
    offset = np.empty(s.size)
    offset[order] = ((k + 1) // 2) * np.where(k % 2 == 0, 1.0, -1.0)
    return offset / max(1.0, np.bincount(b).max() / 2.0) * width


def _beeswarm(explanation: Explanation, max_display: int, rng: np.random.Generator):
    n_shown = min(max_display, explanation.values.shape[1])
    figure = new_figure(8.0, 1.4 + 0.36 * n_shown)
    _draw_beeswarm(figure, figure.add_subplot(), explanation, max_display, rng)
    return figure


def _draw_beeswarm(figure, ax, explanation: Explanation, max_display: int, rng: np.random.Generator,
                   names=None) -> None:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    values, data = explanation.values, explanation.data
    if len(values) > _MAX_POINTS:
        keep = np.sort(rng.choice(len(values), size=_MAX_POINTS, replace=False))
        values, data = values.iloc[keep], data.iloc[keep]
    top = list(values.abs().mean().sort_values(ascending=False).index[:max_display])
    cmap = colormaps["coolwarm"]
    for pos, name in enumerate(reversed(top)):
        s = values[name].to_numpy(float)
        colour = _unit_scale(data[name].to_numpy(float))
        y = pos + _swarm(s)
        known = ~np.isnan(colour)
        ax.scatter(s[~known], y[~known], color="#9a9a9a", s=5, linewidths=0)
        ax.scatter(s[known], y[known], c=colour[known], cmap=cmap, vmin=0, vmax=1, s=5, linewidths=0)
    ax.axvline(0, color="#555555", lw=0.8)
    ax.set_yticks(range(len(top)), labels=[names(t) if names else t for t in reversed(top)])
    ax.set_xlabel(f"SHAP value ({explanation.scale})")
    kind = "exact" if explanation.exact else "approximate"
    ax.set_title(f"{explanation.model}: {len(values):,} patients ({explanation.method}, {kind})", fontsize=10)
    bar = figure.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap=cmap), ax=ax, ticks=[0, 1], aspect=40,
                          fraction=0.03, pad=0.02)
    bar.set_ticklabels(["low", "high"])
    bar.set_label("value (grey: missing)")


def _dependence(explanation: Explanation, name: str, rng: np.random.Generator):
    x = explanation.data[name].to_numpy(float)
    s = explanation.values[name].to_numpy(float)
    known = ~np.isnan(x)
    figure = new_figure(5.5, 4.0)
    ax = figure.add_subplot()
    levels = explanation.levels.get(name)
    shown = x[known] + (rng.uniform(-0.15, 0.15, size=known.sum()) if levels else 0.0)
    ax.scatter(shown, s[known], s=7, alpha=0.5, color=_BETTER, linewidths=0)
    if levels:
        ax.set_xticks(range(len(levels)), labels=list(levels), rotation=30)
    ax.axhline(0, color="#555555", lw=0.8)
    missing = int((~known).sum())
    ax.set_xlabel(name + (f" ({missing} missing, not shown)" if missing else ""))
    ax.set_ylabel(f"SHAP value\n({explanation.scale})")
    return figure


def _shown_value(explanation: Explanation, patient: str, name: str) -> str:
    source = explanation.feature_sources.get(name, name)
    if explanation.raw is not None and source in explanation.raw:
        value = explanation.raw.at[patient, source]
        shown = source
    else:
        value, shown = explanation.data.at[patient, name], name
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return f"{shown} missing"
    return f"{shown} = {value:.4g}" if isinstance(value, float | int | np.number) else f"{shown} = {value}"


def _waterfall(explanation: Explanation, patient: str, max_display: int):
    row = explanation.values.loc[patient]
    order = list(row.abs().sort_values(ascending=False).index)
    shown = order[:max_display - 1] if len(order) > max_display else order
    items = [(f"{name} ({_shown_value(explanation, patient, name)})" if explanation.level == "feature"
              else _shown_value(explanation, patient, name), float(row[name])) for name in shown]
    if len(order) > len(shown):
        items.append((f"{len(order) - len(shown)} other features", float(row[order[len(shown):]].sum())))
    figure = new_figure(8.5, 1.5 + 0.36 * len(items))
    ax = figure.add_subplot()
    cumulative = explanation.base_value + np.concatenate([[0.0], np.cumsum([v for _, v in items])])
    for pos, (_, value) in enumerate(items):
        worse = (value > 0) == explanation.higher_is_worse
        ax.barh(len(items) - 1 - pos, value, left=cumulative[pos], color=_WORSE if worse else _BETTER, height=0.7)
    labels = [f"{label}  [{value:+.3g}]" for label, value in reversed(items)]
    ax.set_yticks(range(len(items)), labels=labels, fontsize=8)
    low, high = cumulative.min(), cumulative.max()
    ax.set_xlim(low - 0.05 * (high - low or 1.0), high + 0.05 * (high - low or 1.0))
    ax.axvline(explanation.base_value, color="#555555", lw=0.8, ls=":")
    prediction = float(explanation.predictions.loc[patient])
    ax.axvline(prediction, color="#000000", lw=0.8, ls="--")
    ax.set_xlabel(explanation.scale)
    ax.set_title(f"patient {patient}: {prediction:.3g} (average {explanation.base_value:.3g}); red: towards a worse "
                 "outcome", fontsize=10)
    return figure


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "figure"


def write_figures(
    explanation: Explanation,
    out_dir: str | Path,
    *,
    patients: list[str] | None = None,
    max_display: int = 15,
    n_dependence: int = 4,
    prefix: str = "",
    random_state: int = 0,
) -> list[Path]:
    """Write the summary (beeswarm), dependence and per-patient waterfall figures as PNG files.

    Parameters
    ----------
    explanation : Explanation
        Feature- or column-level (:meth:`Explanation.by_column` reads better).
    out_dir : str or Path
        Created if needed; each file is written to a temporary name and renamed into place.
    patients : list of str, optional
        Patient ids for waterfalls ("why is this patient high risk"); default the patient with the
        worst prediction (highest risk, or lowest survival).
    max_display : int, default 15
        Features in the beeswarm and in each waterfall (the rest summed in one bar).
    n_dependence : int, default 4
        Dependence plots, for the most important features (mean |SHAP|).
    prefix : str, default ""
        Prepended to every file name (``beeswarm.png``, ``dependence_<feature>.png``, ``waterfall_<id>.png``).
    random_state : int, default 0
        Seeds the beeswarm's sample of patients (beyond 5,000) and the jitter of category dependence plots.

    Returns
    -------
    list of Path
        The files written.
    """
    if patients is None:
        worst = explanation.predictions.idxmax() if explanation.higher_is_worse else explanation.predictions.idxmin()
        patients = [str(worst)]
    unknown = [p for p in patients if p not in explanation.values.index]
    if unknown:
        raise ValueError(f"patient(s) {', '.join(map(str, unknown))} are not among the explained patients")
    rng = np.random.default_rng(random_state)
    figures = [("beeswarm", _beeswarm(explanation, max_display, rng))]
    top = explanation.values.abs().mean().sort_values(ascending=False).index[:n_dependence]
    figures += [(f"dependence_{name}", _dependence(explanation, name, rng)) for name in top]
    figures += [(f"waterfall_{patient}", _waterfall(explanation, patient, max_display)) for patient in patients]
    out = Path(out_dir)
    return [save_figure(figure, out / f"{prefix}{_safe(name)}.png", dpi=110) for name, figure in figures]


#: Colours of the literature dot plot by status (none is a risk level's colour).
_STATUS_COLOURS = {"agrees": SERIES_COLOURS[1], "disagrees": SERIES_COLOURS[2], "not significant": SERIES_COLOURS[3]}


def concordance_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per established factor the model uses (a :func:`~cartrisk.explain.concordance` table, its factors
    deduplicated over sources), with its association in the published direction.

    Returns
    -------
    DataFrame
        ``factor, column, published_direction, model_direction, status, sources`` and ``agreement``,
        ``agreement_lower``, ``agreement_upper``: Spearman's correlation between the factor's exposure and
        the column's SHAP value, signed so that a positive value is the published direction; ordered from
        the most to the least important column.
    """
    measured = table[table["status"].isin(_STATUS_COLOURS)].copy()
    if measured.empty:
        return pd.DataFrame(columns=["factor", "column", "published_direction", "model_direction", "status",
                                     "sources", "agreement", "agreement_lower", "agreement_upper"])
    measured["sources"] = measured.groupby(["column", "coding"])["factor"].transform("size")
    measured = measured.drop_duplicates(["column", "coding"]).sort_values(["rank", "factor"], kind="stable")
    rho = measured["spearman"].to_numpy(float)
    agrees = (measured["model_direction"] == measured["published_direction"]).to_numpy()
    sign = np.sign(rho) * np.where(agrees, 1.0, -1.0)
    low, high = measured["ci_low"].to_numpy(float) * sign, measured["ci_high"].to_numpy(float) * sign
    return pd.DataFrame({"factor": measured["factor"].to_numpy(), "column": measured["column"].to_numpy(),
                         "published_direction": measured["published_direction"].to_numpy(),
                         "model_direction": measured["model_direction"].to_numpy(),
                         "status": measured["status"].to_numpy(), "sources": measured["sources"].to_numpy(int),
                         "agreement": rho * sign, "agreement_lower": np.minimum(low, high),
                         "agreement_upper": np.maximum(low, high)})


def _draw_concordance(ax, points: pd.DataFrame, not_in_model: int) -> None:
    y = np.arange(len(points))[::-1]
    for k, r in enumerate(points.itertuples(index=False)):
        colour = _STATUS_COLOURS[r.status]
        if np.isfinite(r.agreement_lower) and np.isfinite(r.agreement_upper):
            ax.plot([r.agreement_lower, r.agreement_upper], [y[k], y[k]], color=colour, lw=2.0)
        ax.plot(r.agreement, y[k], "o", color=colour, ms=6)
    labels = [f"{r.factor}" + (f" ({r.sources})" if r.sources > 1 else "")
              for r in points.itertuples(index=False)]
    ax.set_yticks(y, labels=labels, fontsize=8)
    ax.set_ylim(-0.7, max(len(points), 1) - 0.3)
    ax.axvline(0, color="#555555", lw=0.8)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("Spearman's rho, factor vs its SHAP value\n(right of 0: the published direction)")
    counts = points["status"].value_counts()
    handles = [ax.plot([], [], "o", color=c, label=f"{s} ({counts.get(s, 0)})")[0] for s, c in _STATUS_COLOURS.items()]
    ax.legend(handles=handles, fontsize="small", frameon=True, loc="center left")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Agreement with the literature\n({not_in_model} published factors not in the model)", fontsize=10,
                 loc="left")


def explanation_overview_figure(explanation: Explanation, table: pd.DataFrame, *, max_display: int = 12,
                                random_state: int = 0):
    """The explanation at a glance: the beeswarm of the most important columns (left) beside the agreement of
    each established risk factor the model uses with its published direction (right, a dot plot).

    Parameters
    ----------
    explanation : Explanation
        Column-level reads best (:meth:`Explanation.by_column`).
    table : DataFrame
        Its :func:`~cartrisk.explain.concordance` table.
    max_display : int
        Columns in the beeswarm.
    random_state : int
        Seeds the beeswarm's sample of patients (beyond 5,000).
    """
    points = concordance_points(table)
    not_in_model = int(table.loc[table["status"] == "not in model", "factor"].nunique())
    n_rows = max(min(max_display, explanation.values.shape[1]), len(points))
    figure = new_figure(12.5, 1.6 + 0.34 * n_rows)
    left, right = figure.subplots(1, 2, width_ratios=[1.15, 1.0])
    _draw_beeswarm(figure, left, explanation, max_display, np.random.default_rng(random_state), names=column_title)
    left.set_title("")
    left.set_title(f"What drives the predictions\n({len(explanation.values):,} patients, SHAP values)", fontsize=10,
                   loc="left")
    _draw_concordance(right, points, not_in_model)
    return figure
