"""The cohort data dictionary: one definition of every column cartrisk knows.

One row per patient whose large B-cell lymphoma progressed or relapsed after
anti-CD19 CAR T-cells. Every other module (validation, simulation, features,
rules, scoring, the README's data section) reads this table; nothing repeats it.

Roles
-----
``id``            the patient identifier
``outcome``       OS-2 (failure to death or last contact) and its event flag
``date``          ISO dates from which the durations can be derived instead
``setting``       where and when the patient was treated (centre, infusion year): for clustered and temporal
                  validation, never a predictor of a named feature set
``infusion``      measured at or before CAR T-cell infusion (day 0)
``post_infusion`` observed after infusion and before failure (toxicity): known at failure, so usable by
                  the relapse-time feature sets, never by ``infusion``
``relapse``       measured at failure (progression or relapse)
``after_failure`` decided after the failure date: never a prognostic predictor by default
``derived``       computed by the library, never read from a file
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cartrisk.exceptions import ConfigError

__all__ = [
    "COLUMNS",
    "Column",
    "DECLARABLE_KINDS",
    "DECLARABLE_ROLES",
    "ROLES",
    "column_title",
    "column",
    "columns_by_role",
    "declared_column",
    "column_spec",
    "declared_columns",
    "data_dictionary_frame",
    "data_dictionary_markdown",
]

ROLES = ("id", "outcome", "date", "setting", "infusion", "post_infusion", "relapse", "after_failure", "derived")


@dataclass(frozen=True)
class Column:
    """One column of the data dictionary.

    Attributes
    ----------
    name : str
        Column name, exactly as in a file.
    role : str
        One of :data:`ROLES`.
    kind : str
        ``"string"``, ``"integer"``, ``"float"``, ``"binary"`` (0/1),
        ``"category"`` (one of ``levels``) or ``"date"`` (ISO 8601).
    meaning : str
        One line for people.
    unit : str
        Unit of measure, ``""`` when none.
    levels : tuple of str
        Allowed values of a category.
    min, max : float or None
        Allowed closed range of a number; ``min_exclusive`` makes the lower bound open.
    required : bool
        Must be present in every file (durations may come from dates instead).
    """

    name: str
    role: str
    kind: str
    meaning: str
    unit: str = ""
    levels: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    required: bool = False

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("integer", "float", "binary")

    def rule(self) -> str:
        """The allowed values, in words (used in error messages and the README)."""
        if self.kind == "category":
            return "one of " + ", ".join(self.levels)
        if self.kind == "binary":
            return "0 or 1"
        if self.kind == "date":
            return "an ISO date (YYYY-MM-DD)"
        if self.kind == "string":
            return "non-empty text"
        low = "" if self.min is None else (f"> {self.min:g}" if self.min_exclusive else f">= {self.min:g}")
        high = "" if self.max is None else f"<= {self.max:g}"
        words = "an integer" if self.kind == "integer" else "a number"
        bounds = " and ".join(b for b in (low, high) if b)
        return f"{words} {bounds}".strip()


def _c(name: str, role: str, kind: str, meaning: str, **kw) -> Column:
    return Column(name, role, kind, meaning, **kw)


_RESPONSE = ("CR", "PR", "SD", "PD")

COLUMNS: tuple[Column, ...] = (
    # identifier and outcome
    _c("patient_id", "id", "string", "Unique patient identifier (pseudonymised).", required=True),
    _c("days_to_failure", "outcome", "integer", "Days from CAR T-cell infusion (day 0) to progression or relapse.",
       unit="days", min=0, max=3653, required=True),
    _c("os2_days", "outcome", "integer", "OS-2: days from failure to death or last contact.",
       unit="days", min=0, max=7305, min_exclusive=True, required=True),
    _c("os2_event", "outcome", "binary", "1 if the patient died, 0 if censored at last contact.", required=True),
    # dates (alternative to the durations)
    _c("infusion_date", "date", "date", "Date of CAR T-cell infusion (day 0)."),
    _c("failure_date", "date", "date", "Date of progression or relapse after CAR T-cells."),
    _c("last_contact_date", "date", "date", "Date of death (os2_event = 1) or last contact (os2_event = 0)."),
    # setting: centre and period, for clustered and temporal validation
    _c("centre_id", "setting", "string", "Treating centre (pseudonymised code)."),
    _c("infusion_year", "setting", "integer", "Calendar year of infusion (derived from infusion_date when absent).",
       min=2009, max=2100),
    # infusion time
    _c("age_years", "infusion", "float", "Age at infusion.", unit="years", min=16, max=100),
    _c("sex", "infusion", "category", "Sex.", levels=("M", "F")),
    _c("histology", "infusion", "category", "Histology of the lymphoma.",
       levels=("DLBCL", "PMBL", "HGBCL", "tFL", "other")),
    _c("product", "infusion", "category", "CAR T-cell product.", levels=("axi-cel", "tisa-cel", "liso-cel", "other")),
    _c("prior_lines", "infusion", "integer", "Lines of therapy before CAR T-cells.", min=1, max=15),
    _c("prior_asct", "infusion", "binary", "Autologous transplant before CAR T-cells."),
    _c("bridging", "infusion", "category", "Bridging therapy between apheresis and infusion.",
       levels=("none", "systemic", "radiotherapy", "steroids")),
    _c("status_at_infusion", "infusion", "category", "Disease status at infusion.", levels=_RESPONSE),
    _c("ecog_infusion", "infusion", "integer", "ECOG performance status at infusion.", min=0, max=4),
    _c("ldh_infusion", "infusion", "float", "Serum LDH at infusion.", unit="U/L", min=20, max=20000),
    _c("ldh_uln", "infusion", "float", "Upper limit of normal of the site's LDH assay.", unit="U/L", min=100, max=1000),
    _c("crp_infusion", "infusion", "float", "C-reactive protein at infusion.", unit="mg/L", min=0, max=1000),
    _c("ferritin_infusion", "infusion", "float", "Serum ferritin at infusion.", unit="ug/L", min=0, max=100000),
    _c("aaipi", "infusion", "integer", "Age-adjusted IPI at infusion.", min=0, max=3),
    _c("stage_infusion", "infusion", "integer", "Ann Arbor stage at infusion.", min=1, max=4),
    _c("bulky_infusion", "infusion", "binary", "Bulky disease (> 5 cm) at infusion."),
    _c("extranodal_infusion", "infusion", "integer", "Number of extranodal sites at infusion.", unit="sites",
       min=0, max=20),
    # after infusion, before failure: known at failure
    _c("crs_grade", "post_infusion", "integer", "Highest cytokine release syndrome grade after infusion.", min=0,
       max=5),
    _c("icans_grade", "post_infusion", "integer", "Highest ICANS grade after infusion.", min=0, max=5),
    # relapse time
    _c("best_response", "relapse", "category", "Best response to CAR T-cells before failure.", levels=_RESPONSE),
    _c("ecog_failure", "relapse", "integer", "ECOG performance status at failure.", min=0, max=4),
    _c("ldh_failure", "relapse", "float", "Serum LDH at failure.", unit="U/L", min=20, max=20000),
    _c("stage_failure", "relapse", "integer", "Ann Arbor stage at failure.", min=1, max=4),
    _c("bulky_failure", "relapse", "binary", "Bulky disease (> 5 cm) at failure."),
    _c("extranodal_failure", "relapse", "integer", "Number of extranodal sites at failure.", unit="sites",
       min=0, max=20),
    _c("hemoglobin_failure", "relapse", "float", "Haemoglobin at failure.", unit="g/dL", min=3, max=20),
    _c("cd19_failure", "relapse", "category", "CD19 expression of the relapsing lymphoma.",
       levels=("positive", "negative")),
    # after failure: confounded by indication, never a prognostic predictor by default
    _c("salvage", "after_failure", "category", "First treatment after failure (decided after time zero).",
       levels=("none", "lenalidomide", "bispecific", "targeted", "radiotherapy", "immunochemotherapy",
               "polatuzumab", "car_t", "allo_hct", "trial", "other")),
    _c("pfs2_days", "after_failure", "integer", "PFS-2: days from failure to next progression, death or last contact.",
       unit="days", min=0, max=7305, min_exclusive=True),
    _c("pfs2_event", "after_failure", "binary", "1 if progressed again or died, 0 if censored."),
    # derived by the library, never read
    _c("failure_window", "derived", "category", "Time from infusion to failure: D0-30, D31-90 or >D90.",
       levels=("D0-30", "D31-90", ">D90")),
    _c("ldh_ratio_infusion", "derived", "float", "LDH at infusion / ULN.", unit="x ULN"),
    _c("ldh_ratio_failure", "derived", "float", "LDH at failure / ULN.", unit="x ULN"),
)

_BY_NAME = {c.name: c for c in COLUMNS}


def column(name: str) -> Column:
    """Return the definition of column ``name`` (KeyError if unknown)."""
    return _BY_NAME[name]


#: Shorter names for people where the meaning's first words would mislead or run long.
_TITLES = {"days_to_failure": "days from infusion to failure", "aaipi": "age-adjusted IPI at infusion",
           "ldh_uln": "LDH upper limit of normal", "failure_window": "failure window"}


def column_title(name: str) -> str:
    """A column's short name for people (figures, report prose): ``ldh_failure`` -> "LDH at failure";
    names that are not in the dictionary are returned without underscores."""
    if name in _TITLES:
        return _TITLES[name]
    if name not in _BY_NAME:
        return name.replace("_", " ")
    text = re.sub(r"\s*\([^)]*\)", "", _BY_NAME[name].meaning.split(":")[-1]).strip().rstrip(".")
    text = text.removeprefix("Serum ").strip()
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if re.fullmatch(r"[A-Z][a-z]+", first) and first != "Ann" else text


def columns_by_role(*roles: str) -> list[Column]:
    """The columns of the given roles, in dictionary order."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}; roles are {', '.join(ROLES)}")
    return [c for c in COLUMNS if c.role in roles]


