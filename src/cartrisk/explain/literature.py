"""Literature concordance: does a model's explanation agree with the published risk factors?

For each established factor of :func:`cartrisk.data.literature.risk_factors`:

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

"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import sparse

from cartrisk.data.literature import risk_factors
from cartrisk.explain.explanation import Explanation, encode_column

__all__ = ["STATUSES", "concordance", "concordance_markdown", "factor_exposure"]

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
        The factor's ``coding`` in :func:`cartrisk.data.literature.risk_factors`.
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
    return (values if values is not None else encode_column(series, column)[0]), "value"


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
        Rows like :func:`cartrisk.data.literature.risk_factors` (the default).
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
