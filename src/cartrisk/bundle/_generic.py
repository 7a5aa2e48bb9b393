"""Bundles of models trained on a generic cohort (``[data.roles]``): their schema and the checks of new files.

A generic cohort follows no data dictionary, so the bundle's ``schema.json`` is built from the training columns
the model reads: each column's kind (number or category), its training range or levels and its missing share,
and the cohort's time and event column names (with the time unit), so that new files are checked, scored and
validated with the same file / row / column / value / rule / fix messages as registry extracts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cartrisk.data.schema import Problem, ValidationResult, blanks_as_missing, no_rows_problem
from cartrisk.exceptions import BundleError

__all__ = ["generic_outcome", "generic_schema", "validate_generic"]

ID_COLUMN = "patient_id"


def generic_schema(X: pd.DataFrame, input_columns, cohort: Mapping[str, Any]) -> dict[str, Any]:
    """``schema.json`` of a generic cohort: the columns the model reads, and the outcome and id column names."""
    for key in ("time", "event"):
        if not cohort.get(key):
            raise BundleError(f"a generic cohort needs its {key} column name (cohort['{key}'])")
    columns = []
    for name in input_columns:
        values = X[name] if name in X else pd.Series(np.nan, index=X.index)
        entry: dict[str, Any] = {"name": name, "role": "covariate", "unit": "", "meaning": "generic cohort column",
                                 "measured": "as in the training cohort",
                                 "train_missing_share": float(values.isna().mean())}
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric:
            x = pd.to_numeric(values, errors="coerce")
            known = x.notna().any()
            entry.update(kind="float", allowed="a number",
                         train_min=float(x.min()) if known else None, train_max=float(x.max()) if known else None,
                         train_median=float(x.median()) if known else None)
        else:
            counts = values.dropna().astype(str).value_counts()
            entry.update(kind="category", allowed="one of " + ", ".join(sorted(counts.index)),
                         levels=sorted(counts.index.tolist()), train_mode=str(counts.index[0]) if len(counts) else None)
        columns.append(entry)
    outcome = {"time": str(cohort["time"]), "event": str(cohort["event"]),
               "time_unit_days": float(cohort.get("time_unit_days", 1.0))}
    return {"cohort": "generic", "columns": columns, "outcome": outcome, "id_column": cohort.get("id"),
            "note": "Generic cohort: new files need the columns below (cells may be empty); outcome columns only "
                    "for validation."}


def generic_outcome(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The time and event columns (and time unit) of a generic-cohort bundle's schema; None for a registry bundle."""
    return dict(schema["outcome"]) if schema.get("cohort") == "generic" else None


def _number_problems(frame: pd.DataFrame, name: str, source: str) -> list[Problem]:
    raw = frame[name]
    as_number = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & as_number.isna()
    return [Problem(source, int(i) + 1, name, raw.iloc[i], "not a number",
                    "write a number, or leave the cell empty if unknown") for i in np.flatnonzero(bad.to_numpy())]


def validate_generic(frame: pd.DataFrame, schema: Mapping[str, Any], *, source: str = "frame",
                     require_outcome: bool = False) -> ValidationResult:
    """Check a file against a generic bundle's schema; the typed frame gets a ``patient_id`` column.

    Problems name the file, row (1-based), column, value, rule and fix, as :func:`cartrisk.data.schema.validate`'s.
    """
    raw = blanks_as_missing(frame)
    result = ValidationResult(frame=None)
    if raw.shape[0] == 0:
        result.problems.append(no_rows_problem(source))
        return result
    outcome = schema["outcome"]
    wanted = [c["name"] for c in schema["columns"]]
    if require_outcome:
        wanted += [outcome["time"], outcome["event"]]
    for name in dict.fromkeys(wanted):
        if name not in raw:
            result.problems.append(Problem(source, None, name, None, "required column missing: the model reads it"
                                           if name in (c["name"] for c in schema["columns"]) else
                                           "required column missing: the outcome is needed to validate",
                                           f"add the column '{name}'; leave cells empty where the value is unknown"))
    if result.problems:
        return result
    typed = raw.copy()
    for col in schema["columns"]:
        if col["kind"] == "float":
            result.problems += _number_problems(raw, col["name"], source)
            typed[col["name"]] = pd.to_numeric(raw[col["name"]], errors="coerce").astype(float)
        else:
            s = raw[col["name"]]
            typed[col["name"]] = s.astype("string").str.strip().astype(object).where(s.notna(), np.nan)
    if require_outcome:
        result.problems += _outcome_problems(raw, outcome, source)
    id_column = schema.get("id_column")
    if id_column and id_column in raw:
        typed[ID_COLUMN] = raw[id_column].astype(str)
    elif ID_COLUMN not in typed:
        typed[ID_COLUMN] = [f"row-{i + 1}" for i in range(len(raw))]
    if result.problems:
        result.problems.sort(key=lambda p: (p.row or 0, p.column or ""))
        return result
    if require_outcome:
        typed[outcome["time"]] = pd.to_numeric(raw[outcome["time"]]).astype(float)
        typed[outcome["event"]] = pd.to_numeric(raw[outcome["event"]]).astype(int)
    result.frame = typed
    return result


def _outcome_problems(raw: pd.DataFrame, outcome: Mapping[str, Any], source: str) -> list[Problem]:
    problems = []
    time, event = raw[outcome["time"]], raw[outcome["event"]]
    t = pd.to_numeric(time, errors="coerce")
    for i in np.flatnonzero((t.isna() | (t <= 0)).to_numpy()):
        problems.append(Problem(source, int(i) + 1, outcome["time"], time.iloc[i],
                                "follow-up time must be a positive number", "give the time to death or last contact"))
    ev = event.map(lambda v: {"true": 1, "false": 0}.get(str(v).strip().lower(), v))
    e = pd.to_numeric(ev, errors="coerce")
    for i in np.flatnonzero(~e.isin([0, 1]).to_numpy()):
        problems.append(Problem(source, int(i) + 1, outcome["event"], event.iloc[i], "must be 0 or 1",
                                "write 1 if the patient died, 0 if censored"))
    if not problems:
        raw[outcome["event"]] = e
    return problems
