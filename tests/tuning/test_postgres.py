"""Tuning on PostgreSQL with an MLflow tracking server, as on several hosts.

Needs a PostgreSQL server (``CARTRISK_TEST_POSTGRES_URL``, set by ``.ci/run``, or a throwaway cluster of Debian's
``postgresql``); skipped with the reason when none can be started.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
from test_workers import cartrisk, write_experiment
from typer.testing import CliRunner

import servers
from cartrisk.cli import app
from cartrisk.data.simulate import simulate
from cartrisk.tracking import Tracker
from cartrisk.tuning.studies import counts, open_storage
from cartrisk.tuning.workers import release_connections

STUDIES = ("hosts.outer1", "hosts.outer2", "hosts.final")


def test_tune_and_studies_on_postgresql(postgres_db, tmp_path, monkeypatch):
    experiment = write_experiment(tmp_path, "pg", 3)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    done = runner.invoke(app, ["tune", str(experiment), "--workers", "2", "--storage", postgres_db, "--no-tracking"])
    assert done.exit_code == 0, done.output
    listed = runner.invoke(app, ["studies", "--storage", postgres_db])
    assert listed.exit_code == 0 and "pg.outer1" in listed.output and "pg.final" in listed.output
    storage = open_storage(postgres_db)
    for name in ("pg.outer1", "pg.outer2", "pg.final"):
        c = counts(optuna.load_study(study_name=name, storage=storage).get_trials())
        assert c["COMPLETE"] + c["PRUNED"] == 3 and c["RUNNING"] == 0
    release_connections(storage)
    assert not list(tmp_path.glob("*.db")) and not (tmp_path / "mlruns").exists()  # nothing on the local disk


def test_a_storage_that_cannot_be_reached_is_refused(postgres_url):
    dead = postgres_url.rsplit(":", 1)[0] + f":{servers.free_port()}/postgres"
    runner = CliRunner()
    refused = runner.invoke(app, ["studies", "--storage", dead.replace("postgres@", "postgres:secret@")])
    assert refused.exit_code == 2 and "cannot open it" in refused.output and "secret" not in refused.output


def _read_until(proc: subprocess.Popen, text: str, seconds: float) -> str:
    """Lines of ``proc``'s stderr until one contains ``text``; returns that line."""
    deadline = time.monotonic() + seconds
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"process ended (code {proc.returncode}) before printing {text!r}: "
                                 + "".join(seen[-40:]) + proc.stdout.read()[-2000:])
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"timed out waiting for {text!r}")


