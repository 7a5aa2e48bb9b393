"""Model bundles: round trip for every family, tampering, no pickle, versions, scoring, model card, MLflow."""

from __future__ import annotations

import fractions
import json
import pickle
import shutil
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cartrisk.bundle import Evidence, export_bundle, load_bundle
from cartrisk.bundle import _format as _bundle
from cartrisk.cli import app
from cartrisk.data.schema import to_xy, validate
from cartrisk.data.simulate import simulate
from cartrisk.estimators import ESTIMATORS
from cartrisk.evaluation import cross_validate_survival
from cartrisk.exceptions import BundleError, SchemaError, StatisticalWarning
from cartrisk.modelling.pipeline import make_pipeline
from cartrisk.modelling.rules import make_rule
from cartrisk.tracking import load_model
from cartrisk.units import DEFAULT_HORIZONS_MONTHS, months_to_days

SMALL = {"rsf": {"n_estimators": 8}, "extra_trees": {"n_estimators": 8}, "gbsa": {"n_estimators": 10},
         "xgb_cox": {"n_estimators": 15}, "xgb_aft": {"n_estimators": 15}}
SEEDED = {"rsf", "extra_trees", "gbsa", "xgb_cox", "xgb_aft"}
BUNDLE_FILES = ("MANIFEST.json", "MODEL_CARD.md", "booster.json", "bundle.json", "performance.json",
                "pipeline.skops", "risk_groups.json", "schema.json")
TIMES_DAYS = months_to_days(np.asarray(DEFAULT_HORIZONS_MONTHS, dtype=float))


def _pipeline(family: str):
    params = dict(SMALL.get(family, {}))
    if family in SEEDED:
        params["random_state"] = 0
    return make_pipeline("infusion+relapse", family, **params)


@pytest.fixture(scope="module")
def cohort():
    typed = validate(simulate(300, 3)[0]).raise_if_invalid()
    return typed, *to_xy(typed)


@pytest.fixture(scope="module")
def new_patients():
    """Patients to score: rows of the training registry (so within its ranges), new ids, no outcome."""
    frame = simulate(300, 3)[0].iloc[::5].reset_index(drop=True)
    frame["patient_id"] = [f"NEW-{i:03d}" for i in range(len(frame))]
    return frame.drop(columns=["os2_days", "os2_event", "last_contact_date", "pfs2_days", "pfs2_event"])


@pytest.fixture(scope="module")
def xgb_bundle(cohort, tmp_path_factory):
    typed, X, y = cohort
    pipe = _pipeline("xgb_cox").fit(X, y)
    return export_bundle(pipe, tmp_path_factory.mktemp("models"), name="xgb", training_frame=typed), pipe


@pytest.fixture(scope="module")
def cox_bundle(cohort, tmp_path_factory):
    """A Cox bundle with cross-validation, calibration and the D0-30 rule on the same folds."""
    typed, X, y = cohort
    pipe = _pipeline("coxph")
    cv = cross_validate_survival(pipe, X, y, cv=3, random_state=0)
    rule = cross_validate_survival(make_rule("d0_30"), X, y, cv=3, random_state=0)
    path = export_bundle(pipe.fit(X, y), tmp_path_factory.mktemp("models"), name="cox", training_frame=typed,
                         evidence=Evidence(cv_result=cv, comparison={"d0_30": rule}),
                         metadata={"description": "Test bundle."})
    return path, pipe


def _no_pickle(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a bundle was loaded through pickle")

    for module, attr in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (joblib, "load")):
        monkeypatch.setattr(module, attr, refuse)


