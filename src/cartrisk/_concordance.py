"""The reporting side of :mod:`cartrisk.explain`: literature concordance and figures (use them from there).

Concordance: does a model's explanation agree with the published risk factors?

For each established factor of :func:`cartrisk.literature.risk_factors`:

* the factor's **exposure** is computed on the patients' raw columns from its ``coding`` when that is
  a simple comparison (``days_to_failure <= 30``, ``ldh_infusion > ldh_uln``, ``bridging != none``,
  ``best_response in {CR, PR}``, ``product == tisa-cel (reference axi-cel)``: patients in neither
  level are left out) and is otherwise the column's own value (``crp_infusion, continuous``;
  ``log2(...)``: a monotone transform, irrelevant to a rank correlation). Categories without a
  comparison are coded 0, 1, ... in data-dictionary order;
* the model's **direction** is the sign of Spearman's correlation between the exposure and the
  column's SHAP value (one-hot levels, missing indicators and derived forms summed per column), with
  a percentile bootstrap 95 % interval over patients (seeded). On the risk scale a positive
  correlation means "worse"; on the survival scale, "better";
* the **status**: ``not in model`` (no column, or the column is not among the model's features:
  after-failure factors such as salvage in a prognostic set), ``not significant`` (the interval
  covers 0, the exposure does not vary, or the column's mean |SHAP| is below ``negligible`` times
  that of the model's most important column), else ``agrees`` or ``disagrees`` with the published
  direction.

The bootstrap measures how consistently the model links the exposure to its output across
patients; it says nothing about the uncertainty of the fitted model itself (refit the model on
bootstrap samples for that).

Columns the model uses that no factor names are listed with their rank and mean |SHAP| (status
``not in literature``).

Figures (:func:`write_figures`): a beeswarm summary, dependence plots of the most important
features and per-patient waterfalls, drawn on matplotlib Figures with their own Agg canvas (no
pyplot, so no global backend or figure registry), written as PNG files and optionally logged to an
MLflow run through :class:`cartrisk.tracking.Tracker`.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from cartrisk.literature import risk_factors

if TYPE_CHECKING:  # pragma: no cover
    from cartrisk.explain import Explanation

__all__ = ["STATUSES", "concordance", "concordance_markdown", "factor_exposure", "write_figures"]

STATUSES = ("agrees", "disagrees", "not significant", "not in model", "not in literature")
_COMPARE = re.compile(r"^\s*(?P<col>\w+)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<rhs>[^\s(,]+)"
                      r"(?:\s*\(reference\s+(?P<ref>[^)\s]+)\))?")
_MEMBER = re.compile(r"^\s*(?P<col>\w+)\s+in\s+\{(?P<levels>[^}]*)\}")
_CHUNK_ELEMENTS = 2_000_000
_OPS = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}
_COLUMNS = ["factor", "column", "coding", "timing", "source", "endpoint", "analysis", "published_direction", "hr",
            "hr_low", "hr_high", "model_direction", "spearman", "ci_low", "ci_high", "mean_abs_shap",
            "relative_importance", "rank", "status", "note"]


def _numeric(series: pd.Series) -> np.ndarray | None:
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    return None


def factor_exposure(coding: str, column: str, raw: pd.DataFrame) -> tuple[np.ndarray, str]:
    """A factor's exposure per patient (float, NaN where unknown or outside the comparison) and how it was coded.

    Parameters
    ----------
    coding : str
        The factor's ``coding`` in :func:`cartrisk.literature.risk_factors`.
    column : str
        Its data-dictionary column (must be in ``raw``).
    raw : DataFrame
        The patients' columns.

    Returns
    -------
    exposure : ndarray
        0/1 for a comparison, the value otherwise (categories as codes in data-dictionary order).
    how : str
        ``"indicator"`` or ``"value"``.
    """
    from cartrisk.explain import _encode

    series = raw[column]
    values = _numeric(series)
    text = series.astype(object).where(series.notna(), None).to_numpy()
    known = series.notna().to_numpy()
    member = _MEMBER.match(coding)
    if member and member["col"] == column:
        levels = {v.strip() for v in member["levels"].split(",")}
        return np.where(known, np.isin(text, list(levels)).astype(float), np.nan), "indicator"
    match = _COMPARE.match(coding)
    if match and match["col"] == column:
        op, rhs, ref = match["op"], match["rhs"], match["ref"]
        if rhs in raw and op in _OPS and values is not None and _numeric(raw[rhs]) is not None:
            other = _numeric(raw[rhs])
            return np.where(known & ~np.isnan(other), _OPS[op](values, other).astype(float), np.nan), "indicator"
        if op in _OPS and values is not None:
            return np.where(known, _OPS[op](values, float(rhs)).astype(float), np.nan), "indicator"
        if op in ("==", "!="):
            equal = (values == float(rhs)) if values is not None and _is_number(rhs) else (text == rhs)
            hit = equal if op == "==" else ~equal
            keep = known if ref is None else known & ((text == rhs) | (text == ref))
            return np.where(keep, hit.astype(float), np.nan), "indicator"
    return (values if values is not None else _encode(series, column)[0]), "value"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks (ties averaged) of ``values`` within each weighted sample.

    ``weights`` (B, n) are the multiplicities of each patient in B bootstrap samples (0 = left out).
    Returns (B, n): the rank each patient's value has in each sample, computed in O(B n) without
    sorting every sample (the values are sorted once).
    """
    _, group = np.unique(values, return_inverse=True)
    n_groups = int(group.max()) + 1
    onehot = sparse.csr_array((np.ones(values.size), (np.arange(values.size), group)), shape=(values.size, n_groups))
    counts = np.asarray((onehot.T @ weights.T).T)  # (B, groups): patients per tied value
    before = np.cumsum(counts, axis=1) - counts
    return (before + (counts + 1.0) / 2.0)[:, group]


