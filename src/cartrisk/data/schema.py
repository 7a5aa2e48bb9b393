"""Validate a registry extract against the data dictionary and turn it into a survival target.

Every problem is collected at once (pandera's lazy validation) and reported as
file, row, column, value, rule and fix. Checks run on the raw values as read
(text for CSV), each check coercing on its own, so that a non-numeric entry is
reported as such rather than as a failed type conversion.

Rows are numbered from 1 for the first patient (the CSV header is not counted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from sksurv.util import Surv

from cartrisk.data._values import (
    SMALL_ROWS,
    blank_columns,
    column_valid,
    dates,
    in_levels,
    in_range,
    is_binary,
    is_date,
    is_integer,
    is_number,
    non_empty,
    numbers,
    typed_column,
    typed_if_valid,
)
from cartrisk.data.dictionary import COLUMNS, Column, column, columns_by_role
from cartrisk.exceptions import SchemaError

__all__ = [
    "OUTCOME_COLUMNS",
    "blanks_as_missing",
    "no_rows_problem",
    "Problem",
    "ValidationResult",
    "frame_hash",
    "load_cohort",
    "read_extract",
    "to_xy",
    "validate",
]

OUTCOME_COLUMNS = ("days_to_failure", "os2_days", "os2_event")
_REQUIRED_VALUES = ("patient_id", "days_to_failure", "os2_days", "os2_event")
_DATE_COLUMNS = ("infusion_date", "failure_date", "last_contact_date")
_NOT_COVARIATES = ("patient_id", "os2_days", "os2_event", *_DATE_COLUMNS, "pfs2_days", "pfs2_event")
_MISSING_TOKENS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL"]


@dataclass(frozen=True)
class Problem:
    """One problem found in an extract: where it is, what is wrong, how to fix it."""

    source: str
    row: int | None
    column: str | None
    value: object
    rule: str
    fix: str

    def __str__(self) -> str:
        where = [self.source]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        value = "" if self.row is None and self.value is None else f" value {_show(self.value)}:"
        return f"{', '.join(where)}:{value} {self.rule}. Fix: {self.fix}."


@dataclass
class ValidationResult:
    """Outcome of :func:`validate`: the typed frame when valid, and every problem and notice."""

    frame: pd.DataFrame | None
    problems: list[Problem] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_invalid(self) -> pd.DataFrame:
        """Return the typed frame, or raise :class:`SchemaError` listing every problem."""
        if self.problems:
            n = len(self.problems)
            raise SchemaError(f"{self.problems[0].source}: {n} problem{'s' * (n > 1)} found", self.problems)
        if self.frame is None:  # only a problem-free result is typed; a caller that edits problems must re-validate
            raise SchemaError("validation left no typed frame; validate the data again")
        return self.frame


def _show(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "(empty)"
    return repr(value.item() if hasattr(value, "item") else value)


_FIXES = {
    "numeric": "write a number{unit}, or leave the cell empty if unknown",
    "integer": "write a whole number",
    "range": "correct the value{unit}; leave the cell empty if it is unknown",
    "binary": "write 1 or 0",
    "levels": "use one of: {levels} (spelled exactly so)",
    "date": "write the date as YYYY-MM-DD",
    "nonempty": "give every patient an identifier",
    "required_value": "fill in the value: it is required for every patient",
    "field_uniqueness": "give each patient one row and a unique patient_id",
}
_RULES = {
    "numeric": "not a number",
    "integer": "not a whole number",
    "range": "out of range: must be {rule}",
    "binary": "must be 0 or 1",
    "levels": "unknown level: must be {rule}",
    "date": "not a date",
    "nonempty": "empty identifier",
    "required_value": "missing value in a required column",
    "field_uniqueness": "duplicate patient_id",
}


def _column_schema(col: Column, required_value: bool) -> pa.Column:
    checks: list[pa.Check] = []
    if col.kind == "string":
        checks.append(pa.Check(non_empty, name="nonempty"))
    elif col.kind == "date":
        checks.append(pa.Check(is_date, name="date"))
    elif col.kind == "category":
        checks.append(pa.Check(in_levels(col), name="levels"))
    elif col.kind == "binary":
        checks.append(pa.Check(is_binary, name="binary"))
    else:
        checks.append(pa.Check(is_number, name="numeric"))
        if col.kind == "integer":
            checks.append(pa.Check(is_integer, name="integer"))
        checks.append(pa.Check(in_range(col), name="range"))
    return pa.Column(
        checks=checks,
        nullable=not required_value,
        required=False,
        unique=col.name == "patient_id",
        report_duplicates="exclude_first",
        name=col.name,
    )


# --- cross-column checks ----------------------------------------------------------------------------------------

def _derive_from_dates(raw: pd.DataFrame) -> dict[str, pd.Series]:
    """Durations (and the infusion year) implied by the dates present (NaN where a date is missing)."""
    d = {c: dates(raw[c]) for c in _DATE_COLUMNS if c in raw}
    out: dict[str, pd.Series] = {}
    if "infusion_date" in d:
        out["infusion_year"] = d["infusion_date"].dt.year.astype("float64")
    if "infusion_date" in d and "failure_date" in d:
        out["days_to_failure"] = (d["failure_date"] - d["infusion_date"]).dt.days
    if "failure_date" in d and "last_contact_date" in d:
        out["os2_days"] = (d["last_contact_date"] - d["failure_date"]).dt.days
    return out


_ORDER_RULES = {
    # duration -> (later date, rule, fix)
    "days_to_failure": ("failure_date", "failure before infusion: failure_date is earlier than infusion_date",
                        "check both dates; failure is counted from the day of infusion (day 0)"),
    "os2_days": ("last_contact_date", "death or last contact before failure: last_contact_date is earlier than "
                 "failure_date", "check both dates; OS-2 is counted from the failure date"),
}


def _cross_problems(raw: pd.DataFrame, source: str, implied: Mapping[str, pd.Series] | None = None) -> list[Problem]:
    """Dates in the wrong order, and dates that disagree with the durations given beside them (``implied``: what
    :func:`_derive_from_dates` gives for ``raw``, when the caller has it)."""
    problems: list[Problem] = []
    for name, days in (_derive_from_dates(raw) if implied is None else implied).items():
        if name == "infusion_year":
            if name in raw:
                given = numbers(raw[name])
                disagree = given.notna() & days.notna() & (given != days)
                for idx in given.index[disagree.to_numpy()]:
                    problems.append(Problem(source, int(idx) + 1, name, raw.at[idx, name],
                                            f"disagrees with infusion_date, which gives {int(days[idx])}",
                                            "correct infusion_year or infusion_date so that they agree, or give "
                                            "only one"))
            continue
        later, rule, fix = _ORDER_RULES[name]
        for idx in days.index[(days < 0).to_numpy()]:
            problems.append(Problem(source, int(idx) + 1, later, raw.at[idx, later], rule, fix))
        if name in raw:
            given = numbers(raw[name])
            disagree = given.notna() & days.notna() & (given != days) & (days >= 0)
            for idx in given.index[disagree.to_numpy()]:
                problems.append(Problem(source, int(idx) + 1, name, raw.at[idx, name],
                                        f"disagrees with the dates, which give {int(days[idx])} days",
                                        "correct the dates or the duration so that they agree, or give only one"))
    return problems


# --- the public entry points ------------------------------------------------------------------------------------

def blanks_as_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a fresh 0..n-1 index (rows are reported 1-based from it) and its blank text cells (empty or
    whitespace) as missing values, whichever way the frame was made."""
    raw = frame.reset_index(drop=True)
    text_cols = [c for c, dtype in raw.dtypes.items() if not pd.api.types.is_numeric_dtype(dtype)
                 and not pd.api.types.is_datetime64_any_dtype(dtype)]
    if len(raw) <= SMALL_ROWS and raw.columns.is_unique:  # a few patients: read their cells once instead
        text_cols = blank_columns(raw, text_cols)
    if text_cols:
        raw[text_cols] = raw[text_cols].replace(r"^\s*$", np.nan, regex=True)
    return raw