# ------------------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("family", ESTIMATORS)
def test_round_trip_without_pickle_gives_identical_predictions(family, cohort, new_patients, tmp_path, monkeypatch):
    typed, X, y = cohort
    pipe = _pipeline(family).fit(X, y)
    path = export_bundle(pipe, tmp_path / "models", name=f"m-{family}", training_frame=typed)
    _no_pickle(monkeypatch)
    bundle = load_bundle(path)
    new_typed = validate(new_patients, require_outcome=False).raise_if_invalid()
    np.testing.assert_array_equal(bundle.pipeline.predict(new_typed), pipe.predict(new_typed))
    np.testing.assert_array_equal(bundle.pipeline.predict_survival_at(new_typed, TIMES_DAYS),
                                  pipe.predict_survival_at(new_typed, TIMES_DAYS))
    scores = bundle.score(new_patients)
    assert list(scores["patient_id"]) == list(new_patients["patient_id"])
    np.testing.assert_array_equal(scores["risk_score"], pipe.predict(new_typed))
    expected = np.clip(pipe.predict_survival_at(new_typed, TIMES_DAYS), 0, 1)
    np.testing.assert_array_equal(scores[["survival_3m", "survival_6m", "survival_12m"]].to_numpy(), expected)
    assert set(scores["risk_group"]) <= {"low", "high"}
    assert (path / "booster.json").is_file() == family.startswith("xgb")


def test_xgboost_bundle_keeps_the_booster_out_of_skops(xgb_bundle):
    path, pipe = xgb_bundle
    import skops.io as sio

    assert "xgboost.core.Booster" not in sio.get_untrusted_types(file=path / "pipeline.skops")
    assert json.loads((path / "booster.json").read_text())["learner"]["objective"]["name"] == "survival:cox"
    assert hasattr(pipe.steps[-1][1], "model_")  # the caller's pipeline keeps its booster


def test_bundle_holds_every_file_in_its_manifest(xgb_bundle):
    path, _ = xgb_bundle
    assert sorted(p.name for p in path.iterdir()) == sorted(BUNDLE_FILES)
    manifest = json.loads((path / "MANIFEST.json").read_text())
    assert sorted(manifest["files"]) == sorted(set(BUNDLE_FILES) - {"MANIFEST.json"})
    assert load_bundle(path).fingerprint == manifest["manifest_sha256"]


