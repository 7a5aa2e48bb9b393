"""``cartrisk tune`` (nested-CV tuning with Optuna, tracked in MLflow) and ``cartrisk studies``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from cartrisk.cli._app import app, console, err_console, print_frame, user_errors
from cartrisk.exceptions import ConfigError

HEADLINE_METRICS = ("uno_c", "harrell_c", "auc", "brier", "ibs", "ici", "calibration_slope")


@contextmanager
def tuning_progress() -> Iterator:
    """A rich display for ``run_study``'s ``progress(stage, done, total, best)``: one bar per study (trials done,
    best value so far) and an overall bar with the time remaining."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("best {task.fields[best]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as bars:
        tasks: dict[str, int] = {}
        done_by: dict[str, int] = {}
        overall = bars.add_task("all studies", total=None, best="")

        def update(stage: str, done: int, total: int, best: float | None = None) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total, best="-")
            bars.update(tasks[stage], completed=done, total=total, best="-" if best is None else f"{best:.4f}")
            done_by[stage] = done
            bars.update(overall, completed=sum(done_by.values()), total=total * len(tasks))

        yield update


def result_tables(result) -> dict[str, pd.DataFrame]:
    """The tables ``cartrisk tune`` prints: best parameters, the objective inner vs outer, outer folds, metrics."""
    params = pd.DataFrame([("family", result.family)] + [(k, v) for k, v in result.best_params.items()],
                          columns=["parameter", "value"])
    params["value"] = params["value"].map(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
    folds = result.outer_folds
    objective = pd.DataFrame([
        ("inner best, final study (all data)", result.inner_value),
        ("inner best, mean over outer studies", float(folds["inner_value"].mean())),
        ("outer folds, mean (reported estimate)", result.outer_value),
        ("gap: inner - outer, mean over outer folds", result.gap),
    ], columns=["quantity", result.objective])
    per_fold = folds.assign(params=folds["params"].map(
        lambda p: ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items())))
    per_fold = per_fold[["fold", "family", "inner_value", "outer_value", "gap", "finished_trials", "params"]]
    s = result.summary()
    s = s[s["metric"].isin(HEADLINE_METRICS)]
    metrics = pd.DataFrame({
        "metric": [m if pd.isna(h) else f"{m}@{h:g}m" for m, h in zip(s["metric"], s["horizon_months"], strict=True)],
        "outer mean [95% interval]": [f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
                                      for m, lo, hi in zip(s["mean"], s["lower"], s["upper"], strict=True)]})
    return {"params": params, "objective": objective, "folds": per_fold, "metrics": metrics}


@app.command()
@user_errors
def tune(
    experiment: Annotated[Path, typer.Argument(help="Experiment file with a \\[tuning] table (experiments/tune_*).")],
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Finished trials per study.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Time budget in seconds for all studies.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Local worker processes (default: as many as cores; 1 "
                                                "runs the trials in this process).")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage: database URL or journal:PATH.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the latest run of the studies (finished trials "
                                                          "kept). Without it, a new run starts new studies.")] = False,
    n: Annotated[int | None, typer.Option(help="Override the simulated cohort size.", min=1)] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI: a sqlite:/// file or a tracking "
                                                     "server, http://host:port (default from the file).")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Do not log to MLflow.")] = False,
    heartbeat_seconds: Annotated[int | None, typer.Option(min=1, help="Heartbeat of running trials on a database "
                                                          "storage; a trial is failed and replaced after 3 missed "
                                                          "heartbeats (default 10).")] = None,
) -> None:
    """Tune the experiment's models by nested cross-validation; print the best parameters and the outer estimate.

    Workers (--workers, default as many as cores) run the trials; `cartrisk worker` processes started on other
    hosts with the same experiment file, data and --storage join the studies while they run.
    """
    import optuna

    from cartrisk.cli._experiment import prepare_experiment
    from cartrisk.tracking import Tracker
    from cartrisk.tracking.store import check_storage_url
    from cartrisk.tuning import default_storage, run_study
    from cartrisk.tuning.studies import check_resumable, sigterm_as_interrupt

    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    cfg, uri, data = prepare_experiment(experiment, n=n, tracking_uri=tracking_uri, no_tracking=no_tracking,
                                        tuning=True)
    url = storage or cfg.tuning.storage or default_storage(uri or cfg.tracking.uri)
    check_storage_url(url, where="--storage" if storage else (f"{experiment}: tuning.storage" if cfg.tuning.storage
                                                               else "storage"))
    if resume:
        check_resumable(url, cfg.tuning.study_name or cfg.name)
    tracker = None if uri is None else Tracker(uri, cfg.tracking.experiment or cfg.name)
    if logging.getLogger("cartrisk").getEffectiveLevel() > logging.INFO:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial only with --verbose
    from cartrisk.workflows.heterogeneity import sample_size_notes, tune_heterogeneity

    _, notes = sample_size_notes(cfg, data)
    for note in notes:
        err_console.print(f"warning: {note}", highlight=False, markup=False, soft_wrap=True)
    with sigterm_as_interrupt(), tuning_progress() as progress:
        result = run_study(cfg, tracker=tracker, storage=url, n_trials=trials, timeout=timeout, resume=resume,
                           progress=progress, workers=workers, heartbeat_seconds=heartbeat_seconds, data=data)
    for label, res in tune_heterogeneity(cfg, result, tracker).items():
        print_frame(res.pooled, title=f"{label}: internal-external validation by {cfg.evaluation.cluster} "
                    f"({res.design}; hyper-parameters of the final study), REML pooled")
    tables = result_tables(result)
    print_frame(tables["params"], title=f"{cfg.name}: best parameters (final study, refitted on all data)")
    print_frame(tables["objective"], title=f"objective {result.objective} ({result.direction}): inner vs outer",
                floatfmt="{:.4f}")
    print_frame(tables["folds"], title=f"outer folds ({result.dataset.name})", floatfmt="{:.4f}")
    print_frame(tables["metrics"], title="nested-CV estimate of the tuned model (outer folds)")
    if result.parent_run_id:
        console.print(f"MLflow run {result.parent_run_id} in {tracker.tracking_uri}")


