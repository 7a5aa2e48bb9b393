"""``cartrisk validate-model`` (a bundle on a new cohort), ``cartrisk update-model`` (recalibrate or refit it there)
and ``cartrisk samplesize`` (Riley's minimum sample size for a survival prediction model)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cartrisk.cli._app import app, console, err_console, print_frame, user_errors
from cartrisk.cli._trust import FingerprintOption, TrustOption, check_trust_options, open_bundle
from cartrisk.exceptions import ConfigError
from cartrisk.paths import check_output_folder

__all__ = ["parse_thresholds", "samplesize", "update_model", "validate_model"]

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
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ConfigError(f"--thresholds {text!r}: {twice[0]:g} is given twice; give each threshold once")
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
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.", min=0)] = 0,
    out: Annotated[Path, typer.Option(help="Folder for metrics.csv, the other tables and the figures.")]
    = DEFAULT_OUT,
    subgroups: Annotated[bool, typer.Option(help="Also C, O/E and slope by subgroup (registry columns).")] = True,
    report: Annotated[bool, typer.Option("--report", help="Also write OUT/report.html (the HTML report's "
                                                          "renderer).")] = False,
    trust: TrustOption = None,
    expect_fingerprint: FingerprintOption = None,
) -> None:
    """Externally validate a bundle on a cohort: C, AUC, O/E, slope, ICI, Brier, IPA, net benefit with 95%
    bootstrap intervals; calibration, decision-curve, risk-group and case-mix figures."""
    from cartrisk.bundle import summary_line
    from cartrisk.bundle.validation import validate_bundle
    from cartrisk.exceptions import SchemaError
    from cartrisk.workflows.validation import write_validation

    check_trust_options(trust, expect_fingerprint)
    check_output_folder(out, where="--out")
    levels = parse_thresholds(thresholds)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "metrics.csv").is_file())):
        raise ConfigError(f"--out {out}: exists and is not the output folder of an earlier validate-model (no "
                          "metrics.csv); choose a new folder, it is replaced as a whole")
    bundle = open_bundle(model, trust, expect_fingerprint)
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


@app.command("update-model")
@user_errors
def update_model(
    model: Annotated[Path, typer.Argument(help="Bundle folder to update, e.g. models/NAME.")],
    data: Annotated[Path, typer.Option("--data", help="Cohort of the new setting (.csv or .parquet), with outcome.")],
    method: Annotated[str, typer.Option("--method", help="intercept (baseline hazard), slope (and calibration "
                                                         "slope), refit (every coefficient), or auto (closed "
                                                         "testing, Vergouwe et al. 2017).")],
    name: Annotated[str, typer.Option("--name", help="Name of the new bundle: MODELS_DIR/NAME.")],
    horizon: Annotated[float | None, typer.Option(help="Horizon of the recalibration in months (default: the "
                                                       "bundle's last horizon).", min=0.0)] = None,
    models_dir: Annotated[Path, typer.Option(help="Folder of bundles.")] = Path("models"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a bundle of that name.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the cross-validation that learns a refit's risk groups.",
                                      min=0)] = 0,
    trust: TrustOption = None,
    expect_fingerprint: FingerprintOption = None,
) -> None:
    """Update a bundle on a new cohort; the new bundle records its lineage (parent fingerprint, data hash,
    method, tests) in bundle.json and MODEL_CARD.md."""
    from cartrisk.bundle import summary_line
    from cartrisk.bundle.updating import update_bundle
    from cartrisk.exceptions import SchemaError

    check_trust_options(trust, expect_fingerprint)
    check_output_folder(models_dir, where="--models-dir")
    from cartrisk.bundle.export import bundle_name_problem

    problem = bundle_name_problem(name)
    if problem:
        raise ConfigError(f"--name: {problem} (it names the folder MODELS_DIR/NAME)")
    if horizon is not None and not horizon > 0:
        raise ConfigError(f"--horizon: {horizon:g} months; the recalibration horizon must be a positive number of "
                          "months")
    bundle = open_bundle(model, trust, expect_fingerprint)
    err_console.print(f"parent {summary_line(bundle)}", highlight=False)
    try:
        result = update_bundle(bundle, _frame(data), method=method, name=name, models_dir=models_dir,
                               source=str(data), horizon_months=horizon, overwrite=overwrite, random_state=seed)
    except SchemaError as err:
        if not err.problems:
            raise
        _print_problems(err, data)
        raise typer.Exit(2) from None
    print_frame(result.tests.tests, title="closed testing (likelihood-ratio tests against the revised model)")
    lin = result.lineage
    console.print(f"method: {result.method} (asked: {result.requested}). Why: {lin['reason']}", highlight=False,
                  soft_wrap=True)
    console.print(f"baseline hazard x {lin['baseline_hazard_factor']:.3f}, slope {lin['slope']:.3f}; wrote "
                  f"{result.path} (parent fingerprint {lin['parent']['fingerprint'][:16]})", highlight=False)


@app.command()
@user_errors
def samplesize(
    parameters: Annotated[int, typer.Option(help="Candidate predictor parameters (after encoding).", min=1)],
    rate: Annotated[float, typer.Option(help="Event rate per unit of time (e.g. deaths per person-month).")],
    horizon: Annotated[float, typer.Option(help="Time point of interest, in the rate's unit.")],
    mean_followup: Annotated[float, typer.Option(help="Anticipated mean follow-up, in the rate's unit.")],
    r2cs: Annotated[float, typer.Option("--r2cs", help="Anticipated Cox-Snell R2 of the model.")],
    shrinkage: Annotated[float, typer.Option(help="Target expected shrinkage.")] = 0.9,
) -> None:
    """Minimum sample size for a survival prediction model (Riley et al., Stat Med 2019; BMJ 2020)."""
    import pandas as pd

    from cartrisk.evaluation.samplesize import riley_survival

    for option, value in (("--rate", rate), ("--horizon", horizon), ("--mean-followup", mean_followup)):
        if not value > 0:
            raise ConfigError(f"{option}: {value:g}; give a positive number (the rate per unit of time, and the "
                              "horizon and mean follow-up in that unit)")
    if not 0 < shrinkage < 1:
        raise ConfigError(f"--shrinkage: {shrinkage:g}; the target expected shrinkage lies strictly between 0 and 1 "
                          "(Riley et al. use 0.9)")
    if not 0 < r2cs < shrinkage:
        raise ConfigError(f"--r2cs: {r2cs:g}; the anticipated Cox-Snell R2 must lie strictly between 0 and the target "
                          f"shrinkage {shrinkage:g} (e.g. 0.05; see Riley et al. 2019 for how to anticipate it)")
    try:
        res = riley_survival(parameters=parameters, rate=rate, horizon=horizon, mean_followup=mean_followup,
                             r2_cs=r2cs, shrinkage=shrinkage)
    except ValueError as err:
        raise ConfigError(f"samplesize: {err}") from None
    rows = [("criterion 1 (shrinkage >= target)", res.n_criterion1, shrinkage),
            ("criterion 2 (Nagelkerke optimism <= 0.05)", res.n_criterion2, res.shrinkage_criterion2),
            ("final", res.n, res.shrinkage)]
    print_frame(pd.DataFrame([{"criterion": c, "n": n, "shrinkage": s, "events_per_parameter":
                               n * rate * mean_followup / parameters} for c, n, s in rows]),
                title=f"Riley et al.: {parameters} parameters, rate {rate:g}, horizon {horizon:g}, mean follow-up "
                      f"{mean_followup:g}, R2cs {r2cs:g}")
    console.print(f"minimum sample size {res.n:,} ({res.events:,.0f} events, {res.events_per_parameter:.2f} per "
                  f"parameter, {res.person_time:,.1f} person-time); overall risk by {horizon:g}: "
                  f"{res.overall_risk:.3f} (95% CI {res.overall_risk_lower:.3f}-{res.overall_risk_upper:.3f})",
                  highlight=False)
