"""Tracking attached at the edge of tuning: one MLflow run per trial, logged off the trial's path.

A trial's run is logged when the trial is over, in one go and from a background thread
(:class:`cartrisk.tracking.writer.RunWriter`), so that the trial never waits for MLflow. What the run
holds comes from the Optuna trial alone (parameters, fold values, work seconds, state), so that a
run that was never logged (its worker was killed before its writer thread got to it) can be
re-created from the study: :func:`reconcile_trial_runs`, called by the worker that fails a dead
worker's trial, and on resume.

Importing this module does not import MLflow: the writer and the tracker are opened on first use.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from cartrisk.tracking import Tracker

__all__ = ["TrackedObjective", "reconcile_trial_runs", "trial_run"]

_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


def _ms(moment) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def trial_run(study_name: str, study_run_id: str, number: int, params: dict[str, Any], user_attrs: dict[str, Any],
              state: str, value: float | None, start_ms: int | None, end_ms: int | None,
              duration_seconds: float | None, status: str | None = None) -> dict[str, Any]:
    """The keyword arguments of :meth:`cartrisk.tracking.Tracker.record_run` for one trial."""
    inner = user_attrs.get("inner_cv", {})
    steps = [("fold_value", v, k) for k, v in enumerate(inner.get("fold_values", []))]
    for metric, values in inner.get("metrics", {}).items():
        steps += [(f"fold.{metric}", v, k) for k, v in enumerate(values)]
    metrics = {"duration_seconds": duration_seconds, "work_seconds": inner.get("work_seconds")}
    if value is not None:
        metrics["value"] = value
    tags = {"cartrisk.kind": "trial", "cartrisk.study": study_name, "cartrisk.trial": str(number), "state": state}
    if user_attrs.get("fail_reason"):
        tags["fail_reason"] = str(user_attrs["fail_reason"])[:5000]
    return {"name": f"trial {number}", "parent_run_id": study_run_id, "tags": tags, "params": params,
            "metrics": metrics, "step_metrics": steps, "status": status or _STATUS.get(state, "FAILED"),
            "start_ms": start_ms, "end_ms": end_ms}


def _from_frozen(study_name: str, study_run_id: str, t: FrozenTrial) -> dict[str, Any]:
    return trial_run(study_name, study_run_id, t.number, t.params, t.user_attrs, t.state.name, t.value,
                     _ms(t.datetime_start), _ms(t.datetime_complete),
                     t.duration.total_seconds() if t.duration is not None else None)


def reconcile_trial_runs(tracker: Tracker, study_name: str, study_run_id: str, trials: Sequence[FrozenTrial],
                         submit: Callable[..., None] | None = None) -> int:
    """Log the run of every finished trial of a study that has none on the tracking store; end runs left RUNNING.

    Returns the number of runs logged or ended. ``submit`` (default: :meth:`Tracker.record_run`) logs one run.
    """
    runs = tracker.client.search_runs([tracker.experiment_id], f"tags.`cartrisk.study` = '{study_name}' and "
                                      "tags.`cartrisk.kind` = 'trial'", max_results=50000)
    have = {r.data.tags.get("cartrisk.trial"): r for r in runs}
    submit = submit or tracker.record_run
    done = 0
    for t in trials:
        if not t.state.is_finished():
            continue
        run = have.get(str(t.number))
        if run is None:
            submit(**_from_frozen(study_name, study_run_id, t))
            done += 1
        elif run.info.status == "RUNNING":
            tracker.set_status(run.info.run_id, _STATUS.get(t.state.name, "FAILED"))
            done += 1
    return done


class TrackedObjective:
    """Wrap an objective so that each trial is one MLflow run nested under its study's run.

    The run is logged when the trial is over (see the module docstring): created with the trial's
    start time, its parameters, fold values, durations and the Optuna state as tag ``state``, and
    ended FINISHED (complete or pruned), FAILED (an error) or KILLED (interrupted, SIGTERM included;
    the writer is flushed before the interrupt goes on). :meth:`flush` waits for the runs handed
    over (called when a worker leaves a study). Picklable: a worker process opens its own MLflow
    client.
    """

    def __init__(self, objective: Callable[[optuna.Trial], float], tracking_uri: str, experiment: str,
                 study_name: str, study_run_id: str) -> None:
        self.objective = objective
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.study_name = study_name
        self.study_run_id = study_run_id
        self._writer = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_writer": None}

    @property
    def writer(self):
        if self._writer is None:
            from cartrisk.tracking.writer import RunWriter

            self._writer = RunWriter(self.tracking_uri, self.experiment)
        return self._writer

    def __call__(self, trial: optuna.Trial) -> float:
        start_ms, start = int(time.time() * 1000), time.perf_counter()
        try:
            value = self.objective(trial)
        except optuna.TrialPruned:
            self._record(trial, "PRUNED", None, start_ms, start)
            raise
        except (KeyboardInterrupt, Exception) as err:
            interrupted = isinstance(err, KeyboardInterrupt)
            self._record(trial, "FAIL", None, start_ms, start, "KILLED" if interrupted else "FAILED")
            if interrupted:
                with contextlib.suppress(Exception):
                    self.flush()
            raise
        self._record(trial, "COMPLETE", value, start_ms, start)
        return value

    def _record(self, trial: optuna.Trial, state: str, value: float | None, start_ms: int, start: float,
                status: str | None = None) -> None:
        self.writer.submit(**trial_run(self.study_name, self.study_run_id, trial.number, trial.params,
                                       trial.user_attrs, state, value, start_ms, int(time.time() * 1000),
                                       time.perf_counter() - start, status))

    def reconcile(self, trials: Sequence[FrozenTrial]) -> int:
        """After a dead worker's trial was failed: log the runs of the study's trials that have none (see
        :func:`reconcile_trial_runs`), the failed trial's included. Waits for this worker's own runs first."""
        self.flush()
        from cartrisk.tracking import Tracker

        return reconcile_trial_runs(Tracker(self.tracking_uri, self.experiment), self.study_name,
                                    self.study_run_id, [t for t in trials if t.state != TrialState.RUNNING])

    def flush(self) -> None:
        """Wait until the runs of the trials this process ran are logged."""
        if self._writer is not None:
            self._writer.flush()
