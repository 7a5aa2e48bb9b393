"""Where studies live and how their trials run: storage, resume, an exact trial count, stale trials.

Storage
    ``sqlite:///PATH`` (the default, ``mlruns/optuna.db``), ``postgresql://USER@HOST:PORT/DB`` (the
    multi-host choice; the driver is the optional extra ``pip install 'cartrisk[postgres]'``), any other
    SQLAlchemy URL Optuna's RDB storage accepts, or ``journal:PATH``: Optuna's journal file
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
    study's finished (complete or pruned) and running trials under a lock held in the storage
    itself (:func:`study_lock`: a PostgreSQL advisory lock, a file lock beside a SQLite database or a
    journal file), and asks only if that count is below the target, so any number of workers, on
    any number of hosts, together finish exactly the asked number: none is lost, none runs twice.
    Failed trials do not count and are replaced. A resumed study counts what is already finished
    and runs only the rest.

Stale trials
    On database storages every running trial records a heartbeat every ``heartbeat_seconds``
    (default 10) from a thread of its worker. Before asking, a worker fails the trials whose
    heartbeat is older than the grace period (three heartbeats): the trials of a worker that was
    killed (SIGKILL, a lost host) are failed and replaced, without waiting for a ``--resume``.

Seeds
    Each trial's sampler is seeded from the study's seed and the trial's index among the
    counted trials. A study run in one process therefore draws the same parameters whether it
    ran straight through or was killed and resumed. With several workers the order in which
    trials finish varies, and so do the later TPE draws.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from cartrisk.exceptions import CartriskError, ConfigError
from cartrisk.paths import file_lock
from cartrisk.tracking.store import SQLITE_BUSY_SECONDS, journal_path, sqlite_path, storage_file, tune_sqlite_engine
from cartrisk.tuning.draws import ask
from cartrisk.tuning.search import make_pruner, make_sampler

__all__ = ["RUN_SUFFIX", "StudyJob", "Terminated", "check_resumable", "default_storage", "list_studies",
           "open_storage", "prepare_studies", "run_base", "run_trials", "sigterm_as_interrupt", "storage_exists",
           "study_lock", "wait_for_running"]

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Errors of a parameter combination (a fit that fails numerically): the trial FAILs and the study goes on.
TRIAL_ERRORS = (ValueError, ArithmeticError)
FINGERPRINT_ATTR = "cartrisk.fingerprint"
#: A new run of an experiment whose studies exist gets studies ``NAME.run2.outer1`` ... (see :func:`run_base`).
RUN_SUFFIX = ".run"
#: Seconds between two heartbeats of a running trial; a trial is stale after GRACE_HEARTBEATS missed ones.
HEARTBEAT_SECONDS = 10
GRACE_HEARTBEATS = 3
_CREATION_KEY = 0x6361727472697368  # an advisory lock key of cartrisk's own ("cartrish")


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


def _driver_url(url: str) -> str:
    """``postgresql://`` means SQLAlchemy's psycopg2 dialect; cartrisk's extra installs psycopg 3."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError(f"storage {_safe(url)}: the PostgreSQL driver is not installed; install it with "
                              "pip install 'cartrisk[postgres]' (psycopg)") from None
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        tail = f"{user}:***@" + tail.split("@", 1)[1]
    return head + sep + tail