def no_rows_problem(source: str, what: str = "file") -> Problem:
    """The problem of a file with a header and no patient."""
    return Problem(source, None, None, None, f"no patients: the {what} has no data rows",
                   "export at least one patient below the header line")


def validate(frame: pd.DataFrame, *, source: str = "frame", require_outcome: bool = True,
             extra: Mapping[str, Column] | None = None) -> ValidationResult:
    """Check a cohort frame against the data dictionary and return it typed.

    Parameters
    ----------
    frame : DataFrame
        Raw extract: values as read (text for CSV, native types for Parquet or
        :func:`cartrisk.data.simulate.simulate`). The index is ignored; rows are
        reported 1-based in file order.
    source : str
        Name used in messages (the file path).
    require_outcome : bool
        False when scoring new patients: ``os2_days`` and ``os2_event`` are then
        optional (``days_to_failure`` stays required: it is a predictor).
    extra : mapping of name -> Column, optional
        The site's declared covariates (:func:`cartrisk.data.dictionary.declared_columns` of
        ``[data.extra]``): each must be in the file and is checked like a dictionary column.

    Returns
    -------
    ValidationResult
        ``frame`` is the typed cohort (None when invalid), ``problems`` every
        problem found, ``extra_columns`` the columns neither the dictionary nor ``extra``
        knows (kept in the frame, never usable as features: declare them first).
    """
    extra = dict(extra or {})
    defined = {c.name: c for c in COLUMNS} | extra
    raw = blanks_as_missing(frame)
    small = len(raw) <= SMALL_ROWS and raw.columns.is_unique  # one patient, or a few: read their values directly
    result = ValidationResult(frame=None)
    if raw.shape[0] == 0:
        result.problems.append(no_rows_problem(source, "extract"))
        return result
    result.extra_columns = [c for c in raw.columns if c not in defined]
    if result.extra_columns:
        result.notices.append("columns neither in the data dictionary nor declared in [data.extra], kept but not "
                              "usable as features: " + ", ".join(map(str, result.extra_columns)))
    derived = [c.name for c in columns_by_role("derived") if c.name in raw]
    if derived:
        raw = raw.drop(columns=derived)
        result.notices.append("derived columns are computed by cartrisk; ignored the file's: " + ", ".join(derived))

    result.problems += _missing_columns(raw, source, require_outcome)
    result.problems += [Problem(source, None, name, None, "declared column missing: [data.extra] declares it but "
                                "the file has no such column", f"add the column '{name}' to the extract, rename "
                                "the file's column with [data.columns], or remove it from [data.extra]")
                        for name in extra if name not in raw]
    if result.problems:
        return result
    implied = _derive_from_dates(raw)
    required = {"patient_id", "days_to_failure"} | ({"os2_days", "os2_event"} if require_outcome else set())
    needed = {c for c in required if c not in implied}
    typed = typed_if_valid(raw, implied, defined, needed) if small else None  # None: some value may be invalid
    if typed is None and not _all_valid(raw, needed, defined.values()):  # pandera lists every problem, if any
        schema = pa.DataFrameSchema(
            {c.name: _column_schema(c, c.name in needed)
             for c in defined.values() if c.name in raw and c.role != "derived"},
            strict=False,
        )
        try:
            schema.validate(raw, lazy=True)
        except SchemaErrors as err:
            result.problems += _problems_from_pandera(err.failure_cases, raw, source, defined)
    result.problems += _cross_problems(raw, source, implied)
    if result.problems:
        result.problems.sort(key=lambda p: (p.row or 0, p.column or ""))
        return result
    if typed is None:
        typed = _typed(raw, implied, defined)
    if require_outcome and typed["os2_event"].sum() == 0:
        result.problems.append(Problem(source, None, "os2_event", None,
                                       "all patients are censored (no os2_event = 1): OS-2 cannot be modelled",
                                       "check the coding of os2_event (1 = died, 0 = alive at last contact)"))
        return result
    result.frame = typed
    return result


