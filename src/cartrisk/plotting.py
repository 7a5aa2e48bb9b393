"""Figure helpers shared by every package: a figure factory, one colour per risk level, one atomic write.

Risk levels have one colour each in every figure (Okabe-Ito, colour-blind safe): low blue, intermediate
orange, high vermillion (:data:`RISK_COLOURS`, :func:`risk_colours` for a grouping of ``n`` levels ordered
low -> high). Series that are not risk levels (models, rules, strategies) take :data:`SERIES_COLOURS`, which
never reuse a risk level's colour. :func:`forest_figure` draws estimates with intervals (a forest plot: C-indices,
hazard ratios on a log scale, clusters with their pooled estimate and prediction interval); :func:`error_bars`
draws points with intervals (calibration figures).

Figures are :class:`matplotlib.figure.Figure` objects on their own Agg canvas: pyplot and its global
state are never touched, so figures can be drawn in threads, tests and servers without a display.
Writers return the paths they wrote; the caller decides whether to log them (MLflow is attached at
the edge, in :mod:`cartrisk.tracking` and :mod:`cartrisk.workflows`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from cartrisk.paths import atomic_path
from cartrisk.units import estimate_text

__all__ = ["GROUP_COLOURS", "RISK_COLOURS", "SERIES_COLOURS", "error_bars", "figure_stem", "forest_figure",
           "new_figure", "risk_colours", "save_figure"]

#: Okabe-Ito colours (colour-blind safe), kept for code that indexes groups by position; risk groups take
#: :func:`risk_colours`, which gives each risk level the same colour whatever the number of groups.
GROUP_COLOURS = ("#0072B2", "#009E73", "#E69F00", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

#: One colour per risk level, in every figure (Okabe-Ito): cool for low risk, warm for high risk.
RISK_COLOURS = {"low": "#0072B2", "intermediate-low": "#56B4E9", "intermediate": "#E69F00",
                "intermediate-high": "#E69F00", "high": "#D55E00"}
_LEVELS = {1: ("intermediate",), 2: ("low", "high"), 3: ("low", "intermediate", "high"),
           4: ("low", "intermediate-low", "intermediate-high", "high")}
#: Beyond four levels: a cool-to-warm Okabe-Ito ramp whose ends are the low and high colours.
_RAMP = ("#0072B2", "#56B4E9", "#009E73", "#F0E442", "#E69F00", "#D55E00")

#: Colours of series that are not risk levels (models, rules, decision strategies): none is a risk colour.
SERIES_COLOURS = ("#000000", "#009E73", "#CC79A7", "#7F7F7F", "#56B4E9", "#F0E442")


def risk_colours(n_levels: int) -> tuple[str, ...]:
    """The colour of each of ``n_levels`` risk groups ordered low -> high risk.

    Two groups are low / high, three low / intermediate / high, four low / intermediate-low /
    intermediate-high / high (the PC-PI's); so the highest-risk group is vermillion and the lowest blue in
    every figure, whatever the grouping.
    """
    if n_levels < 1:
        raise ValueError(f"n_levels must be at least 1, got {n_levels}")
    if n_levels in _LEVELS:
        return tuple(RISK_COLOURS[level] for level in _LEVELS[n_levels])
    picks = np.round(np.linspace(0, len(_RAMP) - 1, n_levels)).astype(int)
    return tuple(_RAMP[i] for i in picks)


def new_figure(width: float, height: float) -> Figure:
    """An empty figure (inches) with its own Agg canvas and constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_stem(name: str) -> str:
    """A label as part of a file name: runs of anything but ASCII letters and digits become one ``_``, lower case
    (``"model[d0_30]"`` -> ``"model_d0_30"``)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Write ``figure`` as a PNG at ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return path


def error_bars(ax, x, y, lower, upper, *, horizontal: bool = False, **style):
    """Points with their intervals (``lower`` / ``upper`` bounds, NaN: no bar), on ``ax.errorbar``."""
    x, y, lower, upper = (np.asarray(v, dtype=float) for v in (x, y, lower, upper))
    centre = x if horizontal else y
    err = np.clip(np.nan_to_num(np.vstack([centre - lower, upper - centre])), 0, None)
    return ax.errorbar(x, y, **({"xerr": err} if horizontal else {"yerr": err}), **style)


def _log_axis(ax, values: np.ndarray) -> None:
    """A log x axis labelled in plain numbers: powers of 2 across the data when two or more fall in it."""
    ax.set_xscale("log")
    finite = values[np.isfinite(values) & (values > 0)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (1.0, 1.0)
    ticks = [t for t in 2.0 ** np.arange(-8, 9) if low / 1.5 <= t <= high * 1.5]
    if len(ticks) >= 2:
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    else:
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)


def forest_figure(labels: Sequence[str], estimate, lower, upper, *, xlabel: str, reference: float | None = None,
                  colours: Sequence[str] | None = None, title: str | None = None, width: float = 6.5,
                  decimals: int = 3, log_scale: bool = False, pooled: Mapping[str, float] | None = None,
                  pooled_label: str = "pooled (REML)", overlay: Mapping[str, object] | None = None) -> Figure:
    """A forest plot: one row per label (top to bottom), its estimate as a dot and its interval as a bar, the
    estimate and interval written at the right of each row.

    Parameters
    ----------
    labels : sequence of str
        Row names, drawn top to bottom in the order given.
    estimate, lower, upper : array-like of float
        The estimates and their interval bounds (NaN bounds: no bar).
    xlabel : str
    reference : float, optional
        A dashed vertical reference line (e.g. 0.5 for a C-index, 1 for a hazard ratio, the overall value).
    colours : sequence of str, optional
        One colour per row (default black).
    title : str, optional
    width : float
        Inches.
    decimals : int
        Decimals of the estimate and interval written at the right of each row.
    log_scale : bool
        A log x axis labelled in plain numbers (hazard ratios, O/E ratios).
    pooled : mapping, optional
        A pooled estimate drawn as a diamond in a last row named ``pooled_label``: ``estimate``, ``lower``,
        ``upper`` and optionally ``pi_lower``, ``pi_upper`` (a 95% prediction interval, drawn as a line through
        the diamond).
    overlay : mapping of name -> array-like of float, optional
        Other values per row (NaN: none) drawn as open diamonds with a legend, e.g. ``{"published HR": ...}``.
    """
    est, lo, hi = (np.asarray(v, dtype=float) for v in (estimate, lower, upper))
    n = len(labels)
    if not (est.shape == lo.shape == hi.shape == (n,)):
        raise ValueError(f"labels, estimate, lower and upper must have one value per row ({n})")
    colours = list(colours) if colours is not None else ["#000000"] * n
    rows = n + (pooled is not None)
    fig = new_figure(width, 0.9 + 0.38 * rows)
    ax = fig.add_subplot()
    y = np.arange(rows)[::-1].astype(float)
    shown = [est, lo, hi]

    def write(value: float, low: float, high: float, at: float) -> None:
        ax.annotate(estimate_text(value, low, high, decimals), (1.01, at),
                    xycoords=("axes fraction", "data"), va="center", fontsize="small")

    for k in range(n):
        if np.isfinite(lo[k]) and np.isfinite(hi[k]):
            ax.plot([lo[k], hi[k]], [y[k], y[k]], color=colours[k], lw=2.0, solid_capstyle="butt")
        ax.plot(est[k], y[k], "o", color=colours[k], ms=7)
        write(est[k], lo[k], hi[k], y[k])
    for j, (name, values) in enumerate((overlay or {}).items()):
        values = np.asarray(values, dtype=float)
        ax.plot(values, y[:n], "D", ls="none", mfc="white", mec=SERIES_COLOURS[(j + 1) % len(SERIES_COLOURS)],
                mew=1.5, ms=6, label=name)
        shown.append(values)
    tick_labels = list(labels)
    if pooled is not None:
        mid, low, high = (float(pooled[k]) for k in ("estimate", "lower", "upper"))
        pi = float(pooled.get("pi_lower", np.nan)), float(pooled.get("pi_upper", np.nan))
        if np.isfinite(pi).all():
            ax.plot(pi, [y[-1], y[-1]], color="#000000", lw=1.0, label="95% prediction interval")
            shown.append(np.asarray(pi))
        ax.fill([low, mid, high, mid], [y[-1], y[-1] + 0.3, y[-1], y[-1] - 0.3], color="#000000", zorder=3)
        write(mid, low, high, y[-1])
        tick_labels.append(pooled_label)
    if reference is not None and np.isfinite(reference):
        ax.axvline(reference, color="#7F7F7F", lw=0.9, ls="--")
    if log_scale:
        _log_axis(ax, np.concatenate([np.ravel(v) for v in shown]))
    ax.set_yticks(y, labels=tick_labels)
    ax.set_ylim(-0.7, rows - 0.3)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", frameon=False, loc="best")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig
