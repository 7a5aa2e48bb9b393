"""Hyper-parameter tuning with Optuna inside nested cross-validation, tracked in MLflow.

The protocol (the usual nested cross-validation):

1. The data are split into ``outer_folds`` event-stratified folds (seeded by the experiment's seed:
   with ``outer_folds = evaluation.n_splits`` they are the folds ``cartrisk evaluate`` uses).
2. For each outer fold, a study tunes on the outer-training part only: each trial is scored by
   ``inner_folds``-fold cross-validation of that part (:class:`cartrisk.tuning.search.Objective`). The best
   trial's parameters are refitted on the whole outer-training part and scored on the untouched
   outer-test fold with the metrics of :func:`cartrisk.evaluation.cross_validate_survival`.
   The outer-test scores are the reported estimate of the *tuning procedure*.
3. A final study runs the same search on all the data; its best parameters are refitted on all the
   data: that is the model to use. Its inner value is optimistic (selection on the same folds);
   the gap between inner and outer values shows by how much.

So a run holds ``outer_folds + 1`` Optuna studies, ``NAME.outer1`` ... ``NAME.final``, in one storage
(see :mod:`cartrisk.tuning.studies` for storage, resume and workers). Running the experiment again starts new
studies ``NAME.run2.outer1`` ...; ``--resume`` continues the latest run. Several ``[[models]]`` entries are
searched in one study with ``family`` as a categorical parameter.

Tracking is attached at the edge: :class:`TrackedObjective` wraps the objective, and
:func:`run_study` logs one MLflow parent run per run of the experiment, one child run per study and
one grandchild run per trial (parameters, fold values, state, durations); the parent gets the
outer-CV metrics, the best parameters and the refitted pipeline.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from sklearn.base import clone

from cartrisk.config import ExperimentConfig
from cartrisk.data.datasets import Dataset, load_dataset
from cartrisk.evaluation import (
    CVResult,
    EventStratifiedKFold,
    FixedSplits,
    cross_validate_survival,
    derived_seed,
    nested_folds,
)
from cartrisk.evaluation.preflight import check_experiment
from cartrisk.exceptions import CartriskError, ConfigError
from cartrisk.modelling.leakage import guard_experiment
from cartrisk.modelling.pipeline import SurvivalPipeline
from cartrisk.progress import Progress, no_progress
from cartrisk.tuning.search import (
    Objective,
    ObjectiveSpec,
    SearchSpace,
    fingerprint,
    inner_horizon_days,
    make_sampler,
)
from cartrisk.tuning.studies import (
    COUNTED,
    StudyJob,
    counts,
    default_storage,
    open_storage,
    prepare_studies,
    run_base,
    run_trials,
    study_lock,
    wait_for_running,
)
from cartrisk.tuning.tracked import TrackedObjective, reconcile_trial_runs
from cartrisk.tuning.workers import (
    DEADLINE_ATTR,
    EXPERIMENT_ATTR,
    GROUP_ATTR,
    INDEX_ATTR,
    TRIALS_ATTR,
    JoinResult,
    join_study,
    release_connections,
    run_workers,
    start_method,
)

if TYPE_CHECKING:  # MLflow is imported only when a run is tracked
    from cartrisk.tracking import Tracker

__all__ = ["StudyResult", "TrackedObjective", "join_experiment", "outer_splits", "run_study"]

PARENT_ATTR = "mlflow.parent_run_id"
RUN_ATTR = "mlflow.run_id"


@dataclass
class StudyResult:
    """What a nested-CV tuning run produced.

    Attributes
    ----------
    study_name : str
        Base name; the Optuna studies are ``{study_name}.outer{k}`` and ``{study_name}.final``.
    family : str
        Label of the best family of the final study.
    best_params : dict
        Its searched parameters (fixed ones are in the experiment file).
    best_pipeline : SurvivalPipeline
        Refitted on all the data with ``best_params``.
    inner_value : float
        The final study's best inner-CV objective value.
    outer : CVResult
        Outer-fold scores of the tuning procedure (every metric of ``cross_validate_survival``).
    outer_folds : DataFrame
        Per outer fold: best family and parameters, inner best value, outer value of the objective, gap.
    trials : DataFrame
        Every trial of every study: state, value, fold values, parameters, seconds.
    objective : str
    direction : str
    dataset : Dataset
    parent_run_id : str or None
    """

    study_name: str
    family: str
    best_params: dict
    best_pipeline: SurvivalPipeline
    inner_value: float
    outer: CVResult
    outer_folds: pd.DataFrame
    trials: pd.DataFrame
    objective: str
    direction: str
    dataset: Dataset
    parent_run_id: str | None = None
    study_run_ids: dict[str, str] = field(default_factory=dict)

    @property
    def outer_value(self) -> float:
        """Mean outer-fold value of the objective."""
        return float(self.outer_folds["outer_value"].mean())

    @property
    def gap(self) -> float:
        """Mean over outer folds of (inner best value - outer value): the optimism of inner scores
        (positive = optimistic for a maximised objective, negative for a minimised one)."""
        return float(self.outer_folds["gap"].mean())

    def summary(self) -> pd.DataFrame:
        """Outer-CV mean, sd and 95% interval of every metric (as :meth:`CVResult.summary`)."""
        return self.outer.summary()


def _tuning(cfg: ExperimentConfig):
    if cfg.tuning is None:
        raise ConfigError(f"{cfg.name}: no [tuning] table (an experiment without one is run by cartrisk evaluate)")
    return cfg.tuning


def outer_splits(cfg: ExperimentConfig, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The outer folds of a tuning experiment (seeded by ``cfg.seed``, as ``cartrisk evaluate`` seeds its folds)."""
    cv = EventStratifiedKFold(n_splits=_tuning(cfg).outer_folds, shuffle=True, random_state=cfg.seed)
    return list(cv.split(np.zeros((len(y), 1)), y))


