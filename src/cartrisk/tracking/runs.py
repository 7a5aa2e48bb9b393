"""Bundles from MLflow: find the run that holds a chosen model, re-create its training data, export it.

A model is chosen by run id (a nested model run of ``cartrisk evaluate``, which logs ``model/pipeline.skops``)
or by Optuna study name: the study's MLflow run is tagged ``cartrisk.kind = "study"`` and
``cartrisk.study = NAME``, each trial run ``cartrisk.kind = "trial"`` and ``cartrisk.trial = N``
(:mod:`cartrisk.tuning`). The training data are never stored in MLflow: they are re-created from the
experiment file logged on the run or its parent (``experiment.toml``), or read from the extract given, and must
match the SHA-256 recorded on the run (tag ``data_sha256``).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cartrisk.bundle import Evidence, export_bundle, load_bundle
from cartrisk.bundle.serialise import BOOSTER_FILE, PIPELINE_FILE, load_pipeline
from cartrisk.config import DEFAULT_TRACKING_URI, parse_experiment
from cartrisk.data.datasets import load_dataset
from cartrisk.data.schema import frame_hash, load_cohort
from cartrisk.exceptions import BundleError
from cartrisk.tracking.client import Tracker
from cartrisk.tracking.pyfunc import register_bundle
from cartrisk.tracking.store import is_run_id

__all__ = ["export_from_tracking", "load_model", "pipeline_from_run", "resolve_run"]

_PIPELINE_ARTIFACT = "model/pipeline.skops"


def _tracker(tracking_uri: str | None, experiment: str = "cartrisk") -> Tracker:
    return Tracker(tracking_uri or DEFAULT_TRACKING_URI, experiment)


def _get_run(tracker, run_id: str):
    try:
        return tracker.get_run(run_id)
    except Exception as err:  # mlflow's MlflowException for an unknown id (mlflow is imported only by tracking)
        raise BundleError(f"MLflow run {run_id} not found in {tracker.tracking_uri} ({err})") from None


def _study_run(tracker, study: str):
    """(Optuna study name as tagged, its MLflow run): ``NAME`` itself or the final study ``NAME.final``.

    An experiment tuned several times has studies ``NAME``, ``NAME.run2``... (:func:`cartrisk.tuning.studies.run_base`);
    ``NAME`` then means its latest run (its parent tuning run is tagged ``cartrisk.study_base = NAME``).
    """
    latest = tracker.find_runs({"cartrisk.kind": "tuning", "cartrisk.study_base": study})
    if latest and latest[0].data.tags.get("cartrisk.study"):
        study = latest[0].data.tags["cartrisk.study"]
    for name in (study, f"{study}.final"):
        found = tracker.find_runs({"cartrisk.kind": "study", "cartrisk.study": name})
        if found:
            return name, found[0]
    found = tracker.find_runs({"cartrisk.kind": "tuning", "cartrisk.study": study})
    if found:
        return study, found[0]
    raise BundleError(f"no MLflow run tagged cartrisk.study = '{study}' or '{study}.final' (cartrisk.kind = 'study') "
                      f"in {tracker.tracking_uri}; run `cartrisk tune` first, or check the study name")


def _model_child(tracker, run, model: str | None):
    """The model run of an evaluate parent run: its only model, or the one named ``model``."""
    children = tracker.find_runs({"cartrisk.kind": "model"}, parent_run_id=run.info.run_id)
    names = {c.data.tags.get("mlflow.runName", c.info.run_id): c for c in children}
    if model is not None:
        if model not in names:
            raise BundleError(f"run {run.info.run_id} has no model run named '{model}'; its models are: "
                              f"{', '.join(sorted(names)) or '(none)'}")
        return names[model]
    if len(names) == 1:
        return next(iter(names.values()))
    raise BundleError(f"run {run.info.run_id} is an evaluate run with {len(names)} models "
                      f"({', '.join(sorted(names)) or 'none'}); pick one with --model NAME")


def resolve_run(tracker, *, run_id: str | None = None, study: str | None = None, trial: int | None = None,
                model: str | None = None):
    """The MLflow run that holds the chosen model (checked to hold ``model/pipeline.skops``).

    A run id may name a model run of ``cartrisk evaluate``, or its parent run when that holds one model (or
    ``model`` names one). A study resolves to its own run when that holds a pipeline, else to its parent tuning run,
    which holds the best pipeline refitted on all data, when the study is the final one (``NAME`` or
    ``NAME.final``).
    """
    if (run_id is None) == (study is None):
        raise BundleError("choose the model with exactly one of a run id (--run) or a study name (--study)")
    if trial is not None and study is None:
        raise BundleError("--trial N selects a trial of a study: give --study NAME too")
    if model is not None and run_id is None:
        raise BundleError("--model NAME picks a model of an evaluate run: give --run RUN_ID (the evaluate run) too")
    if run_id is not None:
        run = _get_run(tracker, run_id)
        what = f"run {run_id}"
        if run.data.tags.get("cartrisk.kind") == "evaluation":
            run = _model_child(tracker, run, model)
            what = f"model '{run.data.tags.get('mlflow.runName')}' of evaluate run {run_id}"
        elif model is not None:
            raise BundleError(f"--model {model}: run {run_id} is not an evaluate run; give the evaluate (parent) run")
    else:
        tagged, run = _study_run(tracker, study)
        what = f"study '{tagged}'"
        if trial is not None:
            trials = tracker.find_runs({"cartrisk.kind": "trial", "cartrisk.study": tagged,
                                        "cartrisk.trial": str(trial)})
            if not trials:
                raise BundleError(f"study '{tagged}' has no trial {trial} in {tracker.tracking_uri}")
            run, what = trials[0], f"trial {trial} of study '{tagged}'"
            if not tracker.has_artifact(run.info.run_id, _PIPELINE_ARTIFACT):
                raise BundleError(f"{what} holds no fitted pipeline ({_PIPELINE_ARTIFACT}): trials log parameters "
                                  "and scores only. Refitting a trial from its logged parameters and data "
                                  "description is out of scope; export the study's refitted best model with "
                                  "--study alone, or refit and export in Python with cartrisk.bundle.export_bundle")
        elif not tracker.has_artifact(run.info.run_id, _PIPELINE_ARTIFACT):
            parent_id = run.data.tags.get("mlflow.parentRunId")
            final = tagged == study or tagged.endswith(".final")
            if parent_id and final and tracker.has_artifact(parent_id, _PIPELINE_ARTIFACT):
                run = _get_run(tracker, parent_id)
            elif not final:
                raise BundleError(f"{what} is an outer-fold study of the nested cross-validation: its best model was "
                                  "refitted on an outer training fold only and not logged; export the final model "
                                  f"with --study {tagged.rsplit('.', 1)[0]}")
    if not tracker.has_artifact(run.info.run_id, _PIPELINE_ARTIFACT):
        raise BundleError(f"{what} holds no fitted pipeline ({_PIPELINE_ARTIFACT}); only runs that logged one (a "
                          "model run of `cartrisk evaluate`, the parent run of `cartrisk tune`) can be exported")
    return run


def pipeline_from_run(run_id: str, *, tracking_uri: str | None = None, tracker=None):
    """Load the fitted pipeline a run logged (:meth:`Tracker.log_pipeline`: the bundles' serialiser and allow-list)."""
    tracker = tracker or _tracker(tracking_uri)
    resolve_run(tracker, run_id=run_id)
    with tempfile.TemporaryDirectory() as tmp:
        folder = tracker.download(run_id, _PIPELINE_ARTIFACT.rsplit("/", 1)[0], tmp)
        booster = folder / BOOSTER_FILE
        return load_pipeline(folder / PIPELINE_FILE, booster=booster if booster.is_file() else None)


def load_model(ref: str, *, tracking_uri: str | None = None):
    """The fitted pipeline behind a bundle folder, a skops file, or an MLflow run id.

    Parameters
    ----------
    ref : str
        A bundle folder (verified as :func:`cartrisk.bundle.load_bundle` does), a ``.skops`` file (checked against
        the same allow-list), or the id of an MLflow run that logged a pipeline (:meth:`Tracker.log_pipeline`).
    tracking_uri : str, optional
        MLflow tracking URI for a run id (default :data:`cartrisk.config.DEFAULT_TRACKING_URI`).

    Returns
    -------
    SurvivalPipeline
    """
    candidate = Path(ref)
    if candidate.is_dir():
        return load_bundle(candidate).pipeline
    if candidate.is_file() and candidate.suffix == ".skops":
        return load_pipeline(candidate)
    if is_run_id(str(ref)):
        return pipeline_from_run(str(ref), tracking_uri=tracking_uri)
    raise BundleError(f"{ref}: neither a bundle folder, a .skops file nor an MLflow run id (32 hex characters)")


def _text_artifact(tracker, run_id: str, name: str) -> str | None:
    if not tracker.has_artifact(run_id, name):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return Path(tracker.download(run_id, name, tmp)).read_text(encoding="utf-8")


def _training_data(tracker, run, data: str | Path | None):
    """(training Dataset, data source name, experiment config or None, the run holding it)."""
    expected = run.data.tags.get("data_sha256")
    parent_id = run.data.tags.get("mlflow.parentRunId")
    holders = [run] + ([_get_run(tracker, parent_id)] if parent_id else [])
    cfg, holder = None, None
    if data is not None:
        frame, name = load_cohort(data), str(data)
        dataset = _registry_dataset(frame, name)
    else:
        for candidate in holders:
            text = _text_artifact(tracker, candidate.info.run_id, "experiment.toml")
            if text is not None:
                cfg, holder = _config(text, candidate), candidate
                break
        if cfg is None:
            raise BundleError(f"run {run.info.run_id} (and its parent) logged no experiment.toml to re-create the "
                              "training data from; give the training extract with --data PATH")
        dataset = load_dataset(cfg.data, seed=cfg.seed)
        name = dataset.name
    actual = dataset.data_hash
    if expected and actual != expected:
        where = f"{data}" if data is not None else f"the data re-created from experiment '{cfg.name}'"
        raise BundleError(f"{where} (SHA-256 {actual[:16]}...) is not the data run {run.info.run_id} was trained on "
                          f"(data_sha256 {expected[:16]}...); give the exact training extract with --data PATH")
    return dataset, name, cfg, holder


def _registry_dataset(frame, name: str):
    from cartrisk.data.datasets import Dataset
    from cartrisk.data.schema import to_xy

    X, y = to_xy(frame)
    return Dataset(X=X, y=y, name=name, data_hash=frame_hash(frame.drop(columns=["patient_id"], errors="ignore")),
                   registry=True, frame=frame)


def _config(text: str, holder):
    cfg = parse_experiment(text, source="experiment.toml")
    n = holder.data.params.get("n")
    if cfg.data.source == "simulated" and n is not None and int(n) != cfg.data.n:  # `--n` overrode the file
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, n=int(n)))
    return cfg