# ------------------------------------------------------------------------------------------- tampering
@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_score_refuses_a_bundle_with_one_byte_changed(name, xgb_bundle, new_patients, tmp_path):
    path = shutil.copytree(xgb_bundle[0], tmp_path / "xgb")
    target = path / name
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    patients = tmp_path / "patients.csv"
    new_patients.to_csv(patients, index=False)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["score", str(path), str(patients), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert name in result.output and "altered" in result.output
    assert not out.exists()


def test_missing_and_added_files_are_named(xgb_bundle, tmp_path):
    path = shutil.copytree(xgb_bundle[0], tmp_path / "xgb")
    (path / "notes.txt").write_text("added later")
    with pytest.raises(BundleError, match=r"notes\.txt: file not listed in MANIFEST\.json"):
        load_bundle(path)
    (path / "notes.txt").unlink()
    (path / "schema.json").unlink()
    with pytest.raises(BundleError, match=r"schema\.json: file listed in MANIFEST\.json is missing"):
        load_bundle(path)


def test_refuses_a_folder_that_is_no_bundle(tmp_path):
    with pytest.raises(BundleError, match="no MANIFEST.json; this is not a cartrisk bundle"):
        load_bundle(tmp_path)


def test_refuses_incompatible_package_versions(xgb_bundle, tmp_path):
    path = shutil.copytree(xgb_bundle[0], tmp_path / "xgb")
    info = json.loads((path / "bundle.json").read_text())
    info["versions"].update({"scikit-learn": "1.8.2", "xgboost": "2.1.0"})
    _bundle.write_json(path / "bundle.json", info)
    _bundle.write_manifest(path)  # a consistent bundle made elsewhere, not a tampered one
    with pytest.raises(BundleError, match=r"scikit-learn 1\.8\.2 \(bundle\) vs 1\.9\.\d+ \(installed\); "
                                          r"xgboost 2\.1\.0 \(bundle\) vs 3\.2\.\d+ \(installed\)"):
        load_bundle(path)


def test_export_refuses_a_type_outside_the_allow_list(cohort, tmp_path):
    typed, X, y = cohort
    pipe = _pipeline("coxph").fit(X, y)
    pipe.steps[-1][1].note_ = fractions.Fraction(1, 3)
    with pytest.raises(BundleError, match=r"holds type\(s\) not on cartrisk's allow-list: fractions\.Fraction"):
        export_bundle(pipe, tmp_path, name="odd", training_frame=typed)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_an_existing_name_and_a_bad_name(xgb_bundle, cohort):
    path, pipe = xgb_bundle
    with pytest.raises(BundleError, match="a bundle of that name exists"):
        export_bundle(pipe, path.parent, name="xgb", training_frame=cohort[0])
    with pytest.raises(BundleError, match="bundle name '../x' must be"):
        export_bundle(pipe, path.parent, name="../x", training_frame=cohort[0])


# ------------------------------------------------------------------------------------------- scoring
def test_invalid_rows_stop_scoring_unless_skipped(xgb_bundle, new_patients):
    bundle = load_bundle(xgb_bundle[0])
    bad = new_patients.copy()
    bad["age_years"] = bad["age_years"].astype(object)
    bad.loc[3, "age_years"] = "old"
    bad.loc[7, "histology"] = "Burkitt"
    with pytest.raises(SchemaError, match=r"row 4, column 'age_years': value 'old': not a number"):
        bundle.score(bad)
    report = bundle.score_report(bad, skip_invalid=True)
    assert report.skipped_rows == [4, 8]
    kept = new_patients["patient_id"].drop(index=[3, 7])
    assert list(report.scores["patient_id"]) == list(kept)
    full = bundle.score(new_patients).set_index("patient_id")
    pd.testing.assert_frame_equal(report.scores.set_index("patient_id"), full.loc[kept])


def test_a_missing_model_column_is_an_error_even_with_skip_invalid(xgb_bundle, new_patients):
    bundle = load_bundle(xgb_bundle[0])
    with pytest.raises(SchemaError, match=r"column 'ldh_failure': required column missing: the model reads it"):
        bundle.score(new_patients.drop(columns=["ldh_failure"]), skip_invalid=True)


def test_values_outside_training_ranges_warn_per_column(xgb_bundle, new_patients):
    bundle = load_bundle(xgb_bundle[0])
    odd = new_patients.copy()
    odd.loc[[2, 5], "age_years"] = 99.0
    odd.loc[4, "product"] = "liso-cel"
    with pytest.warns(StatisticalWarning) as record:
        bundle.score(odd)
    messages = [str(w.message) for w in record]
    assert any("column 'age_years': 2 patient(s) outside the training range" in m and "rows 3, 6" in m
               for m in messages)
    assert any("column 'product': 1 patient(s) with level(s) liso-cel not seen in training" in m for m in messages)


def test_cli_score_writes_scores_in_input_order_and_reports_skipped_rows(cox_bundle, new_patients, tmp_path):
    patients = tmp_path / "patients.csv"
    bad = new_patients.copy()
    bad["ecog_failure"] = bad["ecog_failure"].astype(object)
    bad.loc[1, "ecog_failure"] = 7
    bad.to_csv(patients, index=False)
    out = tmp_path / "scores.csv"
    runner = CliRunner()
    result = runner.invoke(app, ["score", str(cox_bundle[0]), str(patients), "--out", str(out)])
    assert result.exit_code == 2 and "row 2, column 'ecog_failure'" in result.output and not out.exists()
    result = runner.invoke(app, ["score", str(cox_bundle[0]), str(patients), "--out", str(out), "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "left out 1 invalid row(s): 2" in result.output
    scores = pd.read_csv(out)
    assert list(scores["patient_id"]) == list(new_patients["patient_id"].drop(index=1))
    assert list(scores.columns) == ["patient_id", "risk_score", "survival_3m", "survival_6m", "survival_12m",
                                    "risk_group"]


@pytest.mark.parametrize("family", ["coxph", "xgb_cox"])
def test_explain_adds_the_top_contributing_columns(family, cohort, new_patients, tmp_path):
    typed, X, y = cohort
    path = export_bundle(_pipeline(family).fit(X, y), tmp_path, name=family, training_frame=typed)
    bundle = load_bundle(path)
    scores = bundle.score(new_patients.head(10), explain=2)
    assert list(scores.columns[-4:]) == ["top1_column", "top1_contribution", "top2_column", "top2_contribution"]
    assert set(scores["top1_column"]) <= set(bundle.input_columns)
    assert (scores["top1_contribution"].abs() >= scores["top2_contribution"].abs()).all()


def test_cli_score_explain(xgb_bundle, new_patients, tmp_path):
    patients = tmp_path / "patients.parquet"
    new_patients.head(5).to_parquet(patients)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["score", str(xgb_bundle[0]), str(patients), "--out", str(out), "--explain",
                                      "--top", "1"])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out).columns[-2:]) == ["top1_column", "top1_contribution"]


