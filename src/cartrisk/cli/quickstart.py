"""``cartrisk quickstart``: the main job end to end on the simulated registry, with its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from cartrisk.cli._app import app, console, print_frame, progress_bars, user_errors, write_table
from cartrisk.config import DEFAULT_TRACKING_URI
from cartrisk.paths import atomic_path


@app.command()
@user_errors
def quickstart(
    out: Annotated[Path, typer.Option(help="Folder for the report and the scored cohort.")] = Path("quickstart_out"),
    n: Annotated[int, typer.Option(help="Patients in the simulated registry.", min=200)] = 1500,
    trials: Annotated[int | None, typer.Option(help="Optuna trials per study (default from the study file).",
                                               min=1)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the registry, the folds and the models.", min=0,
                                      max=2**32 - 1)] = 0,
    models_dir: Annotated[Path, typer.Option(help="Where the bundle is exported.")] = Path("models"),
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI: a sqlite:/// file or a tracking server "
                                                   "(http://host:port).")] = DEFAULT_TRACKING_URI,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes of the tuning stage (default: as many "
                                                "as cores; 1 runs it in this process).")] = None,
) -> None:
    """Simulate, validate, tune, explain, compare with the D0-30 rule, export, score and report: the whole job."""
    import dataclasses

    from cartrisk.data.datasets import load_dataset
    from cartrisk.evaluation.preflight import check_experiment
    from cartrisk.paths import check_output_folder
    from cartrisk.tracking import Tracker
    from cartrisk.tracking.store import check_tracking_uri
    from cartrisk.workflows.quickstart import quickstart_experiment, run_quickstart
    from cartrisk.workflows.report import build_report

    # Everything that can be wrong is checked before the job starts: nothing is written on a refusal.
    check_output_folder(out, where="--out")
    check_output_folder(models_dir, where="--models-dir")
    check_tracking_uri(tracking_uri)
    cfg = quickstart_experiment(n=n, seed=seed)
    if trials is not None:
        cfg = dataclasses.replace(cfg, tuning=dataclasses.replace(cfg.tuning, n_trials=trials))
    check_experiment(cfg, load_dataset(cfg.data, seed=cfg.seed))
    tracker = Tracker(tracking_uri, "cartrisk-quickstart")
    with progress_bars() as progress:
        result = run_quickstart(tracker=tracker, models_dir=models_dir, n=n, trials=trials, seed=seed,
                                progress=progress, workers=workers)
    report_path = out / "report.html"
    html = build_report(result.run_id, tracker=tracker)
    with atomic_path(report_path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    write_table(result.scored, out / "scored.csv")
    h = result.headline
    rows = [("best model (nested CV)", f"{result.study.family}"),
            ("outer-fold Uno C (tuned model)", f"{h['outer_uno_c']:.3f}"),
            ("outer-fold Uno C (D0-30 rule)", f"{h['rule_d0_30_uno_c']:.3f}"),
            ("inner (tuning) value", f"{h['inner_value']:.3f}"),
            ("HR high vs low: model groups sized like D0-30 / the rule", f"{h['hr_model_groups']:.2f} / "
             f"{h['hr_d0_30']:.2f}"),
            ("C difference, model groups - D0-30 rule", f"{h['c_difference_d0_30']:+.3f}"),
            ("scoring throughput, patients/s", f"{h['scoring_patients_per_second']:,.0f}")]
    rows += [(f"time: {stage}", f"{seconds:.0f} s") for stage, seconds in result.stage_seconds.items()]
    rows += [("report", str(report_path)), ("bundle", str(result.bundle)), ("scored cohort", str(out / "scored.csv")),
             ("MLflow run", f"{result.run_id} in {tracking_uri}")]
    print_frame(pd.DataFrame(rows, columns=["", "value"]), title="cartrisk quickstart")
    console.print(f"Open the report: {report_path.resolve().as_uri()}")
