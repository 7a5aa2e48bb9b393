"""Table 1: patients' characteristics by group (the failure window, by default), as clinical papers print it.

Numbers (``integer`` and ``float`` kinds) as median [interquartile range] with the Kruskal-Wallis test across
groups; categories and 0/1 columns as counts (percent of the patients with a value) with the chi-square test of
independence (Fisher's exact test for a 2 x 2 table with an expected count below 5). Percentages and tests
exclude missing values; each row says how many are missing. Only aggregates: nothing patient-level.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from cartrisk.data.dictionary import COLUMNS, Column

__all__ = ["TABLE1_ROLES", "group_code", "table_one"]

#: Roles of the dictionary columns Table 1 shows (outcomes, identifiers and dates are not characteristics).
TABLE1_ROLES = ("setting", "infusion", "post_infusion", "relapse", "after_failure")
_SKIP = ("centre_id",)  # one row per centre would swamp the table; clustering is its own analysis


def group_code(label: object) -> str:
    """A group label as a snake_case column code: ``D0-30`` -> ``d0_30``, ``>D90`` -> ``gt_d90``."""
    text = str(label).strip().replace(">=", "ge_").replace("<=", "le_").replace(">", "gt_").replace("<", "lt_")
    code = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return code or "missing"


def _number(v: float) -> str:
    if float(v).is_integer():
        return f"{int(v)}"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def _numeric_cell(x: pd.Series) -> str:
    x = x.dropna()
    if x.empty:
        return ""
    q1, med, q3 = np.percentile(x.to_numpy(float), [25, 50, 75])
    return f"{_number(med)} [{_number(q1)}-{_number(q3)}]"


def _count_cell(hits: int, known: int) -> str:
    return f"{hits} ({100.0 * hits / known:.1f}%)" if known else "0 (-)"


def _test_numeric(values: pd.Series, groups: pd.Series, levels: Sequence) -> tuple[float, str]:
    samples = [values[(groups == g) & values.notna()].to_numpy(float) for g in levels]
    samples = [s for s in samples if s.size]
    if len(samples) < 2 or np.unique(np.concatenate(samples)).size < 2:
        return float("nan"), ""
    return float(stats.kruskal(*samples).pvalue), "Kruskal-Wallis"


def _test_counts(table: np.ndarray) -> tuple[float, str]:
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return float("nan"), ""
    expected = stats.contingency.expected_freq(table)
    if table.shape == (2, 2) and expected.min() < 5:
        return float(stats.fisher_exact(table).pvalue), "Fisher exact"
    return float(stats.chi2_contingency(table, correction=False).pvalue), "chi-square"


def table_one(frame: pd.DataFrame, groups: pd.Series | None = None, *, columns: Sequence[str] | None = None,
              defined: Mapping[str, Column] | None = None) -> pd.DataFrame:
    """Characteristics overall and by group, with a test of difference between groups.

    Parameters
    ----------
    frame : DataFrame
        A validated cohort (or any frame: columns unknown to the dictionary are summarised by their dtype).
    groups : Series, optional
        Group of each patient (same index); patients with a missing group count in ``all`` only. A pandas
        Categorical keeps its category order.
    columns : sequence of str, optional
        The rows (default: the dictionary's :data:`TABLE1_ROLES` columns present, then ``defined`` extras).
    defined : mapping of name -> Column, optional
        Definitions beyond the dictionary (the site's declared columns).

    Returns
    -------
    DataFrame
        ``variable``, ``level`` (a category's level; empty for numbers), ``statistic`` (``n (%)`` or
        ``median [IQR]``), ``all``, one column per group (:func:`group_code` of its label), ``n_missing``,
        ``p_value`` and ``test``. The first row counts the patients.
    """
    defined = {c.name: c for c in COLUMNS} | dict(defined or {})
    if columns is None:
        columns = [c.name for c in COLUMNS if c.role in TABLE1_ROLES and c.name in frame and c.name not in _SKIP]
        columns += [n for n, c in defined.items() if n in frame and n not in columns and c.role in TABLE1_ROLES
                    and n not in {c.name for c in COLUMNS}]
    if groups is None:
        groups = pd.Series(pd.Categorical([np.nan] * len(frame)), index=frame.index)
    cat = groups if isinstance(groups.dtype, pd.CategoricalDtype) else groups.astype("category")
    levels = [g for g in cat.cat.categories if (cat == g).any()]
    codes = {g: group_code(g) for g in levels}
    header = ["variable", "level", "statistic", "all", *codes.values(), "n_missing", "p_value", "test"]
    masks = {"all": np.ones(len(frame), dtype=bool)} | {codes[g]: (cat == g).to_numpy() for g in levels}
    rows = [["patients", "", "n", f"{len(frame)}", *[f"{m.sum()}" for k, m in masks.items() if k != "all"],
             0, np.nan, ""]]
    for name in columns:
        values = frame[name]
        col = defined.get(name)
        numeric = (col.kind in ("integer", "float") if col is not None
                   else pd.api.types.is_numeric_dtype(values) and values.nunique() > 2)
        n_missing = int(values.isna().sum())
        if numeric:
            x = pd.to_numeric(values, errors="coerce")
            p, test = _test_numeric(x, cat, levels) if len(levels) > 1 else (np.nan, "")
            rows.append([name, "", "median [IQR]", *[_numeric_cell(x[m]) for m in masks.values()], n_missing, p,
                         test])
            continue
        text = values.map(lambda v: v if pd.isna(v) else (f"{v:g}" if isinstance(v, float) else str(v)))
        seen = set(text.dropna().unique())
        found = ([lev for lev in col.levels if lev in seen] if col is not None and col.levels
                 else sorted(seen))
        if col is not None and col.kind == "binary":
            found = ["1"]
        table = np.array([[int(((text == lev).to_numpy() & (cat == g).to_numpy()).sum()) for g in levels]
                          for lev in (["0", "1"] if col is not None and col.kind == "binary" else found)])
        p, test = _test_counts(table) if len(levels) > 1 else (np.nan, "")
        for j, lev in enumerate(found):
            cells = [_count_cell(int(((text == lev).to_numpy() & m).sum()), int((text.notna().to_numpy() & m).sum()))
                     for m in masks.values()]
            rows.append([name, "" if col is not None and col.kind == "binary" else lev, "n (%)", *cells,
                         n_missing if j == 0 else "", p if j == 0 else np.nan, test if j == 0 else ""])
    out = pd.DataFrame(rows, columns=header)
    out["n_missing"] = pd.to_numeric(out["n_missing"], errors="coerce").astype("Int64")
    return out
