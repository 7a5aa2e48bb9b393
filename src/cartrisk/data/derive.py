"""Columns cartrisk derives from an extract: the failure window, LDH / ULN ratios, log scales, the literature's
binary codings, and the PC-PI's five items.

Stateless functions of a cohort frame (missing inputs give NaN), shared by the feature pipeline
(:mod:`cartrisk.modelling.features`), the reference rules (:mod:`cartrisk.modelling.rules`) and the
cohort reports (:mod:`cartrisk.data.simreport`). Thresholds come from the literature data file.
"""

from __future__ import annotations

import operator

import numpy as np
import pandas as pd

from cartrisk.data.literature import feature_codings, rule_constants
from cartrisk.units import DAYS_PER_MONTH

__all__ = ["PCPI_COLUMNS", "derive_features", "pcpi_points"]

#: The columns the PC-PI reads.
PCPI_COLUMNS = ("ecog_failure", "hemoglobin_failure", "ldh_failure", "ldh_uln", "extranodal_failure", "days_to_failure")

_OPERATORS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
_CODING_OPERATORS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


def _log2(x: pd.Series, offset: float = 0.0) -> pd.Series:
    return np.log2(x.astype(float).clip(lower=0) + offset)


def derive_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the library's derived columns to a cohort frame (stateless; missing inputs give NaN).

    Derived: ``failure_window`` (D0-30 / D31-90 / >D90), ``ldh_ratio_infusion`` and
    ``ldh_ratio_failure`` (LDH / ULN), their log2, ``log2_crp_infusion`` (log2(1 + CRP)),
    ``log2_ferritin_infusion``, ``log2_days_to_failure`` (log2(1 + days)), and the
    literature codings (binary indicators such as ``ldh_gt_uln_infusion``).
    """
    nan = pd.Series(np.nan, index=frame.index)
    get = lambda c: frame[c].astype(float) if c in frame else nan  # noqa: E731
    rc = rule_constants()
    new: dict[str, pd.Series] = {}  # built apart and joined once: a column insertion costs more than its arithmetic
    if "days_to_failure" in frame:
        days = frame["days_to_failure"].astype(float)
        labels = rc["failure_windows"]
        window = np.select([days <= rc["d0_30_boundary_days"], days <= rc["d31_90_boundary_days"]], labels[:2],
                           labels[2])
        new["failure_window"] = pd.Series(window, index=frame.index, dtype=object).where(days.notna())
        new["log2_days_to_failure"] = _log2(days, 1.0)
    new["ldh_ratio_infusion"] = get("ldh_infusion") / get("ldh_uln")
    new["ldh_ratio_failure"] = get("ldh_failure") / get("ldh_uln")
    new["log2_ldh_ratio_infusion"] = _log2(new["ldh_ratio_infusion"])
    new["log2_ldh_ratio_failure"] = _log2(new["ldh_ratio_failure"])
    new["log2_crp_infusion"] = _log2(get("crp_infusion"), 1.0)
    new["log2_ferritin_infusion"] = _log2(get("ferritin_infusion"), 1.0)
    for code in feature_codings():
        x = new[code["column"]] if code["column"] in new else get(code["column"])
        flag = _CODING_OPERATORS[code["op"]](x, code["threshold"])
        new[code["name"]] = flag.astype(float).where(x.notna())
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