def _all_valid(raw: pd.DataFrame, required: set[str], columns: Iterable[Column]) -> bool:
    """True when no value of ``raw`` can fail the schema of :func:`_column_schema` (same rules, vectorised).

    A quick pass for the common case, a valid extract: building and running the pandera schema costs some 30 ms
    whatever the number of rows, most of a one-patient scoring call. Any doubt returns False, and pandera then
    finds and words every problem. ``columns``: the dictionary's columns and the declared ones.
    """
    return all(column_valid(col, raw[col.name], col.name in required) for col in columns
               if col.name in raw and col.role != "derived")


def _missing_columns(raw: pd.DataFrame, source: str, require_outcome: bool) -> list[Problem]:
    problems = []
    wanted = ["patient_id", "days_to_failure"] + (["os2_days", "os2_event"] if require_outcome else [])
    dates_for = {"days_to_failure": ("infusion_date", "failure_date"),
                 "os2_days": ("failure_date", "last_contact_date")}
    for name in wanted:
        if name in raw or all(d in raw for d in dates_for.get(name, ("-",))):
            continue
        alt = dates_for.get(name)
        fix = f"add the column '{name}' ({column(name).meaning})"
        if alt:
            fix += f", or give the dates {alt[0]} and {alt[1]} to derive it"
        problems.append(Problem(source, None, name, None, "required column missing", fix))
    return problems