def _out_of_fold(pipeline, dataset, cfg, run) -> tuple:
    """Out-of-fold risk and survival of the run's pipeline specification on its training data (the folds of the
    evaluate run: event-stratified, its n_splits, its seed), for the bundle's cut-points and subgroups."""
    from sklearn.base import clone

    from cartrisk.evaluation import EventStratifiedKFold
    from cartrisk.units import months_to_days

    n_splits = int(run.data.params.get("cv.n_splits", cfg.evaluation.n_splits if cfg else 5))
    seed = int(run.data.params.get("seed", cfg.seed if cfg else 0))
    horizon = cfg.evaluation.cluster_horizon_months if cfg else 6.0
    X, y = dataset.X, dataset.y
    risk, surv = np.full(len(y), np.nan), np.full(len(y), np.nan)
    for train, test in EventStratifiedKFold(n_splits, shuffle=True, random_state=seed).split(X, y):
        fitted = clone(pipeline).fit(X.iloc[train], y[train])
        risk[test] = fitted.predict(X.iloc[test])
        surv[test] = fitted.predict_survival_at(X.iloc[test], [months_to_days(horizon)])[:, 0]
    return risk, surv, horizon, f"event-stratified {n_splits}-fold cross-validation, seed {seed}"


def _evidence_extras(pipeline, dataset, cfg, run) -> dict:
    """Out-of-fold cut-points, subgroups (registry cohorts) and Riley's check for the exported model."""
    from cartrisk.evaluation.samplesize import sample_size_check
    from cartrisk.evaluation.subgroups import subgroup_labels, subgroup_performance
    from cartrisk.units import DAYS_PER_MONTH, months_to_days

    risk, surv, horizon, source = _out_of_fold(pipeline, dataset, cfg, run)
    extras: dict = {"oof_risk": risk, "oof_source": source}
    if dataset.frame is not None:
        labels = subgroup_labels(dataset.frame.reset_index(drop=True))
        if labels:
            extras["subgroups"] = subgroup_performance(dataset.y, risk, 1.0 - surv, months_to_days(horizon), labels)
    Z = pipeline.transform_features(dataset.X).to_numpy(float)
    extras["sample_size"] = sample_size_check(Z, dataset.y["os2_days"] / DAYS_PER_MONTH, dataset.y["os2_event"])
    return extras