# ------------------------------------------------------------------------------------------- model card
def test_model_card_reports_cohort_performance_rule_and_tripod(cox_bundle, cohort):
    path, _ = cox_bundle
    typed, X, y = cohort
    card = (path / "MODEL_CARD.md").read_text()
    events = int(y["os2_event"].sum())
    assert f"trained on 300 patients with {events} deaths" in card
    assert "**The training data are simulated**" in card and "inferred from SIM- identifiers" in card
    assert "time zero is the date of failure" in card
    assert "| `ldh_failure` | at failure (progression or relapse), time zero of OS-2 | U/L |" in card
    assert "event-stratified 3-fold cross-validation" in card
    assert "| d0_30 | " in card and "Out-of-fold calibration at 6 months" in card
    for item in ("| 8a | Outcome definition", "| 14 | Fairness | not covered", "| 23a | Performance"):
        assert item in card
    performance = load_bundle(path).performance
    c = next(r for r in performance["metrics"] if r["metric"] == "harrell_c")
    assert f"Harrell's C {c['mean']:.3f} [{c['lower']:.3f}, {c['upper']:.3f}]" in card


def test_schema_records_training_ranges_and_levels(cox_bundle, cohort):
    _, X, _ = cohort
    schema = {c["name"]: c for c in load_bundle(cox_bundle[0]).schema["columns"]}
    assert schema["age_years"]["train_min"] == X["age_years"].min()
    assert schema["age_years"]["train_max"] == X["age_years"].max()
    assert schema["sex"]["levels"] == sorted(X["sex"].dropna().unique())
    assert {"ldh_infusion", "ldh_uln", "days_to_failure"} <= set(schema)
    assert "salvage" not in schema and "os2_days" not in schema