def study_folds(cfg: ExperimentConfig, y: np.ndarray) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Each study's inner folds: one list per outer fold's training part, then all data (the final study)."""
    t = _tuning(cfg)
    return nested_folds(y, t.outer_folds, t.inner_folds, cfg.seed)[1]


def _best_value(study: optuna.Study) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:  # no complete trial yet
        return None


def _trial_rows(study: optuna.Study, label: str, space: SearchSpace) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        inner = t.user_attrs.get("inner_cv", {})
        row = {"study": label, "trial": t.number, "state": t.state.name, "value": t.value,
               "duration_seconds": t.duration.total_seconds() if t.duration is not None else np.nan,
               "work_seconds": inner.get("work_seconds", np.nan), "fold_values": inner.get("fold_values", []),
               "fail_reason": t.user_attrs.get("fail_reason", "")}
        if t.params:
            family, params = space.decode(t.params)
            row["family"] = family
            row.update({f"param.{k}": v for k, v in params.items()})
        rows.append(row)
    return rows


def _outer_value(result: CVResult, spec: ObjectiveSpec) -> float:
    pf = result.per_fold
    return spec.combine({m: float(pf.loc[pf["metric"] == m, "value"].iloc[0]) for m in spec.metrics})


def _merge(results: list[CVResult]) -> CVResult:
    """One CVResult from the outer folds' single-split results (no out-of-fold arrays: each came from its own
    tuned model, fitted inside ``cross_validate_survival``)."""
    per_fold = pd.concat([r.per_fold.assign(fold=k) for k, r in enumerate(results)], ignore_index=True)
    return CVResult(per_fold=per_fold, fit_times=np.concatenate([r.fit_times for r in results]),
                    horizons_months=results[0].horizons_months, n_splits=len(results), n_repeats=1)


def _require_best(study: optuna.Study, label: str) -> optuna.trial.FrozenTrial:
    try:
        return study.best_trial
    except ValueError:
        c = counts(study.get_trials(deepcopy=False))
        raise CartriskError(f"{label} (study {study.study_name}) has no complete trial ({c['PRUNED']} pruned, "
                           f"{c['FAIL']} failed): give it more trials (--trials) or time (--timeout)") from None


def run_study(cfg: ExperimentConfig, *, tracker: Tracker | None = None, storage: str | None = None,
              n_trials: int | None = None, timeout: float | None = None, resume: bool = False,
              progress: Progress | None = None, workers: int | None = None,
              heartbeat_seconds: int | None = None, data: Dataset | None = None) -> StudyResult:
    """Tune an experiment by nested cross-validation (see the module docstring) and refit the best model.

    Parameters
    ----------
    cfg : ExperimentConfig
        With a ``[tuning]`` table.
    tracker : Tracker, optional
        Log to MLflow (parent, study and trial runs).
    storage : str, optional
        Optuna storage URL or ``journal:PATH``; default from the file, else ``optuna.db`` beside the tracking store.
    n_trials : int, optional
        Finished trials per study (default ``tuning.n_trials``).
    timeout : float, optional
        Time budget in seconds for all the studies together (default ``tuning.timeout_seconds``).
    resume : bool, default False
        Continue the latest run of the studies (finished trials are kept, only the missing ones run); an error
        when there is none. Without it, a new run starts: studies ``NAME.outerK`` the first time, then
        ``NAME.run2.outerK``... (:func:`cartrisk.tuning.studies.run_base`; a run that finished no trial is replaced).
    progress : callable, optional
        ``progress(stage, done, total, best_value)`` (:class:`cartrisk.progress.Progress`), one stage per study.
    workers : int, optional
        Local worker processes (default ``tuning.workers``, else as many as this process has cores); 1 runs in
        this process. Workers started elsewhere (``cartrisk worker``) may join the studies while they run.
    heartbeat_seconds : int, optional
        Heartbeat interval of running trials on database storages (default 10 s; a trial is failed and replaced
        after three missed heartbeats).
    data : Dataset, optional
        The experiment's data, already loaded and checked against it (:func:`check_experiment`); else both are
        done here.

    Returns
    -------
    StudyResult
    """
    t = cfg.tuning
    if t is None:
        raise ConfigError(f"{cfg.name}: no [tuning] table (an experiment without one is run by cartrisk evaluate)")
    n_trials = t.n_trials if n_trials is None else int(n_trials)
    timeout = t.timeout_seconds if timeout is None else timeout
    workers = (t.workers or default_workers()) if workers is None else int(workers)
    if n_trials < 1 or workers < 1 or (timeout is not None and timeout <= 0):
        raise ConfigError(f"n_trials and workers must be at least 1 and timeout positive, got {n_trials}, {workers}, "
                          f"{timeout}")
    space = SearchSpace(cfg)
    spec = ObjectiveSpec.from_weights(t.objective_weights)
    url = storage or t.storage or default_storage(tracker.tracking_uri if tracker is not None else cfg.tracking.uri)
    if data is None:
        data = load_dataset(cfg.data, seed=cfg.seed)
        check_experiment(cfg, data)  # the whole experiment against its data, before any study exists
    make_sampler(t.sampler, cfg.seed, t.startup_trials)  # an optional sampler package is missing: say so now
    leakage = guard_experiment(cfg, data)  # before any fit
    y = data.y
    splits = outer_splits(cfg, y)
    store = open_storage(url, heartbeat_seconds=heartbeat_seconds)  # created under a lock
    requested = t.study_name or cfg.name
    base = run_base(store, requested, resume=resume, where=url)  # a rerun starts new studies, --resume continues
    names = [f"{base}.outer{k + 1}" for k in range(len(splits))] + [f"{base}.final"]
    labels = [f"outer {k + 1}/{len(splits)}" for k in range(len(splits))] + ["final"]
    stale = prepare_studies(store, names, spec.direction, resume=resume,
                            fingerprint=fingerprint(cfg, data.data_hash), where=url)
    studies = [optuna.load_study(study_name=name, storage=store) for name in names]
    report = progress or no_progress

    with contextlib.ExitStack() as stack:
        parent_id, run_ids = None, {}
        if tracker is not None:
            parent_id, run_ids = _open_runs(stack, tracker, cfg, data, studies, labels, spec, url, resume, leakage)
            tracker.set_tags(parent_id, {"cartrisk.study": base, "cartrisk.study_base": requested})
            for study in studies:  # runs of the trials a killed process left running, or never logged
                if stale.get(study.study_name):
                    reconcile_trial_runs(tracker, study.study_name, run_ids[study.study_name],
                                         study.get_trials(deepcopy=False))
        start = time.time()
        budget = None if timeout is None else (start, start + timeout)
        plan = _Plan(cfg, tuple(names), n_trials, budget,
                     None if tracker is None else (tracker.tracking_uri, tracker.experiment, run_ids),
                     data.data_hash)
        _mark_for_workers(studies, cfg.name, base, n_trials, budget)

        def poll() -> None:
            for label, study in zip(labels, studies, strict=True):
                report(label, len(study.get_trials(deepcopy=False, states=COUNTED)), n_trials, _best_value(study))

        poll()
        if workers > 1:
            def release() -> None:  # no database connection may cross the fork
                release_connections(store)
                if tracker is not None:
                    tracker.release_connections()

            make_jobs = functools.partial(plan.jobs, data) if start_method() == "fork" else plan.jobs
            run_workers(url, make_jobs, workers, poll=poll, before_start=release,
                        heartbeat_seconds=heartbeat_seconds)
        # In this process: every study with one worker; then, whatever the workers, wait for the trials that
        # joined workers still run, and run here the trials of joined workers that died (failed, not replaced).
        jobs = plan.jobs(data)
        progress_of = {job.name: (lambda _t, label=label, study=study: report(
            label, len(study.get_trials(deepcopy=False, states=COUNTED)), n_trials, _best_value(study)))
            for label, study, job in zip(labels, studies, jobs, strict=True)}
        if workers == 1:
            for job in jobs:
                run_trials(store, job, lock=study_lock(url, job.name, store), on_trial=progress_of[job.name])
        for study, job in zip(studies, jobs, strict=True):
            _complete(store, url, study, job, progress_of[job.name], poll)
        poll()
        result = _score(cfg, space, spec, data, splits, studies, labels, base)
        result.parent_run_id, result.study_run_ids = parent_id, run_ids
        if tracker is not None:
            _log_results(tracker, result, studies, names, run_ids, parent_id)
    release_connections(store)
    return result


def default_workers() -> int:
    """Worker processes when neither the option nor the experiment says: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _mark_for_workers(studies: list[optuna.Study], experiment: str, group: str, n_trials: int,
                      budget: tuple[float, float] | None) -> None:
    """Record in each study what a joining worker (``cartrisk worker``) needs to find and fill it."""
    for k, study in enumerate(studies):
        # the group last: a worker takes a study only once it has the group and everything before it
        for key, value in ((EXPERIMENT_ATTR, experiment), (INDEX_ATTR, k), (TRIALS_ATTR, n_trials),
                           (DEADLINE_ATTR, None if budget is None else list(budget)), (GROUP_ATTR, group)):
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)


