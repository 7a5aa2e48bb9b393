"""``cartrisk export`` (a chosen model as a verified bundle with its model card), ``cartrisk score``, and
``cartrisk keygen`` (a key pair to sign bundles and to trust them)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from cartrisk.cli._app import app, console, err_console, user_errors, write_table
from cartrisk.cli._trust import FingerprintOption, TrustOption, check_trust_options, open_bundle
from cartrisk.exceptions import ConfigError


@app.command("export")
@user_errors
def export_command(
    name: Annotated[str, typer.Option("--name", help="Bundle name: the folder MODELS_DIR/NAME.")],
    run: Annotated[str | None, typer.Option("--run", help="MLflow run id of the model (e.g. a model run of "
                                                          "`cartrisk evaluate`).")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Optuna study name (`cartrisk tune`): its refitted "
                                                              "best model.")] = None,
    trial: Annotated[int | None, typer.Option("--trial", help="A trial of --study (only if it logged a pipeline).",
                                              min=0)] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default "
                                                          "sqlite:///mlruns/mlflow.db).")] = None,
    models_dir: Annotated[Path, typer.Option(help="Folder of bundles.")] = Path("models"),
    data: Annotated[Path | None, typer.Option(help="Training extract, when the run's experiment file cannot "
                                                   "re-create it (checked against the run's data SHA-256).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a bundle of that name.")] = False,
    register: Annotated[bool, typer.Option("--register", help="Also register it in the MLflow model registry "
                                                              "(pyfunc model).")] = False,
    model: Annotated[str | None, typer.Option("--model", help="With --run of an evaluate run holding several "
                                                              "models: the model's name.")] = None,
    sign: Annotated[Path | None, typer.Option("--sign", metavar="KEY", help="Sign the bundle with this private key "
                                              "(NAME.key from `cartrisk keygen`).")] = None,
) -> None:
    """Export a model from MLflow as a bundle: skops pipeline, schema, metrics, checksums and MODEL_CARD.md."""
    from cartrisk.bundle import load_bundle, summary_line
    from cartrisk.bundle.signing import load_signing_key
    from cartrisk.config import DEFAULT_TRACKING_URI
    from cartrisk.paths import check_output_folder
    from cartrisk.tracking.runs import export_from_tracking
    from cartrisk.tracking.store import require_store

    if sign is not None:
        load_signing_key(sign)  # a bad key is refused before any work
    from cartrisk.bundle.export import bundle_name_problem

    problem = bundle_name_problem(name)
    if problem:
        raise ConfigError(f"--name: {problem} (it names the folder MODELS_DIR/NAME)")
    if (models_dir / name).exists() and not overwrite:
        raise ConfigError(f"--name: {models_dir / name} exists; choose another name or pass --overwrite")
    check_output_folder(models_dir, where="--models-dir")
    require_store(DEFAULT_TRACKING_URI if tracking_uri is None else tracking_uri)
    path = export_from_tracking(name=name, models_dir=models_dir, run_id=run, study=study, trial=trial,
                                tracking_uri=tracking_uri, data=data, overwrite=overwrite, register=register,
                                model=model, sign_with=sign)
    bundle = load_bundle(path)
    console.print(f"exported {summary_line(bundle)}", highlight=False)
    console.print(f"bundle {path} (model card {path / 'MODEL_CARD.md'})", highlight=False)
    console.print(f"fingerprint (SHA-256 of MANIFEST.json) {bundle.fingerprint}", highlight=False)
    if bundle.signature is not None:
        console.print(f"signed by key {bundle.signature.key_fingerprint} ({sign}); whoever scores with it should "
                      "pass --trust with the matching .pub file", highlight=False)
    if register:
        console.print(f"registered as MLflow model '{name}'", highlight=False)


@app.command()
@user_errors
def score(
    bundle_dir: Annotated[Path, typer.Argument(help="Bundle folder, e.g. models/NAME.")],
    path: Annotated[Path, typer.Argument(help="New patients (.csv or .parquet); outcome columns not needed.")],
    out: Annotated[Path, typer.Option("--out", help="Scores (.csv or .parquet).")],
    explain: Annotated[bool, typer.Option("--explain", help="Add the columns contributing most to each risk score "
                                                            "(SHAP).")] = False,
    top: Annotated[int, typer.Option(help="How many contributing columns with --explain.", min=1)] = 3,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Leave out rows that fail validation "
                                                                      "(reported) instead of stopping.")] = False,
    trust: TrustOption = None,
    expect_fingerprint: FingerprintOption = None,
) -> None:
    """Score new patients with a verified bundle: risk score, survival at 3/6/12 months, risk group."""
    from cartrisk.bundle import summary_line
    from cartrisk.data.schema import read_extract
    from cartrisk.exceptions import SchemaError, StatisticalWarning
    from cartrisk.paths import check_output_file

    check_output_file(out, where="--out", suffixes=(".csv", ".parquet", ".pq"))
    check_trust_options(trust, expect_fingerprint)
    bundle = open_bundle(bundle_dir, trust, expect_fingerprint)
    err_console.print(f"bundle {summary_line(bundle)}", highlight=False)
    frame = read_extract(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StatisticalWarning)
        try:
            report = bundle.score_report(frame, source=str(path), skip_invalid=skip_invalid,
                                         explain=top if explain else 0)
        except SchemaError as err:
            problems = err.problems or []
            if not problems:
                raise
            err_console.print(f"[bold red]{path}: {len(problems)} problem(s); nothing written[/]")
            for problem in problems:
                err_console.print(f"  - {problem}", highlight=False, markup=False, soft_wrap=True)
            if not skip_invalid and all(p.row is not None for p in problems):
                err_console.print("rerun with --skip-invalid to score the valid rows and leave these out",
                                  highlight=False)
            raise typer.Exit(2) from None
    for w in caught:
        if issubclass(w.category, StatisticalWarning):
            err_console.print(f"warning: {w.message}", highlight=False, markup=False, soft_wrap=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for notice in report.notices:
        err_console.print(f"note: {notice}", highlight=False, markup=False, soft_wrap=True)
    if report.skipped:
        err_console.print(f"left out {len(report.skipped_rows)} invalid row(s): "
                          f"{', '.join(map(str, report.skipped_rows))}", highlight=False)
        for problem in report.skipped:
            err_console.print(f"  - {problem}", highlight=False, markup=False, soft_wrap=True)
    write_table(report.scores, out)
    console.print(f"wrote {len(report.scores):,} scored patients to {out}", highlight=False)


@app.command()
@user_errors
def keygen(
    out: Annotated[Path, typer.Option("--out", metavar="STEM", help="Where to write the pair: STEM.key (private, "
                                      "mode 0600; keep it to yourself) and STEM.pub (hand it to whoever scores).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing pair of that name.")] = False,
) -> None:
    """Make a key pair for signing bundles: sign with `cartrisk export --sign STEM.key`, trust with --trust STEM.pub."""
    from cartrisk.bundle.signing import generate_keypair
    from cartrisk.paths import check_output_folder

    if not out.name or out.name in (".", ".."):
        raise typer.BadParameter("give a file stem such as keys/lab", param_hint="--out")
    check_output_folder(out.parent, where="--out")
    private, public, fingerprint = generate_keypair(out, overwrite=overwrite)
    console.print(f"private key {private} (keep it secret: it signs bundles in your name)", highlight=False)
    console.print(f"public key  {public} (give it to whoever scores: `--trust {public}`)", highlight=False)
    console.print(f"key fingerprint {fingerprint}", highlight=False)
