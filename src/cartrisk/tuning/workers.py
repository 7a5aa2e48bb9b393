"""Worker processes: local ones started by ``cartrisk tune``, and workers that join a study from any host.

Local workers
    :func:`run_workers` starts K processes on the same studies. On Linux they are forked: a worker
    inherits what its parent already imported and loaded (the data included), so it is ready for
    its first trial at once instead of paying a fresh interpreter's imports (about 2.5 s). The
    parent closes its database connections before forking, so that no connection crosses a fork.
    Elsewhere they are spawned (a fresh interpreter that imports only what trials need).

Exiting with the parent
    Every worker process exits when its parent dies, even by SIGKILL: on Linux the kernel sends it
    SIGTERM (``PR_SET_PDEATHSIG``), and everywhere a watchdog thread notices that the parent has
    changed. SIGTERM fails the running trial (it is replaced) and ends the process.

Joining workers
    ``cartrisk worker EXPERIMENT.toml --storage URL`` (:func:`join_study`) finds the studies that a
    running ``cartrisk tune`` of the same experiment created in a shared storage (PostgreSQL for
    several hosts), checks that its own data and settings give the fingerprint the studies recorded,
    and runs trials in them until each holds its count, logging each trial to the same MLflow run
    tree. A worker killed mid-trial leaves a trial whose heartbeat stops; another worker fails it
    and runs a replacement.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from cartrisk.exceptions import CartriskError, ConfigError
from cartrisk.tuning.studies import (
    FINGERPRINT_ATTR,
    StudyJob,
    open_storage,
    run_trials,
    sigterm_as_interrupt,
    storage_engine,
    study_lock,
)

__all__ = ["JoinResult", "exit_with_parent", "join_study", "run_workers", "start_method"]

#: Study user attributes a joining worker reads (written by :func:`cartrisk.tuning.run_study`).
GROUP_ATTR = "cartrisk.group"
INDEX_ATTR = "cartrisk.index"
TRIALS_ATTR = "cartrisk.n_trials"
DEADLINE_ATTR = "cartrisk.deadline"
EXPERIMENT_ATTR = "cartrisk.experiment"
_PR_SET_PDEATHSIG = 1


def start_method() -> str:
    """``fork`` on Linux (workers inherit the parent's imports and data), ``spawn`` elsewhere."""
    return "fork" if sys.platform.startswith("linux") else "spawn"


def exit_with_parent(parent_pid: int | None = None, *, poll_seconds: float = 1.0) -> None:
    """Make this process receive SIGTERM when its parent dies (SIGKILL included).

    On Linux ``prctl(PR_SET_PDEATHSIG, SIGTERM)``; everywhere, a daemon thread that sends SIGTERM to this
    process once ``os.getppid()`` is no longer ``parent_pid`` (the parent died and the process was
    re-parented). Call it first thing in the worker, with the pid the parent had before starting it.
    """
    parent_pid = os.getppid() if parent_pid is None else parent_pid
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="cartrisk-parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # died before the watch started
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(url: str, make_jobs: Callable[[], list[StudyJob]], parent_pid: int, verbosity: int,
                 heartbeat_seconds: int | None) -> None:
    """Entry point of a local worker process: open the storage, build the jobs, fill each study."""
    from threadpoolctl import threadpool_limits

    with sigterm_as_interrupt():
        exit_with_parent(parent_pid)
        optuna.logging.set_verbosity(verbosity)
        with threadpool_limits(limits=1):
            storage = open_storage(url, heartbeat_seconds=heartbeat_seconds)
            for job in make_jobs():
                run_trials(storage, job, lock=study_lock(url, job.name, storage))


def release_connections(*storages: optuna.storages.BaseStorage) -> None:
    """Close the pooled database connections of these storages (before a fork: none may cross it)."""
    for storage in storages:
        engine = storage_engine(storage)
        if engine is not None:
            engine.dispose()


def run_workers(url: str, make_jobs: Callable[[], list[StudyJob]], n_workers: int, *,
                poll: Callable[[], None] | None = None, poll_seconds: float = 0.5,
                heartbeat_seconds: int | None = None, before_start: Callable[[], None] | None = None) -> None:
    """Run the jobs ``make_jobs()`` builds (in order) with ``n_workers`` local processes.

    Each worker opens the storage at ``url`` itself and calls ``make_jobs``: forked workers call it on
    what the parent holds (no pickling); spawned ones receive it pickled (a small callable: the data are
    reloaded in the worker). The calling process waits, calling ``poll()`` every ``poll_seconds``
    (progress). If it is interrupted (Ctrl-C, or SIGTERM under :func:`sigterm_as_interrupt`) it terminates
    the workers, whose SIGTERM handlers close their trials as failed, and waits for them; if it is killed,
    the workers exit by themselves (:func:`exit_with_parent`).

    Parameters
    ----------
    before_start : callable, optional
        Called right before the processes start (the caller closes its database connections there).

    Raises
    ------
    CartriskError
        When a worker exits with an error (its traceback is on stderr).
    """
    ctx = multiprocessing.get_context(start_method())
    args = (url, make_jobs, os.getpid(), optuna.logging.get_verbosity(), heartbeat_seconds)
    procs = [ctx.Process(target=_worker_main, args=args, name=f"cartrisk-tune-{i + 1}") for i in range(n_workers)]
    try:
        if before_start is not None:
            before_start()
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=poll_seconds / len(procs))
            if poll is not None:
                poll()
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=60)
        raise
    bad = [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
    if bad:
        raise CartriskError("tuning worker(s) failed: " + ", ".join(f"{n} (exit code {c})" for n, c in bad)
                            + "; their error is printed above (stderr)")


@dataclass
class JoinResult:
    """What :func:`join_study` did: the studies it worked on and the trials it finished in each."""

    group: str
    studies: list[str]
    finished: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.finished.values())


