"""``cartrisk compare-rules``: a model's calibrated risk groups against the D0-30 rule and the PC-PI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.markup import escape

from cartrisk.cli._app import app, console, print_frame, progress_bars, user_errors, write_table
from cartrisk.cli._trust import FingerprintOption, TrustOption, check_trust_options, open_bundle, refuse_trust_for_runs
from cartrisk.exceptions import ConfigError
from cartrisk.tracking.store import is_run_id

__all__ = ["compare_rules", "display_table", "write_comparison"]

DEFAULT_OUT = Path("reports/compare-rules")


def _interval(value: float, lower: float, upper: float, fmt: str) -> str:
    if not np.isfinite(value):
        return ""
    return f"{value:{fmt}} [{lower:{fmt}}, {upper:{fmt}}]"


def display_table(summary: pd.DataFrame, horizon_months: float) -> pd.DataFrame:
    """The comparison summary as text columns for the terminal (numbers with their 95% intervals)."""
    rows = []
    for r in summary.itertuples(index=False):
        rows.append({
            "rule": r.rule, "grouping": r.grouping,
            "groups": "" if not np.isfinite(r.n_groups) else f"{int(r.n_groups)}",
            "Harrell C": f"{r.harrell_c:.3f}", "Uno C": f"{r.uno_c:.3f}",
            f"AUC {horizon_months:g}m": f"{r.td_auc:.3f}",
            "HR top vs bottom": _interval(r.hr_top, r.hr_top_lower, r.hr_top_upper, ".2f"),
            "log-rank p": "" if not np.isfinite(r.logrank_p) else f"{r.logrank_p:.1e}",
            "C diff vs rule": _interval(r.c_difference, r.c_difference_lower, r.c_difference_upper, "+.3f"),
            f"NRI {horizon_months:g}m": "" if not np.isfinite(r.nri) else f"{r.nri:+.3f}",
        })
    return pd.DataFrame(rows)


def write_comparison(comparison, out: Path) -> list[Path]:
    """Write every result table as ``<name>.csv`` (``comparison.csv`` is the summary) and the figures, atomically."""
    from cartrisk.groups.figures import write_comparison_figures

    written = []
    for name, table in comparison.tables().items():
        path = out / ("comparison.csv" if name == "summary" else f"{name}.csv")
        write_table(table, path)
        written.append(path)
    return written + write_comparison_figures(comparison, out)


def _load(model: str, tracking_uri: str | None, trust: list[Path] | None = None,
          expect_fingerprint: str | None = None):
    """The fitted pipeline and, for a bundle that stores them, its risk-group cut-points (or None)."""
    from cartrisk.tracking import load_model

    if Path(model).is_dir():
        bundle = open_bundle(model, trust, expect_fingerprint)
        return bundle.pipeline, bundle.grouper
    return load_model(model, tracking_uri=tracking_uri), None


def _cohort(path: Path):
    from cartrisk.data.schema import load_cohort, to_xy

    return to_xy(load_cohort(path))


@app.command("compare-rules")
@user_errors
def compare_rules(
    model: Annotated[str, typer.Option("--model", help="Exported model bundle folder, or MLflow run id.")],
    data: Annotated[Path, typer.Option("--data", help="Cohort to compare on (.csv or .parquet), with OS-2.")],
    groups: Annotated[str | None, typer.Option(
        help="How the model's groups are formed: rule-sized (sizes of each rule's groups), 3 (equal groups) or "
             "threshold:0.25@6 (6-month OS-2 below 25%). Default: the bundle's cut-points, else rule-sized.")] = None,
    train: Annotated[Path | None, typer.Option(
        help="Training cohort: cut-points and recalibration are learned on its out-of-fold predictions, and the "
             "rules' group survival on it.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the CSV tables and PNG figures.")] = DEFAULT_OUT,
    rules: Annotated[str, typer.Option(help="Comma-separated reference rules.")] = "d0_30,d0_30_90,pcpi",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples of the C differences.", min=1)] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the folds and the bootstrap.", min=0, max=2**32 - 1)] = 0,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (run ids, --track).")] = None,
    track: Annotated[bool, typer.Option("--track", help="Log the tables and figures (aggregates, no patient rows) "
                                        "to an MLflow run.")] = False,
    trust: TrustOption = None,
    expect_fingerprint: FingerprintOption = None,
) -> None:
    """Compare the model's risk groups with the reference rules on one cohort; print the table, write CSV + figures."""
    from cartrisk.config import DEFAULT_TRACKING_URI
    from cartrisk.evaluation.calibration import horizon_problems
    from cartrisk.groups.rulecomparison import ComparisonSettings, compare_with_rules, parse_groups
    from cartrisk.modelling.rules import RULES
    from cartrisk.paths import check_output_folder
    from cartrisk.tracking.store import check_tracking_uri, require_store
    from cartrisk.units import DEFAULT_HORIZONS_MONTHS, months_to_days

    spec = parse_groups(groups or "rule-sized")
    names = [r.strip() for r in rules.split(",")]
    unknown = [r for r in names if r not in RULES]
    if unknown or not any(names):
        raise ConfigError(f"--rules: unknown rule {', '.join(map(repr, unknown)) or repr(rules)}; known rules: "
                          f"{', '.join(RULES)} (comma-separated)")
    check_output_folder(out, where="--out")
    refuse_trust_for_runs(model, trust, expect_fingerprint)
    check_trust_options(trust, expect_fingerprint)
    uri = DEFAULT_TRACKING_URI if tracking_uri is None else tracking_uri
    if track:
        check_tracking_uri(uri)
    if is_run_id(model) and not Path(model).exists():
        require_store(uri)  # a run id: read from a store that must exist
    pipeline, stored = _load(model, uri, trust, expect_fingerprint)
    use_stored = stored is not None and groups is None
    if not use_stored and train is None:
        why = ("--groups asks for new cut-points" if groups is not None
               else f"the model {model} carries no risk-group cut-points")
        raise ConfigError(f"{why}: give the training cohort with --train PATH, so that cut-points (and the "
                          "recalibration) are learned on its out-of-fold predictions, never on the patients compared")
    X_test, y_test = _cohort(data)
    X_train, y_train = _cohort(train) if train is not None else (None, None)
    problems = [p for p in horizon_problems(months_to_days(DEFAULT_HORIZONS_MONTHS), y_test, y_train,
                                            require_events=True) if p is not None]
    if problems:
        raise ConfigError(f"{data}: {problems[0]}")
    with progress_bars() as progress:
        settings = ComparisonSettings(groups=spec, rules=names,
                                      recalibrate=train is not None, n_boot=n_boot, random_state=seed)
        result = compare_with_rules(pipeline, X_train, y_train, X_test, y_test, settings,
                                    groupers={"model[bundle]": stored} if use_stored else None, progress=progress)
    title = (f"{model} against the rules on {data} (n={len(y_test):,}; groups: "
             f"{'bundle cut-points' if use_stored else spec}; training predictions: "
             f"{result.settings['training_predictions']})")
    # escape: rich would read "model[d0_30]" as markup and drop it
    print_frame(display_table(result.summary(), result.horizon_months).map(escape), title=escape(title))
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    written = write_comparison(result, out)
    console.print(f"wrote {len(written)} files to {out}", highlight=False)
    if track:
        _track(result, written, model, data, uri)


def _track(result, written: list[Path], model: str, data: Path, tracking_uri: str) -> None:
    from cartrisk.tracking import Tracker

    tracker = Tracker(tracking_uri)
    with tracker.run("compare-rules", tags={"cartrisk.kind": "rule-comparison"}) as run_id:
        settings = {k: v for k, v in result.settings.items() if k != "sizes"}
        tracker.log_params(run_id, {"model": model, "data": str(data), **settings})
        tracker.log_text(run_id, json.dumps(result.settings, indent=2), "settings.json")
        metrics = {}
        for r in result.summary().itertuples(index=False):
            key = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{r.rule}.{r.grouping}").strip("_")
            metrics |= {f"{key}.harrell_c": r.harrell_c, f"{key}.hr_top": r.hr_top,
                        f"{key}.c_difference": r.c_difference}
        tracker.log_metrics(run_id, metrics)
        for path in written:
            tracker.log_file(run_id, path, "figures" if path.suffix == ".png" else "tables")
    console.print(f"MLflow run {run_id} in {tracker.tracking_uri}", highlight=False)