#: What a site may declare in ``[data.extra]``: the kinds and roles of a covariate of its own.
DECLARABLE_KINDS = ("integer", "float", "binary", "category")
DECLARABLE_ROLES = ("infusion", "post_infusion", "relapse")
_SPEC_KEYS = ("kind", "role", "unit", "min", "max", "levels", "meaning")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def declared_column(name: str, spec: Mapping[str, Any]) -> Column:
    """A covariate declared by a site (``[data.extra.NAME]`` of an experiment file) as a :class:`Column`.

    Parameters
    ----------
    name : str
        The column's name in the extract (after ``[data.columns]`` renaming): a letter, then letters, digits or
        ``_``; not a data-dictionary name.
    spec : mapping
        ``kind`` (one of :data:`DECLARABLE_KINDS`), ``role`` (one of :data:`DECLARABLE_ROLES`), and optionally
        ``unit``, ``min``, ``max`` (numbers), ``levels`` (a category's allowed values) and ``meaning``.

    Raises
    ------
    ConfigError
        Naming ``[data.extra.NAME]``, the key, the value and the fix.
    """
    where = f"[data.extra.{name}]"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: the name must start with a letter and hold only letters, digits and '_' "
                          "(64 at most); rename the column with [data.columns]")
    if name in _BY_NAME:
        raise ConfigError(f"{where}: '{name}' is a data-dictionary column ({_BY_NAME[name].meaning}); remove it from "
                          "[data.extra]: the dictionary already defines it")
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known keys: "
                          f"{', '.join(_SPEC_KEYS)}")
    kind, role = spec.get("kind"), spec.get("role")
    if kind not in DECLARABLE_KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not a declarable kind; use one of {', '.join(DECLARABLE_KINDS)}")
    if role not in DECLARABLE_ROLES:
        raise ConfigError(f"{where}.role: {role!r} is not a declarable role; use 'infusion' (measured at or before "
                          "infusion), 'post_infusion' (after infusion, before failure) or 'relapse' (at failure)")
    levels = tuple(str(v) for v in (spec.get("levels") or ()))
    low, high = spec.get("min"), spec.get("max")
    if kind == "category":
        if len(levels) < 2 or len(set(levels)) < len(levels):
            raise ConfigError(f"{where}.levels: a category needs at least two distinct levels, got {list(levels)}; "
                              "list every allowed value, e.g. levels = [\"low\", \"high\"]")
        if low is not None or high is not None:
            raise ConfigError(f"{where}: a category takes levels, not min or max; remove min and max")
    elif levels:
        raise ConfigError(f"{where}.levels: only a category has levels (kind is {kind!r}); remove levels")
    for key, value in (("min", low), ("max", high)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
    if low is not None and high is not None and not low < high:
        raise ConfigError(f"{where}: min must be below max, got min = {low}, max = {high}")
    return Column(name, role, kind, str(spec.get("meaning") or f"Declared by the site ([data.extra.{name}])."),
                  unit=str(spec.get("unit") or ""), levels=levels,
                  min=None if low is None else float(low), max=None if high is None else float(high))


def declared_columns(extra: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Column]:
    """:func:`declared_column` for every entry of a ``[data.extra]`` mapping (name -> spec), in its order."""
    return {name: declared_column(name, spec) for name, spec in (extra or {}).items()}


def column_spec(col: Column) -> dict[str, Any]:
    """A column's declaration as plain data (the inverse of :func:`declared_column`), for files and pipelines."""
    return {"kind": col.kind, "role": col.role, "unit": col.unit, "min": col.min, "max": col.max,
            "levels": list(col.levels), "meaning": col.meaning}


def data_dictionary_frame() -> pd.DataFrame:
    """The data dictionary as a frame (one row per column)."""
    return pd.DataFrame(
        {
            "column": [c.name for c in COLUMNS],
            "role": [c.role for c in COLUMNS],
            "type": [c.kind for c in COLUMNS],
            "unit": [c.unit for c in COLUMNS],
            "allowed": [c.rule() for c in COLUMNS],
            "required": [c.required for c in COLUMNS],
            "meaning": [c.meaning for c in COLUMNS],
        }
    )


def data_dictionary_markdown() -> str:
    """The data dictionary as a Markdown table; the README's data section is checked against it."""
    lines = ["| column | role | type | unit | allowed | meaning |", "|---|---|---|---|---|---|"]
    for c in COLUMNS:
        name = f"`{c.name}`" + (" (required)" if c.required else "")
        lines.append(f"| {name} | {c.role} | {c.kind} | {c.unit} | {c.rule()} | {c.meaning} |")
    return "\n".join(lines) + "\n"
