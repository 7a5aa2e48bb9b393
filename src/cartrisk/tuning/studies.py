"""Where studies live and how their trials run: storage, resume, an exact trial count, worker processes.

Storage
    ``sqlite:///PATH`` (the default, ``mlruns/optuna.db``), any other SQLAlchemy URL Optuna's
    RDB storage accepts (PostgreSQL, MySQL), or ``journal:PATH``: Optuna's journal file
    (``JournalStorage(JournalFileBackend(PATH))``, an append-only log under a file lock). SQLite
    files are opened in WAL mode with ``synchronous=NORMAL`` and a 120-second busy timeout: readers
    no longer block the writer, a commit costs no fsync of the whole database, and a writer that
    meets a lock waits instead of failing with "database is locked". Two to four local workers
    then share one SQLite file; the journal file is the lighter choice for more, and is what the
    tests use with two processes.

Runs
    Running an experiment again never collides with its last run: its studies are ``NAME.outerK`` and
    ``NAME.final`` the first time, then ``NAME.run2.outerK``... (:func:`run_base`); a run that finished
    no trial (it failed on its first one) is replaced instead. ``--resume`` continues the latest run,
    and is an error when there is none (:func:`check_resumable` says so before anything is created).

Trial count
    Trials are run with Optuna's ask-and-tell interface. Before asking, a worker counts the
    study's finished (complete or pruned) and running trials under a lock shared by the local
    workers, and asks only if that count is below the target, so K workers together finish
    exactly the asked number: none is lost, none runs twice. Failed trials do not count and are
    replaced. A resumed study counts what is already finished and runs only the rest.

Seeds
    Each trial's sampler is seeded from the study's seed and the trial's index among the
    counted trials. A study run in one process therefore draws the same parameters whether it
    ran straight through or was killed and resumed. With several workers the order in which
    trials finish varies, and so do the later TPE draws.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from cartrisk.exceptions import CartriskError, ConfigError
from cartrisk.tuning.search import make_pruner, make_sampler

__all__ = ["RUN_SUFFIX", "StudyJob", "Terminated", "check_resumable", "default_storage", "list_studies",
           "open_storage", "prepare_studies", "run_base", "run_trials", "run_workers", "sigterm_as_interrupt",
           "storage_exists"]

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Errors of a parameter combination (a fit that fails numerically): the trial FAILs and the study goes on.
TRIAL_ERRORS = (ValueError, ArithmeticError)
FINGERPRINT_ATTR = "cartrisk.fingerprint"
#: A new run of an experiment whose studies exist gets studies ``NAME.run2.outer1`` ... (see :func:`run_base`).
RUN_SUFFIX = ".run"
SQLITE_TIMEOUT_SECONDS = 120


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler, so that a terminated process cleans up as after Ctrl-C."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def default_storage(tracking_uri: str) -> str:
    """``optuna.db`` beside a SQLite tracking store; ``sqlite:///mlruns/optuna.db`` otherwise."""
    if tracking_uri.startswith("sqlite:///") and tracking_uri != "sqlite:///:memory:":
        return f"sqlite:///{Path(tracking_uri.removeprefix('sqlite:///')).parent / 'optuna.db'}"
    return "sqlite:///mlruns/optuna.db"


def _sqlite_tuning(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open (and create) an Optuna storage from a URL or ``journal:PATH``; see the module docstring."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:").removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ConfigError(f"storage {url!r} is neither a database URL (sqlite:///optuna.db) nor journal:PATH")
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        import sqlalchemy

        rdb = RDBStorage(url, engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_SECONDS}})
        with rdb.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")  # persistent: stored in the database file
        sqlalchemy.event.listen(rdb.engine, "connect", _sqlite_tuning)
        rdb.engine.dispose()  # later connections are made with the pragmas above
    else:
        rdb = RDBStorage(url)
    return optuna.storages.get_storage(rdb)  # adds Optuna's cache in front of the database


def counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by state name (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``)."""
    out = {s.name: 0 for s in TrialState}
    for t in trials:
        out[t.state.name] += 1
    return out


def prepare_studies(storage: optuna.storages.BaseStorage, names: list[str], direction: str, *, resume: bool,
                    fingerprint: str, where: str) -> dict[str, list[int]]:
    """Create the studies, or check and reopen them on ``resume``.

    On resume, trials left RUNNING by a killed process are marked FAIL (they will be replaced).
    Resuming assumes no other process is working on these studies at the same time.

    Returns
    -------
    dict
        Study name -> numbers of the trials that were found RUNNING and marked FAIL.
    """
    existing = set(optuna.get_all_study_names(storage))
    found = [n for n in names if n in existing]
    if found and not resume:
        raise ConfigError(f"study {found[0]!r} already exists in {where}; pass --resume to continue it, or use "
                          "another study_name or storage")
    stale: dict[str, list[int]] = {}
    for name in names:
        if name not in existing:
            study = optuna.create_study(storage=storage, study_name=name, direction=direction)
            study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
            stale[name] = []
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        if study.user_attrs.get(FINGERPRINT_ATTR) != fingerprint:
            raise ConfigError(f"study {name!r} in {where} was run on other data or settings (data, features, search "
                              "spaces, objective, folds or seed differ); use another study_name or storage")
        study_id = storage.get_study_id_from_name(name)
        stale[name] = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(trial_id, "fail_reason", "left RUNNING by a stopped process; found on resume")
            study.tell(t.number, state=TrialState.FAIL)
            stale[name].append(t.number)
    return stale


def _runs_of(existing: set[str], base: str) -> dict[int, list[str]]:
    """Run number -> study names of the runs of ``base`` in a storage: ``BASE.outerK``/``BASE.final`` is run 1,
    ``BASE.runN.outerK``/``BASE.runN.final`` run N."""
    pattern = re.compile(rf"^{re.escape(base)}(?:{re.escape(RUN_SUFFIX)}(\d+))?\.(?:outer\d+|final)$")
    runs: dict[int, list[str]] = {}
    for name in existing:
        match = pattern.match(name)
        if match:
            runs.setdefault(int(match.group(1) or 1), []).append(name)
    return runs


def _run_base(base: str, number: int) -> str:
    return base if number == 1 else f"{base}{RUN_SUFFIX}{number}"


def storage_exists(url: str) -> bool:
    """False for a ``sqlite:///`` or ``journal:`` file that does not exist yet (any other storage: True)."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///").split("?", 1)[0]).is_file()
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:").removeprefix("//")).is_file()
    return True


def check_resumable(url: str, base: str) -> None:
    """Refuse ``--resume`` when the storage holds no run of the studies ``base`` (nothing is created)."""
    runs = _runs_of(set(optuna.get_all_study_names(open_storage(url))), base) if storage_exists(url) else {}
    if not runs:
        raise ConfigError(f"--resume: there is no study '{base}' in {url} to continue; run the command without "
                          "--resume to start it (`cartrisk studies` lists the studies of a storage)")


def run_base(storage: optuna.storages.BaseStorage, base: str, *, resume: bool, where: str) -> str:
    """The base name of this run's studies, so that running an experiment again never collides with its last run.

    - ``resume``: the latest run of ``base`` (an error if there is none);
    - no run of ``base`` yet: ``base`` itself;
    - the latest run finished no trial (it failed, e.g. on an error in the experiment file): its studies are
      deleted and its name is used again;
    - otherwise a new run: ``base.run2``, ``base.run3``...
    """
    runs = _runs_of(set(optuna.get_all_study_names(storage)), base)
    if not runs:
        if resume:
            raise ConfigError(f"--resume: there is no study '{base}' in {where} to continue; run the command without "
                              "--resume to start it (`cartrisk studies` lists the studies of a storage)")
        return base
    latest = max(runs)
    if resume:
        return _run_base(base, latest)
    studies = [optuna.load_study(study_name=name, storage=storage) for name in runs[latest]]
    if not any(s.get_trials(deepcopy=False, states=(*COUNTED, TrialState.RUNNING)) for s in studies):
        for name in runs[latest]:
            optuna.delete_study(study_name=name, storage=storage)
        return _run_base(base, latest)
    return _run_base(base, latest + 1)


@dataclass
class StudyJob:
    """One study to fill with trials.

    Attributes
    ----------
    name : str
    objective : callable(trial) -> float
        The objective (possibly wrapped with tracking); must pickle for worker processes.
    n_trials : int
        Target number of finished (complete or pruned) trials.
    seed : int
        Base seed of the study's samplers.
    sampler, startup_trials, pruner, warmup_folds
        As in :class:`cartrisk.config.TuningConfig`.
    budget : tuple of (start, end, share) or None
        Wall-clock times (``time.time()``) between which the run's time budget is shared, and this study's
        share: it asks for no new trial after ``start + share * (end - start)``.
    """

    name: str
    objective: Callable[[optuna.Trial], float]
    n_trials: int
    seed: int
    sampler: str = "tpe"
    startup_trials: int = 10
    pruner: str = "median"
    warmup_folds: int = 1
    budget: tuple[float, float, float] | None = None

    @property
    def deadline(self) -> float | None:
        if self.budget is None:
            return None
        start, end, share = self.budget
        return start + share * (end - start)


