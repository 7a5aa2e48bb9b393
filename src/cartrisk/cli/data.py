"""Data commands: the data dictionary, the simulated registry, validation of an extract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from cartrisk.cli._app import app, console, err_console, print_frame, user_errors, write_table
from cartrisk.exceptions import ConfigError


@app.command()
def columns() -> None:
    """Print the data dictionary (every column cartrisk reads, its role, type and allowed values)."""
    from cartrisk.data.dictionary import data_dictionary_frame

    print_frame(data_dictionary_frame().drop(columns=["meaning"]), title="cartrisk data dictionary")


@app.command()
@user_errors
def simulate(
    n: Annotated[int, typer.Option(help="Number of patients.", min=1)] = 1500,
    seed: Annotated[int, typer.Option(help="Random seed.", min=0, max=2**32 - 1)] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the registry extract here (.csv or .parquet).")] = None,
    truth: Annotated[Path | None, typer.Option(help="Write the true risk of each patient here.")] = None,
    report: Annotated[bool, typer.Option("--report", help="Print simulated vs published figures.")] = False,
) -> None:
    """Simulate a registry of failures after CAR T-cells, calibrated to the published figures."""
    from cartrisk.data.simreport import simulation_report
    from cartrisk.data.simulate import simulate as run_simulation
    from cartrisk.paths import check_output_file

    for option, target in (("--out", out), ("--truth", truth)):
        if target is not None:
            check_output_file(target, where=option, suffixes=(".csv", ".parquet", ".pq"))
    if out is not None and truth is not None and out.absolute() == truth.absolute():
        raise ConfigError(f"--out and --truth are the same file ({out}); give two files")
    frame, true = run_simulation(n, seed)
    if out is not None:
        write_table(frame, out)
        console.print(f"wrote {len(frame):,} patients to {out}")
    if truth is not None:
        write_table(true, truth)
        console.print(f"wrote the true risk to {truth}")
    if report or out is None:
        print_frame(simulation_report(frame), title=f"simulated registry (n={n:,}, seed={seed}) vs published")


@app.command()
@user_errors
def validate(
    path: Annotated[Path, typer.Argument(help="Registry extract (.csv or .parquet).")],
    experiment: Annotated[Path | None, typer.Option(help="Experiment file whose \\[data.columns] renames the file's "
                                                         "columns and whose \\[data.extra] declares the site's own.")
                          ] = None,
) -> None:
    """Check an extract against the data dictionary; list every problem (exit 0 valid, 2 invalid)."""
    from cartrisk.data.datasets import read_renamed
    from cartrisk.data.dictionary import declared_columns
    from cartrisk.data.schema import validate as run_validation

    data = None
    if experiment is not None:
        from cartrisk.config import load_experiment

        data = load_experiment(experiment).data
    raw = read_renamed(path, data.columns if data is not None else None)
    result = run_validation(raw, source=str(path), extra=declared_columns(data.extra_specs if data else None))
    for notice in result.notices:
        console.print(f"note: {notice}")
    if not result.ok:
        err_console.print(f"[bold red]{path}: {len(result.problems)} problem(s)[/]")
        for problem in result.problems:
            err_console.print(f"  - {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2)
    print_frame(cohort_summary(result.raise_if_invalid()), title=f"{path}: valid")


def cohort_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Patients, deaths, OS-2, follow-up and the failure-window split of a validated cohort."""
    from cartrisk.data.schema import to_xy
    from cartrisk.data.simreport import cohort_summary as summarise
    from cartrisk.data.simreport import cohort_table

    X, y = to_xy(frame)
    return cohort_table(summarise(y, X))
