"""The leakage guard's figures: three planted leaks are caught, no honest column of the simulated registry is."""

from __future__ import annotations

import pandas as pd
import pytest

from cartrisk.data.leakage import SCREEN_COLUMNS, SUSPECT_AUC, SUSPECT_C, screen_leakage
from cartrisk.data.schema import to_xy, validate
from cartrisk.data.simulate import simulate


def test_the_three_planted_leaks_are_suspects(planted_leaks):
    X, y, _ = planted_leaks(1500, 0)
    screen = screen_leakage(X, y["os2_event"], y["os2_days"]).set_index("column")
    assert list(screen.reset_index().columns) == list(SCREEN_COLUMNS)
    assert screen.loc["vital_status_cutoff", "equals_outcome"] == "os2_event"
    assert screen.loc["vital_status_cutoff", "value_auc"] == pytest.approx(1.0)
    assert screen.loc["cause_of_death", "missing_auc"] == pytest.approx(1.0)
    assert screen.loc["last_status", "value_auc"] >= SUSPECT_AUC
    assert set(screen.index[screen["suspect"]]) == {"vital_status_cutoff", "cause_of_death", "last_status"}
    assert "AUC 1.000 of its missingness for the event indicator" in screen.loc["cause_of_death", "reason"]


def test_an_outcome_under_another_name_is_caught_whatever_its_figures(planted_leaks):
    X, y, typed = planted_leaks(400, 1)
    X = X.assign(os2_copy=typed["os2_days"].to_numpy(float) / 1.0)
    screen = screen_leakage(X, y["os2_event"], y["os2_days"], ["os2_copy"]).set_index("column")
    assert screen.loc["os2_copy", "equals_outcome"] == "os2_days"
    assert screen.loc["os2_copy", "harrell_c"] >= SUSPECT_C


def test_a_category_per_patient_gains_nothing(planted_leaks):
    """Out-of-fold encoding: an identifier-like text column cannot look predictive by memorising each patient."""
    X, y, typed = planted_leaks(600, 2)
    X = X.assign(free_text=typed["patient_id"].to_numpy())
    row = screen_leakage(X, y["os2_event"], y["os2_days"], ["free_text"]).iloc[0]
    assert not row["suspect"] and row["value_auc"] < 0.6


@pytest.mark.slow
def test_no_honest_column_of_the_simulated_registry_is_flagged_over_ten_seeds():
    worst = []
    for seed in range(10):
        frame, _ = simulate(1500, seed)
        X, y = to_xy(validate(frame).raise_if_invalid())
        screen = screen_leakage(X, y["os2_event"], y["os2_days"], random_state=seed)
        assert not screen["suspect"].any(), screen[screen["suspect"]]
        worst.append(screen[["value_auc", "missing_auc", "harrell_c"]].max())
    worst = pd.DataFrame(worst).max()
    print(f"\nstrongest honest figures over 10 seeds: {worst.to_dict()}")
    assert worst["value_auc"] < 0.85 and worst["missing_auc"] < 0.7 and worst["harrell_c"] < 0.85