def open_storage(url: str, *, heartbeat_seconds: int | None = None) -> optuna.storages.BaseStorage:
    """Open (and create) an Optuna storage from a URL or ``journal:PATH``; see the module docstring.

    Parameters
    ----------
    url : str
    heartbeat_seconds : int, optional
        Heartbeat interval of running trials on database storages (the grace period is three of them); default
        :data:`HEARTBEAT_SECONDS`. Every caller that takes the option passes it on as it is, None included.
    """
    if url.startswith("journal:"):
        path = journal_path(url)
        if path is None:
            raise ConfigError(f"storage {url!r}: a journal storage needs a file path, as in journal:mlruns/study.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ConfigError(f"storage {url!r} is neither a database URL (sqlite:///optuna.db) nor journal:PATH")
    import sqlalchemy

    interval = HEARTBEAT_SECONDS if heartbeat_seconds is None else int(heartbeat_seconds)
    beats = {"heartbeat_interval": interval, "grace_period": GRACE_HEARTBEATS * interval}
    database = sqlite_path(url)
    sqlite = database is not None
    if sqlite:
        database.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
    else:
        engine_kwargs = {"pool_pre_ping": True} if not url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings(), _creation_lock(url):
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            rdb = RDBStorage(_driver_url(url), engine_kwargs=engine_kwargs, **beats)
        if sqlite:
            tune_sqlite_engine(rdb.engine)
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ArgumentError, ImportError) as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise ConfigError(f"storage {_safe(url)}: cannot open it ({reason}); check the URL, that the database "
                          "server runs and accepts this user, and that the database exists") from None
    return optuna.storages.get_storage(rdb)  # adds Optuna's cache in front of the database


@contextlib.contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """One process at a time creates Optuna's tables (several workers may start together on a new database: without
    it, all but one fail with ``duplicate key ... pg_type_typname_nsp_index`` on PostgreSQL, ``table ... already
    exists`` on SQLite). PostgreSQL: an advisory lock; a SQLite file: an ``flock`` beside it."""
    database = sqlite_path(url)
    if database is not None:
        with file_lock(_beside(database, ".cartrisk-create-lock")):
            yield
        return
    if not url.startswith(("postgresql", "postgres://")):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(_driver_url(url), poolclass=sqlalchemy.pool.NullPool)
    try:
        with _advisory_lock(engine, _CREATION_KEY):
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def _advisory_lock(engine, key: int) -> Iterator[None]:
    """A PostgreSQL session-level advisory lock: released by the server if this process dies while holding it."""
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
            conn.commit()


def storage_engine(storage: optuna.storages.BaseStorage):
    """The SQLAlchemy engine behind a (cached) RDB storage, or None for a journal."""
    backend = getattr(storage, "_backend", storage)
    return getattr(backend, "engine", None)


class StudyLock:
    """A lock on one study shared by every process that opens the same storage (see :func:`study_lock`)."""

    def __init__(self, url: str, name: str, storage: optuna.storages.BaseStorage | None = None) -> None:
        self.url, self.name, self.storage = url, name, storage
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "storage": None}

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        url, path = self.url, storage_file(self.url)
        if path is not None:  # a SQLite database or a journal file: a file lock beside it
            with file_lock(_beside(path, ".cartrisk-lock")):
                yield
        elif url.startswith(("postgresql", "postgres://")):
            engine = storage_engine(self.storage) if self.storage is not None else None
            if engine is None:
                import sqlalchemy

                engine = sqlalchemy.create_engine(_driver_url(url))
            with _advisory_lock(engine, self.key):
                yield
        else:  # in memory, or a database without a lock cartrisk knows: one process only
            yield

    def __enter__(self) -> None:
        self._context = self._held()
        self._context.__enter__()

    def __exit__(self, *exc) -> None:
        self._context.__exit__(*exc)


def study_lock(url: str, name: str, storage: optuna.storages.BaseStorage | None = None) -> StudyLock:
    """The lock under which workers count a study's trials and ask for the next one.

    PostgreSQL: an advisory lock on a connection of ``storage``'s engine (released by the server when the
    process dies); SQLite and journal files: an ``flock`` on ``PATH.cartrisk-lock`` beside them (one host).
    """
    return StudyLock(url, name, storage)


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


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def storage_exists(url: str) -> bool:
    """False for a ``sqlite:///`` or ``journal:`` file that does not exist yet (any other storage: True)."""
    path = storage_file(url)
    return path is None or path.is_file()


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
    draw : callable(trial), optional
        The objective's own ``suggest_*`` calls (e.g. :meth:`cartrisk.tuning.search.SearchSpace.suggest`). With it,
        and an independent sampler (TPE, random), a trial's parameters are drawn before the trial is created and
        written with it in one transaction, instead of one write (and one read of the study) per parameter; the
        objective's own calls then read them back. The draws are the sampler's, in the same order.
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
    draw: Callable[[Any], Any] | None = None

    @property
    def deadline(self) -> float | None:
        if self.budget is None:
            return None
        start, end, share = self.budget
        return start + share * (end - start)