def _complete(store, url: str, study: optuna.Study, job: StudyJob, on_trial, poll) -> None:
    """Wait until no trial of ``study`` runs elsewhere; run here any trial still missing (a dead worker's)."""
    while True:
        wait_for_running(study, job, poll=poll)
        if job.deadline is not None and time.time() >= job.deadline:
            return
        if len(study.get_trials(deepcopy=False, states=COUNTED)) >= job.n_trials:
            return
        run_trials(store, job, lock=study_lock(url, job.name, store), on_trial=on_trial)


@dataclass(frozen=True)
class _Plan:
    """What a worker needs to rebuild the studies' jobs (small and picklable: the data are reloaded)."""

    cfg: ExperimentConfig
    names: tuple[str, ...]
    n_trials: int
    budget: tuple[float, float] | None
    tracking: tuple[str, str, dict[str, str]] | None
    data_hash: str

    def jobs(self, data: Dataset | None = None) -> list[StudyJob]:
        cfg, t = self.cfg, _tuning(self.cfg)
        if data is None:
            data = load_dataset(cfg.data, seed=cfg.seed)
            if data.data_hash != self.data_hash:
                raise CartriskError(f"a tuning worker loaded other data than its parent ({data.name}): the data "
                                    "changed while the study ran; keep the data file unchanged until it ends")
        X, y = data.X, data.y
        space, spec = SearchSpace(cfg), ObjectiveSpec.from_weights(t.objective_weights)
        horizon = inner_horizon_days(cfg)
        inner = study_folds(cfg, y)
        objectives: list[Callable] = [Objective(space, X.iloc[train], y[train], inner[k],
                                                spec, horizon) for k, (train, _) in enumerate(outer_splits(cfg, y))]
        objectives.append(Objective(space, X, y, inner[-1], spec, horizon))
        if self.tracking is not None:
            uri, experiment, run_ids = self.tracking
            objectives = [TrackedObjective(obj, uri, experiment, name, run_ids[name])
                          for obj, name in zip(objectives, self.names, strict=True)]
        jobs = []
        for i, (name, obj) in enumerate(zip(self.names, objectives, strict=True)):
            budget = None if self.budget is None else (*self.budget, (i + 1) / len(self.names))
            jobs.append(StudyJob(name, obj, self.n_trials, derived_seed(cfg.seed, 1000 + i), t.sampler,
                                 t.startup_trials, t.pruner, t.prune_warmup_folds, budget, draw=space.suggest))
        return jobs


def join_experiment(cfg: ExperimentConfig, storage: str, *, tracking: tuple[str, str] | None = None,
                    max_trials: int | None = None, wait_seconds: float = 0.0, heartbeat_seconds: int | None = None,
                    on_trial: Callable[[str, optuna.trial.FrozenTrial], None] | None = None,
                    on_start: Callable[[str, optuna.Trial], None] | None = None) -> JoinResult:
    """Join the studies a running ``cartrisk tune`` of ``cfg`` created in ``storage`` (``cartrisk worker``).

    The worker loads the experiment's data itself and refuses to join studies whose recorded fingerprint
    (data SHA-256, features, search spaces, objective, folds, seed) differs from its own. It runs trials in
    the run's studies, in order, until each holds the count the run asked for (or ``max_trials`` in all),
    and logs each trial under the study's MLflow run when ``tracking`` = ``(tracking URI, experiment)``
    is given and the run was tracked.

    Returns
    -------
    cartrisk.tuning.workers.JoinResult
    """
    _tuning(cfg)
    data = load_dataset(cfg.data, seed=cfg.seed)
    mark = fingerprint(cfg, data.data_hash)

    def make_jobs(studies: list) -> list[StudyJob]:
        attrs = studies[0].user_attrs
        run_ids = {s.study_name: s.user_attrs.get(RUN_ATTR) for s in studies}
        tracked = None
        if tracking is not None and all(run_ids.values()):
            tracked = (*tracking, run_ids)
        budget = attrs.get(DEADLINE_ATTR)
        plan = _Plan(cfg, tuple(s.study_name for s in studies), int(attrs[TRIALS_ATTR]),
                     None if budget is None else tuple(budget), tracked, data.data_hash)
        return plan.jobs(data)

    return join_study(storage, mark, cfg.name, make_jobs, n_studies=_tuning(cfg).outer_folds + 1,
                      max_trials=max_trials, wait_seconds=wait_seconds, heartbeat_seconds=heartbeat_seconds,
                      on_trial=on_trial, on_start=on_start)


