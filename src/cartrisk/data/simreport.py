"""The simulated registry against the published figures: :func:`simulation_report`.

Each target of :func:`cartrisk.data.literature.targets` is measured on a cohort the way the sources
report it (Kaplan-Meier survival and medians, reverse Kaplan-Meier follow-up, shares among known
values), so the simulated cohort (or a real extract) can be held against the literature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cartrisk.data import literature
from cartrisk.data.derive import PCPI_COLUMNS, derive_features, pcpi_points
from cartrisk.data.simulate import _AGE_CUT_YEARS
from cartrisk.data.survstats import followup_median, km_at, km_median
from cartrisk.units import DEFAULT_HORIZONS_MONTHS, days_to_months, months_to_days

__all__ = ["cohort_summary", "cohort_table", "simulation_report"]


def _km_at(time: np.ndarray, event: np.ndarray, t_days: float) -> float:
    """Kaplan-Meier survival at ``t_days`` (NaN with no patient)."""
    return float(km_at(np.asarray(event, bool), np.asarray(time, float), [t_days])[0][0])


def _km_median(time: np.ndarray, event: np.ndarray, reverse: bool = False) -> float:
    """Kaplan-Meier median (reverse: median follow-up) in the unit of ``time``; NaN when not reached."""
    event, time = np.asarray(event, bool), np.asarray(time, float)
    return followup_median(event, time) if reverse else km_median(event, time)[0]


#: Share targets: quantity -> (column, comparison, threshold); a str threshold naming a column compares with it.
_SHARES = {"male_pct": ("sex", "==", "M"), "age_ge65_pct": ("age_years", ">=", _AGE_CUT_YEARS),
           "prior_lines_gt3_pct": ("prior_lines", ">", 3), "prior_asct_pct": ("prior_asct", "==", 1),
           "ecog_ge2_pct": ("ecog_infusion", ">=", 2), "ldh_gt_uln_pct": ("ldh_infusion", ">", "ldh_uln"),
           "bulky_pct": ("bulky_infusion", "==", 1), "aaipi_2_3_pct": ("aaipi", ">=", 2),
           "bridging_pct": ("bridging", "!=", "none"), "status_progressive_pct": ("status_at_infusion", "==", "PD"),
           "salvage_any_pct": ("salvage", "!=", "none"), "stage_infusion_3_4_pct": ("stage_infusion", ">=", 3),
           "crs_any_pct": ("crs_grade", ">=", 1), "crs_ge3_pct": ("crs_grade", ">=", 3),
           "icans_any_pct": ("icans_grade", ">=", 1), "icans_ge3_pct": ("icans_grade", ">=", 3),
           "ldh_failure_gt_uln_pct": ("ldh_failure", ">", "ldh_uln"),
           "stage_failure_3_4_pct": ("stage_failure", ">=", 3), "ecog_failure_ge2_pct": ("ecog_failure", ">=", 2),
           "bulky_failure_pct": ("bulky_failure", "==", 1), "cd19_negative_pct": ("cd19_failure", "==", "negative"),
           "extranodal_failure_any_pct": ("extranodal_failure", ">=", 1)}
_OPS = {"==": np.equal, "!=": np.not_equal, ">": np.greater, ">=": np.greater_equal, "<": np.less}


def _share_pct(f: pd.DataFrame, name: str, op: str, threshold: object) -> float:
    known = f[name].notna()
    if not known.any():
        return float("nan")
    other = f[threshold] if isinstance(threshold, str) and threshold in f.columns else threshold
    return 100.0 * float(_OPS[op](f[name], other)[known].mean())


def _measure(quantity: str, f: pd.DataFrame, share_of_all: float) -> float:
    """The simulated value of one target quantity on ``f`` (the patients of one group)."""
    month = months_to_days(1.0)
    os2 = (f["os2_days"].to_numpy(), f["os2_event"].to_numpy())
    pfs2 = (f["pfs2_days"].to_numpy(), f["pfs2_event"].to_numpy())
    if quantity in _SHARES:
        return _share_pct(f, *_SHARES[quantity])
    for name in ("histology", "product", "best_response"):
        if quantity.startswith(f"{name}_") and quantity.endswith("_pct"):
            return _share_pct(f, name, "==", quantity[len(name) + 1:-len("_pct")])
    if quantity == "ferritin_gt_uln_pct":
        return _share_pct(f, "ferritin_infusion", ">", literature.reference_ranges()["ferritin_uln_ug_l"])
    if quantity.startswith(("os2_", "pfs2_progressed_")):
        months = float(quantity.rsplit("_", 2)[-2].removesuffix("mo"))
        survival = _km_at(*(os2 if quantity.startswith("os2_") else pfs2), months_to_days(months))
        return 100.0 * (survival if quantity.startswith("os2_") else 1.0 - survival)
    measures = {
        "window_share_pct": lambda: 100.0 * share_of_all,
        "median_time_to_failure_months": lambda: float(np.median(f["days_to_failure"])) / month,
        "median_os2_months": lambda: _km_median(*os2) / month,
        "median_pfs2_months": lambda: _km_median(*pfs2) / month,
        "median_followup_months": lambda: _km_median(*os2, reverse=True) / month,
        "crp_median_mg_l": lambda: float(f["crp_infusion"].median()),
        "ldh_infusion_missing_pct": lambda: 100.0 * float(f["ldh_infusion"].isna().mean()),
    }
    if quantity not in measures:
        raise KeyError(f"simulation_report does not know how to measure {quantity!r}")
    return measures[quantity]()


def _pcpi_rows(frame: pd.DataFrame) -> list[tuple]:
    """PC-PI group shares and medians, and OS by time to progression: guides from IA24."""
    rules = literature.rule_constants()
    pcpi, ttp = rules["pcpi"], rules["time_to_progression"]
    month = months_to_days(1.0)
    scored = frame.dropna(subset=list(PCPI_COLUMNS))
    points = pcpi_points(scored).sum(axis=1).astype(float).reindex(frame.index)  # NaN: an item is unknown
    evaluable = points.notna()

    def median(mask: np.ndarray) -> float:
        return _km_median(frame["os2_days"].to_numpy()[mask], frame["os2_event"].to_numpy()[mask]) / month

    rows = []
    for g in pcpi["groups"]:
        member = (evaluable & points.between(g["points_min"], g["points_max"])).to_numpy()
        rows.append(("pcpi_group_pct", g["name"], g["share_pct"], 100.0 * member.sum() / max(evaluable.sum(), 1),
                     "%", "guide_share"))
        rows.append(("pcpi_median_os2_months", g["name"], g["median_os_months"], median(member), "months",
                     "km_median"))
    group = np.searchsorted(np.asarray(ttp["split_months"]) * month, frame["days_to_failure"].to_numpy(), "right")
    for i, g in enumerate(ttp["groups"]):
        if not np.isnan(g["median_os_months"]):
            rows.append(("ttp_median_os2_months", g["name"], g["median_os_months"], median(group == i), "months",
                         "km_median"))
    return [(*r[:5], pcpi["source"], "guide", r[5]) for r in rows]


def simulation_report(frame: pd.DataFrame) -> pd.DataFrame:
    """Each published target beside its value in a simulated cohort.

    Parameters
    ----------
    frame : pandas.DataFrame
        A cohort from :func:`simulate` (or any frame in the data-dictionary format).

    Returns
    -------
    pandas.DataFrame
        One row per target of :func:`cartrisk.data.literature.targets` (calibration and guide rows),
        then the IA24 guides (PC-PI group shares and median OS, median OS by time to
        progression), with columns ``quantity``, ``group``, ``published``, ``simulated``, ``unit``,
        ``source``, ``use``, ``tolerance``, ``tolerance_kind`` and ``within`` (bool). Survival
        figures are Kaplan-Meier estimates (scikit-survival), follow-up is the reverse
        Kaplan-Meier median, shares are among known values.
    """
    window = derive_features(frame[["days_to_failure"]])["failure_window"].to_numpy()
    rows = []
    for t in literature.targets().itertuples(index=False):
        mask = np.ones(len(frame), dtype=bool) if t.group == "all" else window == t.group
        rows.append((t.quantity, t.group, t.value, _measure(t.quantity, frame[mask], float(mask.mean())), t.unit,
                     t.source, t.use, t.tolerance, t.tolerance_kind))
    tolerances = literature.tolerances()
    rows += [(*r[:7], tolerances[r[7]]["value"], tolerances[r[7]]["kind"]) for r in _pcpi_rows(frame)]
    report = pd.DataFrame(rows, columns=["quantity", "group", "published", "simulated", "unit", "source", "use",
                                         "tolerance", "tolerance_kind"])
    limit = np.where(report["tolerance_kind"] == "relative", report["tolerance"] * report["published"],
                     report["tolerance"])
    report["within"] = ((report["simulated"] - report["published"]).abs() <= limit).to_numpy(dtype=bool)
    return report


def _months(days: float) -> float | None:
    return None if days is None or not np.isfinite(days) else float(days_to_months(days))


def cohort_summary(y: np.ndarray, X: pd.DataFrame, horizons_months=DEFAULT_HORIZONS_MONTHS) -> dict[str, Any]:
    """n, deaths, Kaplan-Meier OS-2, follow-up (reverse Kaplan-Meier median) and the failure windows."""
    event_field, time_field = y.dtype.names
    event, time = np.asarray(y[event_field], dtype=bool), np.asarray(y[time_field], dtype=float)
    median = km_median(event, time)
    follow = km_median(~event, time)  # reverse Kaplan-Meier: censoring is the event (with its CI)
    surv, low, high = km_at(event, time, months_to_days(np.asarray(horizons_months, dtype=float)))
    out: dict[str, Any] = {
        "n": int(event.size),
        "events": int(event.sum()),
        "median_os2_months": [_months(v) for v in median],
        "median_followup_months": [_months(v) for v in follow],
        "max_followup_months": _months(float(time.max())),
        "os2_at_horizons": [{"horizon_months": float(h), "km": float(s), "lower": float(lo), "upper": float(hi)}
                            for h, s, lo, hi in zip(horizons_months, surv, low, high, strict=True)],
    }
    if "days_to_failure" in X:
        window = derive_features(X[["days_to_failure"]])["failure_window"]
        out["failure_window_shares"] = {str(k): float(v) for k, v in
                                        window.value_counts(normalize=True).sort_index().items()}
    return out

def _ci(triple) -> str:
    est, low, high = (_fmt(v, "{:.1f}") for v in triple)
    return f"{est} months (95% CI {low}-{high})"


def _fmt(value, fmt: str = "{:.3f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def cohort_table(summary: dict[str, Any]) -> pd.DataFrame:
    """:func:`cohort_summary` as a two-column table (quantity, value) for people."""
    n, events = summary["n"], summary["events"]
    rows = [("patients", f"{n:,}"),
            ("deaths", f"{events:,} ({100 * events / max(n, 1):.1f}%; the rest censored)"),
            ("median OS-2 (Kaplan-Meier)", _ci(summary["median_os2_months"])),
            ("median follow-up (reverse Kaplan-Meier)", _ci(summary["median_followup_months"])),
            ("longest follow-up", f"{_fmt(summary['max_followup_months'], '{:.1f}')} months")]
    rows += [(f"OS-2 at {r['horizon_months']:g} months (KM)",
              f"{_fmt(r['km'])} ({_fmt(r['lower'])}-{_fmt(r['upper'])})") for r in summary["os2_at_horizons"]]
    rows += [(f"failure {k}", f"{100 * v:.1f}%") for k, v in summary.get("failure_window_shares", {}).items()]
    return pd.DataFrame(rows, columns=["quantity", "value"])