# ------------------------------------------------------------------------------------------- light import
def test_importing_cartrisk_does_not_import_the_exporter():
    code = ("import sys, cartrisk; assert 'cartrisk.bundle.scoring' not in sys.modules; "
            "f = cartrisk.load_bundle; assert 'cartrisk.bundle.scoring' in sys.modules; print(f.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "load_bundle", done.stderr


# ------------------------------------------------------------------------------------------- MLflow
@pytest.fixture(scope="module")
def mlflow_ready():
    with warnings.catch_warnings():
        # SQLAlchemy 2.1 deprecates the ``noload`` strategy that MLflow 3.17's store mappers use; the warning is
        # raised once, when the store module is first imported, and concerns MLflow's code, not cartrisk's.
        warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated")
        import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


@pytest.fixture(scope="module")
def evaluated(make_tracker, mlflow_ready, tmp_path_factory):
    from cartrisk.config import parse_experiment
    from cartrisk.workflows import evaluate_experiment

    root = tmp_path_factory.mktemp("mlruns")
    cfg = parse_experiment('name = "tiny"\nseed = 1\n[data]\nsource = "simulated"\nn = 250\n'
                           '[[models]]\nestimator = "xgb_cox"\nparams = { n_estimators = 10 }\n'
                           '[evaluation]\nn_splits = 2\nrules = ["d0_30"]\n')
    tracker = make_tracker(root, "tiny")
    report = evaluate_experiment(cfg, tracker=tracker)
    uri = tracker.tracking_uri
    return uri, report


def test_export_from_an_evaluation_run_and_load_model(evaluated, tmp_path):
    uri, report = evaluated
    new_patients = report.dataset.frame.head(20).drop(columns=["os2_days", "os2_event"])
    run_id = report.child_run_ids["xgb_cox"]
    result = CliRunner().invoke(app, ["export", "--run", run_id, "--name", "tiny-xgb", "--tracking-uri", uri,
                                      "--models-dir", str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    path = tmp_path / "models" / "tiny-xgb"
    bundle = load_bundle(path)
    assert bundle.info["training"]["data_sha256"] == report.dataset.data_hash
    assert bundle.info["metadata"]["source_run_id"] == run_id and bundle.info["metadata"]["simulated"] is True
    assert "| d0_30 | " in (path / "MODEL_CARD.md").read_text()
    typed = validate(new_patients, require_outcome=False).raise_if_invalid()
    from_run, from_dir = load_model(run_id, tracking_uri=uri), load_model(str(path))
    np.testing.assert_array_equal(from_run.predict(typed), from_dir.predict(typed))
    np.testing.assert_array_equal(bundle.score(new_patients)["risk_score"], from_run.predict(typed))


def test_register_bundle_as_pyfunc_model(evaluated, cohort, new_patients, tmp_path):
    from cartrisk.tracking import Tracker, load_registered_model, register_bundle

    uri, _ = evaluated
    typed, X, y = cohort
    tracker = Tracker(uri, "exports")
    path = export_bundle(_pipeline("coxph").fit(X, y), tmp_path, name="cox-registered", training_frame=typed)
    register_bundle(tracker, path, "cox-registered")
    model = load_registered_model(tracker, "cox-registered", 1)
    predicted = model.predict(new_patients.head(5))
    pd.testing.assert_frame_equal(predicted, load_bundle(path).score(new_patients.head(5)))
    version = tracker.client.get_model_version("cox-registered", "1")
    assert version.tags["cartrisk.bundle_fingerprint"] == load_bundle(path).fingerprint


def test_export_by_study_name_and_trial(evaluated, cohort, tmp_path):
    from cartrisk.tracking import Tracker

    typed, X, y = cohort
    uri = evaluated[0]  # the same store: creating an MLflow database costs seconds
    tracker = Tracker(uri, "tuning")
    toml = 'name = "study-x"\nseed = 3\n[data]\nsource = "simulated"\nn = 300\n'
    with tracker.run("tune:study-x", tags={"cartrisk.kind": "tuning"}) as parent:
        tracker.log_text(parent, toml, "experiment.toml")
        tracker.log_params(parent, {"n": 300, "outer_folds": 3, "inner_folds": 2})
        tracker.log_provenance(parent, data_hash=_hash(typed), seed=3)
        tracker.log_pipeline(parent, _pipeline("coxph").fit(X, y))
        with tracker.run("final", parent_run_id=parent,
                         tags={"cartrisk.kind": "study", "cartrisk.study": "study-x.final"}) as study_run:
            with tracker.run("trial 0", parent_run_id=study_run, tags={
                    "cartrisk.kind": "trial", "cartrisk.study": "study-x.final", "cartrisk.trial": "0"}):
                pass
    runner = CliRunner()
    args = ["export", "--study", "study-x", "--name", "sx", "--tracking-uri", uri, "--models-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    info = load_bundle(tmp_path / "sx").info
    assert info["metadata"]["source_run_id"] == parent and info["metadata"]["study"] == "study-x"
    assert "nested cross-validation: 3 outer folds" in (tmp_path / "sx" / "MODEL_CARD.md").read_text()
    result = runner.invoke(app, [*args[:-4], "--trial", "0", *args[-4:], "--overwrite"])
    assert result.exit_code == 2
    assert "trial 0 of study 'study-x.final' holds no fitted pipeline" in result.output
    assert "out of scope" in result.output
    result = runner.invoke(app, ["export", "--study", "nope", "--name", "n", "--tracking-uri", uri])
    assert result.exit_code == 2 and "no MLflow run tagged cartrisk.study = 'nope'" in result.output


def _hash(typed: pd.DataFrame) -> str:
    from cartrisk.data.schema import frame_hash

    return frame_hash(typed.drop(columns=["patient_id"]))
