"""``cartrisk evaluate``: cross-validation of an experiment's models beside the reference rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cartrisk.cli._app import app, console, print_frame, progress_bars, user_errors


@app.command()
@user_errors
def evaluate(
    experiment: Annotated[Path, typer.Argument(help="Experiment file (TOML), e.g. experiments/evaluate_all.toml.")],
    n: Annotated[int | None, typer.Option(help="Override the simulated cohort size.", min=1)] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default from the file).")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Do not log to MLflow.")] = False,
) -> None:
    """Cross-validate the experiment's models and the reference rules on the same folds; print the comparison."""
    from cartrisk.cli._experiment import prepare_experiment
    from cartrisk.tracking import Tracker
    from cartrisk.workflows import evaluate_experiment, summary_table

    cfg, uri, data = prepare_experiment(experiment, n=n, tracking_uri=tracking_uri, no_tracking=no_tracking)
    tracker = None if uri is None else Tracker(uri, cfg.tracking.experiment or cfg.name)
    with progress_bars() as progress:
        report = evaluate_experiment(cfg, tracker=tracker, progress=progress, data=data)
    print_frame(summary_table(report), title=f"{cfg.name}: {report.dataset.name}, {cfg.evaluation.n_splits}-fold CV "
                f"x {cfg.evaluation.n_repeats} (mean [95% interval])")
    for label, res in report.clusters.items():
        print_frame(res.pooled, title=f"{label}: internal-external validation by {cfg.evaluation.cluster} "
                    f"({res.design}), REML pooled")
    for note in report.notes:
        console.print(f"warning: {note}", highlight=False, markup=False, soft_wrap=True)
    if report.run_id:
        console.print(f"MLflow run {report.run_id} in {tracker.tracking_uri}")