class _NotReady(ConfigError):
    """The experiment's studies are not (all) in the storage yet: a worker started with ``--wait`` waits for them."""


def find_group(storage: optuna.storages.BaseStorage, fingerprint: str, experiment: str, where: str,
               n_studies: int | None = None) -> tuple[str, list[Any]]:
    """The newest group of studies of ``experiment`` in ``storage`` with this fingerprint that still needs trials.

    Returns the group name and its studies (``FrozenStudy``), in the order of the run.

    Raises
    ------
    ConfigError
        No study of the experiment, or only studies made from other data or settings.
    """
    studies = [s for s in storage.get_all_studies() if s.user_attrs.get(EXPERIMENT_ATTR) == experiment
               and GROUP_ATTR in s.user_attrs]
    if not studies:
        raise _NotReady(f"no study of experiment {experiment!r} in {where}: start it with `cartrisk tune` (with "
                          "the same --storage) first, or give --wait SECONDS to wait for it")
    mine = [s for s in studies if s.user_attrs.get(FINGERPRINT_ATTR) == fingerprint]
    if not mine:
        newest = max(studies, key=lambda s: s._study_id)
        raise ConfigError(f"study {newest.study_name!r} in {where} was made from other data or settings than this "
                          "worker's (data file SHA-256, features, search spaces, objective, folds or seed differ): "
                          "start the worker with the same experiment file and an identical copy of its data file")
    groups: dict[str, list[Any]] = {}
    for s in sorted(mine, key=lambda s: s._study_id):
        groups.setdefault(s.user_attrs[GROUP_ATTR], []).append(s)
    if n_studies is not None:  # a run still marking its studies is not ready yet
        groups = {g: found for g, found in groups.items() if len(found) == n_studies}
        if not groups:
            raise _NotReady(f"the studies of experiment {experiment!r} in {where} are still being created: give "
                              "--wait SECONDS to wait for them")
    group = max(groups, key=lambda g: max(s._study_id for s in groups[g]))
    return group, sorted(groups[group], key=lambda s: s.user_attrs.get(INDEX_ATTR, 0))


def join_study(url: str, fingerprint: str, experiment: str, make_jobs: Callable[[list[Any]], list[StudyJob]], *,
               n_studies: int | None = None, max_trials: int | None = None, heartbeat_seconds: int | None = None,
               wait_seconds: float = 0.0, on_trial: Callable[[str, Any], None] | None = None,
               on_stale: Callable[[str, Any], None] | None = None,
               on_start: Callable[[str, Any], None] | None = None) -> JoinResult:
    """Join the running studies of ``experiment`` in the storage at ``url`` (see the module docstring).

    Parameters
    ----------
    url : str
        Storage URL (PostgreSQL for workers on several hosts).
    fingerprint : str
        :func:`cartrisk.tuning.fingerprint` of this worker's experiment and data.
    experiment : str
        The experiment's name (studies record it).
    make_jobs : callable(list of FrozenStudy) -> list of StudyJob
        Builds the jobs of the group's studies (objectives on this worker's data).
    n_studies : int, optional
        Studies of one run (outer folds + 1): a group with fewer is still being created.
    max_trials : int, optional
        Finish at most this many trials in all (default: until every study holds its count).
    wait_seconds : float, default 0
        Wait up to this long for the studies to appear (a worker started with the parent).
    on_trial, on_stale, on_start : callable(study name, trial), optional
        Called after each trial this worker finished, with each trial of a dead worker it failed, and with each
        trial it starts.
    """
    storage = open_storage(url, heartbeat_seconds=heartbeat_seconds)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            group, studies = find_group(storage, fingerprint, experiment, url, n_studies)
            break
        except _NotReady:  # may appear while we wait; studies of other data or settings never will: raised at once
            if time.monotonic() >= deadline:
                release_connections(storage)
                raise
            time.sleep(1.0)
        except ConfigError:
            release_connections(storage)
            raise
    finished: dict[str, int] = {}
    left = max_trials
    try:
        for job in make_jobs(studies):
            if left is not None and left <= 0:
                break
            done = run_trials(storage, job, lock=study_lock(url, job.name, storage), max_trials=left,
                              on_trial=None if on_trial is None else lambda t, n=job.name: on_trial(n, t),
                              on_stale=None if on_stale is None else lambda t, n=job.name: on_stale(n, t),
                              on_start=None if on_start is None else lambda t, n=job.name: on_start(n, t))
            finished[job.name] = done
            left = None if left is None else left - done
    finally:
        release_connections(storage)
    return JoinResult(group, [s.study_name for s in studies], finished)
