"""The leakage guard before any fit: refusal by column and figure, allow_suspect, and where it is recorded."""

from __future__ import annotations

import re

import pytest

from cartrisk.config import parse_experiment
from cartrisk.exceptions import ConfigError
from cartrisk.modelling.leakage import check_leakage
from cartrisk.workflows.evaluate import evaluate_experiment


@pytest.fixture(scope="module")
def leaky(planted_leaks):
    return planted_leaks(600, 3)


def test_a_suspect_is_refused_with_its_column_and_figure(leaky):
    X, y, typed = leaky
    declared = {"vital_status_cutoff": {"kind": "binary", "role": "relapse"}}
    with pytest.raises(ConfigError) as err:
        check_leakage(X, y, ["relapse", "vital_status_cutoff"], declared=declared, frame=typed)
    message = str(err.value)
    assert "features.set: the leakage guard refuses 1 column(s)" in message
    assert ("'vital_status_cutoff': AUC 1.000 of its values for the event indicator (>= 0.95); equal to the outcome "
            "column os2_event") in message
    assert 'allow_suspect = ["vital_status_cutoff"]' in message


def test_allow_suspect_lets_it_through_and_says_so(leaky):
    X, y, typed = leaky
    declared = {"cause_of_death": {"kind": "category", "role": "relapse",
                                   "levels": ["lymphoma", "infection", "toxicity"]}}
    screen = check_leakage(X, y, ["age_years", "cause_of_death"], declared=declared, frame=typed,
                           allow_suspect=["cause_of_death"]).set_index("column")
    assert screen.loc["cause_of_death", "suspect"] and screen.loc["cause_of_death", "allowed"]
    assert not screen.loc["age_years", "allowed"]
    with pytest.raises(ConfigError, match=re.escape("features.allow_suspect: 'sex' is no column the features read")):
        check_leakage(X, y, ["age_years"], allow_suspect=["sex"])


def test_honest_sets_pass(leaky):
    X, y, typed = leaky
    for feature_set in ("infusion", "relapse", "infusion+relapse", "literature"):
        screen = check_leakage(X, y, feature_set, frame=typed)
        assert not screen["suspect"].any(), feature_set


def test_evaluate_refuses_a_leak_before_fitting_and_tracks_nothing(leaky, tmp_path, make_tracker):
    X, y, typed = leaky
    path = tmp_path / "site.csv"
    frame = typed.drop(columns=["failure_window"], errors="ignore").assign(
        vital_status_cutoff=X["vital_status_cutoff"].astype(int))
    frame.to_csv(path, index=False)
    text = (f'name = "leaky"\n[data]\nsource = "file"\npath = "{path}"\n'
            '[data.extra.vital_status_cutoff]\nkind = "binary"\nrole = "relapse"\n'
            '[features]\nset = ["relapse", "vital_status_cutoff"]\n'
            '[[models]]\nestimator = "coxph"\n[evaluation]\nn_splits = 2\nrules = ["d0_30"]\n')
    tracker = make_tracker(tmp_path, "leaky")
    with pytest.raises(ConfigError, match="the leakage guard refuses 1 column"):
        evaluate_experiment(parse_experiment(text, source="leaky.toml"), tracker=tracker)
    assert not (tmp_path / "mlruns" / "artifacts").exists() or not any((tmp_path / "mlruns" / "artifacts").iterdir())
    allowed = text.replace('set = ["relapse", "vital_status_cutoff"]',
                           'set = ["relapse", "vital_status_cutoff"]\nallow_suspect = ["vital_status_cutoff"]')
    report = evaluate_experiment(parse_experiment(allowed, source="leaky.toml"), tracker=tracker)
    run = tracker.get_run(report.run_id)
    assert "vital_status_cutoff" in run.data.params["allow_suspect"]
    assert bool(report.leakage.set_index("column").loc["vital_status_cutoff", "allowed"])