def _weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman's correlation of x and y in each weighted sample (NaN where x or y does not vary).

    A 0/1 ``x`` is used as it is: its ranks within any sample are an affine function of it, which
    leaves the correlation unchanged.
    """
    binary = bool(np.all((x == 0) | (x == 1)))
    rx = x[np.newaxis, :] if binary else _weighted_ranks(x, weights)
    ry = _weighted_ranks(y, weights)
    total = weights.sum(axis=1)
    wx = weights * rx
    sx, sy = wx.sum(axis=1), (weights * ry).sum(axis=1)
    sxx, syy, sxy = (wx * rx).sum(axis=1), (weights * ry * ry).sum(axis=1), (wx * ry).sum(axis=1)
    vx, vy = sxx - sx**2 / total, syy - sy**2 / total
    varies = (vx > 1e-9 * sxx) & (vy > 1e-9 * syy)
    with np.errstate(invalid="ignore", divide="ignore"):  # no variation, no correlation: NaN, meant
        return np.where(varies, (sxy - sx * sy / total) / np.sqrt(vx * vy), np.nan)


def _association(x: np.ndarray, y: np.ndarray, draws: np.ndarray) -> tuple[float, float, float]:
    """Spearman's rho of x (NaN = unknown) and y, and its percentile bootstrap 95 % interval.

    ``draws`` (B, n): bootstrap multiplicities of the patients, shared by every factor.
    """
    keep = ~np.isnan(x)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.ptp(x) == 0:
        return np.nan, np.nan, np.nan
    rho = float(_weighted_spearman(x, y, np.ones((1, x.size)))[0])
    step = max(1, _CHUNK_ELEMENTS // x.size)  # bootstrap samples at a time: memory stays O(chunk), not O(B n)
    boot = np.concatenate([_weighted_spearman(x, y, draws[start:start + step, keep].astype(float))
                           for start in range(0, draws.shape[0], step)])
    boot = boot[~np.isnan(boot)]
    if boot.size == 0:
        return rho, np.nan, np.nan
    low, high = np.percentile(boot, [2.5, 97.5])
    return rho, float(low), float(high)


def concordance(
    explanation: Explanation,
    *,
    factors: pd.DataFrame | None = None,
    n_bootstrap: int = 1000,
    negligible: float = 0.05,
    random_state: int = 0,
) -> pd.DataFrame:
    """Compare a model's explanation with the published risk factors.

    Parameters
    ----------
    explanation : Explanation
        From :func:`cartrisk.explain.explain` (with its ``raw`` patient rows); feature- or column-level.
    factors : DataFrame, optional
        Rows like :func:`cartrisk.literature.risk_factors` (the default).
    n_bootstrap : int, default 1000
        Bootstrap resamples of patients for the 95 % interval of each Spearman correlation.
    negligible : float, default 0.05
        A column whose mean |SHAP| is below this share of the largest column's counts as unused
        (``not significant``), whatever its correlation: for a Cox-type model whose top column moves
        the log hazard by 0.5 on average, 5 % is a hazard ratio of about 1.025.
    random_state : int, default 0

    Returns
    -------
    DataFrame
        One row per factor, then one per model column that no factor names, with columns ``factor,
        column, coding, timing, source, endpoint, analysis, published_direction, hr, hr_low,
        hr_high, model_direction, spearman, ci_low, ci_high, mean_abs_shap, relative_importance,
        rank, status, note``. ``attrs`` holds ``scale``, ``method``, ``model``, ``n_patients``,
        ``negligible`` and ``n_bootstrap``.
    """
    if explanation.raw is None:
        raise ValueError("the explanation has no raw patient columns (raw=None); explain the pipeline on a frame")
    if not 0 <= negligible < 1:
        raise ValueError(f"negligible must be in [0, 1); got {negligible!r}")
    factors = risk_factors() if factors is None else factors
    by_column = explanation.by_column()
    importance = by_column.importance().set_index("column")
    sign = 1.0 if explanation.higher_is_worse else -1.0
    raw = explanation.raw
    n = len(raw)
    rng = np.random.default_rng(random_state)
    draws = np.empty((n_bootstrap, n), dtype=np.int32)  # multiplicity of each patient in each bootstrap sample
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_bootstrap, step):
        size = min(step, n_bootstrap - start)
        picks = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        draws[start:start + size] = np.bincount(picks.ravel(), minlength=size * n).reshape(size, n)
    rows, cache = [], {}
    for factor in factors.itertuples(index=False):
        row = {name: getattr(factor, name, np.nan) for name in ("factor", "column", "coding", "timing", "source",
                                                                 "endpoint", "analysis", "hr", "hr_low", "hr_high")}
        row["published_direction"] = factor.direction
        column = factor.column if isinstance(factor.column, str) else ""
        if not column or column not in importance.index or column not in raw:
            why = ("no single data-dictionary column" if not column else
                   "decided after the failure date (time zero): not a prognostic predictor"
                   if factor.timing == "after_failure" else "not among the model's features")
            rows.append({**row, "status": "not in model", "note": why})
            continue
        exposure, how = factor_exposure(factor.coding, column, raw)
        key = (column, exposure.tobytes())  # several rows share a coding (one factor, several analyses)
        if key not in cache:
            cache[key] = _association(exposure, by_column.values[column].to_numpy(float), draws)
        rho, low, high = cache[key]
        expected = 1.0 if factor.direction == "worse" else -1.0
        row.update(_measured(importance.loc[column], rho, low, high, sign, negligible))
        if row["status"] is None:
            row["status"] = "agrees" if np.sign(sign * rho) == expected else "disagrees"
        row["note"] = f"exposure: {'the coding, 0/1' if how == 'indicator' else 'the value of ' + column}"
        rows.append(row)
    named = {c for c in factors["column"] if isinstance(c, str) and c}
    for column in importance.index:
        if column in named:
            continue
        x = _numeric(raw[column]) if column in raw else None
        rho, low, high = (_association(x, by_column.values[column].to_numpy(float), draws)
                          if x is not None else (np.nan, np.nan, np.nan))
        row = {"factor": "", "column": column, **_measured(importance.loc[column], rho, low, high, sign, negligible)}
        row["status"] = "not in literature"
        row["note"] = "direction: of the column's value" if x is not None else "category: no direction"
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=_COLUMNS)
    table["rank"] = table["rank"].astype("Int64")
    table.attrs.update(scale=explanation.scale, method=explanation.method, model=explanation.model,
                       n_patients=len(explanation.values), negligible=negligible, n_bootstrap=n_bootstrap,
                       exact=explanation.exact)
    return table


def _measured(imp: pd.Series, rho: float, low: float, high: float, sign: float, negligible: float) -> dict:
    direction = "" if np.isnan(rho) or rho == 0 else ("worse" if sign * rho > 0 else "better")
    unused = imp["relative_importance"] < negligible
    covers = np.isnan(low) or np.isnan(high) or (low <= 0 <= high)
    return {"model_direction": direction, "spearman": rho, "ci_low": low, "ci_high": high,
            "mean_abs_shap": float(imp["mean_abs_shap"]), "relative_importance": float(imp["relative_importance"]),
            "rank": int(imp["rank"]), "status": "not significant" if unused or covers else None}


def _cell(value: object, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return fmt.format(value) if isinstance(value, float) else str(value).replace("|", "\\|")


def concordance_markdown(table: pd.DataFrame, *, title: str | None = None) -> str:
    """Render :func:`concordance` as Markdown: the factors, then the columns the literature does not name."""
    attrs = table.attrs
    lines = [f"# {title or 'Model explanation against the published risk factors'}", ""]
    if attrs:
        lines += [f"Model `{attrs.get('model')}`, {attrs.get('n_patients')} patients; SHAP values on the "
                  f"{attrs.get('scale')} scale ({attrs.get('method')}, {'exact' if attrs.get('exact') else 'approx.'}"
                  f"). Direction: sign of Spearman's correlation between the factor's exposure and the column's "
                  f"SHAP value, 95 % bootstrap interval over patients ({attrs.get('n_bootstrap')} resamples). "
                  f"`not significant`: the interval covers 0, or the column's mean |SHAP| is below "
                  f"{attrs.get('negligible'):.0%} of the largest.", ""]
    literature = table[table["status"] != "not in literature"]
    lines += ["| factor | column | published | HR (95% CI) | source | model | Spearman (95% CI) | rank | "
              "mean abs SHAP | status |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in literature.itertuples(index=False):
        hr = "" if np.isnan(r.hr) else f"{r.hr:.2f}" + ("" if np.isnan(r.hr_low) else f" ({r.hr_low:.2f}-"
                                                                                       f"{r.hr_high:.2f})")
        rho = "" if np.isnan(r.spearman) else f"{r.spearman:+.2f} ({_cell(r.ci_low, '{:+.2f}')}, "
        rho += "" if np.isnan(r.spearman) else f"{_cell(r.ci_high, '{:+.2f}')})"
        lines.append(f"| {_cell(r.factor)} | {_cell(r.column)} | {r.published_direction} | {hr} | {r.source} "
                     f"({r.endpoint}, {r.analysis}) | {_cell(r.model_direction)} | {rho} | {_cell(r.rank)} | "
                     f"{_cell(r.mean_abs_shap, '{:.3g}')} | {r.status} |")
    others = table[table["status"] == "not in literature"]
    if len(others):
        lines += ["", "## Columns the model uses that the literature does not name", "",
                  "| column | rank | mean abs SHAP | share of largest | model direction | Spearman (95% CI) |",
                  "|---|---|---|---|---|---|"]
        for r in others.itertuples(index=False):
            rho = "" if np.isnan(r.spearman) else (f"{r.spearman:+.2f} ({_cell(r.ci_low, '{:+.2f}')}, "
                                                   f"{_cell(r.ci_high, '{:+.2f}')})")
            lines.append(f"| {r.column} | {r.rank} | {r.mean_abs_shap:.3g} | {r.relative_importance:.1%} | "
                         f"{_cell(r.model_direction)} | {rho} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ figures
_WORSE, _BETTER = "#c0392b", "#2471a3"  # pushes towards a worse / a better outcome
_MAX_POINTS = 5000  # patients drawn in a beeswarm (a seeded sample beyond)


def _figure(width: float, height: float):
    """A matplotlib Figure with its own Agg canvas: no pyplot, no global backend or state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


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
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    values, data = explanation.values, explanation.data
    if len(values) > _MAX_POINTS:
        keep = np.sort(rng.choice(len(values), size=_MAX_POINTS, replace=False))
        values, data = values.iloc[keep], data.iloc[keep]
    top = list(values.abs().mean().sort_values(ascending=False).index[:max_display])
    figure = _figure(8.0, 1.4 + 0.36 * len(top))
    ax = figure.add_subplot()
    cmap = colormaps["coolwarm"]
    for pos, name in enumerate(reversed(top)):
        s = values[name].to_numpy(float)
        colour = _unit_scale(data[name].to_numpy(float))
        y = pos + _swarm(s)
        known = ~np.isnan(colour)
        ax.scatter(s[~known], y[~known], color="#9a9a9a", s=5, linewidths=0)
        ax.scatter(s[known], y[known], c=colour[known], cmap=cmap, vmin=0, vmax=1, s=5, linewidths=0)
    ax.axvline(0, color="#555555", lw=0.8)
    ax.set_yticks(range(len(top)), labels=list(reversed(top)))
    ax.set_xlabel(f"SHAP value ({explanation.scale})")
    kind = "exact" if explanation.exact else "approximate"
    ax.set_title(f"{explanation.model}: {len(values):,} patients ({explanation.method}, {kind})", fontsize=10)
    bar = figure.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap=cmap), ax=ax, ticks=[0, 1], aspect=40)
    bar.set_ticklabels(["low", "high"])
    bar.set_label("value (grey: missing)")
    return figure


def _dependence(explanation: Explanation, name: str, rng: np.random.Generator):
    x = explanation.data[name].to_numpy(float)
    s = explanation.values[name].to_numpy(float)
    known = ~np.isnan(x)
    figure = _figure(5.5, 4.0)
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
    figure = _figure(8.5, 1.5 + 0.36 * len(items))
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
    tracker: Any = None,
    run_id: str | None = None,
    artifact_path: str = "explain",
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
    tracker : cartrisk.tracking.Tracker, optional
        With ``run_id``: every file is also logged to that MLflow run under ``artifact_path``.
    run_id : str, optional
    artifact_path : str, default "explain"
    random_state : int, default 0
        Seeds the beeswarm's sample of patients (beyond 5,000) and the jitter of category dependence plots.

    Returns
    -------
    list of Path
        The files written.
    """
    if (tracker is None) != (run_id is None):
        raise ValueError("give both tracker and run_id to log the figures to MLflow, or neither")
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
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures:
        path = out / f"{prefix}{_safe(name)}.png"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=out)
        os.close(fd)
        try:
            figure.savefig(tmp, format="png", dpi=110)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if tracker is not None:
            tracker.log_file(run_id, path, artifact_path)
        paths.append(path)
    return paths