def trial_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def fail_stale(study: optuna.Study) -> list[FrozenTrial]:
    """Fail the study's running trials whose heartbeat is older than the grace period; return them (failed).

    What :func:`optuna.storages.fail_stale_trials` does, with a ``fail_reason`` attribute on each trial. A no-op
    on storages without heartbeats (journal files).
    """
    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return []
    failed = []
    for trial_id in storage._get_stale_trial_ids(study._study_id):
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", "its worker stopped sending heartbeats (killed, or "
                                        "its host lost); failed and replaced")
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(storage.get_trial(trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
            continue
    return failed


def _beats(storage: optuna.storages.BaseStorage) -> bool:
    return isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)


def _stale_check_seconds(storage: optuna.storages.BaseStorage) -> float:
    """How often a worker looks for stale trials before asking: once per heartbeat interval (a trial is stale only
    after three missed heartbeats, so checking before every trial finds nothing more, a query per trial later)."""
    return float(storage.get_heartbeat_interval()) if _beats(storage) else 0.0


@contextlib.contextmanager
def _heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat every interval until the block ends (database storages; the first one is
    recorded right after the trial is asked for, under the study lock)."""
    if not _beats(storage):
        yield
        return
    interval = storage.get_heartbeat_interval()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # a missed beat only risks the trial being failed later
                storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name=f"cartrisk-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _hold_signals():
    """Hold SIGTERM and SIGINT back (main thread, POSIX); :func:`_release_signals` delivers them."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def _release_signals(previous) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def run_trials(storage: optuna.storages.BaseStorage, job: StudyJob, *, lock=None,
               on_trial: Callable[[FrozenTrial], None] | None = None,
               on_stale: Callable[[FrozenTrial], None] | None = None, max_trials: int | None = None,
               on_start: Callable[[optuna.Trial], None] | None = None) -> int:
    """Run trials of ``job`` until the study holds ``job.n_trials`` finished ones (or its time is up).

    Parameters
    ----------
    storage : BaseStorage
    job : StudyJob
    lock : context manager, optional
        Shared by every worker of the study (:func:`study_lock`): counting and asking happen under it.
    on_trial : callable(FrozenTrial), optional
        Called after each trial this call ran.
    on_stale : callable(FrozenTrial), optional
        Called with each trial of a dead worker that this call failed (it is then replaced).
    on_start : callable(Trial), optional
        Called with each trial this call asked for, before it runs.
    max_trials : int, optional
        Finish at most this many trials in this call (a worker's share), whatever the study still needs.

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
    flush = getattr(job.objective, "flush", None)  # a tracked objective logs from a thread: wait for it at the end
    try:
        done = _run_trials(storage, job, lock, on_trial, on_stale, max_trials, on_start)
    except BaseException:
        if flush is not None:
            with contextlib.suppress(Exception):
                flush()
        raise
    if flush is not None:
        flush()
    return done


def _run_trials(storage, job, lock, on_trial, on_stale, max_trials, on_start) -> int:
    study = optuna.load_study(study_name=job.name, storage=storage,
                              pruner=make_pruner(job.pruner, job.startup_trials, job.warmup_folds))
    done = failed = 0
    checked = -float("inf")
    while max_trials is None or done < max_trials:
        if job.deadline is not None and time.time() >= job.deadline:
            return done
        with lock:
            stale = []
            if time.monotonic() - checked >= _stale_check_seconds(storage):  # a trial turns stale only after the
                stale, checked = fail_stale(study), time.monotonic()  # grace period: a check per heartbeat suffices
            trials = study.get_trials(deepcopy=False)
            state = counts(trials)
            index = state["COMPLETE"] + state["PRUNED"] + state["RUNNING"]
            trial = None
            if index < job.n_trials:
                study.sampler = make_sampler(job.sampler, trial_seed(job.seed, index), job.startup_trials)
                held = _hold_signals()  # a SIGTERM now would leave the new trial running: it waits for the try below
                try:
                    trial = ask(study, job.draw if job.sampler in ("tpe", "random") else None, trials)
                    if _beats(storage):  # at once: a trial without any heartbeat is never found stale
                        storage.record_heartbeat(trial._trial_id)
                except BaseException:
                    _release_signals(held)
                    raise
        if trial is None:
            if stale:
                _after_stale(job, study, stale, on_stale)
            return done
        try:
            _release_signals(held)
            if stale:
                _after_stale(job, study, stale, on_stale)
            if on_start is not None:
                on_start(trial)
            with _heartbeat(storage, trial._trial_id):
                value = job.objective(trial)
        except optuna.TrialPruned:
            frozen = study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:  # failed elsewhere while it ran (its heartbeat went
            continue                                         # stale, or --resume): replaced, its result dropped
        except TRIAL_ERRORS as err:
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
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
            frozen = study.tell(trial, value, skip_if_finished=True)
        if frozen.state == TrialState.FAIL:  # a value Optuna refuses (NaN), or the trial was failed elsewhere while
            failed += 1                      # it ran (stale, or on --resume) and has been replaced: not counted
            continue
        done += 1
        if on_trial is not None:
            on_trial(frozen)
    return done


def _after_stale(job: StudyJob, study: optuna.Study, stale: list[FrozenTrial],
                 on_stale: Callable[[FrozenTrial], None] | None) -> None:
    """A dead worker's trials were failed: tell the caller, and let a tracked objective log the runs it lost."""
    for t in stale if on_stale is not None else ():
        on_stale(t)
    reconcile = getattr(job.objective, "reconcile", None)
    if reconcile is not None:
        reconcile(study.get_trials(deepcopy=False))


def wait_for_running(study: optuna.Study, job: StudyJob | None = None, *, poll: Callable[[], None] | None = None,
                     poll_seconds: float = 0.5) -> None:
    """Wait until no trial of ``study`` is running (other workers finish theirs, or theirs go stale and fail)."""
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        stale = fail_stale(study)
        if stale and job is not None:
            _after_stale(job, study, stale, None)
        if poll is not None:
            poll()
        time.sleep(poll_seconds)


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