def _rule_results(tracker, run) -> dict[str, dict[str, float]] | None:
    """Metrics of the reference rules cross-validated beside the model (sibling runs of kind 'rule')."""
    parent_id = run.data.tags.get("mlflow.parentRunId")
    if not parent_id:
        return None
    rules = tracker.find_runs({"cartrisk.kind": "rule"}, parent_run_id=parent_id)
    found = {r.data.tags.get("mlflow.runName", r.info.run_id): dict(r.data.metrics) for r in rules}
    if not found:
        return None
    order = sorted(found, key=lambda k: (k != "d0_30", k))
    return {k: found[k] for k in order}


def _metrics(run) -> dict[str, float]:
    """The run's cross-validation metrics (a study run's ``outer.*`` nested-CV metrics without the prefix)."""
    metrics = dict(run.data.metrics)
    outer = {k.removeprefix("outer."): v for k, v in metrics.items() if k.startswith("outer.")}
    return outer or metrics


def _design(run, holder) -> str:
    params: dict[str, Any] = {**(holder.data.params if holder is not None else {}), **run.data.params}
    if "outer_folds" in params:
        return (f"nested cross-validation: {params['outer_folds']} outer folds, hyper-parameters tuned by Optuna on "
                f"{params.get('inner_folds', '?')} inner folds of each outer training set (the best pipeline was "
                f"then tuned and refitted on all data); run {run.info.run_id}")
    if "cv.n_splits" in params:
        return (f"event-stratified {params['cv.n_splits']}-fold cross-validation x {params.get('cv.n_repeats', 1)} "
                f"repeat(s), preprocessing refitted inside each training fold; run {run.info.run_id}")
    return f"see MLflow run {run.info.run_id}"


