"""Published figures on outcome after CAR T-cell failure, read from the package's data file.

Every number that cartrisk takes from the literature lives in ``cartrisk/data/literature.toml``
with the key of its source (``DB22``, ``ZU23``, ...). This module reads that file and hands the
figures out as frames and dictionaries; code never repeats them as literals.

Functions
---------
sources          the publications (key, citation)
risk_factors     established risk factors for OS-2 and related endpoints, one row per factor
targets          calibration targets and guides for the simulated registry, with test tolerances
target           one calibration value, by quantity and group
tolerances       the named test tolerances (absolute or relative)
rule_constants   failure windows, the PC-PI and the time-to-progression groups
reference_ranges laboratory limits the sources leave implicit (assumptions, marked as such)
registry_facts   registry features reported by the sources (CD19 testing, salvage classes)
simulation_assumptions the simulated registry's assumed numbers (centres, period, missingness, design HRs)
feature_codings  binary codings of the established factors, with the sources' cut-points
literature_features the ``literature`` feature set (the codings, then the continuous factors)
"""

from __future__ import annotations

import copy
import tomllib
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "GROUPS",
    "describe_terms",
    "feature_codings",
    "literature_features",
    "method_constants",
    "reference_ranges",
    "registry_facts",
    "risk_factors",
    "rule_constants",
    "simulation_assumptions",
    "sources",
    "target",
    "targets",
    "tolerances",
]

#: Groups of a target: the whole cohort, then the three failure windows of DB22.
GROUPS: tuple[str, ...] = ("all", "D0-30", "D31-90", ">D90")

_RISK_FACTOR_COLUMNS = ("factor", "column", "coding", "timing", "direction", "hr", "hr_low", "hr_high",
                        "analysis", "endpoint", "source", "note")
_TARGET_COLUMNS = ("quantity", "group", "value", "ci_low", "ci_high", "unit", "source", "tolerance",
                   "tolerance_kind", "use", "note")
_TIMINGS = ("infusion", "relapse", "after_failure")
_DIRECTIONS = ("worse", "better")


