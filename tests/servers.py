"""Throwaway servers for tests: a PostgreSQL cluster and an MLflow tracking server, on 127.0.0.1 only.

PostgreSQL: ``CARTRISK_TEST_POSTGRES_URL`` (set by ``.ci/run``, which starts one cluster for the whole run) or,
when it is unset, a cluster of Debian's ``postgresql`` started here: ``initdb`` in a temporary folder (as the
``postgres`` user when running as root: initdb refuses root), ``pg_ctl start`` on a free loopback port, stopped
and removed when the tests end. When neither is possible, the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

ENV_URL = "CARTRISK_TEST_POSTGRES_URL"


_REAPER = """
import os, shutil, signal, subprocess, sys, time, json
watch, pgid, commands, folder = json.loads(sys.argv[1])
while True:
    try:
        os.kill(watch, 0)
    except ProcessLookupError:
        break
    time.sleep(0.5)
for cmd in commands:
    subprocess.run(cmd, capture_output=True)
if pgid:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
if folder:
    shutil.rmtree(folder, ignore_errors=True)
"""


def reaper(*, pgid: int | None = None, commands: list[list[str]] = (), folder: Path | None = None
           ) -> subprocess.Popen:
    """A watcher that stops a server if this (test) process dies before it could: the servers stop by themselves.

    Terminate it once the server was stopped normally.
    """
    import json

    args = json.dumps([os.getpid(), pgid, [list(c) for c in commands], str(folder) if folder else None])
    return subprocess.Popen([sys.executable, "-c", _REAPER, args], start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Unavailable(RuntimeError):
    """No server could be started here (the reason is the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        initdb = shutil.which("initdb")
        if initdb is None:
            raise Unavailable("PostgreSQL is not installed (no initdb; apt-get install postgresql)")
        return Path(initdb).parent
    return Path(found[-1]).parent


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser") is None:
        raise Unavailable("running as root without runuser: cannot start PostgreSQL as the postgres user")
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a throwaway cluster; yield its URL (``postgresql://postgres@127.0.0.1:PORT/postgres``)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("the PostgreSQL driver is not installed (pip install 'cartrisk[postgres]')") from None
    bin_dir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="cartrisk-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    stop = _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    watcher = reaper(commands=[stop], folder=root)
    try:
        done = subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                            "-E", "UTF8", "--no-sync"]), capture_output=True, text=True)
        if done.returncode != 0:
            raise Unavailable(f"initdb failed: {done.stderr.strip()[-300:]}")
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        done = subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                            str(root / "server.log"), "-w", "-t", "60", "start"]),
                              capture_output=True, text=True)
        if done.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise Unavailable(f"pg_ctl start failed: {(done.stderr + log).strip()[-300:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(stop, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        watcher.terminate()
        watcher.wait(10)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The CI cluster (``CARTRISK_TEST_POSTGRES_URL``), else a throwaway one (see :func:`postgres_cluster`)."""
    url = os.environ.get(ENV_URL)
    if url:
        yield url
        return
    with postgres_cluster() as url:
        yield url


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server; yields its URL and drops it afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, *, log: Path | None = None) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 with artefacts served through it; yields ``http://127.0.0.1:PORT``."""
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts), "--serve-artifacts"]
    out = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner processes: runs only
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    watcher = reaper(pgid=proc.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                text = log.read_text()[-1500:] if log is not None else ""
                raise RuntimeError(f"mlflow server exited with code {proc.returncode}: {text}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not answer /health within 120 s")
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(30)
        watcher.terminate()
        watcher.wait(10)
        if log is not None:
            out.close()