def test_three_hosts_finish_a_study_on_postgresql_with_a_tracking_server(postgres_url, tmp_path):
    """3 worker processes in 3 working folders that share no file (as on 3 hosts), one SIGKILLed mid-trial.

    The study (3 studies of 30 trials: 2 outer folds and the final one) lives in PostgreSQL; runs go to an MLflow
    tracking server on the same PostgreSQL with artefacts served through it. Checks: every study ends with exactly
    30 finished trials, numbered without gap or repeat; the trial of the killed worker is failed (its heartbeat
    stopped) and replaced; the tracking server holds a run for every trial, the failed one included.
    """
    hosts = [tmp_path / f"host{k}" for k in (1, 2, 3)]
    experiments = [write_experiment(h, "hosts", 30) for h in hosts]  # each host: its own copy of file and data
    with servers.fresh_database(postgres_url) as study_db, servers.fresh_database(postgres_url) as runs_db, \
            servers.mlflow_server(runs_db.replace("postgresql://", "postgresql+psycopg://"), tmp_path / "artefacts",
                                  log=tmp_path / "mlflow.log") as tracking:
        common = ["--storage", study_db, "--tracking-uri", tracking, "--heartbeat-seconds", "1"]
        tune = subprocess.Popen(cartrisk("tune", str(experiments[0]), "--workers", "1", *common), cwd=hosts[0],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        workers = [subprocess.Popen(cartrisk("worker", str(exp), "--wait", "120", *common), cwd=host,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for exp, host in zip(experiments[1:], hosts[1:], strict=True)]
        try:
            _read_until(workers[0], " complete", 240)  # the first worker has finished a trial...
            started = _read_until(workers[0], "started", 60)  # ...and started another: kill it mid-trial
            workers[0].send_signal(signal.SIGKILL)
            killed_study, killed = started.split(": trial ")[0].strip(), int(started.split("trial ")[1].split()[0])
            out, _ = tune.communicate(timeout=600)
            assert tune.returncode == 0, out[-3000:]
            _, err = workers[1].communicate(timeout=120)
            assert workers[1].returncode == 0, err[-3000:]
        finally:
            for proc in (tune, *workers):
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
        assert workers[0].returncode == -signal.SIGKILL

        storage = open_storage(study_db)
        tracker = Tracker(tracking, "hosts")
        for name in STUDIES:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
            c = counts(trials)
            assert c["COMPLETE"] + c["PRUNED"] == 30 and c["RUNNING"] == 0, c  # none lost, none run twice
            assert sorted(t.number for t in trials) == list(range(len(trials)))
            failed = [t for t in trials if t.state == TrialState.FAIL]
            if name == killed_study:
                assert killed in [t.number for t in failed]
                assert "stopped sending heartbeats" in trials[killed].user_attrs["fail_reason"]
            runs = tracker.client.search_runs([tracker.experiment_id], f"tags.`cartrisk.study` = '{name}' and "
                                              "tags.`cartrisk.kind` = 'trial'", max_results=1000)
            by_trial = {int(r.data.tags["cartrisk.trial"]): r for r in runs}
            assert sorted(by_trial) == sorted(t.number for t in trials)  # every trial's run is on the server
            for t in failed:
                assert by_trial[t.number].info.status in ("FAILED", "KILLED")
            assert {by_trial[t.number].info.status for t in trials if t.state != TrialState.FAIL} == {"FINISHED"}
        release_connections(storage)
        parent = tracker.find_runs({"cartrisk.kind": "tuning"})[0]
        assert parent.info.status == "FINISHED"
        assert tracker.has_artifact(parent.info.run_id, "model/pipeline.skops")  # artefacts through the server
        assert list((tmp_path / "artefacts").rglob("pipeline.skops"))
    for host in hosts:  # nothing was written to a host's folder but its own copy of the inputs
        assert sorted(p.name for p in host.iterdir()) == ["cohort.csv", "exp.toml"]
    shutil.rmtree(tmp_path / "artefacts", ignore_errors=True)


def test_tracking_server_for_evaluate_export_report_and_quickstart(postgres_url, tmp_path, monkeypatch):
    """``--tracking-uri http://...`` for evaluate, export, report and quickstart, artefacts through the server."""
    runner = CliRunner()
    experiment = write_experiment(tmp_path, "served", 2)
    evaluate = tmp_path / "evaluate.toml"
    evaluate.write_text(experiment.read_text().split("[tuning]")[0].replace("[models.search]\nalpha = { low = 1.0, "
                                                                          "high = 50.0, log = true }\n", ""))
    monkeypatch.chdir(tmp_path)
    with servers.fresh_database(postgres_url) as runs_db, \
            servers.mlflow_server(runs_db.replace("postgresql://", "postgresql+psycopg://"), tmp_path / "artefacts",
                                  log=tmp_path / "mlflow.log") as tracking:
        done = runner.invoke(app, ["evaluate", str(evaluate), "--tracking-uri", tracking])
        assert done.exit_code == 0, done.output
        tuned = runner.invoke(app, ["tune", str(experiment), "--workers", "1", "--tracking-uri", tracking,
                                    "--storage", f"sqlite:///{tmp_path}/o.db"])
        assert tuned.exit_code == 0, tuned.output
        run_id = tuned.output.split("MLflow run ")[1].split()[0]
        exported = runner.invoke(app, ["export", "--run", run_id, "--name", "served", "--tracking-uri", tracking,
                                       "--data", "cohort.csv"])
        assert exported.exit_code == 0, exported.output
        assert (tmp_path / "models" / "served" / "MANIFEST.json").is_file()
        quick = runner.invoke(app, ["quickstart", "--n", "400", "--trials", "2", "--workers", "1",
                                    "--tracking-uri", tracking, "--out", str(tmp_path / "qs")])
        assert quick.exit_code == 0, quick.output
        qs_run = quick.output.split("MLflow run")[1].split()[1]
        report = runner.invoke(app, ["report", "--run", qs_run, "--out", str(tmp_path / "again"), "--tracking-uri",
                                     tracking])
        assert report.exit_code == 0, report.output
        assert (tmp_path / "again").is_dir() and list((tmp_path / "again").glob("*.html"))
    # every run and artefact went through the server (quickstart's study store is the local default)
    assert sorted(p.name for p in (tmp_path / "mlruns").iterdir()) == ["optuna.db", "optuna.db.cartrisk-create-lock",
                                                                   "optuna.db.cartrisk-lock"]
    assert list((tmp_path / "artefacts").rglob("report*")) or list((tmp_path / "artefacts").rglob("*.png"))


def test_the_readme_scaling_out_rehearsal_runs(postgres_url, tmp_path):
    """The one-machine block of the README's "Scaling out", run by bash as written."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Scaling out"):text.index("## Data dictionary")]
    walkthrough = text[text.index("## Walkthrough"):text.index("## Reading results")]
    block = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[-1]
    toml = re.findall(r"```toml\n(.*?)```", walkthrough, flags=re.S)[0]
    (tmp_path / "my_study.toml").write_text(toml.replace("n_trials = 30", "n_trials = 4"), encoding="utf-8")
    simulate(900, 1)[0].to_csv(tmp_path / "extract.csv", index=False)
    with servers.fresh_database(postgres_url) as study_db, servers.fresh_database(postgres_url) as runs_db, \
            servers.mlflow_server(runs_db.replace("postgresql://", "postgresql+psycopg://"), tmp_path / "artefacts",
                                  log=tmp_path / "mlflow.log") as tracking:
        env = {**os.environ, "STORAGE": study_db, "TRACKING": tracking,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        for name in ("my-study.outer1", "my-study.outer2", "my-study.outer3", "my-study.final"):
            assert name in done.stdout
        storage = open_storage(study_db)
        ran_here = sum(1 for s in ("my-study.outer1", "my-study.outer2", "my-study.outer3", "my-study.final")
                       for t in optuna.load_study(study_name=s, storage=storage).get_trials()
                       if t.state == TrialState.COMPLETE)
        release_connections(storage)
        assert ran_here >= 16
        tracker = Tracker(tracking, "my-study")
        trials = tracker.client.search_runs([tracker.experiment_id], "tags.`cartrisk.kind` = 'trial'",
                                            max_results=1000)
        assert len(trials) >= 16 and "worker on my-study" in done.stdout
