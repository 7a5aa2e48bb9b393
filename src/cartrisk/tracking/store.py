"""Where runs and studies are stored: URIs checked before any work, and SQLite stores created once, under a lock.

MLflow creates its SQLite store on the first connection (tables, then a chain of schema migrations). Two
commands started together in a fresh folder both see an empty database and both migrate it, and one of them
fails (``table experiments already exists``, ``duplicate column name``, ``Online migration expected to match
one row``); a process killed half-way leaves a store that every later command refuses. :func:`open_client`
serialises the first connection with a file lock beside the database (``mlflow.db.lock``) and checks the store
it got: a half-made store that holds no run is made again from scratch; one that holds runs is refused with
the fix (``mlflow db upgrade``), never silently rewritten.

The checks (:func:`check_tracking_uri`, :func:`check_storage_url`) only read the URI and the file system: a
command runs them before it writes anything, so a mistyped URI ends in exit code 2 with nothing created.
MLflow is imported only inside the functions that connect.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any

from cartrisk.exceptions import ConfigError
from cartrisk.paths import file_lock, writable_folder

__all__ = ["LOCK_TIMEOUT_SECONDS", "SQLITE_BUSY_SECONDS", "check_storage_url", "check_tracking_uri",
           "create_experiment", "creation_lock", "is_run_id", "journal_path", "open_client", "require_store",
           "sqlite_path", "storage_file", "tune_sqlite_engine"]

#: How long a command waits for another one that is creating the same store.
LOCK_TIMEOUT_SECONDS = 600
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
_SERVERS = ("http", "https", "databricks")


_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
#: How long a SQLite connection waits for another process's write lock.
SQLITE_BUSY_SECONDS = 120


def _sqlite_connection_pragmas(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_SECONDS * 1000}")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def tune_sqlite_engine(engine) -> None:
    """Put a SQLite database (an MLflow store or an Optuna storage) in WAL mode with ``synchronous=NORMAL`` and a
    busy timeout on every new connection.

    In rollback-journal mode each commit costs an fsync of the database and its journal (about 0.8 ms); in WAL
    mode a commit appends to the log (about 0.03 ms), readers no longer block the writer, and
    ``synchronous=NORMAL`` is still safe against a crashed process. ``journal_mode`` is stored in the file; the
    other pragmas are set on each new connection, so the pooled connections are closed here.
    """
    import sqlalchemy

    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode = WAL")
    sqlalchemy.event.listen(engine, "connect", _sqlite_connection_pragmas)
    engine.dispose()


def is_run_id(text: str) -> bool:
    """Whether ``text`` has the form of an MLflow run id (32 lower-case hex digits)."""
    return bool(_RUN_ID.match(str(text)))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (None for any other URI, or an in-memory database)."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return None
    raw = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(raw) if raw else None


def journal_path(url: str) -> Path | None:
    """The file of a ``journal:PATH`` (or ``journal://PATH``) Optuna storage (None for any other URL)."""
    if not url.startswith("journal:"):
        return None
    raw = url.removeprefix("journal:").removeprefix("//")
    return Path(raw) if raw else None


def storage_file(url: str) -> Path | None:
    """The local file of a storage or tracking URL (SQLite database or journal), None where there is none."""
    return sqlite_path(url) or journal_path(url)


def _check_file_target(path: Path, where: str, what: str) -> None:
    if path.exists() and not path.is_file():
        raise ConfigError(f"{where}: {path} is not a file; give the path of the {what} file")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"{where}: {path} cannot be read and written; fix its permissions or choose another path")
    if not writable_folder(path.parent):
        raise ConfigError(f"{where}: cannot create {path} (its folder {path.parent} cannot be written); choose a "
                          "path in a folder you can write")


def check_tracking_uri(uri: str, *, where: str = "--tracking-uri") -> None:
    """Refuse an MLflow tracking URI that cannot work, before anything is written.

    Accepted: ``sqlite:///PATH`` (its folder must be writable or creatable), another database URL
    (``postgresql://``, ``mysql://``, ``mssql://``, with an optional ``+driver``), or a tracking server
    (``http(s)://``, ``databricks``).

    Raises
    ------
    ConfigError
        Naming ``where`` (the option or key), the URI and the accepted forms.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"{where}: empty tracking URI; give e.g. sqlite:///mlruns/mlflow.db")
    match = _SCHEME.match(uri)
    scheme = match.group(1).split("+", 1)[0].lower() if match else ""
    if uri == "databricks" or scheme in _SERVERS:
        return
    if scheme not in _DATABASES:
        raise ConfigError(f"{where}: {uri!r} is not a tracking URI cartrisk can use; give sqlite:///PATH (the "
                          "default is sqlite:///mlruns/mlflow.db), a database URL (postgresql://...) or a tracking "
                          "server (http://host:port)")
    if scheme == "sqlite":
        path = sqlite_path(uri)
        if path is None:
            raise ConfigError(f"{where}: {uri!r}: a SQLite store needs a file path, as in sqlite:///mlruns/mlflow.db")
        _check_file_target(path, where, "MLflow database")
    else:
        _check_dialect(uri, where)


def _check_dialect(url: str, where: str) -> None:
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        sqlalchemy.engine.make_url(url).get_dialect().import_dbapi()  # the driver, without connecting
    except (ArgumentError, NoSuchModuleError, ValueError) as err:
        raise ConfigError(f"{where}: {url!r} is not a database URL SQLAlchemy can open ({err}); give e.g. "
                          "sqlite:///mlruns/optuna.db or postgresql://user@host/db") from None
    except ImportError as err:
        raise ConfigError(f"{where}: {url!r} needs a database driver that is not installed ({err}); install that "
                          "package, name an installed driver in the URL (postgresql+psycopg2://...), or use a "
                          "sqlite:/// URL") from None


def check_storage_url(url: str, *, where: str = "--storage") -> None:
    """Refuse an Optuna storage that cannot work: ``journal:PATH`` or a database URL whose driver loads.

    Raises
    ------
    ConfigError
        Naming ``where``, the URL and the accepted forms.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}: empty storage; give e.g. sqlite:///mlruns/optuna.db or journal:PATH")
    if url.startswith("journal:"):
        path = journal_path(url)
        if path is None:
            raise ConfigError(f"{where}: {url!r}: a journal storage needs a file path, as in journal:mlruns/study.log")
        _check_file_target(path, where, "journal")
        return
    if not _SCHEME.match(url):
        raise ConfigError(f"{where}: {url!r} is neither a database URL (sqlite:///mlruns/optuna.db) nor journal:PATH")
    if url.startswith("sqlite:") and url != "sqlite:///:memory:":
        path = sqlite_path(url)
        if path is None:
            raise ConfigError(f"{where}: {url!r}: a SQLite storage needs a file path, as in sqlite:///mlruns/optuna.db")
        _check_file_target(path, where, "Optuna database")
    _check_dialect(url, where)


