"""Columns cartrisk derives from an extract: the failure window, LDH / ULN ratios, log scales, the literature's
binary codings, and the PC-PI's five items.

Stateless functions of a cohort frame (missing inputs give NaN), shared by the feature pipeline
(:mod:`cartrisk.modelling.features`), the reference rules (:mod:`cartrisk.modelling.rules`) and the
cohort reports (:mod:`cartrisk.data.simreport`). Thresholds come from the literature data file.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from cartrisk.data.literature import describe_terms, feature_codings, reference_ranges, rule_constants
from cartrisk.units import DAYS_PER_MONTH

__all__ = ["DERIVED_INPUTS", "PCPI_COLUMNS", "DESIGN_META_COLUMNS", "derive_features", "derived_values",
           "describe_design", "generic_design", "pcpi_points"]

#: Columns of the term table that :func:`describe_design` and :func:`generic_design` return beside the design.
DESIGN_META_COLUMNS = ("term", "variable", "level", "reference", "label", "published")

#: The columns the PC-PI reads.
PCPI_COLUMNS = ("ecog_failure", "hemoglobin_failure", "ldh_failure", "ldh_uln", "extranodal_failure", "days_to_failure")

_OPERATORS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
_CODING_OPERATORS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


def _log2(x: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """log2(max(x, 0) + offset), NaN kept (pandas' ``clip(lower=0)``: a NaN or a value >= 0 stays as it is)."""
    return np.log2(np.where(np.isnan(x) | (x >= 0), x, 0.0) + offset)


#: Each derived column and the columns it is computed from (derived ones included).
DERIVED_INPUTS: dict[str, tuple[str, ...]] = {
    "failure_window": ("days_to_failure",), "log2_days_to_failure": ("days_to_failure",),
    "ldh_ratio_infusion": ("ldh_infusion", "ldh_uln"), "ldh_ratio_failure": ("ldh_failure", "ldh_uln"),
    "log2_ldh_ratio_infusion": ("ldh_ratio_infusion",), "log2_ldh_ratio_failure": ("ldh_ratio_failure",),
    "log2_crp_infusion": ("crp_infusion",), "log2_ferritin_infusion": ("ferritin_infusion",),
}


def derived_values(values: Mapping[str, np.ndarray], n: int, names: Iterable[str] | None = None
                   ) -> dict[str, np.ndarray]:
    """The derived columns of :func:`derive_features` as arrays, from a cohort's columns as float arrays.

    Parameters
    ----------
    values : mapping of str -> float array
        The cohort's columns (a column it lacks counts as missing everywhere).
    n : int
        Number of patients.
    names : iterable of str, optional
        Only these derived columns (and what they need); default every one, in :func:`derive_features`' order.

    Returns
    -------
    dict of str -> array
        ``failure_window`` as an object array of labels (NaN where ``days_to_failure`` is missing), every other
        column float64. ``failure_window`` and ``log2_days_to_failure`` only when ``values`` has
        ``days_to_failure``.
    """
    codings = {code["name"]: code for code in feature_codings()}
    order = [*DERIVED_INPUTS, *codings]
    wanted = set(order if names is None else names)
    for name in reversed(order):  # what the wanted columns are computed from
        if name in wanted:
            wanted |= set(DERIVED_INPUTS.get(name, ())) | ({codings[name]["column"]} if name in codings else set())
    nan = np.full(n, np.nan)
    get = lambda c: values[c] if c in values else nan  # noqa: E731
    rc = rule_constants()
    new: dict[str, np.ndarray] = {}
    if "days_to_failure" in values:
        days = values["days_to_failure"]
        if "failure_window" in wanted:
            labels = rc["failure_windows"]
            window = np.select([days <= rc["d0_30_boundary_days"], days <= rc["d31_90_boundary_days"]], labels[:2],
                               labels[2]).astype(object)
            window[np.isnan(days)] = np.nan
            new["failure_window"] = window
        if "log2_days_to_failure" in wanted:
            new["log2_days_to_failure"] = _log2(days, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # as pandas divides: x / 0 is inf, 0 / 0 NaN
        for name in ("ldh_ratio_infusion", "ldh_ratio_failure"):
            if name in wanted:
                top, bottom = DERIVED_INPUTS[name]
                new[name] = get(top) / get(bottom)
    for name, source, offset in (("log2_ldh_ratio_infusion", "ldh_ratio_infusion", 0.0),
                                 ("log2_ldh_ratio_failure", "ldh_ratio_failure", 0.0),
                                 ("log2_crp_infusion", "crp_infusion", 1.0),
                                 ("log2_ferritin_infusion", "ferritin_infusion", 1.0)):
        if name in wanted:
            new[name] = _log2(new[source] if source in new else get(source), offset)
    for name, code in codings.items():
        if name in wanted:
            x = new[code["column"]] if code["column"] in new else get(code["column"])
            flag = _CODING_OPERATORS[code["op"]](x, code["threshold"]).astype(float)
            new[name] = np.where(np.isnan(x), np.nan, flag)
    keep = order if names is None else [c for c in order if c in set(names)]
    return {c: new[c] for c in keep if c in new}


def derive_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the library's derived columns to a cohort frame (stateless; missing inputs give NaN).

    Derived: ``failure_window`` (D0-30 / D31-90 / >D90), ``ldh_ratio_infusion`` and
    ``ldh_ratio_failure`` (LDH / ULN), their log2, ``log2_crp_infusion`` (log2(1 + CRP)),
    ``log2_ferritin_infusion``, ``log2_days_to_failure`` (log2(1 + days)), and the
    literature codings (binary indicators such as ``ldh_gt_uln_infusion``). The values are
    :func:`derived_values`'.
    """
    sources = {c for name in DERIVED_INPUTS for c in DERIVED_INPUTS[name]} | {c["column"] for c in feature_codings()}
    values = {c: frame[c].astype(float).to_numpy() for c in sources if c in frame}
    new = {name: pd.Series(v, index=frame.index, dtype=object if name == "failure_window" else np.float64)
           for name, v in derived_values(values, len(frame)).items()}
    # built apart and joined once: a column insertion costs more than its arithmetic
    replaced = [c for c in new if c in frame]
    out = frame.copy() if replaced else frame
    for c in replaced:
        out[c] = new.pop(c)
    return pd.concat([out, pd.DataFrame(new, index=frame.index)], axis=1) if new else out.copy()


def pcpi_points(frame: pd.DataFrame) -> pd.DataFrame:
    """The PC-PI's five items, one column each (1 = point, 0 = no point or missing value).

    Factors, units and thresholds come from the literature data file (``rule_constants()["pcpi"]``);
    ``x ULN`` items are divided by ``ldh_uln``, ``months`` items read days as months.
    """
    items = {}
    for factor in rule_constants()["pcpi"]["factors"]:
        value = frame[factor["column"]].to_numpy(float)
        if factor["unit"] == "x ULN":
            value = value / frame["ldh_uln"].to_numpy(float)
        elif factor["unit"] == "months":
            value = value / DAYS_PER_MONTH
        with np.errstate(invalid="ignore"):
            items[factor["name"]] = _OPERATORS[factor["operator"]](value, factor["threshold"]).astype(int)
    return pd.DataFrame(items, index=frame.index)


def _reference_coded(values: pd.Series, name: str, reference: str | None, label: str | None = None
                     ) -> tuple[pd.DataFrame, list[tuple]]:
    """One 0/1 column per level but the reference (NaN where the value is missing), and their term rows
    (labelled "<label>: <level> vs <reference>")."""
    text = values.astype(object).where(values.isna(), values.astype(str))
    counts = text.dropna().value_counts()
    if reference is None or reference not in counts.index:
        reference = str(sorted(counts.index, key=lambda lev: (-counts[lev], lev))[0]) if len(counts) else ""
    levels = [lev for lev in counts.index if lev != reference]
    levels.sort(key=lambda lev: (-counts[lev], lev))
    design = pd.DataFrame({f"{name}_{lev}": (text == lev).astype(float).where(text.notna()) for lev in levels},
                          index=values.index)
    return design, [(f"{name}_{lev}", name, lev, reference, f"{label or name}: {lev} vs {reference}")
                    for lev in levels]


def describe_design(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The design of ``cartrisk describe``'s Cox models on a registry frame: the established factors, coded as
    their sources report them (:func:`cartrisk.data.literature.describe_terms`).

    Returns
    -------
    design : DataFrame
        One float column per term (NaN where an input is missing); a category gives one column per level
        but its reference. Terms whose inputs the frame lacks are left out.
    terms : DataFrame
        ``term`` (the design column), ``variable`` (the term's name), ``level`` and ``reference`` (categories),
        ``label`` (how a reader names the term: the literature file's label, with "level vs reference"),
        ``published`` (the literature factors to print beside it, ``;``-separated).
    """
    derived = derive_features(frame)
    ranges = reference_ranges()
    columns: dict[str, pd.Series] = {}
    rows: list[tuple] = []
    for term in describe_terms():
        published = "; ".join(term.get("published", []))
        name, label = term["name"], term.get("label", term["name"])
        if "coding" in term:
            if term["coding"] not in derived or derived[term["coding"]].isna().all():
                continue
            columns[name] = derived[term["coding"]].astype(float)
            rows.append((name, name, "", "", label, published))
            continue
        if term["column"] not in frame:
            continue
        values = frame[term["column"]]
        if "log2_uln" in term:
            x = values.astype(float)
            columns[name] = np.log2(np.maximum(x, term["floor"]) / ranges[term["log2_uln"]])
            rows.append((name, name, "", "", label, published))
        elif "levels" in term:
            columns[name] = values.isin(term["levels"]).astype(float).where(values.notna())
            rows.append((name, name, "", "", label, published))
        else:
            coded, found = _reference_coded(values, name, term.get("reference"), label)
            columns.update(coded.to_dict(orient="series"))
            rows += [(*r, published) for r in found]
    return pd.DataFrame(columns, index=frame.index), pd.DataFrame(rows, columns=list(DESIGN_META_COLUMNS))


def generic_design(X: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A Cox design for any covariate frame (the generic path): numbers as they are, categories (and 0/1 text)
    against their most frequent level. Same return as :func:`describe_design`, with no published factors."""
    columns: dict[str, pd.Series] = {}
    rows: list[tuple] = []
    for name in X.columns:
        values = X[name]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            columns[str(name)] = values.astype(float)
            rows.append((str(name), str(name), "", "", str(name), ""))
        else:
            coded, found = _reference_coded(values, str(name), None)
            columns.update(coded.to_dict(orient="series"))
            rows += [(*r, "") for r in found]
    return pd.DataFrame(columns, index=X.index), pd.DataFrame(rows, columns=list(DESIGN_META_COLUMNS))
