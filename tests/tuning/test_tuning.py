"""Nested-CV tuning: objective = evaluation's metrics, exact trial counts, resume after a kill, workers, MLflow."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from cartrisk.cli import app
from cartrisk.config import parse_experiment
from cartrisk.data.datasets import load_dataset
from cartrisk.evaluation import EventStratifiedKFold, cross_validate_survival
from cartrisk.exceptions import CartriskError, ConfigError
from cartrisk.modelling.pipeline import build_pipeline
from cartrisk.tracking import Tracker
from cartrisk.tuning import StudyResult, outer_splits, run_study
from cartrisk.tuning.search import Objective, ObjectiveSpec, SearchSpace
from cartrisk.tuning.studies import FINGERPRINT_ATTR, open_storage
from cartrisk.units import months_to_days

EXPERIMENT = """
name = "tt"
seed = 5
[data]
n = 300
[features]
set = "relapse"
[[models]]
estimator = "coxph"
[models.search]
alpha = { low = 1.0, high = 50.0, log = true }
[evaluation]
horizons_months = [3, 6, 12]
[tuning]
n_trials = 3
outer_folds = 2
inner_folds = 2
startup_trials = 2
"""

FAMILIES = EXPERIMENT.replace("""[evaluation]""", """[[models]]
estimator = "xgb_cox"
params = { n_estimators = 20 }
[models.search]
max_depth = { choices = [2, 3] }
learning_rate = { low = 0.05, high = 0.3, log = true }
[evaluation]""")


def cfg_of(text: str = EXPERIMENT, **tuning):
    cfg = parse_experiment(text, source="tt.toml")
    return dataclasses.replace(cfg, tuning=dataclasses.replace(cfg.tuning, **tuning)) if tuning else cfg


class ListSplit:
    """Given folds, as a splitter for cross_validate_survival."""

    n_repeats = 1

    def __init__(self, splits):
        self.splits = splits

    def split(self, X, y, groups=None):
        yield from self.splits


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def finished(study_name: str, url: str) -> list:
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    return study.get_trials(deepcopy=False)


@pytest.fixture(scope="module")
def data():
    return load_dataset(cfg_of().data, seed=5)


def test_objective_fold_values_are_cross_validate_survival_metrics(data):
    cfg = cfg_of(EXPERIMENT + "objective = { uno_c = 1.0, ibs = 2.0 }\n")
    space = SearchSpace(cfg)
    splits = list(EventStratifiedKFold(3, random_state=1).split(data.X, data.y))
    objective = Objective(space, data.X, data.y, splits, ObjectiveSpec.from_weights({"uno_c": 1.0, "ibs": 2.0}),
                          months_to_days(12.0))
    study = optuna.create_study(direction="maximize")
    trial = study.ask({"alpha": optuna.distributions.FloatDistribution(1.0, 50.0, log=True)})
    value = objective(trial)
    reference = cross_validate_survival(build_pipeline(cfg, dataclasses.replace(cfg.models[0], params={
        "alpha": trial.params["alpha"]})), data.X, data.y, cv=ListSplit(splits), horizons_months=(3, 6, 12))
    pf = reference.per_fold
    uno = pf[pf["metric"] == "uno_c"]["value"].to_numpy()
    ibs = pf[pf["metric"] == "ibs"]["value"].to_numpy()
    inner = trial.user_attrs["inner_cv"]
    np.testing.assert_allclose(inner["metrics"]["uno_c"], uno, rtol=1e-12)
    np.testing.assert_allclose(inner["metrics"]["ibs"], ibs, rtol=1e-12)
    np.testing.assert_allclose(inner["fold_values"], uno - 2.0 * ibs, rtol=1e-12)
    assert value == pytest.approx(np.mean(uno - 2.0 * ibs))
    assert 0 < inner["work_seconds"]


def test_pruned_trial_stops_after_its_first_fold(data):
    cfg = cfg_of()
    splits = list(EventStratifiedKFold(3, random_state=1).split(data.X, data.y))
    objective = Objective(SearchSpace(cfg), data.X, data.y, splits, ObjectiveSpec.from_weights({"uno_c": 1.0}),
                          months_to_days(12.0))
    trial = optuna.create_study(direction="maximize", pruner=AlwaysPrune()).ask()
    with pytest.raises(optuna.TrialPruned, match="fold 1 of 3"):
        objective(trial)
    assert len(trial.user_attrs["inner_cv"]["fold_values"]) == 1


def test_families_share_one_study_with_conditional_names():
    cfg = cfg_of(FAMILIES)
    space = SearchSpace(cfg)
    trial = optuna.trial.FixedTrial({"family": "xgb_cox", "xgb_cox.max_depth": 2, "xgb_cox.learning_rate": 0.1})
    label, params = space.suggest(trial)
    assert (label, params) == ("xgb_cox", {"max_depth": 2, "learning_rate": 0.1})
    assert space.decode({"family": "xgb_cox", "xgb_cox.max_depth": 2, "xgb_cox.learning_rate": 0.1}) == (label, params)
    model = space.pipeline(label, params).named_steps["model"]
    assert (model.max_depth, model.learning_rate, model.n_estimators, model.random_state) == (2, 0.1, 20, 5)
    assert space.suggest(optuna.trial.FixedTrial({"family": "coxph", "coxph.alpha": 3.0})) == ("coxph", {"alpha": 3.0})


def test_unknown_searched_parameter_is_refused():
    cfg = cfg_of(EXPERIMENT.replace("alpha = {", "alpah = {"))
    with pytest.raises(ConfigError, match=r"models\[0\].search: coxph has no parameter\(s\) 'alpah'; its parameters: "
                                          r"alpha, n_iter, ties, tol"):
        SearchSpace(cfg)
    with pytest.raises(ConfigError, match="no \\[tuning\\] table"):
        run_study(dataclasses.replace(cfg, tuning=None))


def test_outer_scores_are_those_of_cross_validate_survival(tmp_path, data):
    """A family with nothing to search: every trial is the same model, so the nested estimate must equal a plain
    cross-validation of that model on the outer folds."""
    cfg = cfg_of(EXPERIMENT.replace("[models.search]\nalpha = { low = 1.0, high = 50.0, log = true }\n",
                                    "params = { alpha = 4.0 }\n"), n_trials=1)
    result = run_study(cfg, storage=f"journal:{tmp_path}/j.log", workers=1)
    cv = EventStratifiedKFold(2, shuffle=True, random_state=5)
    plain = cross_validate_survival(build_pipeline(cfg, cfg.models[0]), data.X, data.y, cv=cv,
                                    horizons_months=(3, 6, 12))
    pd.testing.assert_frame_equal(result.outer.per_fold, plain.per_fold)
    assert [len(s[1]) for s in outer_splits(cfg, data.y)] == [len(t) for _, t in cv.split(data.X, data.y)]
    assert result.best_pipeline.named_steps["model"].alpha == 4.0
    assert result.outer_value == pytest.approx(plain.summary().set_index("metric").loc["uno_c", "mean"])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    root = tmp_path_factory.mktemp("straight")
    return run_study(cfg_of(n_trials=4), storage=f"journal:{root}/j.log", workers=1), root


def _trials(result: StudyResult) -> pd.DataFrame:
    return result.trials[["study", "trial", "state", "value", "param.alpha"]]


def test_same_seed_same_numbers_and_a_resumed_study_is_the_same_study(straight, tmp_path):
    first, _ = straight
    assert first.trials.groupby("study")["trial"].count().to_dict() == {"final": 4, "outer 1/2": 4, "outer 2/2": 4}
    again = run_study(cfg_of(n_trials=2), storage=f"journal:{tmp_path}/j.log", workers=1)
    assert len(again.trials) == 6
    resumed = run_study(cfg_of(n_trials=4), storage=f"journal:{tmp_path}/j.log", resume=True, workers=1)
    pd.testing.assert_frame_equal(_trials(resumed), _trials(first))
    pd.testing.assert_frame_equal(resumed.outer.per_fold, first.outer.per_fold)
    assert resumed.best_params == first.best_params and resumed.inner_value == first.inner_value
    assert resumed.gap == pytest.approx(float((first.outer_folds["inner_value"] - first.outer_folds["outer_value"])
                                              .mean()))


def test_a_rerun_starts_new_studies_and_resume_needs_the_same_settings(straight, tmp_path):
    _, root = straight
    url = f"journal:{root}/j.log"
    with pytest.raises(ConfigError, match="study 'tt.outer1' in .* was run on other data or settings"):
        run_study(dataclasses.replace(cfg_of(), seed=6), storage=url, resume=True, workers=1)
    fresh = f"journal:{tmp_path}/fresh.log"
    with pytest.raises(ConfigError, match=f"--resume: there is no study 'tt' in {fresh} to continue"):
        run_study(cfg_of(), storage=fresh, resume=True, workers=1)
    first = run_study(cfg_of(n_trials=1), storage=fresh, workers=1)
    second = run_study(cfg_of(n_trials=1), storage=fresh, workers=1)  # the same experiment again: new studies
    assert (first.study_name, second.study_name) == ("tt", "tt.run2")
    assert {"tt.final", "tt.run2.final", "tt.run2.outer2"} <= set(optuna.get_all_study_names(open_storage(fresh)))
    resumed = run_study(cfg_of(n_trials=2), storage=fresh, resume=True, workers=1)  # continues the latest run
    assert resumed.study_name == "tt.run2" and resumed.trials.groupby("study").size().tolist() == [2, 2, 2]


def test_export_by_study_name_takes_the_latest_run(make_tracker, tmp_path):
    from cartrisk.tracking import resolve_run

    tracker = make_tracker(tmp_path, "tt")
    first = run_study(cfg_of(n_trials=1), tracker=tracker, storage=f"journal:{tmp_path}/j.log", workers=1)
    second = run_study(cfg_of(n_trials=1), tracker=tracker, storage=f"journal:{tmp_path}/j.log", workers=1)
    assert second.study_name == "tt.run2"
    assert resolve_run(tracker, study="tt").info.run_id == second.parent_run_id
    assert resolve_run(tracker, study="tt.run2").info.run_id == second.parent_run_id
    assert resolve_run(tracker, study="tt.final").info.run_id == first.parent_run_id  # an earlier run by its name


def test_a_run_that_finished_no_trial_is_replaced(tmp_path):
    url = f"journal:{tmp_path}/j.log"
    broken = cfg_of(n_trials=1)
    storage = open_storage(url)
    for name in ("tt.outer1", "tt.outer2", "tt.final"):  # what a run that failed before its first trial leaves
        optuna.create_study(storage=storage, study_name=name).set_user_attr(FINGERPRINT_ATTR, "other settings")
    fixed = run_study(broken, storage=url, workers=1)
    assert fixed.study_name == "tt"


def test_a_time_budget_too_short_for_any_trial_is_reported(tmp_path):
    with pytest.raises(CartriskError, match=r"outer 1/2 \(study tt.outer1\) has no complete trial"):
        run_study(cfg_of(), storage=f"journal:{tmp_path}/j.log", timeout=1e-6, workers=1)


def test_two_workers_finish_the_asked_trials_exactly_once(tmp_path):
    url = f"journal:{tmp_path}/j.log"
    result = run_study(cfg_of(n_trials=5), storage=url, workers=2)
    for name in ("tt.outer1", "tt.outer2", "tt.final"):
        trials = finished(name, url)
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
        assert sorted(t.number for t in trials) == list(range(5))
        assert len({t.params["alpha"] for t in trials}) == 5  # no trial drawn twice
    assert len(result.trials) == 15


@pytest.fixture(scope="module")
def tracked(make_tracker, tmp_path_factory):
    root = tmp_path_factory.mktemp("mlruns")
    tracker = make_tracker(root, "tt")
    result = run_study(cfg_of(FAMILIES, n_trials=3), tracker=tracker, workers=1)
    return result, tracker, root


def _wait(predicate, proc, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"process ended (code {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_killed_study_resumes_without_losing_or_repeating_a_trial(tmp_path, tracked):
    """SIGTERM, then SIGKILL, to a real ``python -m cartrisk tune`` process; then resume to the end."""
    experiment = tmp_path / "killed.toml"
    # 600 patients: a trial takes long enough for the polls below to see it running
    experiment.write_text(EXPERIMENT.replace("n_trials = 3", "n_trials = 8").replace('name = "tt"', 'name = "killed"')
                          .replace("n = 300", "n = 600"))
    # the MLflow store of the fixture below (creating one costs seconds); its own experiment "killed"
    url, mlruns = f"sqlite:///{tmp_path}/optuna.db", tracked[1].tracking_uri
    cmd = [sys.executable, "-m", "cartrisk", "tune", str(experiment), "--storage", url, "--tracking-uri", mlruns,
           "--workers", "1"]

    storages = {}

    def state(name="killed.outer1"):
        try:  # one storage object for all the polls: opening one costs more than a trial's bookkeeping
            if "store" not in storages and (tmp_path / "optuna.db").exists():
                storages["store"] = open_storage(url)
            if "store" not in storages:
                return []
            return optuna.load_study(study_name=name, storage=storages["store"]).get_trials(deepcopy=False)
        except KeyError:  # study not created yet
            return []

    def complete_and_running(k):
        trials = state()
        return (sum(t.state == TrialState.COMPLETE for t in trials) >= k
                and any(t.state == TrialState.RUNNING for t in trials))

    with open(tmp_path / "log1.txt", "w") as log:  # 1: SIGTERM mid-trial -> trial FAIL, its MLflow run KILLED
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=log)
        _wait(lambda: complete_and_running(2), proc, 240, "two complete trials")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) != 0
    after_term = state()
    assert not any(t.state == TrialState.RUNNING for t in after_term)
    interrupted = [t.number for t in after_term if t.state == TrialState.FAIL]
    assert len(interrupted) == 1
    tracker = Tracker(mlruns, "killed")
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.`cartrisk.kind` = 'trial'")
    status = {r.data.tags["cartrisk.trial"]: r.info.status for r in runs}
    assert status[str(interrupted[0])] == "KILLED" and "RUNNING" not in status.values()

    with open(tmp_path / "log2.txt", "w") as log:  # 2: resume, then SIGKILL mid-trial (no cleanup possible)
        proc = subprocess.Popen([*cmd, "--resume"], cwd=tmp_path, stdout=log, stderr=log)
        _wait(lambda: complete_and_running(len([t for t in after_term if t.state == TrialState.COMPLETE]) + 2), proc,
              240, "two more complete trials")
        proc.kill()
        proc.wait(60)
    before = state()
    kept = {t.number: (t.params, t.value) for t in before if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    stale = [t.number for t in before if t.state == TrialState.RUNNING]
    assert stale and len(kept) >= 4

    result = run_study(parse_experiment(experiment.read_text(), source=str(experiment)), storage=url, resume=True,
                       tracker=tracker, workers=1)
    for name in ("killed.outer1", "killed.outer2", "killed.final"):
        trials = state(name)
        counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(counted) == 8
        assert len({t.number for t in trials}) == len(trials)
        assert not any(t.state == TrialState.RUNNING for t in trials)
    after = {t.number: t for t in state()}
    assert all((after[n].params, after[n].value) == pv for n, pv in kept.items())  # every finished trial kept
    assert all(after[n].state == TrialState.FAIL and "found on resume" in after[n].user_attrs["fail_reason"]
               for n in stale)
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.`cartrisk.study` = 'killed.outer1' and "
                                      "tags.`cartrisk.kind` = 'trial'")
    status = {int(r.data.tags["cartrisk.trial"]): r.info.status for r in runs}
    assert "RUNNING" not in status.values() and all(status[n] == "FAILED" for n in stale)
    assert tracker.get_run(result.parent_run_id).info.status == "FINISHED"


def test_mlflow_parent_study_and_trial_runs(tracked):
    result, tracker, root = tracked
    assert (root / "mlruns" / "optuna.db").is_file()  # the default storage sits beside the MLflow store
    parent = tracker.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["cartrisk.kind"] == "tuning"
    assert parent.data.metrics["outer_value"] == pytest.approx(result.outer_value)
    assert parent.data.metrics["gap"] == pytest.approx(result.gap)
    assert "outer.uno_c_12m_mean" in parent.data.metrics and parent.data.tags["best.family"] == result.family
    assert parent.data.params["objective"] == "uno_c" and parent.data.params["outer_folds"] == "2"
    artifacts = {a.path for a in tracker.client.list_artifacts(result.parent_run_id)}
    assert {"model", "trials.csv", "outer_folds.csv", "experiment.toml"} <= artifacts
    search = tracker.client.search_runs
    studies = search([tracker.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert sorted(r.info.run_name for r in studies) == ["final", "outer 1/2", "outer 2/2"]
    for study in studies:
        trials = search([tracker.experiment_id], f"tags.`mlflow.parentRunId` = '{study.info.run_id}'")
        assert len(trials) == 3 and {r.info.status for r in trials} == {"FINISHED"}
        for run in trials:
            assert run.data.tags["state"] in ("COMPLETE", "PRUNED") and "family" in run.data.params
            assert run.data.metrics["duration_seconds"] >= run.data.metrics["work_seconds"] > 0
            history = tracker.client.get_metric_history(run.info.run_id, "fold_value")
            assert 1 <= len(history) <= 2


def test_cli_tune_and_studies(tmp_path):
    experiment = tmp_path / "tt.toml"
    experiment.write_text(EXPERIMENT)
    storage = f"journal:{tmp_path}/studies.log"
    runner = CliRunner()
    done = runner.invoke(app, ["tune", str(experiment), "--trials", "2", "--storage", storage, "--no-tracking"])
    assert done.exit_code == 0, done.output
    for text in ("best parameters", "alpha", "inner vs outer", "gap: inner - outer", "outer folds", "uno_c@12m"):
        assert text in done.output
    listed = runner.invoke(app, ["studies", "--storage", storage])
    assert listed.exit_code == 0 and "tt.outer1" in listed.output and "tt.final" in listed.output
    again = runner.invoke(app, ["tune", str(experiment), "--trials", "1", "--storage", storage, "--no-tracking"])
    assert again.exit_code == 0, again.output  # the same experiment again: a new run of studies
    listed = runner.invoke(app, ["studies", "--storage", storage])
    assert "tt.run2.outer1" in listed.output and "tt.run2.final" in listed.output
    plain = tmp_path / "plain.toml"
    plain.write_text("[[models]]\nestimator = 'coxph'\n")
    refused = runner.invoke(app, ["tune", str(plain), "--no-tracking"])
    assert refused.exit_code == 2 and "run it with cartrisk evaluate" in refused.output
    missing = runner.invoke(app, ["studies", "--storage", f"sqlite:///{tmp_path}/none.db"])
    assert missing.exit_code == 2 and "no study storage" in missing.output


@pytest.mark.parametrize("late", ["value", "user_attr"])
def test_a_trial_failed_elsewhere_while_it_runs_is_replaced_not_fatal(tmp_path, late):
    """Another process fails a running trial (its heartbeat went stale, or `tune --resume` found it RUNNING) while
    its worker is still computing it: the worker drops that result and runs another trial instead of crashing."""
    from cartrisk.tuning.studies import StudyJob, prepare_studies, run_trials

    url = f"sqlite:///{tmp_path}/s.db"
    storage = open_storage(url)
    prepare_studies(storage, ["s"], "maximize", resume=False, fingerprint="f", where=url)
    calls = []

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        calls.append(trial.number)
        if trial.number == 1:  # what prepare_studies(resume=True) does to a RUNNING trial, from another process
            other = optuna.load_study(study_name="s", storage=open_storage(url))
            other.tell(trial.number, state=TrialState.FAIL)
            if late == "user_attr":
                trial.set_user_attr("inner_cv", {"work_seconds": 0.0})
        return x

    done = run_trials(storage, StudyJob("s", objective, 4, 0, sampler="random"))
    trials = optuna.load_study(study_name="s", storage=storage).get_trials(deepcopy=False)
    assert done == 4 and calls == [0, 1, 2, 3, 4]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, *[TrialState.COMPLETE] * 3]


def test_studies_reads_a_journal_given_as_journal_slash_slash(tmp_path):
    """`journal:PATH` and `journal://PATH` name the same file everywhere (one parser, tracking.store.journal_path)."""
    from cartrisk.tuning.studies import prepare_studies, storage_exists

    path = tmp_path / "s.log"
    storage = open_storage(f"journal:{path}")
    prepare_studies(storage, ["one"], "maximize", resume=False, fingerprint="f", where=str(path))
    for url in (f"journal:{path}", f"journal://{path}"):
        assert storage_exists(url)
        result = CliRunner().invoke(app, ["studies", "--storage", url], terminal_width=200)
        assert result.exit_code == 0 and "one" in result.output, result.output
    result = CliRunner().invoke(app, ["studies", "--storage", f"journal://{tmp_path}/none.log"])
    assert result.exit_code == 2 and "no study storage at journal://" in result.output