def require_store(uri: str, *, where: str = "--tracking-uri") -> None:
    """For commands that read runs (export, report, a run id as model): refuse a SQLite store that does not exist,
    instead of creating an empty one."""
    check_tracking_uri(uri, where=where)
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise ConfigError(f"{where}: no MLflow store at {uri} ({path} does not exist); run `cartrisk evaluate`, "
                          "`cartrisk tune` or `cartrisk quickstart` first, or give the store's URI")


def creation_lock(database: Path):
    """A file lock beside ``database`` (``NAME.lock``) that serialises its creation between processes."""
    return file_lock(str(database) + ".lock", timeout=LOCK_TIMEOUT_SECONDS)


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _is_sqlite(path: Path) -> bool:
    try:
        _tables(path)
    except sqlite3.DatabaseError:
        return False
    return True


def _holds_runs(path: Path) -> bool:
    """True when the store holds a run, or cannot be read well enough to be sure it holds none."""
    try:
        if "runs" not in _tables(path):
            return False
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] > 0
    except sqlite3.Error:
        return True


def _forget_engines(path: Path) -> None:
    """Close the connections MLflow keeps open to ``path`` (it caches one engine per URI): after the file is
    replaced they would still write to the old one."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for store in (SqlAlchemyStore, RegistryStore):
        engines = getattr(store, "_engine_map", {})
        for uri, engine in list(engines.items()):
            other = sqlite_path(str(uri))
            if other is not None and other.absolute() == path.absolute():
                engines.pop(uri, None)
                engine.dispose()


def _remove_database(path: Path) -> None:
    _forget_engines(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _drop_temporary_tables(path: Path) -> None:
    """Drop the ``_alembic_tmp_*`` copies a migration interrupted half-way leaves behind."""
    try:
        leftovers = [t for t in _tables(path) if t.startswith("_alembic_tmp_")]
        with sqlite3.connect(path) as conn:
            for table in leftovers:
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    except sqlite3.Error:
        pass


def _connect(uri: str) -> Any:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.search_experiments(max_results=1)  # a query: the schema is complete and readable
    return client


def create_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    """Create the MLflow experiment ``name``, or return its id when another process created it meanwhile."""
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def open_client(uri: str) -> Any:
    """An :class:`mlflow.MlflowClient` on ``uri``; a SQLite store is created (or repaired) under a file lock.

    Raises
    ------
    ConfigError
        The URI cannot be used, or the SQLite store is half-made and holds runs (the message gives the fix).
    """
    path = sqlite_path(uri)
    if path is None:  # a server or another database: MLflow connects on first use
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        check_tracking_uri(uri, where="tracking URI")
        try:
            return MlflowClient(tracking_uri=uri)
        except MlflowException as err:
            raise ConfigError(f"tracking URI {uri}: {err.message}") from None
    check_tracking_uri(uri, where="tracking URI")
    # MLflow keeps one engine per URI for the life of the process: a relative path would keep pointing at the
    # folder where it was first opened, whatever the working directory later is. Connect by absolute path.
    query = uri.split("?", 1)[1] if "?" in uri else ""
    path = path.absolute()
    uri = f"sqlite:///{path}" + (f"?{query}" if query else "")
    with creation_lock(path):
        try:
            return _connect(uri)
        except Exception as err:  # SQLAlchemy/alembic/MLflow errors of a half-made or foreign database
            first = err
        if not _is_sqlite(path):
            raise ConfigError(f"{path}: not an SQLite database, so not an MLflow store; move it away, or give another "
                              "store with --tracking-uri") from None
        if not _holds_runs(path):
            _remove_database(path)  # nothing to lose: made again from scratch
        else:
            _drop_temporary_tables(path)
            _forget_engines(path)
        try:
            return _connect(uri)
        except Exception:
            pass
    raise ConfigError(
        f"{path}: the MLflow store is half-made or from another MLflow version and holds runs "
        f"({type(first).__name__}: {str(first).splitlines()[0][:300]}). Back it up, then run `mlflow db upgrade "
        f"{uri}`; or, if you need none of its runs, delete {path} and run the command again")