def _score(cfg, space, spec, data, splits, studies, labels, base) -> StudyResult:
    X, y = data.X, data.y
    outer, rows = [], []
    for k, (train, test) in enumerate(splits):
        best = _require_best(studies[k], labels[k])
        family, params = space.decode(best.params)
        res = cross_validate_survival(space.pipeline(family, params), X, y, cv=FixedSplits([(train, test)]),
                                      horizons_months=cfg.evaluation.horizons_months)
        outer.append(res)
        value = _outer_value(res, spec)
        rows.append({"fold": k + 1, "family": family, "params": params, "best_trial": best.number,
                     "inner_value": best.value, "outer_value": value, "gap": best.value - value,
                     "finished_trials": len(studies[k].get_trials(deepcopy=False, states=COUNTED))})
    final = _require_best(studies[-1], labels[-1])
    family, params = space.decode(final.params)
    pipeline = clone(space.pipeline(family, params)).fit(X, y)
    trials = pd.DataFrame([r for label, st in zip(labels, studies, strict=True) for r in _trial_rows(st, label, space)])
    return StudyResult(study_name=base, family=family, best_params=params, best_pipeline=pipeline,
                       inner_value=float(final.value), outer=_merge(outer), outer_folds=pd.DataFrame(rows),
                       trials=trials, objective=spec.label, direction=spec.direction, dataset=data)