@cache
def _data() -> dict[str, Any]:
    """The parsed data file, checked once (cached; callers receive copies)."""
    text = resources.files("cartrisk").joinpath("data", "literature.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    _check(data)
    return data


def _check(data: dict[str, Any]) -> None:
    """Fail loudly if the data file refers to an unknown source, tolerance, timing or direction."""
    keys = set(data["sources"])
    tolerances = set(data["tolerances"])
    for row in data["targets"]:
        if row["source"] not in keys:
            raise ValueError(f"literature.toml: target {row['quantity']!r} cites unknown source {row['source']!r}")
        if row["tolerance"] not in tolerances:
            raise ValueError(f"literature.toml: target {row['quantity']!r} names unknown tolerance "
                             f"{row['tolerance']!r}")
        if row["group"] not in GROUPS:
            raise ValueError(f"literature.toml: target {row['quantity']!r} has unknown group {row['group']!r}")
    for row in data["risk_factors"]:
        if row["source"] not in keys:
            raise ValueError(f"literature.toml: risk factor {row['factor']!r} cites unknown source {row['source']!r}")
        if row["timing"] not in _TIMINGS or row["direction"] not in _DIRECTIONS:
            raise ValueError(f"literature.toml: risk factor {row['factor']!r} has timing {row['timing']!r} "
                             f"and direction {row['direction']!r}")


def sources() -> pd.DataFrame:
    """The publications cited by cartrisk.

    Returns
    -------
    pandas.DataFrame
        Columns ``key`` (e.g. ``"DB22"``) and ``citation``, one row per source.
    """
    rows = [{"key": key, "citation": entry["citation"]} for key, entry in _data()["sources"].items()]
    return pd.DataFrame(rows, columns=["key", "citation"])


def risk_factors() -> pd.DataFrame:
    """Established risk factors for OS-2 and related endpoints (literature sections 3 and 4).

    Returns
    -------
    pandas.DataFrame
        One row per factor and analysis, with columns

        - ``factor``: the factor in words, e.g. ``"LDH > ULN at infusion"``;
        - ``column``: the data-dictionary column it maps to (``""`` where none does);
        - ``coding``: how the column is coded, in words (``"days_to_failure <= 30"``);
        - ``timing``: ``infusion``, ``relapse`` or ``after_failure``;
        - ``direction``: ``worse`` or ``better``;
        - ``hr``, ``hr_low``, ``hr_high``: hazard ratio and 95 % CI (NaN where only medians are reported);
        - ``analysis`` (univariable / multivariable), ``endpoint``, ``source``, ``note``.
    """
    frame = pd.DataFrame(_data()["risk_factors"]).reindex(columns=list(_RISK_FACTOR_COLUMNS))
    for name in ("hr", "hr_low", "hr_high"):
        frame[name] = frame[name].astype("float64")
    frame["note"] = frame["note"].fillna("")
    return frame


def targets() -> pd.DataFrame:
    """Calibration targets and guides for the simulated registry (literature sections 1-2).

    Returns
    -------
    pandas.DataFrame
        One row per published figure, with columns

        - ``quantity``: what is measured; the name ends with its unit (``median_os2_months``,
          ``window_share_pct``, ``crp_median_mg_l``);
        - ``group``: ``all``, ``D0-30``, ``D31-90`` or ``>D90``;
        - ``value``, ``ci_low``, ``ci_high`` (NaN where not printed), ``unit``, ``source``;
        - ``tolerance`` and ``tolerance_kind``: how close a simulated cohort must come, ``absolute``
          (in the unit of the value, e.g. percentage points) or ``relative`` (a fraction of the value);
        - ``use``: ``calibration`` (tested) or ``guide`` (reported: another population or unreachable);
        - ``note``.

    Notes
    -----
    Among rows with ``use == "calibration"`` each (quantity, group) pair occurs once.
    """
    data = _data()
    frame = pd.DataFrame(data["targets"]).reindex(columns=list(_TARGET_COLUMNS))
    names = frame["tolerance"]
    frame["tolerance"] = [float(data["tolerances"][n]["value"]) for n in names]
    frame["tolerance_kind"] = [data["tolerances"][n]["kind"] for n in names]
    for name in ("value", "ci_low", "ci_high"):
        frame[name] = frame[name].astype("float64")
    frame["note"] = frame["note"].fillna("")
    return frame


def tolerances() -> dict[str, dict[str, Any]]:
    """The named test tolerances of the targets.

    Returns
    -------
    dict
        Name (``window_share``, ``km_median``, ...) to a dict with ``value``, ``kind``
        (``absolute`` or ``relative``) and ``note``.
    """
    return copy.deepcopy(_data()["tolerances"])


def target(quantity: str, group: str = "all") -> float:
    """The published value of one calibration target.

    Parameters
    ----------
    quantity : str
        A ``quantity`` of :func:`targets`, e.g. ``"median_os2_months"``.
    group : str, default "all"
        ``all``, ``D0-30``, ``D31-90`` or ``>D90``.

    Returns
    -------
    float
        The value, in the unit its name says.

    Raises
    ------
    KeyError
        If no calibration target has that quantity and group.
    """
    for row in _data()["targets"]:
        if row["quantity"] == quantity and row["group"] == group and row["use"] == "calibration":
            return float(row["value"])
    raise KeyError(f"no calibration target {quantity!r} for group {group!r}")


def rule_constants() -> dict[str, Any]:
    """Constants of the reference rules (literature section 4).

    Returns
    -------
    dict
        - ``d0_30_boundary_days`` (30) and ``d31_90_boundary_days`` (90): failure at or before the
          first boundary is D0-30, at or before the second D31-90, later >D90;
        - ``failure_windows``: the labels ``("D0-30", "D31-90", ">D90")``;
        - ``pcpi``: the Post-CAR Prognostic Index: ``factors`` (list of dicts with ``name``,
          ``column``, ``operator``, ``threshold``, ``unit``: one point each), ``groups`` (list of
          dicts with ``name``, ``points_min``, ``points_max``, ``share_pct``, ``median_os_months``),
          ``points_confirmed`` (False: the point ranges are an assumption, see ``points_note``),
          ``c_statistic`` and its CI, ``source``;
        - ``time_to_progression``: ``split_months`` ``(2.0, 6.0)`` and its three ``groups`` with the
          published median OS (NaN where not reached), ``n``, ``source``.

        A fresh copy on every call: changing it changes nothing else.
    """
    rules = copy.deepcopy(_data()["rules"])
    windows = rules["failure_windows"]
    ttp = rules["time_to_progression"]
    for group in ttp["groups"]:
        group.setdefault("median_os_months", np.nan)
    ttp["split_months"] = tuple(ttp["split_months"])
    return {
        "d0_30_boundary_days": int(windows["d0_30_boundary_days"]),
        "d31_90_boundary_days": int(windows["d31_90_boundary_days"]),
        "failure_windows": tuple(windows["labels"]),
        "failure_windows_source": windows["source"],
        "pcpi": rules["pcpi"],
        "time_to_progression": ttp,
    }


def reference_ranges() -> dict[str, Any]:
    """Laboratory upper limits of normal that the sources leave implicit.

    Returns
    -------
    dict
        ``ferritin_uln_ug_l``, ``crp_uln_mg_l``, ``source`` (``"ASSUMPTION"``) and ``note``.
    """
    return copy.deepcopy(_data()["reference_ranges"])


def registry_facts() -> dict[str, Any]:
    """Registry features reported by the sources, used by the simulated registry.

    Returns
    -------
    dict
        ``cd19_tested`` of ``cd19_cohort`` patients had CD19 tested at failure (AB23);
        ``salvage_class_pct``: first treatment after failure among those treated (DB22).
    """
    return copy.deepcopy(_data()["registry"])


def simulation_assumptions() -> dict[str, Any]:
    """The simulated registry's assumed numbers, every one marked ``source = "ASSUMPTION"``.

    Returns
    -------
    dict
        ``centres`` (number, sizes, random effect SD ``log_hr_sd`` on the baseline log hazard, case-mix shift),
        ``period`` (log HR per year of infusion and the reference year), ``missing`` (``rates`` per column and
        the dependence of laboratory values' missingness on the disease burden), ``design_hazard_ratios``.
        A fresh copy on every call.
    """
    return copy.deepcopy(_data()["simulation"])


def describe_terms() -> list[dict[str, Any]]:
    """The terms of ``cartrisk describe``'s Cox models, each as its source codes it (a fresh copy).

    Returns
    -------
    list of dict
        ``name``, ``published`` (the ``factor`` names of :func:`risk_factors` to print beside it), and one of:
        ``coding`` (a :func:`feature_codings` name), ``column`` with ``log2_uln`` (a :func:`reference_ranges`
        key) and ``floor``, ``column`` with ``levels`` (membership), or ``column`` with ``reference`` (a category
        against its reference level).
    """
    terms = copy.deepcopy(_data()["describe"]["terms"])
    factors = set(risk_factors()["factor"])
    for term in terms:
        unknown = [f for f in term.get("published", []) if f not in factors]
        if unknown:
            raise ValueError(f"literature.toml: describe term {term['name']!r} names unknown risk factor(s) {unknown}")
    return terms


def feature_codings() -> list[dict[str, Any]]:
    """Binary codings of the established factors, with the cut-points the sources report them with.

    Returns
    -------
    list of dict
        ``name`` (the feature), ``column`` (data-dictionary column, or ``ldh_ratio_infusion`` /
        ``ldh_ratio_failure`` = LDH / ULN), ``op`` (gt, ge, lt, le), ``threshold``, ``factor``
        (the source's wording) and ``source``. A fresh copy on every call.
    """
    return copy.deepcopy(_data()["literature_features"]["codings"])


def literature_features() -> list[str]:
    """The ``literature`` feature set: the codings, then the factors reported on a continuous scale."""
    section = _data()["literature_features"]
    return [c["name"] for c in section["codings"]] + list(section["continuous"])


def method_constants() -> dict[str, Any]:
    """Conventions of the validation methods (Riley's sample-size targets, the closed test's level), each table
    with its ``source``. A fresh copy on every call."""
    return copy.deepcopy(_data()["methods"])
