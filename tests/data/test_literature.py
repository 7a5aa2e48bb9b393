"""Tests of cartrisk.data.literature: the data file of published figures and its readers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cartrisk.data import literature
from cartrisk.data.dictionary import COLUMNS, column

DICTIONARY = {c.name for c in COLUMNS}


def test_sources_have_unique_keys_and_citations():
    s = literature.sources()
    assert list(s.columns) == ["key", "citation"]
    assert s["key"].is_unique
    assert {"DB22", "ZU23", "AB23", "CA24", "IA24", "HS23", "AT21"} <= set(s["key"])
    assert (s["citation"].str.len() > 10).all()


def test_every_cited_source_exists():
    keys = set(literature.sources()["key"])
    assert set(literature.risk_factors()["source"]) <= keys
    assert set(literature.targets()["source"]) <= keys


def test_risk_factors_columns_and_types():
    rf = literature.risk_factors()
    assert list(rf.columns) == ["factor", "column", "coding", "timing", "direction", "hr", "hr_low", "hr_high",
                                "analysis", "endpoint", "source", "note"]
    assert rf[["hr", "hr_low", "hr_high"]].dtypes.eq("float64").all()
    assert set(rf["timing"]) <= {"infusion", "relapse", "after_failure"}
    assert set(rf["direction"]) <= {"worse", "better"}
    assert set(rf["analysis"]) <= {"univariable", "multivariable"}


def test_risk_factor_columns_are_dictionary_columns_with_matching_timing():
    rf = literature.risk_factors()
    mapped = rf[rf["column"] != ""]
    assert set(mapped["column"]) <= DICTIONARY
    for row in mapped.itertuples():
        role = column(row.column).role
        if role in ("infusion", "relapse", "after_failure"):
            assert row.timing == role, row.factor
        else:  # days_to_failure is known at failure
            assert (row.column, row.timing) == ("days_to_failure", "relapse")


def test_hazard_ratios_agree_with_direction_and_interval():
    rf = literature.risk_factors().dropna(subset=["hr"])
    assert ((rf["hr_low"] <= rf["hr"]) & (rf["hr"] <= rf["hr_high"])).all()
    assert (rf.loc[rf["direction"] == "worse", "hr"] > 1).all()
    assert (rf.loc[rf["direction"] == "better", "hr"] < 1).all()


def test_risk_factors_cover_section_3_and_the_hs23_factors():
    rf = literature.risk_factors()
    for col in ("days_to_failure", "ldh_infusion", "crp_infusion", "ecog_infusion", "ferritin_infusion", "ldh_failure",
                "stage_failure", "bulky_failure", "extranodal_failure", "ecog_failure", "prior_lines", "bridging",
                "best_response", "age_years", "salvage", "stage_infusion", "product"):
        assert col in set(rf["column"]), col
    hs23 = rf[rf["source"] == "HS23"]
    assert len(hs23) == 7
    assert (hs23["endpoint"] == "PFS after infusion").all()
    only_medians = rf[rf["hr"].isna()]
    assert (only_medians["note"] != "").all()


def test_targets_frame():
    t = literature.targets()
    assert list(t.columns) == ["quantity", "group", "value", "ci_low", "ci_high", "unit", "source", "tolerance",
                               "tolerance_kind", "use", "note"]
    assert set(t["group"]) <= set(literature.GROUPS)
    assert set(t["use"]) == {"calibration", "guide"}
    assert set(t["tolerance_kind"]) == {"absolute", "relative"}
    calibration = t[t["use"] == "calibration"]
    assert not calibration.duplicated(["quantity", "group"]).any()
    with_ci = t.dropna(subset=["ci_low"])
    assert (with_ci["ci_low"] <= with_ci["value"]).all()
    assert (t["unit"].str.len() > 0).all()


def test_targets_carry_the_issue_tolerances():
    t = literature.targets().set_index(["quantity", "group", "source"])
    assert t.loc[("window_share_pct", "D0-30", "DB22"), ["tolerance", "tolerance_kind"]].tolist() == [2.0, "absolute"]
    assert t.loc[("median_os2_months", "all", "DB22"), ["tolerance", "tolerance_kind"]].tolist() == [0.15, "relative"]
    assert t.loc[("os2_12mo_pct", "all", "DB22"), ["tolerance", "tolerance_kind"]].tolist() == [5.0, "absolute"]
    assert t.loc[("ldh_gt_uln_pct", ">D90", "DB22"), ["tolerance", "tolerance_kind"]].tolist() == [5.0, "absolute"]


def test_window_shares_and_by_window_targets_are_complete():
    t = literature.targets()
    windows = t[(t["quantity"] == "window_share_pct")]
    assert windows["value"].sum() == pytest.approx(100.0, abs=0.2)
    for quantity in ("median_os2_months", "male_pct", "age_ge65_pct", "ecog_ge2_pct", "ldh_gt_uln_pct",
                     "crp_median_mg_l", "ferritin_gt_uln_pct", "bridging_pct", "bulky_pct", "prior_asct_pct"):
        groups = set(t.loc[(t["quantity"] == quantity) & (t["use"] == "calibration"), "group"])
        assert groups == set(literature.GROUPS), quantity


def test_target_lookup_and_error():
    assert literature.target("median_os2_months", "D0-30") == pytest.approx(1.9)
    assert literature.target("median_os2_months") == pytest.approx(5.2)
    with pytest.raises(KeyError, match="no calibration target 'nonsense' for group 'all'"):
        literature.target("nonsense")
    with pytest.raises(KeyError, match="for group 'D0-30'"):
        literature.target("histology_DLBCL_pct", "D0-30")


def test_rule_constants_windows_and_time_to_progression():
    rules = literature.rule_constants()
    assert rules["d0_30_boundary_days"] == 30
    assert rules["d31_90_boundary_days"] == 90
    assert rules["failure_windows"] == ("D0-30", "D31-90", ">D90")
    ttp = rules["time_to_progression"]
    assert ttp["split_months"] == (2.0, 6.0)
    assert len(ttp["groups"]) == 3
    assert np.isnan(ttp["groups"][2]["median_os_months"])  # not reached


def test_pcpi_definition():
    pcpi = literature.rule_constants()["pcpi"]
    factors = pcpi["factors"]
    assert [f["column"] for f in factors] == ["ecog_failure", "hemoglobin_failure", "ldh_failure",
                                              "extranodal_failure", "days_to_failure"]
    assert {f["operator"] for f in factors} <= {">", "<", ">="}
    groups = pcpi["groups"]
    assert [g["name"] for g in groups] == ["low", "intermediate-low", "intermediate-high", "high"]
    covered = [p for g in groups for p in range(g["points_min"], g["points_max"] + 1)]
    assert covered == list(range(len(factors) + 1))  # every score 0..5 in exactly one group
    assert sum(g["share_pct"] for g in groups) == pytest.approx(100.0)
    medians = [g["median_os_months"] for g in groups]
    assert medians == sorted(medians, reverse=True)
    assert pcpi["points_confirmed"] is False
    assert "ASSUMPTION" in pcpi["points_note"]


def test_rule_constants_are_fresh_copies():
    first = literature.rule_constants()
    first["pcpi"]["groups"].clear()
    first["d0_30_boundary_days"] = 0
    again = literature.rule_constants()
    assert len(again["pcpi"]["groups"]) == 4
    assert again["d0_30_boundary_days"] == 30


def test_tolerances_reference_ranges_and_registry_facts():
    tolerances = literature.tolerances()
    assert {v["kind"] for v in tolerances.values()} == {"absolute", "relative"}
    ranges = literature.reference_ranges()
    assert ranges["source"] == "ASSUMPTION"
    assert ranges["ferritin_uln_ug_l"] > 0 and ranges["crp_uln_mg_l"] > 0
    facts = literature.registry_facts()
    assert 0 < facts["cd19_tested"] <= facts["cd19_cohort"]
    assert sum(facts["salvage_class_pct"].values()) <= 100.0
    assert set(facts["salvage_class_pct"]) <= set(column("salvage").levels)


def test_frames_are_copies():
    t = literature.targets()
    t.loc[0, "value"] = -1.0
    assert literature.targets().loc[0, "value"] != -1.0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["targets"][0].update(source="XX99"), "cites unknown source 'XX99'"),
        (lambda d: d["targets"][0].update(tolerance="loose"), "names unknown tolerance 'loose'"),
        (lambda d: d["targets"][0].update(group="D0-15"), "unknown group 'D0-15'"),
        (lambda d: d["risk_factors"][0].update(source="XX99"), "cites unknown source 'XX99'"),
        (lambda d: d["risk_factors"][0].update(timing="later"), "has timing 'later'"),
    ],
)
def test_data_file_checks(mutate, message):
    import copy

    data = copy.deepcopy(literature._data())
    mutate(data)
    with pytest.raises(ValueError, match=message):
        literature._check(data)


def test_no_frame_shares_state_with_the_cache():
    rf = literature.risk_factors()
    assert isinstance(rf, pd.DataFrame)
    rf["hr"] = 0.0
    assert (literature.risk_factors()["hr"].dropna() > 0).all()
