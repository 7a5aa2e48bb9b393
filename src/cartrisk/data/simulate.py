"""The literature-calibrated simulated registry, with its true risk.

:func:`simulate` draws a cohort of patients whose lymphoma failed CAR T-cell therapy, in the format of
the data dictionary, and the truth behind it; :func:`simulation_report` sets each simulated figure
beside the published one (:func:`cartrisk.data.literature.targets`, DESCAR-T failures first of all).

The truth is proportional hazards with a Weibull baseline, ``S(t | x) = exp(-(t / scale) ** shape *
exp(eta(x)))``, so survival at any horizon is exact. ``eta`` takes published hazard ratios where they
exist (:func:`planted_effects`), with a smooth non-linear effect of the time from infusion to failure
(the D0-30 rule is a coarse version of it), one interaction, and covariates with no effect at all.

How the cohort is drawn: (1) failure window with the DB22 shares, then the day of failure (window
D31-90 is split at the published median time to failure, which is so reproduced); (2) a latent
disease burden; infusion-time covariates are Gaussian-copula draws loaded on it, thresholded to the
published shares by window (where a printed overall share disagrees with its window shares, as for
age >= 65, each window share moves by half the disagreement: the least-squares compromise weighting
each figure by its patients); (3) relapse-time covariates load on their infusion-time counterparts and
on a burden at relapse, and shift with the window (AB23 at salvage as a guide); (4) death, progression
and censoring (staggered accrual to a cut-off, and losses to follow-up that give the published median
follow-up); salvage is decided after failure, less often for early failures and sicker patients
(confounding by indication), and has NO effect on the true hazard; (5) values missing at registry-like
rates (LDH at infusion: ZU23; CD19: AB23), laboratory values more often in sicker patients.

The registry is multi-centre and spans years: patients belong to 20-40 centres of unequal size, each with a
random effect on the baseline log hazard and its own case mix (disease burden, product, LDH assay), and the
year of infusion has a period effect on OS-2. Both enter the truth (:func:`planted_effects`: terms
``centre_effect`` and ``period``); the truth frame holds each patient's centre and its effect. Every assumed
number (centres, period, missingness, design hazard ratios) is in the literature data file, marked as an
assumption (:func:`cartrisk.data.literature.simulation_assumptions`).

Constants marked *fitted* were fitted once by least squares against the section-1 targets, on
100,000 simulated patients whose marginal survival was computed exactly from the truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, ndtr, ndtri

from cartrisk.data import literature
from cartrisk.data.dictionary import COLUMNS
from cartrisk.units import DEFAULT_HORIZONS_MONTHS, months_to_days

__all__ = ["planted_effects", "simulate", "true_design"]

# ---- design constants: choices of this simulator, not literature figures -------------------------------------------
#: Weibull baseline of the true OS-2 hazard (*fitted* to the OS-2 medians and 6/12-month survival).
_BASELINE_SCALE_DAYS = 1512.0
_BASELINE_SHAPE = 1.476
#: Progression: Weibull baseline times exp(eta + window offset) (*fitted* to PFS-2). After very early failure a
#: second progression is rarely recorded before death (DB22: median PFS-2 1.7 vs OS-2 1.9 months).
_PROGRESSION_SCALE_DAYS = 2091.0
_PROGRESSION_SHAPE = 1.070
_PROGRESSION_WINDOW_OFFSET = np.array([-2.693, 0.0, 0.138])
#: Early-failure term 1 / (1 + (days / d50) ** steepness): a smooth version of the D0-30 rule.
_EARLY_D50_DAYS = 35.0
_EARLY_STEEPNESS = 3.0
#: Late-failure term log(days / 90) between 90 days and 18 months (CA24: late failures do better); its log HR is an
#: assumption of the literature data file.
_LATE_SPAN_DAYS = (90.0, 540.0)
#: Cut-points of the planted binary terms, as the literature codes them.
_AGE_CUT_YEARS = 65.0
_HB_CUT_G_DL = 10.0
#: Loading of each infusion-time latent on the disease-burden factor.
_LOADING = {"ldh": 0.7, "crp": 0.6, "ferritin": 0.5, "bulky": 0.5, "ecog": 0.5, "stage": 0.5, "extranodal": 0.5,
            "status": 0.4, "hb": 0.5, "response": 0.4}
#: Relapse-time latents: loading on the infusion-time counterpart and on the burden at relapse (itself loaded
#: on the burden at infusion); weight of the window's probit shift.
_RELAPSE_CORRELATION = 0.5
_RELAPSE_BURDEN_LOADING = 0.5
_RELAPSE_BURDEN_FROM_INFUSION = 0.5
_WINDOW_SHIFT_WEIGHT = 0.25
#: Registry: failures accrue over 3 years, with rising intensity, up to the data cut-off.
_DATA_CUTOFF = np.datetime64("2021-12-31", "D")
_ACCRUAL_MONTHS = 36.0
#: The LDH assays' upper limits of normal (U/L) a centre may use.
_LDH_ULNS = np.array([190.0, 214.0, 225.0, 234.0, 246.0, 250.0, 280.0])
_RESPONSE = np.array(["CR", "PR", "SD", "PD"], dtype=object)


# ---- literature lookups ------------------------------------------------------------------------------------------
@cache
def _window_info() -> tuple[tuple[str, ...], int, int, np.ndarray]:
    """Window labels, the two boundaries (days) and the window weights of DB22."""
    rules = literature.rule_constants()
    labels = rules["failure_windows"]
    shares = np.array([literature.target("window_share_pct", g) for g in labels])
    return labels, rules["d0_30_boundary_days"], rules["d31_90_boundary_days"], shares / shares.sum()


def _shares_by_window(quantity: str) -> np.ndarray:
    """Probabilities by window for a share target, reconciled with the overall share (module docstring)."""
    labels, *_, weights = _window_info()
    overall = literature.target(quantity) / 100.0
    try:
        by_window = np.array([literature.target(quantity, g) for g in labels]) / 100.0
    except KeyError:
        return np.full(3, overall)
    return np.clip(by_window - (float(weights @ by_window) - overall) / 2.0, 0.001, 0.999)


def _guide(quantity: str) -> float:
    """A guide target (another population) as a probability."""
    t = literature.targets()
    return float(t.loc[(t["quantity"] == quantity) & (t["group"] == "all"), "value"].iloc[0]) / 100.0


def _published(factor: str, source: str, analysis: str) -> tuple[float, str]:
    rf = literature.risk_factors()
    row = rf[(rf["factor"] == factor) & (rf["source"] == source) & (rf["analysis"] == analysis)]
    return float(np.log(row["hr"].iloc[0])), f"published HR ({source}, {analysis}, {row['endpoint'].iloc[0]})"


def _design(name: str, why: str) -> tuple[float, str]:
    return float(np.log(literature.simulation_assumptions()["design_hazard_ratios"][name])), f"design; {why}"


@cache
def _terms() -> pd.DataFrame:
    """The planted terms of eta (see :func:`planted_effects`)."""
    lo, hi = _LATE_SPAN_DAYS
    sim = literature.simulation_assumptions()
    period, centres = sim["period"], sim["centres"]
    rows = [
        ("early_failure", "days_to_failure", f"1 / (1 + (days_to_failure / {_EARLY_D50_DAYS:g}) ** "
         f"{_EARLY_STEEPNESS:g})", "non-linear", *_published("failure D0-D30 (very early)", "DB22", "multivariable")),
        ("late_failure", "days_to_failure", f"log(clip(days_to_failure, {lo:g}, {hi:g}) / {lo:g})", "non-linear",
         float(sim["design_hazard_ratios"]["late_failure_log_hr"]),
         "design; direction from CA24 (late failure does better)"),
        ("ldh_infusion_gt_uln", "ldh_infusion, ldh_uln", "ldh_infusion > ldh_uln", "linear",
         *_published("LDH > ULN at infusion", "DB22", "multivariable")),
        ("crp_infusion_log2", "crp_infusion", "log2(max(crp_infusion, 1) / CRP ULN)", "linear",
         *_published("CRP per log2 fold of ULN", "HS23", "univariable")),
        ("ferritin_infusion_log2", "ferritin_infusion", "log2(max(ferritin_infusion, 10) / ferritin ULN)", "linear",
         *_published("ferritin per log2 fold of ULN", "HS23", "univariable")),
        ("ecog_infusion_ge2", "ecog_infusion", "ecog_infusion >= 2", "linear",
         *_published("ECOG 2-4", "HS23", "univariable")),
        ("prior_lines_gt2", "prior_lines", "prior_lines > 2", "linear",
         *_published("> 2 prior lines before CAR-T", "ZU23", "multivariable")),
        ("age_gt65", "age_years", "age_years > 65", "linear", *_design("age_gt65", "direction from AT21 (no HR)")),
        ("ldh_failure_gt_uln", "ldh_failure, ldh_uln", "ldh_failure > ldh_uln", "linear",
         *_published("elevated LDH at salvage", "AB23", "multivariable")),
        ("stage_failure_3_4", "stage_failure", "stage_failure >= 3", "linear",
         *_published("stage III-IV at salvage", "AB23", "multivariable")),
        ("ecog_failure_ge2", "ecog_failure", "ecog_failure >= 2", "linear",
         *_design("ecog_failure_ge2", "direction from AB23 (medians only)")),
        ("extranodal_failure_gt1", "extranodal_failure", "extranodal_failure > 1", "linear",
         *_design("extranodal_failure_gt1", "direction from AB23 and IA24")),
        ("hemoglobin_failure_lt10", "hemoglobin_failure", "hemoglobin_failure < 10", "linear",
         *_design("hemoglobin_failure_lt10", "direction from IA24 (a PC-PI factor)")),
        ("best_response_cr_pr", "best_response", "best_response in {CR, PR}", "linear",
         *_design("best_response_cr_pr", "AB23's 0.5 is for OS from infusion, which includes the time to failure")),
        ("age_gt65_x_ecog_failure_ge2", "age_years, ecog_failure", "age_years > 65 and ecog_failure >= 2",
         "interaction", *_design("age_gt65_x_ecog_failure_ge2", "frailty, on top of both main effects")),
        ("period", "infusion_year", f"infusion_year - {period['reference_year']}", "linear",
         float(period["log_hr_per_year"]), "assumption; per calendar year of infusion (salvage options improved)"),
        ("centre_effect", "centre_id", f"the centre's random effect b ~ N(0, {centres['log_hr_sd']:g}^2) on the "
         "baseline log hazard", "random effect", 1.0,
         "assumption; the design column holds each patient's centre effect b (coefficient 1)"),
    ]
    nulls = {"sex": "", "crs_grade": "", "icans_grade": "", "histology": "", "prior_asct": "", "bridging": "",
             "bulky_infusion": "", "bulky_failure": "", "cd19_failure": "",
             "product": "; HS23's HR is for PFS after infusion",
             "salvage": "; given less often to early failures and sicker patients (confounding by indication)"}
    rows += [(f"{c}_null", c, "any value", "null", 0.0, "no effect" + why) for c, why in nulls.items()]
    frame = pd.DataFrame(rows, columns=["term", "columns", "coding", "kind", "log_hr", "basis"])
    frame.insert(5, "hr", np.exp(frame["log_hr"]))
    return frame


def planted_effects() -> pd.DataFrame:
    """The effects planted in the true log hazard of :func:`simulate`.

    Returns
    -------
    pandas.DataFrame
        One row per term: ``term`` (its design column in the truth frame), ``columns`` (the
        data-dictionary columns it reads), ``coding`` (in words), ``kind`` (``linear``,
        ``non-linear``, ``interaction``, ``random effect`` or ``null``), ``log_hr`` and ``hr`` (per
        unit of the coded term), ``basis`` (the published HR it takes, or a design choice and why).
        ``null`` rows name covariates with no effect at all on the true hazard. The ``random effect``
        row is the centre's effect on the baseline log hazard: its design column holds each patient's
        centre effect (coefficient 1); its SD is ``simulation_assumptions()["centres"]["log_hr_sd"]``.
    """
    return _terms().copy()


# ---- the true design ---------------------------------------------------------------------------------------------
_DESIGN_INPUTS = ("days_to_failure", "ldh_infusion", "ldh_uln", "crp_infusion", "ferritin_infusion", "ecog_infusion",
                  "prior_lines", "age_years", "ldh_failure", "stage_failure", "ecog_failure", "extranodal_failure",
                  "hemoglobin_failure", "best_response", "infusion_year")


def _design_arrays(x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    ref = literature.reference_ranges()

    def num(name: str) -> np.ndarray:
        return np.asarray(x[name], dtype=float)

    days, uln = num("days_to_failure"), num("ldh_uln")
    lo, hi = _LATE_SPAN_DAYS
    age65, ecogf2 = num("age_years") > _AGE_CUT_YEARS, num("ecog_failure") >= 2
    out = {
        "early_failure": 1.0 / (1.0 + (np.maximum(days, 0.5) / _EARLY_D50_DAYS) ** _EARLY_STEEPNESS),
        "late_failure": np.log(np.clip(days, lo, hi) / lo),
        "ldh_infusion_gt_uln": num("ldh_infusion") > uln,
        "crp_infusion_log2": np.log2(np.maximum(num("crp_infusion"), 1.0) / ref["crp_uln_mg_l"]),
        "ferritin_infusion_log2": np.log2(np.maximum(num("ferritin_infusion"), 10.0) / ref["ferritin_uln_ug_l"]),
        "ecog_infusion_ge2": num("ecog_infusion") >= 2,
        "prior_lines_gt2": num("prior_lines") > 2,
        "age_gt65": age65,
        "ldh_failure_gt_uln": num("ldh_failure") > uln,
        "stage_failure_3_4": num("stage_failure") >= 3,
        "ecog_failure_ge2": ecogf2,
        "extranodal_failure_gt1": num("extranodal_failure") > 1,
        "hemoglobin_failure_lt10": num("hemoglobin_failure") < _HB_CUT_G_DL,
        "best_response_cr_pr": np.isin(np.asarray(x["best_response"], dtype=object), ("CR", "PR")),
        "age_gt65_x_ecog_failure_ge2": age65 & ecogf2,
        "period": num("infusion_year") - literature.simulation_assumptions()["period"]["reference_year"],
    }
    return {k: v.astype(np.float64) for k, v in out.items()}


def true_design(frame: pd.DataFrame) -> pd.DataFrame:
    """The design columns of the true log hazard, computed from a complete frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        A cohort in the data-dictionary format with no missing value in the columns that the
        planted terms read (:func:`planted_effects`, column ``columns``).

    Returns
    -------
    pandas.DataFrame
        One float column per non-null planted term but the centre's random effect, same index as
        ``frame``. The true log hazard is ``true_design(frame) @ planted_effects().set_index("term")
        ["log_hr"][columns]`` plus the patient's centre effect (truth column ``centre_effect``).

    Raises
    ------
    ValueError
        If a needed column is absent or has missing values.
    """
    absent = [c for c in _DESIGN_INPUTS if c not in frame.columns]
    if absent:
        raise ValueError(f"true_design needs the columns {', '.join(absent)}, absent from the frame")
    incomplete = [c for c in _DESIGN_INPUTS if frame[c].isna().any()]
    if incomplete:
        raise ValueError(f"true_design needs complete values; missing values in {', '.join(incomplete)}")
    arrays = {c: frame[c].to_numpy(dtype=object if c == "best_response" else float) for c in _DESIGN_INPUTS}
    return pd.DataFrame(_design_arrays(arrays), index=frame.index)


def _eta(design: Mapping[str, np.ndarray]) -> np.ndarray:
    terms = _terms()
    eta = np.zeros(len(design["early_failure"]))
    for name, coef in zip(terms["term"], terms["log_hr"], strict=True):
        if name in design:
            eta += coef * design[name]
    return eta


# ---- covariates --------------------------------------------------------------------------------------------------
def _ordinal(latent: np.ndarray, probs: np.ndarray, window: np.ndarray | None = None) -> np.ndarray:
    """Codes 0..K-1 of a standard-normal latent, given category probabilities (K,) or by window (3, K)."""
    probs = np.atleast_2d(np.asarray(probs, dtype=float))
    cuts = ndtri(np.clip(np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)[:, :-1], 1e-12, 1 - 1e-12))
    cuts = cuts[window] if window is not None else cuts[0]
    return (latent[:, None] > cuts).sum(axis=1)


def _skewed_ratio(latent: np.ndarray, upper: float = 0.6) -> np.ndarray:
    """A lab value over its ULN: log-normal, longer right tail, above 1 exactly when ``latent > 0``."""
    return np.exp(np.where(latent < 0, 0.3, upper) * latent)


def _stage_probs(p34: float) -> np.ndarray:
    """Ann Arbor stages I-IV given the share of III-IV."""
    return np.array([0.35 * (1 - p34), 0.65 * (1 - p34), 0.35 * p34, 0.65 * p34])


def _draw_windows_and_days(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    _, d30, d90, weights = _window_info()
    first, last = months_to_days(np.array(literature.registry_facts()["time_to_failure_range_months"]))
    window = rng.choice(3, size=n, p=weights)
    u, v = rng.random(n), rng.random(n)
    # D0-30: most failures are found at the day-28 assessment, a few earlier (clinical progression).
    early = np.ceil(first + (d30 - first) * (1.0 - rng.beta(1.2, 3.0, size=n)))
    # D31-90: uniform below and above the published median time to failure, with the mass that reproduces it.
    median_days = months_to_days(literature.target("median_time_to_failure_months"))
    below = (0.5 - weights[0]) / weights[1]
    middle = np.where(u < below, d30 + v * (median_days - d30), median_days + v * (d90 - median_days))
    # >D90: a log-normal tail, truncated at the longest time to failure of DB22.
    z_max = np.log((np.floor(last) - d90) / d90) / 0.9
    late = d90 + np.maximum(np.ceil(d90 * np.exp(0.9 * ndtri(rng.random(n) * ndtr(z_max)))), 1.0)
    days = np.select([window == 0, window == 1], [early, np.ceil(middle)], late)
    return window, days.astype(np.int64)


def _draw_centres(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Centres: each patient's centre (codes), and per centre its label, random effect and case mix."""
    spec = literature.simulation_assumptions()["centres"]
    k = int(np.clip(n // spec["patients_per_centre"], spec["min"], spec["max"]))
    sizes = np.exp(spec["size_log_sd"] * rng.standard_normal(k))
    member = rng.choice(k, size=n, p=sizes / sizes.sum())
    axicel = literature.target("product_axi-cel_pct") / 100.0
    concentration = spec["product_concentration"]
    width = len(str(k))
    return {"member": member, "label": np.array([f"C{j + 1:0{width}d}" for j in range(k)], dtype=object),
            "effect": spec["log_hr_sd"] * rng.standard_normal(k),
            "burden_shift": spec["burden_shift_sd"] * rng.standard_normal(k),
            "axicel_share": rng.beta(concentration * axicel, concentration * (1.0 - axicel), size=k),
            "ldh_uln": _LDH_ULNS[rng.integers(0, _LDH_ULNS.size, k)]}


def _draw_covariates(rng: np.random.Generator, window: np.ndarray, centres: Mapping[str, np.ndarray]
                     ) -> dict[str, np.ndarray]:
    """Complete covariates (categories as object arrays of strings); private keys start with ``_``."""
    n = len(window)
    labels, *_ = _window_info()
    shift = _WINDOW_SHIFT_WEIGHT * (ndtri(_shares_by_window("ldh_gt_uln_pct"))
                                    - ndtri(literature.target("ldh_gt_uln_pct") / 100.0))[window]
    member = centres["member"]
    # The centre shifts its patients' burden (case mix); scaled so that the pooled latent stays standard normal.
    sd = literature.simulation_assumptions()["centres"]["burden_shift_sd"]
    burden = (centres["burden_shift"][member] + rng.standard_normal(n)) / np.sqrt(1.0 + sd * sd)
    z = {k: a * burden + np.sqrt(1.0 - a * a) * rng.standard_normal(n) for k, a in _LOADING.items()}

    def share(quantity: str) -> np.ndarray:
        return _shares_by_window(quantity)[window]

    def pick(levels: tuple[str, ...] | list[str], probs: np.ndarray) -> np.ndarray:
        return np.array(levels, dtype=object)[_ordinal(rng.standard_normal(n), probs)]

    x: dict[str, np.ndarray] = {"_burden": burden}
    x["sex"] = np.where(rng.random(n) < share("male_pct"), "M", "F").astype(object)
    age = _AGE_CUT_YEARS + 10.5 * (rng.standard_normal(n) + ndtri(share("age_ge65_pct")))
    x["age_years"] = np.round(np.clip(age, 18.0, 84.0), 1)
    hist = ("DLBCL", "PMBL", "HGBCL", "tFL", "other")
    x["histology"] = pick(hist, np.array([literature.target(f"histology_{h}_pct") for h in hist]))
    x["product"] = np.where(rng.random(n) < centres["axicel_share"][member], "axi-cel", "tisa-cel").astype(object)
    gt3 = rng.random(n) < share("prior_lines_gt3_pct")
    x["prior_lines"] = np.where(gt3, np.minimum(3 + rng.geometric(0.55, n), 15), 2 + (rng.random(n) < 0.5))
    x["prior_asct"] = (rng.random(n) < share("prior_asct_pct")).astype(float)
    bridged = rng.random(n) < share("bridging_pct")
    x["bridging"] = np.where(bridged, pick(("systemic", "radiotherapy", "steroids"), np.array([0.7, 0.2, 0.1])),
                             "none").astype(object)
    progressive = literature.target("status_progressive_pct") / 100.0
    x["status_at_infusion"] = _RESPONSE[_ordinal(z["status"] + shift, np.array([0.05, 0.14, 0.15, progressive]))]
    p2 = _shares_by_window("ecog_ge2_pct")
    ecog = np.column_stack([(1 - p2) * 0.45, (1 - p2) * 0.55, p2 * 0.85, p2 * 0.15])
    x["ecog_infusion"] = _ordinal(z["ecog"], ecog, window).astype(float)
    x["ldh_uln"] = centres["ldh_uln"][member]
    ldh = np.round(_skewed_ratio(z["ldh"] + ndtri(share("ldh_gt_uln_pct"))) * x["ldh_uln"])
    x["ldh_infusion"] = np.clip(ldh, 20, 20000)
    crp_median = np.array([literature.target("crp_median_mg_l", g) for g in labels])[window]
    x["crp_infusion"] = np.clip(np.round(crp_median * np.exp(1.0 * z["crp"]), 1), 0.0, 600.0)
    ferritin = np.exp(0.9 * (z["ferritin"] + ndtri(share("ferritin_gt_uln_pct"))))
    x["ferritin_infusion"] = np.clip(np.round(ferritin * literature.reference_ranges()["ferritin_uln_ug_l"]), 5, 50000)
    x["bulky_infusion"] = (z["bulky"] + ndtri(share("bulky_pct")) > 0).astype(float)
    x["stage_infusion"] = 1.0 + _ordinal(z["stage"] + shift, _stage_probs(_guide("stage_infusion_3_4_pct")))
    extranodal = np.array([0.40, 0.30, 0.17, 0.08, 0.03, 0.02])
    x["extranodal_infusion"] = _ordinal(z["extranodal"] + shift, extranodal).astype(float)
    x["aaipi"] = ((x["stage_infusion"] >= 3).astype(float) + (x["ldh_infusion"] > x["ldh_uln"])
                  + (x["ecog_infusion"] >= 2))
    x["crs_grade"] = _ordinal(rng.standard_normal(n), np.array([0.33, 0.38, 0.17, 0.09, 0.03])).astype(float)
    x["icans_grade"] = _ordinal(rng.standard_normal(n), np.array([0.54, 0.14, 0.15, 0.12, 0.05])).astype(float)
    _draw_relapse(rng, x, z, window, shift)
    return x


def _draw_relapse(rng: np.random.Generator, x: dict[str, np.ndarray], z: dict[str, np.ndarray],
                  window: np.ndarray, shift: np.ndarray) -> None:
    """Relapse-time covariates, added to ``x``: correlated with infusion time and with the window."""
    n = len(window)
    f, r, a = _RELAPSE_BURDEN_FROM_INFUSION, _RELAPSE_CORRELATION, _RELAPSE_BURDEN_LOADING
    relapse_burden = f * x["_burden"] + np.sqrt(1.0 - f * f) * rng.standard_normal(n)
    x["_relapse_burden"] = relapse_burden

    def latent(name: str) -> np.ndarray:
        sd = np.sqrt(1.0 + 2.0 * r * a * _LOADING[name] * f)
        own = r * z[name] + a * relapse_burden + np.sqrt(1.0 - r * r - a * a) * rng.standard_normal(n)
        return own / sd + shift

    response = np.array([[0.00, 0.08, 0.25, 0.67], [0.30, 0.38, 0.17, 0.15], [0.78, 0.17, 0.05, 0.00]])
    x["best_response"] = _RESPONSE[_ordinal(z["response"], response, window)]
    ratio = _skewed_ratio(latent("ldh") + ndtri(_guide("ldh_failure_gt_uln_pct")), upper=0.7)
    x["ldh_failure"] = np.clip(np.round(x["ldh_uln"] * ratio), 20, 20000)
    x["stage_failure"] = 1.0 + _ordinal(latent("stage"), _stage_probs(_guide("stage_failure_3_4_pct")))
    x["bulky_failure"] = (latent("bulky") + ndtri(_guide("bulky_failure_pct")) > 0).astype(float)
    p_any = _guide("extranodal_failure_any_pct")
    extranodal = np.array([1 - p_any, *(p_any * np.array([0.50, 0.29, 0.12, 0.05, 0.04]))])
    x["extranodal_failure"] = _ordinal(latent("extranodal"), extranodal).astype(float)
    p2 = _guide("ecog_failure_ge2_pct")
    x["ecog_failure"] = _ordinal(latent("ecog"), np.array([0.40, 0.60 - p2, 0.78 * p2, 0.18 * p2, 0.04 * p2]))
    x["ecog_failure"] = x["ecog_failure"].astype(float)
    x["hemoglobin_failure"] = np.round(np.clip(10.9 - 1.8 * latent("hb"), 5.0, 17.0), 1)
    facts = literature.registry_facts()
    negative = rng.random(n) < _guide("cd19_negative_pct")
    x["cd19_failure"] = np.where(negative, "negative", "positive").astype(object)
    x["_cd19_tested"] = rng.random(n) < facts["cd19_tested"] / facts["cd19_cohort"]


# ---- outcomes, salvage, missing values ---------------------------------------------------------------------------
def _censoring_rate_per_day() -> float:
    """Loss to follow-up that, with the accrual, gives the published median follow-up (reverse KM)."""
    accrual = months_to_days(_ACCRUAL_MONTHS)
    t = months_to_days(literature.target("median_followup_months"))
    return float(-np.log(0.5 / (1.0 - t / accrual) ** 2) / t)


def _draw_accrual(rng: np.random.Generator, n: int) -> np.ndarray:
    """Days from failure to the data cut-off: failures accrue with rising intensity (density ~ (A - f))."""
    accrual = months_to_days(_ACCRUAL_MONTHS)
    return (1.0 + np.floor((accrual - 1.0) * (1.0 - np.sqrt(rng.random(n))))).astype(np.int64)


def _infusion_year(admin: np.ndarray, days_to_failure: np.ndarray) -> np.ndarray:
    infusion = _DATA_CUTOFF - admin.astype("timedelta64[D]") - days_to_failure.astype("timedelta64[D]")
    return infusion.astype("datetime64[Y]").astype(np.int64) + 1970.0


def _draw_outcomes(rng: np.random.Generator, eta: np.ndarray, window: np.ndarray, admin: np.ndarray
                   ) -> dict[str, np.ndarray]:
    n = len(eta)
    death = _BASELINE_SCALE_DAYS * (rng.standard_exponential(n) * np.exp(-eta)) ** (1.0 / _BASELINE_SHAPE)
    progression = _PROGRESSION_SCALE_DAYS * (rng.standard_exponential(n) * np.exp(
        -eta - _PROGRESSION_WINDOW_OFFSET[window])) ** (1.0 / _PROGRESSION_SHAPE)
    censor = np.minimum(admin, rng.standard_exponential(n) / _censoring_rate_per_day())
    observed = np.minimum(death, censor)
    return {"event_time_days": death, "censor_time_days": censor, "progression_time_days": progression,
            "os2_days": np.maximum(np.ceil(observed), 1).astype(np.int64),
            "os2_event": (death <= censor).astype(np.int64),
            "pfs2_days": np.maximum(np.ceil(np.minimum(progression, observed)), 1.0),
            "pfs2_event": (np.minimum(progression, death) <= censor).astype(float)}


def _draw_salvage(rng: np.random.Generator, window: np.ndarray, burden: np.ndarray) -> np.ndarray:
    """First treatment after failure: less often after very early failure and for sicker patients (ZU23)."""
    facts = literature.registry_facts()
    treated_pct = np.array([facts["treated_refractory_day30_pct"], *[facts["treated_others_pct"]] * 2])[window]
    treated = -0.6 * burden + 0.8 * rng.standard_normal(len(window)) < ndtri(treated_pct / 100.0)
    classes = facts["salvage_class_pct"]
    shares = np.array([*classes.values(), max(100.0 - sum(classes.values()), 0.0)])
    kind = np.array([*classes, "other"], dtype=object)[_ordinal(rng.standard_normal(len(window)), shares)]
    return np.where(treated, kind, "none").astype(object)


@cache
def _missing_intercept(rate: float, slope: float) -> float:
    """Log-odds intercept a with E[expit(a + slope Z)] = rate for Z standard normal (Gauss-Hermite quadrature)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    return float(brentq(lambda a: float(weights @ expit(a + slope * nodes)) - rate, -30.0, 30.0))


def _apply_missing(rng: np.random.Generator, x: dict[str, np.ndarray]) -> None:
    """Remove values, in place (float NaN, or NaN in object arrays); drop the private keys.

    Each column loses its share of values (the literature file's rates); laboratory values are lost more often
    in sicker patients (log odds rising with the disease burden at the time of measurement), the others at random.
    """
    n = len(x["age_years"])
    spec = literature.simulation_assumptions()["missing"]
    rates = dict(spec["rates"], ldh_infusion=literature.target("ldh_infusion_missing_pct") / 100.0)
    slope = float(spec["lab_burden_log_odds"])
    burden = {"infusion": x.pop("_burden"), "failure": x.pop("_relapse_burden")}
    masks = {}
    for name in sorted(rates):
        u = rng.random(n)
        if name in spec["labs"] and rates[name] > 0:
            state = burden["failure" if name.endswith("_failure") else "infusion"]
            masks[name] = u < expit(_missing_intercept(float(rates[name]), slope) + slope * state)
        else:
            masks[name] = u < rates[name]
    masks["ldh_uln"] = masks["ldh_infusion"] & masks["ldh_failure"]
    masks["aaipi"] = masks["ldh_infusion"] | masks["ecog_infusion"] | masks["stage_infusion"]
    masks["cd19_failure"] = ~x.pop("_cd19_tested")
    for name, mask in masks.items():
        values = x.pop(name)
        x[name] = np.where(mask, np.nan, values) if values.dtype == object else np.where(mask, np.nan, values * 1.0)


def _frame(x: dict[str, np.ndarray], outcome: dict[str, np.ndarray], admin: np.ndarray) -> pd.DataFrame:
    n = len(x["days_to_failure"])
    ids = np.strings.add("SIM-", np.strings.zfill(np.arange(1, n + 1).astype(np.str_), 7)).astype(object)
    failure_date = _DATA_CUTOFF - admin.astype("timedelta64[D]")
    x.update(patient_id=ids, failure_date=failure_date,
             infusion_date=failure_date - x["days_to_failure"].astype("timedelta64[D]"),
             last_contact_date=failure_date + outcome["os2_days"].astype("timedelta64[D]"),
             **{k: outcome[k] for k in ("os2_days", "os2_event", "pfs2_days", "pfs2_event")})
    return pd.DataFrame({c.name: x.pop(c.name) for c in COLUMNS if c.role != "derived"})


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw a simulated registry of ``n`` failures and the truth behind it.

    Parameters
    ----------
    n : int
        Number of patients (>= 1).
    seed : int
        Non-negative seed; the same ``(n, seed)`` gives identical frames.

    Returns
    -------
    frame : pandas.DataFrame
        One row per patient with every non-derived column of the data dictionary: ``patient_id``
        (``SIM-0000001``...), int64 ``days_to_failure``, ``os2_days`` and ``os2_event``, dates that
        agree with them, other numbers float64 with NaN, categories as strings with NaN. Outcomes
        are never missing.
        ``centre_id`` (``C01``...) and ``infusion_year`` are the centre and the period.
    truth : pandas.DataFrame
        ``patient_id``, ``centre_id``, ``true_log_hazard`` (every planted term, the centre's effect and
        the period's included), ``true_surv_3m``, ``true_surv_6m``, ``true_surv_12m``,
        ``event_time_days`` (uncensored death), ``censor_time_days``, ``progression_time_days``, and
        one design column per non-null term of :func:`planted_effects`, computed from the complete
        values before any was removed; ``centre_effect`` is the patient's centre's random effect on
        the baseline log hazard (the same for every patient of a centre).

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer or ``seed`` not a non-negative integer.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(7)]
    window, days = _draw_windows_and_days(streams[0], int(n))
    centres = _draw_centres(streams[5], int(n))
    x = _draw_covariates(streams[1], window, centres)
    x["days_to_failure"] = days
    admin = _draw_accrual(streams[6], int(n))
    x["infusion_year"] = _infusion_year(admin, days)
    x["centre_id"] = centres["label"][centres["member"]]
    design = _design_arrays(x)
    design["centre_effect"] = centres["effect"][centres["member"]]
    eta = _eta(design)
    outcome = _draw_outcomes(streams[2], eta, window, admin)
    x["salvage"] = _draw_salvage(streams[3], window, x["_burden"])
    _apply_missing(streams[4], x)
    frame = _frame(x, outcome, admin)
    hazard_ratio = np.exp(eta)
    truth = {"patient_id": frame["patient_id"].to_numpy(), "centre_id": frame["centre_id"].to_numpy(),
             "true_log_hazard": eta}
    for m in DEFAULT_HORIZONS_MONTHS:
        truth[f"true_surv_{m:g}m"] = np.exp(-(months_to_days(m) / _BASELINE_SCALE_DAYS) ** _BASELINE_SHAPE
                                            * hazard_ratio)
    truth.update({k: outcome[k] for k in ("event_time_days", "censor_time_days", "progression_time_days")})
    return frame, pd.DataFrame(truth | design)
