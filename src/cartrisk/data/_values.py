"""An extract's values, column by column: the element checks of validation and the typing of a valid column.

Every check returns True where a value is acceptable (a missing value passes; whether a column may miss values
is the schema's business). :func:`column_valid` and :func:`typed_column` are the per-column rules of
:func:`cartrisk.data.schema.validate`'s quick pass and typed frame. :func:`typed_if_valid` applies both rules to a
small frame in one pass over each column's values, with numpy and plain Python instead of a dozen pandas
operations per column (each costs some 20-80 microseconds whatever the number of rows: most of the time of
scoring one patient); it gives the same frame, or None where :func:`column_valid` would doubt a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from cartrisk.data.dictionary import Column

__all__ = ["SMALL_ROWS", "as_text", "blank_columns", "column_valid", "dates", "in_levels", "in_range", "is_binary",
           "is_date", "is_integer", "is_number", "non_empty", "numbers", "typed_column", "typed_if_valid"]

SMALL_ROWS = 200  # frames up to this size take the per-value paths below (scoring one or a few patients)
#: Columns kept as integers when every value is present.
INTEGER_COLUMNS = ("days_to_failure", "os2_days", "os2_event")
_BLANK = re.compile(r"^\s*$")  # a blank cell is a missing value (validate replaces it with NaN)


def numbers(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def is_number(s: pd.Series) -> pd.Series:
    return s.isna() | numbers(s).notna()


def is_integer(s: pd.Series) -> pd.Series:
    x = numbers(s)
    return s.isna() | x.isna() | (x == np.round(x))


def in_range(col: Column) -> Callable[[pd.Series], pd.Series]:
    def check(s: pd.Series) -> pd.Series:
        x = numbers(s)
        ok = pd.Series(True, index=s.index)
        if col.min is not None:
            ok &= (x > col.min) if col.min_exclusive else (x >= col.min)
        if col.max is not None:
            ok &= x <= col.max
        return ok | x.isna()

    return check


def is_binary(s: pd.Series) -> pd.Series:
    x = numbers(s)
    return s.isna() | x.isin([0, 1])


def in_levels(col: Column) -> Callable[[pd.Series], pd.Series]:
    return lambda s: s.isna() | as_text(s).isin(col.levels)


def is_date(s: pd.Series) -> pd.Series:
    return s.isna() | dates(s).notna()


def non_empty(s: pd.Series) -> pd.Series:
    return s.notna() & (as_text(s).str.strip() != "")


def as_text(s: pd.Series) -> pd.Series:
    if len(s) <= SMALL_ROWS:  # pandas' string dtype costs ~0.5 ms a column whatever the rows: a plain loop here
        text = [None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else str(v).strip()
                for v in s.tolist()]
        return pd.Series(text, index=s.index, dtype=object).where(s.notna())
    out = s.astype("string").str.strip()
    return out.where(s.notna())


def dates(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    return pd.to_datetime(as_text(s), format="ISO8601", errors="coerce")


# --- one column: valid? typed -----------------------------------------------------------------------------------

def column_valid(col: Column, s: pd.Series, required: bool) -> bool:
    """True when no value of ``s`` can fail the checks of column ``col`` (False: some value may)."""
    missing = s.isna().to_numpy()
    if missing.any() and required:
        return False
    if missing.all():
        return True
    if col.kind == "string":
        return bool(non_empty(s).all()) and not (col.name == "patient_id" and s.duplicated().any())
    if col.kind == "date":
        return bool(is_date(s).all())
    if col.kind == "category":
        return bool(in_levels(col)(s).all())
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        x = s.to_numpy(dtype=float, na_value=np.nan)
    else:
        x = numbers(s).to_numpy(dtype=float, na_value=np.nan)
        if np.isnan(x[~missing]).any():  # text that is not a number
            return False
    return _numbers_valid(col, x[~missing])


def _numbers_valid(col: Column, x: np.ndarray) -> bool:
    """The present values of a numeric column (at least one) against its kind and range."""
    if col.kind == "binary":
        return bool(np.isin(x, (0.0, 1.0)).all())
    if col.kind == "integer" and not (x == np.round(x)).all():
        return False
    low, high = x.min(), x.max()
    if col.min is not None and (low <= col.min if col.min_exclusive else low < col.min):
        return False
    return not (col.max is not None and high > col.max)


def typed_column(col: Column, s: pd.Series) -> pd.Series:
    """A valid column as the typed frame holds it: text (stripped) or NaN, dates, integers or floats."""
    if col.kind in ("string", "category"):
        return as_text(s).astype(object).where(s.notna(), np.nan)
    if col.kind == "date":
        return dates(s)
    if col.name in INTEGER_COLUMNS and numbers(s).notna().all():
        return numbers(s).astype("int64")
    return numbers(s).astype("float64")


# --- small frames: both rules in one pass ----------------------------------------------------------------------

def blank_columns(raw: pd.DataFrame, columns: list[str]) -> list[str]:
    """Those of ``columns`` (text columns) that hold a blank cell, i.e. where a regex replacement of blanks can
    change anything (a small frame's cells are read once instead of running the replacement on every column)."""
    return [c for c in columns if any(isinstance(v, str) and _BLANK.search(v) for v in raw[c].tolist())]


def typed_if_valid(raw: pd.DataFrame, implied: Mapping[str, pd.Series], defined: Mapping[str, Column],
                   required: set[str]) -> pd.DataFrame | None:
    """The typed frame of a small frame whose every value passes :func:`column_valid`; None otherwise.

    The same frame as :func:`typed_column` applied to every defined column of ``raw`` (columns no one defined
    kept as they are, ``implied`` durations appended where ``raw`` lacks them), column for column.
    """
    if not raw.columns.is_unique:
        return None
    out: dict[Any, Any] = {}
    for name in raw.columns:
        s = raw[name]
        col = defined.get(name)
        if col is None or col.role == "derived":  # kept as they are / typed without checks, as validate does
            out[name] = s if col is None else typed_column(col, s)
            continue
        typed = _quick_column(col, s, name in required)
        if typed is None:
            return None
        out[name] = typed
    for name, days in implied.items():
        if name not in out:
            out[name] = typed_column(defined[name], days) if name in defined else days
    return pd.DataFrame(out, index=raw.index)


def _quick_column(col: Column, s: pd.Series, required: bool) -> Any:
    """:func:`typed_column` of ``s`` when :func:`column_valid` holds (None otherwise), from the column's values.

    Columns of numpy dtypes and of pandas' text dtype take the quick route; any other dtype (nullable integers,
    categoricals, time zones) takes the two rules themselves.
    """
    dtype = s.dtype
    quick = isinstance(dtype, pd.StringDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "fiubMO")
    if not quick or (dtype.kind == "M" and col.kind != "date"):
        return typed_column(col, s) if column_valid(col, s, required) else None
    values = s.to_numpy()
    missing = pd.isna(values)
    if required and missing.any():
        return None
    present = not missing.all()
    if col.kind in ("string", "category"):
        text = [None if m else str(v).strip() for v, m in zip(s.tolist(), missing, strict=True)]
        if present:
            if col.kind == "string":
                if missing.any() or "" in text or (col.name == "patient_id" and len(text) > 1
                                                   and s.duplicated().any()):
                    return None
            elif not all(m or t in col.levels for t, m in zip(text, missing, strict=True)):
                return None
        return pd.Series(np.array([np.nan if m else t for t, m in zip(text, missing, strict=True)], dtype=object),
                         index=s.index, dtype=object)
    if col.kind == "date":
        if dtype.kind == "M":
            return s
        d = dates(s)
        return d if not present or (missing | d.notna().to_numpy()).all() else None
    if dtype.kind in "fiub":
        x = values.astype(np.float64)
        parsed = None
    else:
        parsed = numbers(s)
        x = parsed.to_numpy(dtype=float, na_value=np.nan)
        if present and np.isnan(x[~missing]).any():  # text that is not a number
            return None
    if present and not _numbers_valid(col, x[~missing]):
        return None
    whole = col.name in INTEGER_COLUMNS and not np.isnan(x).any()
    if parsed is not None:
        return parsed.astype("int64" if whole else "float64")
    return values.astype(np.int64 if whole else np.float64)
