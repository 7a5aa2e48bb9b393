"""A fitted FeatureBuilder's preprocessing applied to a few patients with numpy, from its fitted statistics.

Scoring one patient through scikit-learn's ColumnTransformer (imputers, scaler, one-hot encoder, each validating
its input and building a pandas frame) and pandas' per-column derivation costs some 10 ms whatever the number of
rows. :func:`direct_transform` computes the same matrix from what ``fit`` learned (imputation medians, missing
indicators, means and scales, categories and dropped levels) with a handful of numpy operations: the same
arithmetic in the same order, so the same bits (the tests compare it with the ColumnTransformer). Where a case is
not one it knows (another imputer or scaler setting, a non-finite value, a level that scikit-learn would warn
about, a dtype it does not read directly) it returns None and the caller takes scikit-learn's route.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cartrisk.data.derive import DERIVED_INPUTS, derived_values
from cartrisk.data.literature import feature_codings

__all__ = ["DIRECT_ROWS", "direct_transform"]

#: Frames up to this many rows take the direct route (beyond it, the per-call costs no longer matter).
DIRECT_ROWS = 200

_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # fitted ColumnTransformer -> its plan (or None)


@dataclass(frozen=True)
class _Plan:
    """What the fitted ColumnTransformer does, as arrays."""

    nums: list[str]
    statistics: np.ndarray  # imputation values of the numeric features
    indicator: np.ndarray | None  # numeric features that get a missing indicator (positions)
    mean: np.ndarray | None  # scaler, over the imputed features and then the indicators
    scale: np.ndarray | None
    cats: list[str]
    fill: Any  # the categorical imputer's fill value
    tables: list[dict[Any, int]]  # per categorical feature: level -> output column (dropped level: -1)
    widths: list[int]  # output columns per categorical feature
    drops: bool  # a level is dropped (reference coding): scikit-learn warns on unknown levels
    names: np.ndarray
    derived: list[str]  # the derived features among the inputs
    sources: list[str]  # the columns those are computed from


def _plan(builder) -> _Plan | None:
    ct = builder.transformer_
    if ct in _PLANS:
        return _PLANS[ct]
    try:
        plan = _make_plan(builder, ct)
    except (AttributeError, KeyError, TypeError, ValueError):  # a transformer this module does not know
        plan = None
    _PLANS[ct] = plan
    return plan


def _make_plan(builder, ct) -> _Plan | None:
    if ct.remainder != "drop" or getattr(ct, "sparse_output_", False):
        return None
    by_name = {name: (trans, list(cols)) for name, trans, cols in ct.transformers_ if name != "remainder"}
    if set(by_name) != {"num", "cat"}:
        return None
    (num_pipe, nums), (cat_pipe, cats) = by_name["num"], by_name["cat"]
    mean = scale = indicator = None
    statistics = np.zeros(0)
    num_names: list[str] = []
    if nums:
        steps = dict(num_pipe.steps)
        imputer, scaler = steps.pop("impute"), steps.pop("scale", None)
        if steps or imputer.strategy not in ("median", "mean", "constant", "most_frequent") \
                or not _is_nan(imputer.missing_values):
            return None
        statistics = np.asarray(imputer.statistics_, dtype=np.float64)
        if statistics.shape != (len(nums),) or not np.isfinite(statistics).all():
            return None
        num_names = list(nums)
        if imputer.add_indicator:
            indicator = np.asarray(imputer.indicator_.features_, dtype=np.intp)
            num_names += [f"missingindicator_{nums[j]}" for j in indicator]
        if scaler is not None:
            mean = None if not scaler.with_mean else np.asarray(scaler.mean_, dtype=np.float64)
            scale = None if not scaler.with_std else np.asarray(scaler.scale_, dtype=np.float64)
    tables, widths, cat_names, fill, drops = [], [], [], None, False
    if cats:
        steps = dict(cat_pipe.steps)
        imputer, encoder = steps.pop("impute"), steps.pop("onehot")
        if steps or imputer.strategy != "constant" or not _is_nan(imputer.missing_values) \
                or encoder.handle_unknown != "ignore" or getattr(encoder, "_infrequent_enabled", False):
            return None
        fill = imputer.fill_value
        drop_idx = encoder.drop_idx_
        drops = drop_idx is not None
        for i, (name, levels) in enumerate(zip(cats, encoder.categories_, strict=True)):
            dropped = None if drop_idx is None or drop_idx[i] is None else int(drop_idx[i])
            table, k = {}, 0
            for j, level in enumerate(levels.tolist()):
                if j == dropped:
                    table[level] = -1
                    continue
                table[level] = k
                cat_names.append(f"{name}_{level}")
                k += 1
            tables.append(table)
            widths.append(k)
    names = np.asarray(num_names + cat_names, dtype=object)
    if not np.array_equal(names, np.asarray(builder.feature_names_out_, dtype=object)):
        return None
    codes = {k["name"] for k in feature_codings()}
    derived = [c for c in builder.columns_ if c in DERIVED_INPUTS or c in codes]
    sources = sorted({c for name in derived for c in _sources(name)})
    return _Plan(list(nums), statistics, indicator, mean, scale, list(cats), fill, tables, widths, drops,
                 np.asarray(builder.feature_names_out_), derived, sources)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _floats(s: pd.Series) -> np.ndarray | None:
    """A numeric column as float64, as scikit-learn's input check converts it; None for other dtypes."""
    dtype = s.dtype  # float32 columns stay float32 in scikit-learn's arithmetic: not this route
    if isinstance(dtype, np.dtype) and (dtype.kind in "iu" or dtype == np.float64):
        return s.to_numpy().astype(np.float64)
    return None