def _open_runs(stack: contextlib.ExitStack, tracker: Tracker, cfg: ExperimentConfig, data: Dataset,
               studies: list[optuna.Study], labels: list[str], spec: ObjectiveSpec, url: str, resume: bool,
               leakage: pd.DataFrame | None = None) -> tuple[str, dict[str, str]]:
    """Open (or reopen on resume) the parent run and one run per study; close trial runs left RUNNING."""
    t = _tuning(cfg)
    stored = studies[0].user_attrs.get(PARENT_ATTR)
    if resume and tracker.has_run(stored):
        parent = stack.enter_context(tracker.resume_run(stored))
    else:
        parent = stack.enter_context(tracker.run(f"tune:{studies[0].study_name.rsplit('.', 1)[0]}",
                                                 tags={"cartrisk.kind": "tuning"}))
        tracker.log_params(parent, {"experiment": cfg.name, "data": data.name, "n": len(data.y),
                                    "events": int(data.y["os2_event"].sum()), "features": cfg.features.set,
                                    "families": [m.label for m in cfg.models], "objective": spec.label,
                                    "direction": spec.direction, "outer_folds": t.outer_folds,
                                    "inner_folds": t.inner_folds, "sampler": t.sampler, "pruner": t.pruner,
                                    "horizons_months": list(cfg.evaluation.horizons_months), "seed": cfg.seed,
                                    "storage": url, "allow_suspect": list(cfg.features.allow_suspect)})
        tracker.log_provenance(parent, data_hash=data.data_hash, seed=cfg.seed)
        if leakage is not None:
            tracker.log_text(parent, leakage.to_csv(index=False), "leakage.csv")
        if cfg.source_text:
            tracker.log_text(parent, cfg.source_text, "experiment.toml")
    run_ids = {}
    for study, label in zip(studies, labels, strict=True):
        stored = study.user_attrs.get(RUN_ATTR)
        if resume and tracker.has_run(stored):
            run_ids[study.study_name] = stack.enter_context(tracker.resume_run(stored))
        else:
            run_ids[study.study_name] = stack.enter_context(tracker.run(
                label, parent_run_id=parent, tags={"cartrisk.kind": "study", "cartrisk.study": study.study_name}))
        study.set_user_attr(PARENT_ATTR, parent)
        study.set_user_attr(RUN_ATTR, run_ids[study.study_name])
        if resume:
            running = {str(tr.number) for tr in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            for run in tracker.running_runs({"cartrisk.kind": "trial", "cartrisk.study": study.study_name}):
                if run.data.tags.get("cartrisk.trial") not in running:
                    tracker.set_status(run.info.run_id, "FAILED")
    return parent, run_ids


def _log_results(tracker: Tracker, result: StudyResult, studies: list[optuna.Study], names: list[str],
                 run_ids: dict[str, str], parent: str) -> None:
    for k, (study, name) in enumerate(zip(studies, names, strict=True)):
        c = counts(study.get_trials(deepcopy=False))
        metrics = {"best_value": _best_value(study), "complete": c["COMPLETE"], "pruned": c["PRUNED"],
                   "failed": c["FAIL"]}
        if k < len(result.outer_folds):
            metrics["outer_value"] = result.outer_folds["outer_value"].iloc[k]
        tracker.log_batch(run_ids[name], metrics=metrics,
                          tags={f"best.{p}": v for p, v in study.best_trial.params.items()})
    tracker.log_batch(parent, metrics={"inner_value": result.inner_value, "outer_value": result.outer_value,
                                       "gap": result.gap, **result.outer.metric_dict("outer.")},
                      tags={"best.family": result.family, **{f"best.{p}": v for p, v in result.best_params.items()}})
    tracker.log_text(parent, result.trials.to_csv(index=False), "trials.csv")
    tracker.log_text(parent, result.outer_folds.to_csv(index=False), "outer_folds.csv")
    tracker.log_text(parent, result.outer.per_fold.to_csv(index=False), "outer_per_fold.csv")
    tracker.log_text(parent, result.summary().to_csv(index=False), "outer_summary.csv")
    tracker.log_pipeline(parent, result.best_pipeline)