@app.command()
@user_errors
def worker(
    experiment: Annotated[Path, typer.Argument(help="The experiment file of the running study (same data file).")],
    storage: Annotated[str, typer.Option(help="The study's storage: postgresql://USER@HOST:PORT/DB (several hosts) "
                                         "or the sqlite:/// or journal: file of this host.")],
    n_trials: Annotated[int | None, typer.Option("--n-trials", min=1, help="Finish at most this many trials in this "
                                                 "worker (default: until every study holds its count).")] = None,
    n: Annotated[int | None, typer.Option(help="Override the simulated cohort size (as given to tune).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI, the tune run's (a tracking server "
                                                     "for several hosts; default from the file).")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Do not log trials to MLflow.")] = False,
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for the study to appear.")] = 0.0,
    heartbeat_seconds: Annotated[int | None, typer.Option(min=1, help="Heartbeat of running trials (as tune's).")
                                 ] = None,
    exit_with_parent: Annotated[bool, typer.Option(help="Exit when the process that started this one dies.")
                                ] = True,
) -> None:
    """Join a running `cartrisk tune` study from any host and run its trials until it has its count.

    The worker checks that its experiment file and data give the fingerprint the study recorded (it refuses
    otherwise), runs trials until each study of the run holds its count, and logs each trial under the run's
    MLflow study run. A worker that dies mid-trial has its trial failed and replaced by the others.
    """

    import optuna
    from threadpoolctl import threadpool_limits

    from cartrisk.cli._experiment import prepare_experiment
    from cartrisk.tracking.store import check_storage_url
    from cartrisk.tuning import join_experiment
    from cartrisk.tuning.studies import sigterm_as_interrupt, storage_exists
    from cartrisk.tuning.workers import exit_with_parent as watch_parent

    # the same checks as tune (file, --n, tracking URI, the experiment against its data) before joining
    cfg, uri, _ = prepare_experiment(experiment, n=n, tracking_uri=tracking_uri, no_tracking=no_tracking,
                                     tuning=True)
    check_storage_url(storage)
    if not storage_exists(storage) and not wait:
        raise ConfigError(f"--storage: no study storage at {storage}: a worker joins the studies of a running "
                          "`cartrisk tune` with the same --storage; start that first, or give --wait SECONDS")
    tracking = None if uri is None else (uri, cfg.tracking.experiment or cfg.name)
    if logging.getLogger("cartrisk").getEffectiveLevel() > logging.INFO:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    with sigterm_as_interrupt():
        if exit_with_parent:
            watch_parent()
        with threadpool_limits(limits=1):
            done = join_experiment(cfg, storage, tracking=tracking, max_trials=n_trials, wait_seconds=wait,
                                   heartbeat_seconds=heartbeat_seconds,
                                   on_start=lambda name, t: err_console.print(
                                       f"{name}: trial {t.number} started", highlight=False),
                                   on_trial=lambda name, t: err_console.print(
                                       f"{name}: trial {t.number} {t.state.name.lower()}", highlight=False))
    rows = [{"study": name, "trials run here": done.finished.get(name, 0)} for name in done.studies]
    print_frame(pd.DataFrame(rows), title=f"worker on {done.group}: {done.total} trial(s) finished")


@app.command()
@user_errors
def studies(
    storage: Annotated[str, typer.Option(help="Optuna storage: database URL or journal:PATH.")] = (
        "sqlite:///mlruns/optuna.db"),
) -> None:
    """List the studies in a storage with their best values and trial counts."""
    from cartrisk.tracking.store import check_storage_url
    from cartrisk.tuning.studies import list_studies, open_storage, storage_exists
    from cartrisk.tuning.workers import release_connections

    check_storage_url(storage)
    if not storage_exists(storage):
        raise ConfigError(f"no study storage at {storage}")
    store = open_storage(storage)
    rows = list_studies(store)
    release_connections(store)
    if not rows:
        console.print(f"no studies in {storage}")
        return
    print_frame(pd.DataFrame(rows), title=f"studies in {storage}", floatfmt="{:.4f}")