def _problems_from_pandera(cases: pd.DataFrame, raw: pd.DataFrame, source: str,
                           defined: Mapping[str, Column]) -> list[Problem]:
    problems = []
    for case in cases.itertuples(index=False):
        check = str(case.check)
        key = "required_value" if check == "not_nullable" else check
        col = defined.get(case.column)
        unit = f" in {col.unit}" if col is not None and col.unit else ""
        levels = ", ".join(col.levels) if col is not None else ""
        rule = _RULES.get(key, check).format(rule=col.rule() if col else "")
        fix = _FIXES.get(key, "correct the value").format(unit=unit, levels=levels)
        if col is not None and case.column in _REQUIRED_VALUES:
            fix = fix.split(", or leave")[0].split("; leave")[0]
        row = None if case.index is None or pd.isna(case.index) else int(case.index) + 1
        # A value that is not a number also fails the range check: report it once.
        if key in ("range", "integer") and row is not None and not is_number(raw[case.column].iloc[[row - 1]]).all():
            continue
        problems.append(Problem(source, row, case.column, case.failure_case, rule, fix))
    return problems


def _typed(raw: pd.DataFrame, implied: dict[str, pd.Series], defined: Mapping[str, Column]) -> pd.DataFrame:
    out = raw.copy()
    for name, days in implied.items():
        if name not in out:
            out[name] = days
    for col in defined.values():
        if col.name in out:
            out[col.name] = typed_column(col, out[col.name])
    return out


def read_extract(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet extract as raw values (CSV cells as text, empty = missing).

    Raises
    ------
    SchemaError
        The file does not exist, is empty, or is neither CSV nor Parquet.
    """
    path = Path(path)
    if not path.is_file():
        raise SchemaError(str(Problem(str(path), None, None, None, "file not found", "check the path")))
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise SchemaError(str(Problem(str(path), None, None, None,
                                      f"not a CSV or Parquet file (suffix '{suffix}')",
                                      "save the extract as .csv (comma-separated, header row) or .parquet")))
    if path.stat().st_size == 0:
        raise SchemaError(str(Problem(str(path), None, None, None, "the file is empty",
                                      "export the extract again with a header row and one row per patient")))
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=_MISSING_TOKENS)
        return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise SchemaError(str(Problem(str(path), None, None, None, f"cannot be read as {kind} ({err})",
                                      f"check that the file really is {kind}"))) from err


def load_cohort(path: str | Path, *, require_outcome: bool = True,
                extra: Mapping[str, Column] | None = None) -> pd.DataFrame:
    """Read and validate an extract; return the typed cohort or raise :class:`SchemaError` with every problem."""
    return validate(read_extract(path), source=str(path), require_outcome=require_outcome,
                    extra=extra).raise_if_invalid()


def to_xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Split a validated cohort into covariates ``X`` and the OS-2 target ``y``.

    ``X`` keeps every covariate column (``days_to_failure`` included, since the
    time from infusion to failure is known at the failure date) and drops the
    identifier, the OS-2 outcome, the dates and PFS-2. ``y`` is a scikit-survival
    structured array with fields ``os2_event`` (bool) and ``os2_days`` (float).
    """
    y = Surv.from_arrays(event=frame["os2_event"].to_numpy().astype(bool),
                         time=frame["os2_days"].to_numpy().astype(float),
                         name_event="os2_event", name_time="os2_days")
    X = frame.drop(columns=[c for c in _NOT_COVARIATES if c in frame])
    return X, y


def frame_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's content (values and column names), to trace a run to its data without storing it."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()
