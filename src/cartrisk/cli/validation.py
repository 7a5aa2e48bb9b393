"""``cartrisk validate-model`` (a bundle on a new cohort), ``cartrisk update-model`` (recalibrate or refit it there)
and ``cartrisk samplesize`` (Riley's minimum sample size for a survival prediction model)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cartrisk.cli._app import app, console, err_console, print_frame, user_errors
from cartrisk.exceptions import ConfigError

__all__ = ["parse_thresholds", "validate_model"]

DEFAULT_OUT = Path("reports/validate-model")


def parse_thresholds(text: str | None) -> tuple[float, ...]:
    """``"0.1,0.2"`` -> (0.1, 0.2); each strictly between 0 and 1."""
    if not text:
        return ()
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--thresholds {text!r}: give risks between 0 and 1 separated by commas, e.g. "
                          "0.1,0.2,0.3") from None
    bad = [v for v in values if not 0 < v < 1]
    if bad:
        raise ConfigError(f"--thresholds {text!r}: {bad[0]:g} is not strictly between 0 and 1; give risks of death "
                          "by the horizon, e.g. 0.1,0.2,0.3")
    return values


def _frame(path: Path):
    from cartrisk.data.schema import read_extract

    return read_extract(path)


def _print_problems(err, path: Path) -> None:
    err_console.print(f"[bold red]{path}: {len(err.problems)} problem(s); nothing written[/]")
    for problem in err.problems:
        err_console.print(f"  - {problem}", highlight=False, markup=False, soft_wrap=True)


@app.command("validate-model")
@user_errors
def validate_model(
    model: Annotated[Path, typer.Argument(help="Bundle folder, e.g. models/NAME.")],
    data: Annotated[Path, typer.Option("--data", help="Validation cohort (.csv or .parquet) with its outcome.")],
    horizon: Annotated[float, typer.Option("--horizon", help="Horizon in months (e.g. 6).", min=0.0)],
    thresholds: Annotated[str | None, typer.Option(help="Risk thresholds of the net-benefit rows, e.g. "
                                                        "0.1,0.2,0.3.")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples of the intervals.", min=0)] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for metrics.csv, the other tables and the figures.")]
    = DEFAULT_OUT,
    subgroups: Annotated[bool, typer.Option(help="Also C, O/E and slope by subgroup (registry columns).")] = True,
    report: Annotated[bool, typer.Option("--report", help="Also write OUT/report.html (the HTML report's "
                                                          "renderer).")] = False,
) -> None:
    """Externally validate a bundle on a cohort: C, AUC, O/E, slope, ICI, Brier, IPA, net benefit with 95%
    bootstrap intervals; calibration, decision-curve, risk-group and case-mix figures."""
    from cartrisk.bundle import load_bundle, summary_line
    from cartrisk.bundle.validation import validate_bundle, write_validation
    from cartrisk.exceptions import SchemaError

    levels = parse_thresholds(thresholds)
    bundle = load_bundle(model)
    err_console.print(f"bundle {summary_line(bundle)}", highlight=False)
    frame = _frame(data)
    try:
        result = validate_bundle(bundle, frame, horizon_months=horizon, source=str(data), thresholds=levels,
                                 n_boot=n_boot, random_state=seed, subgroups=subgroups)
    except SchemaError as err:
        if not err.problems:
            raise
        _print_problems(err, data)
        raise typer.Exit(2) from None
    except ValueError as err:  # a horizon outside the cohort's follow-up, no deaths by it
        raise ConfigError(f"{data}: {err}") from None
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        staging = Path(tmp) / "out"
        write_validation(result, staging)
        if report:
            from cartrisk.workflows.report import render_folders

            folders = {"validation": staging}
            if (staging / "subgroups").is_dir():
                folders["subgroups"] = staging / "subgroups"
            html = render_folders(folders, title=f"cartrisk: {bundle.name} validated on {data.name}")
            (staging / "report.html").write_text(html, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(out))
    print_frame(result.metrics, title=f"{bundle.name} on {data} at {horizon:g} months (95% bootstrap intervals, "
                f"{n_boot:,} resamples)")
    console.print(result.answer(), highlight=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"wrote {out / 'metrics.csv'} and the figures to {out}", highlight=False)