def trial_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def run_trials(storage: optuna.storages.BaseStorage, job: StudyJob, *, lock=None,
               on_trial: Callable[[FrozenTrial], None] | None = None) -> int:
    """Run trials of ``job`` until the study holds ``job.n_trials`` finished ones (or its time is up).

    Parameters
    ----------
    storage : BaseStorage
    job : StudyJob
    lock : multiprocessing lock, optional
        Shared by the local workers of the same study: counting and asking happen under it.
    on_trial : callable(FrozenTrial), optional
        Called after each trial this call ran.

    Returns
    -------
    int
        Trials this call finished (complete or pruned).

    Raises
    ------
    CartriskError
        When more trials failed in this call than ``job.n_trials``; the last error is chained.
    """
    lock = lock if lock is not None else contextlib.nullcontext()
    study = optuna.load_study(study_name=job.name, storage=storage,
                              pruner=make_pruner(job.pruner, job.startup_trials, job.warmup_folds))
    done = failed = 0
    while True:
        if job.deadline is not None and time.time() >= job.deadline:
            return done
        with lock:
            state = counts(study.get_trials(deepcopy=False))
            index = state["COMPLETE"] + state["PRUNED"] + state["RUNNING"]
            if index >= job.n_trials:
                return done
            study.sampler = make_sampler(job.sampler, trial_seed(job.seed, index), job.startup_trials)
            trial = study.ask()
        try:
            value = job.objective(trial)
        except optuna.TrialPruned:
            frozen = study.tell(trial, state=TrialState.PRUNED)
        except TRIAL_ERRORS as err:
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
            study.tell(trial, state=TrialState.FAIL)
            failed += 1
            if failed > job.n_trials:
                raise CartriskError(f"study {job.name}: {failed} trials failed, more than the {job.n_trials} "
                                    f"asked; last error: {err}. Fix the experiment's search space or parameters"
                                    ) from err
            continue
        except BaseException as err:
            with contextlib.suppress(Exception):
                trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
                study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            frozen = study.tell(trial, value)
        done += 1
        if on_trial is not None:
            on_trial(frozen)


def _worker_main(url: str, make_jobs: Callable[[], list[StudyJob]], lock, verbosity: int) -> None:
    """Entry point of a worker process: open the storage, build the jobs (loading the data), fill each study."""
    from threadpoolctl import threadpool_limits

    optuna.logging.set_verbosity(verbosity)
    with sigterm_as_interrupt(), threadpool_limits(limits=1):
        storage = open_storage(url)
        for job in make_jobs():
            run_trials(storage, job, lock=lock)


def run_workers(url: str, make_jobs: Callable[[], list[StudyJob]], n_workers: int, *,
                poll: Callable[[], None] | None = None, poll_seconds: float = 0.5) -> None:
    """Run the jobs ``make_jobs()`` builds (in order) with ``n_workers`` spawned processes.

    Each worker opens the storage at ``url`` itself and calls ``make_jobs`` (a small picklable
    callable: the data are loaded in the worker, not sent through the pipe). The calling process
    waits, calling ``poll()`` every ``poll_seconds`` (progress). If it is interrupted (Ctrl-C, or
    SIGTERM under :func:`sigterm_as_interrupt`) it terminates the workers, whose SIGTERM handlers
    close their trials as failed, and waits for them.

    Raises
    ------
    CartriskError
        When a worker exits with an error (its traceback is on stderr).
    """
    ctx = multiprocessing.get_context("spawn")
    lock = ctx.Lock()
    procs = [ctx.Process(target=_worker_main, args=(url, make_jobs, lock, optuna.logging.get_verbosity()),
                         name=f"cartrisk-tune-{i + 1}") for i in range(n_workers)]
    try:
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


def list_studies(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """Every study in ``storage``: name, direction, best value, trials by state, start time."""
    rows = []
    for s in optuna.study.get_all_study_summaries(storage, include_best_trial=True):
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        c = counts(study.get_trials(deepcopy=False))
        rows.append({"study": s.study_name, "direction": s.direction.name.lower(),
                     "best_value": s.best_trial.value if s.best_trial is not None else float("nan"),
                     "complete": c["COMPLETE"], "pruned": c["PRUNED"], "failed": c["FAIL"], "running": c["RUNNING"],
                     "started": str(s.datetime_start)[:19] if s.datetime_start else ""})
    return rows
