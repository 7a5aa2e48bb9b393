"""``cartrisk describe``: the seed analysis of the published papers on any extract."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from cartrisk.cli._app import app, console, print_frame, user_errors
from cartrisk.exceptions import ConfigError


@app.command()
@user_errors
def describe(
    extract: Annotated[Path, typer.Argument(help="Registry extract (.csv or .parquet), or any cohort with --experiment "
                                                 "naming its \\[data.roles].")],
    out: Annotated[Path, typer.Option(help="Folder for the tables (CSV), figures (PNG) and section.json.")] = Path(
        "describe_out"),
    experiment: Annotated[Path | None, typer.Option(help="Experiment file whose \\[data] table describes the file: "
                                                         "\\[data.columns] renames, \\[data.extra] declares the "
                                                         "site's columns, \\[data.roles] reads it on the generic "
                                                         "path.")] = None,
    strata: Annotated[str | None, typer.Option(help="Column whose levels get their own baseline hazard in the Cox "
                                                    "models (e.g. centre_id).")] = None,
    by: Annotated[str | None, typer.Option(help="Generic path: the covariate that groups Table 1 and the Kaplan-Meier "
                                                "curves (a registry extract is grouped by failure window).")] = None,
) -> None:
    """Table 1 by failure window, Kaplan-Meier OS-2 with the log-rank test, and univariable and multivariable Cox
    models with the published hazard ratios beside each term (the seed analysis), written to --out."""
    from cartrisk.config import DataConfig, load_experiment
    from cartrisk.data.datasets import load_dataset
    from cartrisk.data.dictionary import declared_columns
    from cartrisk.paths import check_output_folder
    from cartrisk.workflows.describe import describe_generic, describe_registry, hazard_ratio_table, write_describe

    check_output_folder(out, where="--out")
    data_cfg = load_experiment(experiment).data if experiment is not None else DataConfig()
    data = load_dataset(dataclasses.replace(data_cfg, source="file", path=str(extract)))
    frame = data.frame if data.registry else data.X
    for option, name in (("--strata", strata), ("--by", by)):
        if name is not None and name not in frame.columns:
            raise ConfigError(f"{option} {name!r}: no such column in {extract}; columns are: "
                              f"{', '.join(map(str, frame.columns))}")
    if data.registry:
        if by is not None:
            raise ConfigError("--by applies to the generic path; a registry extract is grouped by failure window")
        result = describe_registry(data.frame, declared=declared_columns(data.declared), strata=strata)
    else:
        result = describe_generic(data.X, data.y, by=by, strata=strata)
    written = write_describe(result, out)  # everything is computed before the first file is written
    console.print(result.answer, highlight=False)
    print_frame(result.km.drop(columns=["group_code"]), title="Kaplan-Meier OS-2 (months)")
    table = hazard_ratio_table(result.multivariable)
    fitted = result.multivariable.dropna(subset=["hr"])
    cases = f"{int(fitted['n'].iloc[0])} complete cases, {int(fitted['events'].iloc[0])} deaths" if len(fitted) else \
        "no term could be fitted"
    print_frame(table.astype(object).where(table.notna(), ""), title=f"Multivariable Cox model ({cases})")
    console.print(f"wrote {len(written)} files to {out}")
