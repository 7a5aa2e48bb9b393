"""Workers: the study lock, stale trials failed and replaced, workers that exit with their parent, joining workers.

These run on SQLite (one host); the same on PostgreSQL across working folders is in test_postgres.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from cartrisk.cli import app
from cartrisk.data.simulate import simulate
from cartrisk.tuning.studies import StudyJob, counts, fail_stale, open_storage, run_trials, study_lock

EXPERIMENT = """
name = "{name}"
seed = 3
[data]
source = "file"
path = "cohort.csv"
[features]
set = "relapse"
[[models]]
estimator = "coxph"
[models.search]
alpha = {{ low = 1.0, high = 50.0, log = true }}
[evaluation]
horizons_months = [6, 12]
[tuning]
n_trials = {trials}
outer_folds = 2
inner_folds = 2
startup_trials = 2
"""


def write_experiment(folder: Path, name: str, trials: int, *, seed: int = 1) -> Path:
    """An experiment file and its data file (``cohort.csv``, 300 simulated patients) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    simulate(300, seed)[0].to_csv(folder / "cohort.csv", index=False)
    path = folder / "exp.toml"
    path.write_text(EXPERIMENT.format(name=name, trials=trials))
    return path


def cartrisk(*args: str) -> list[str]:
    return [sys.executable, "-m", "cartrisk", *args]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its new parent) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split(") ", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def wait_until(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_study_lock_is_shared_by_processes_of_one_storage(tmp_path):
    url = f"sqlite:///{tmp_path}/o.db"
    held = []

    def hold():
        with study_lock(url, "s"):
            held.append(time.monotonic())
            time.sleep(0.3)

    with study_lock(url, "s"):
        thread = threading.Thread(target=hold)
        thread.start()
        time.sleep(0.2)
        assert not held  # blocked while this holder has it
        released = time.monotonic()
    thread.join()
    assert held and held[0] >= released
    assert (tmp_path / "o.db.cartrisk-lock").is_file()


def test_a_stale_trial_is_failed_and_replaced(tmp_path):
    url = f"sqlite:///{tmp_path}/o.db"
    storage = open_storage(url, heartbeat_seconds=1)
    study = optuna.create_study(storage=storage, study_name="s")
    with pytest.warns(UserWarning, match="Heartbeat"):
        dead = study.ask()  # a trial whose worker dies: one heartbeat, then silence
    storage.record_heartbeat(dead._trial_id)
    job = StudyJob("s", lambda trial: trial.suggest_float("x", 0, 1), n_trials=3, seed=0, pruner="none")
    assert run_trials(storage, job, lock=study_lock(url, "s", storage)) == 2  # the dead trial still counts
    time.sleep(4.5)  # grace period: three heartbeats (SQLite keeps whole seconds)
    stale: list = []
    assert run_trials(storage, job, lock=study_lock(url, "s", storage), on_stale=stale.append) == 1
    trials = study.get_trials(deepcopy=False)
    assert counts(trials)["COMPLETE"] == 3 and counts(trials)["FAIL"] == 1 and not counts(trials)["RUNNING"]
    assert [t.number for t in stale] == [dead.number]
    assert "stopped sending heartbeats" in study.trials[dead.number].user_attrs["fail_reason"]
    assert fail_stale(study) == []


def test_killing_tune_leaves_no_worker_alive(tmp_path):
    """Issue 12, item 6: SIGKILL of `cartrisk tune --workers 2`'s main process; no worker alive 10 s later."""
    experiment = write_experiment(tmp_path, "orphans", 200)
    log = open(tmp_path / "log.txt", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cartrisk("tune", str(experiment), "--workers", "2", "--no-tracking", "--storage",
                                     f"sqlite:///{tmp_path}/o.db"), cwd=tmp_path, stdout=log, stderr=log)
    try:
        url = f"sqlite:///{tmp_path}/o.db"

        def running() -> bool:
            if not (tmp_path / "o.db").exists():
                return False
            try:
                trials = optuna.load_study(study_name="orphans.outer1", storage=open_storage(url)).get_trials()
            except KeyError:
                return False
            return sum(t.state == TrialState.COMPLETE for t in trials) >= 2

        wait_until(lambda: running() or proc.poll() is not None, 120, "two finished trials")
        workers = children(proc.pid)
        assert proc.poll() is None and len(workers) == 2, (tmp_path / "log.txt").read_text()[-2000:]
        proc.kill()
        proc.wait(30)
        time.sleep(10)
        assert not [pid for pid in workers if alive(pid)]
        trials = optuna.load_study(study_name="orphans.outer1", storage=open_storage(url)).get_trials()
        assert not [t for t in trials if t.state == TrialState.RUNNING]  # each worker failed its trial on the way out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        log.close()


def test_a_worker_joins_a_running_tune_from_another_folder(tmp_path):
    url = f"sqlite:///{tmp_path}/shared/o.db"
    first = write_experiment(tmp_path / "a", "joined", 12)
    second = write_experiment(tmp_path / "b", "joined", 12)
    tune = subprocess.Popen(cartrisk("tune", str(first), "--workers", "1", "--no-tracking", "--storage", url),
                            cwd=tmp_path / "a", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = subprocess.run(cartrisk("worker", str(second), "--storage", url, "--no-tracking", "--wait", "60"),
                            cwd=tmp_path / "b", capture_output=True, text=True, timeout=300)
    out, _ = tune.communicate(timeout=300)
    assert tune.returncode == 0, out[-3000:]
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "trial" in worker.stderr and "started" in worker.stderr
    storage = open_storage(url)
    for name in ("joined.outer1", "joined.outer2", "joined.final"):
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        c = counts(trials)
        assert c["COMPLETE"] + c["PRUNED"] == 12 and c["RUNNING"] == 0
        assert sorted(t.number for t in trials) == list(range(len(trials)))
    ran = int(worker.stdout.split("worker on joined: ")[1].split(" trial")[0])
    assert 0 < ran < 36  # both processes ran trials


def test_a_worker_refuses_other_data_or_a_missing_study(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/o.db"
    experiment = write_experiment(tmp_path / "a", "refuse", 2)
    other = write_experiment(tmp_path / "b", "refuse", 2, seed=2)  # other data, same settings
    runner = CliRunner()
    monkeypatch.chdir(tmp_path / "a")  # the data path of an experiment is relative to the working folder
    nowhere = runner.invoke(app, ["worker", str(experiment), "--storage", url, "--no-tracking"])
    assert nowhere.exit_code == 2 and "--storage: no study storage at sqlite:///" in nowhere.output
    assert not (tmp_path / "o.db").exists()  # refused without creating the store
    done = runner.invoke(app, ["tune", str(experiment), "--workers", "1", "--no-tracking", "--storage", url])
    assert done.exit_code == 0, done.output
    absent = write_experiment(tmp_path / "c", "absent", 2)
    monkeypatch.chdir(tmp_path / "c")
    missing = runner.invoke(app, ["worker", str(absent), "--storage", url, "--no-tracking"])
    assert missing.exit_code == 2 and "no study of experiment 'absent'" in missing.output
    monkeypatch.chdir(tmp_path / "b")
    refused = runner.invoke(app, ["worker", str(other), "--storage", url, "--no-tracking"])
    assert refused.exit_code == 2
    assert "was made from other data or settings than this worker's" in refused.output
    assert "identical copy of its data file" in refused.output


def test_parent_death_terminates_a_worker_process(tmp_path):
    """exit_with_parent: a grandchild whose parent is SIGKILLed receives SIGTERM."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; from cartrisk.tuning.workers import "
        "exit_with_parent; exit_with_parent(); print(1, flush=True); time.sleep(600)'], stdout=sys.stdout)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "1"  # the child set up its watch
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    parent.stdout.close()
    wait_until(lambda: not alive(child), 10, "the child to exit")