def direct_transform(builder, X: pd.DataFrame) -> pd.DataFrame | None:
    """``builder.transform(X)`` computed with numpy from the fitted statistics; None when this route does not apply.

    Parameters
    ----------
    builder : FeatureBuilder
        Fitted.
    X : DataFrame
        At most :data:`DIRECT_ROWS` patients.
    """
    if len(X) > DIRECT_ROWS or not X.columns.is_unique:
        return None
    plan = _plan(builder)
    if plan is None:
        return None
    n = len(X)
    derived: dict[str, np.ndarray] = {}
    if plan.derived:
        values = {c: X[c].astype(float).to_numpy() for c in plan.sources if c in X}
        derived = derived_values(values, n, plan.derived)
    blocks = []
    if plan.nums:
        columns = []
        for name in plan.nums:
            if name in derived:
                x = derived[name]
            elif name in X:
                x = _floats(X[name])
                if x is None:
                    return None
            else:
                x = np.full(n, np.nan)
            columns.append(x)
        num = np.column_stack(columns) if n else np.empty((0, len(columns)))
        missing = np.isnan(num)
        if np.isinf(num).any():  # scikit-learn's imputer refuses infinity: let it say so
            return None
        num = np.where(missing, plan.statistics, num)
        if plan.indicator is not None:
            num = np.hstack([num, missing[:, plan.indicator].astype(np.float64)])
        if plan.mean is not None:
            num = num - plan.mean
        if plan.scale is not None:
            num = num / plan.scale
        blocks.append(num)
    if plan.cats:
        out = np.zeros((n, sum(plan.widths)))
        start = 0
        for name, table, width in zip(plan.cats, plan.tables, plan.widths, strict=True):
            levels = _levels(builder, name, derived[name] if name in derived else
                             (X[name].tolist() if name in X else [np.nan] * n), plan.fill)
            for row, level in enumerate(levels):
                k = table.get(level)
                if k is None:  # a level scikit-learn has not seen: all zeros, with a warning when a level is dropped
                    if plan.drops:
                        return None
                    continue
                if k >= 0:
                    out[row, start + k] = 1.0
            start += width
        blocks.append(out)
    matrix = blocks[0] if len(blocks) == 1 else np.hstack(blocks)
    return pd.DataFrame(matrix, index=X.index, columns=plan.names)


def _sources(name: str) -> tuple[str, ...]:
    codes = {k["name"]: k["column"] for k in feature_codings()}
    if name in codes:
        return (*_sources(codes[name]), codes[name]) if codes[name] in DERIVED_INPUTS else (codes[name],)
    out: tuple[str, ...] = ()
    for c in DERIVED_INPUTS.get(name, ()):
        out += (*_sources(c), c) if c in DERIVED_INPUTS else (c,)
    return out


def _levels(builder, name: str, values, fill) -> list:
    """A categorical feature's values as the encoder meets them: what ``FeatureBuilder._select`` makes of them (text,
    unseen levels as the reference under reference coding), then missing values as the imputer's fill value."""
    values = list(values)
    missing = pd.isna(np.asarray(values, dtype=object)) if values else np.zeros(0, dtype=bool)
    out = [np.nan if m else v for v, m in zip(values, missing, strict=True)]
    references = getattr(builder, "reference_levels_", None)
    if references:
        out = [v if m else str(v) for v, m in zip(out, missing, strict=True)]
        seen = set(builder.levels_seen_[name])
        had_missing = len(seen) < len(builder._fitted_levels(name))
        out = [references[name] if (not m and v not in seen) or (m and not had_missing) else v
               for v, m in zip(out, missing, strict=True)]
        missing = np.array([_is_nan(v) for v in out], dtype=bool) if out else missing
    return [fill if m else v for v, m in zip(out, missing, strict=True)]