def export_from_tracking(*, name: str, models_dir: str | Path = "models", run_id: str | None = None,
                         study: str | None = None, trial: int | None = None, tracking_uri: str | None = None,
                         data: str | Path | None = None, overwrite: bool = False, register: bool = False,
                         model: str | None = None, sign_with: str | Path | None = None) -> Path:
    """Export the model of an MLflow run or Optuna study as a bundle (see :func:`cartrisk.bundle.export_bundle`);
    with ``register``, also register it in the same MLflow store as a pyfunc model; with ``sign_with`` (a private
    key file), sign it.

    The bundle's risk-group cut-points are learned on out-of-fold predictions of the run's pipeline specification
    (the evaluate run's folds), as ``cartrisk compare-rules`` learns them; the model card gets the subgroup
    performance of those predictions and Riley's sample-size check. Models trained on a generic cohort
    (``[data.roles]``) export as generic-cohort bundles.
    """
    tracker = _tracker(tracking_uri)
    run = resolve_run(tracker, run_id=run_id, study=study, trial=trial, model=model)
    pipeline = pipeline_from_run(run.info.run_id, tracker=tracker)
    dataset, source, cfg, holder = _training_data(tracker, run, data)
    horizons = None
    for params in ((holder.data.params if holder is not None else {}), run.data.params):
        if "horizons_months" in params:
            horizons = tuple(float(h) for h in json.loads(params["horizons_months"]))
    meta = {"data_source": source, "source_run_id": run.info.run_id, "validation": _design(run, holder),
            "tracking_uri": tracker.tracking_uri}
    if cfg is not None:
        meta.update(experiment=cfg.name, seed=cfg.seed, simulated=cfg.data.source == "simulated")
    if study is not None:
        meta["study"] = study
    extra = {} if horizons is None else {"horizons_months": horizons}
    evidence = Evidence(cv_result=_metrics(run), comparison=_rule_results(tracker, run),
                        **_evidence_extras(pipeline, dataset, cfg, holder or run))
    extra["data_sha256"] = dataset.data_hash  # hashed when loaded, by export's convention: not hashed again
    if dataset.registry and dataset.frame is not None:
        extra["training_frame"] = dataset.frame
    else:
        roles = dataset.roles
        extra.update(X=dataset.X, y=dataset.y,
                     cohort={"time": roles.time, "event": roles.event, "time_unit_days": roles.time_unit_days,
                             "id": roles.id})
    path = export_bundle(pipeline, models_dir, name=name, evidence=evidence, metadata=meta, overwrite=overwrite,
                         sign_with=sign_with, **extra)
    if register:
        experiment = tracker.client.get_experiment(run.info.experiment_id).name
        register_bundle(_tracker(tracker.tracking_uri, experiment), path, name, source_run_id=run.info.run_id)
    return path
