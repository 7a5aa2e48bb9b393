"""MLflow stores: created once under a file lock when commands start together, a half-made store repaired when it
holds nothing and refused with the fix when it holds runs, and URIs checked before anything is written."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cartrisk.exceptions import ConfigError
from cartrisk.tracking import Tracker
from cartrisk.tracking.store import check_storage_url, check_tracking_uri, open_client

_ONE_RUN = textwrap.dedent("""
    import sys
    from cartrisk.tracking import Tracker

    tracker = Tracker("sqlite:///mlruns/mlflow.db", "together")
    with tracker.run(f"process {sys.argv[1]}") as run_id:
        tracker.log_metrics(run_id, {"x": float(sys.argv[1])})
""")


def _start_together(commands: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(c, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=900), *p.communicate()) for p in procs]


def _finished_runs(root: Path, experiment: str) -> list:
    tracker = Tracker(f"sqlite:///{root}/mlruns/mlflow.db", experiment)
    return tracker.client.search_runs([tracker.experiment_id], "attributes.status = 'FINISHED'")


def test_eight_processes_creating_one_store_at_once_all_succeed(tmp_path):
    """Without the lock, MLflow's migrations race (``duplicate column name``, ``table ... already exists``)."""
    done = _start_together([[sys.executable, "-c", _ONE_RUN, str(i)] for i in range(8)], tmp_path)
    for result in done:
        assert result.returncode == 0, result.stderr[-2000:]
    assert len(_finished_runs(tmp_path, "together")) == 8


@pytest.mark.slow
def test_eight_commands_started_at_once_in_a_fresh_folder_all_succeed(tmp_path):
    (tmp_path / "c.toml").write_text('name = "c"\n[data]\nn = 200\n[features]\nset = "infusion"\n[[models]]\n'
                                     'estimator = "coxph"\n[evaluation]\nn_splits = 2\nrules = ["d0_30"]\n')
    done = _start_together([[sys.executable, "-m", "cartrisk", "evaluate", "c.toml"] for _ in range(8)], tmp_path)
    for result in done:
        assert result.returncode == 0, result.stderr[-2000:]
    runs = _finished_runs(tmp_path, "c")
    assert len([r for r in runs if r.data.tags.get("cartrisk.kind") == "evaluation"]) == 8


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A complete, empty MLflow store, to break in the tests below (opened under another URI than theirs)."""
    root = tmp_path_factory.mktemp("template")
    open_client(f"sqlite:///{root}/mlflow.db")
    return root / "mlflow.db"


def _half_made(template: Path, target: Path, *, with_run: bool) -> Path:
    """A store whose migrations stopped half-way: tables of later versions exist, the version record does not."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, target)
    with sqlite3.connect(target) as conn:
        if with_run:
            conn.execute("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
                         "status, start_time, lifecycle_stage, artifact_uri, experiment_id) VALUES ('r1', 'kept', "
                         "'LOCAL', '', '', 'u', 'FINISHED', 0, 'active', '', 0)")
        conn.execute("DROP TABLE alembic_version")
        conn.execute("DROP TABLE experiment_tags")
    return target


def test_a_half_made_store_that_holds_no_run_is_made_again(template, tmp_path):
    path = _half_made(template, tmp_path / "mlruns" / "mlflow.db", with_run=False)
    tracker = Tracker(f"sqlite:///{path}", "repaired")
    with tracker.run("works") as run_id:
        tracker.log_metrics(run_id, {"x": 1.0})
    assert tracker.get_run(run_id).info.status == "FINISHED"


def test_a_half_made_store_that_holds_runs_is_refused_with_the_fix(template, tmp_path):
    path = _half_made(template, tmp_path / "mlruns" / "mlflow.db", with_run=True)
    with pytest.raises(ConfigError, match=r"the MLflow store is half-made or from another MLflow version and holds "
                                          r"runs .* run `mlflow db upgrade sqlite:///.*`; or, if you need none of its "
                                          r"runs, delete"):
        Tracker(f"sqlite:///{path}", "refused")
    with sqlite3.connect(path) as conn:  # left as it was: nothing deleted
        assert conn.execute("SELECT name FROM runs").fetchall() == [("kept",)]


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "mlflow.db"
    path.write_text("my notes")
    with pytest.raises(ConfigError, match="not an SQLite database, so not an MLflow store"):
        Tracker(f"sqlite:///{path}", "x")
    assert path.read_text() == "my notes"


@pytest.mark.parametrize(("uri", "message"), [
    ("foo://bar", "is not a tracking URI cartrisk can use"),
    ("", "empty tracking URI"),
    ("sqlite:///", "a SQLite store needs a file path"),
    ("sqlite:////proc/none/mlflow.db", "cannot create /proc/none/mlflow.db"),
    ("mysql://user@host/db", "needs a database driver that is not installed"),
])
def test_tracking_uris_are_checked_without_writing(uri, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        check_tracking_uri(uri)
    assert list(tmp_path.iterdir()) == []


def test_good_uris_pass(tmp_path):
    check_tracking_uri(f"sqlite:///{tmp_path}/a/b/mlflow.db")
    check_tracking_uri("http://127.0.0.1:5000")
    check_storage_url(f"journal:{tmp_path}/j.log")
    check_storage_url(f"sqlite:///{tmp_path}/optuna.db")
    assert list(tmp_path.iterdir()) == []
