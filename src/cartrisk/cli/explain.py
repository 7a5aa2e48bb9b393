"""``cartrisk explain``: SHAP values of a fitted model on a cohort, its literature concordance and figures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from cartrisk.cli._app import app, console, print_frame, user_errors, write_table
from cartrisk.cli._trust import FingerprintOption, TrustOption, check_trust_options, open_bundle, refuse_trust_for_runs
from cartrisk.exceptions import ConfigError
from cartrisk.paths import atomic_path
from cartrisk.tracking.store import is_run_id

_NOT_COVARIATES = ("os2_days", "os2_event", "pfs2_days", "pfs2_event", "infusion_date", "failure_date",
                   "last_contact_date")


def _write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _selected(patients: str | None, frame: pd.DataFrame) -> list[str] | None:
    if not patients:
        return None
    wanted = [p.strip() for p in patients.split(",") if p.strip()]
    known = set(frame["patient_id"].astype(str))
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise ConfigError(f"--patients: {', '.join(unknown)} not in the data (patient_id)")
    return wanted


def run_explain(pipeline, frame: pd.DataFrame, out: Path, *, horizon_months: float | None = None,
                patients: list[str] | None = None, n_background: int = 100, max_horizon_patients: int = 200,
                seed: int = 0) -> tuple[list[Path], pd.DataFrame]:
    """Explain ``pipeline`` on the validated cohort ``frame`` and write every output into ``out``.

    Risk scores are explained for every patient (the concordance needs the cohort); survival at
    ``horizon_months`` for ``patients``, or for every patient up to ``max_horizon_patients`` (a seeded
    sample beyond). Returns the files written (each one atomically) and the concordance table.
    """
    from cartrisk.explain import concordance, concordance_markdown, explain, write_figures

    X = frame.drop(columns=[c for c in _NOT_COVARIATES if c in frame])
    risk = explain(pipeline, X, n_background=n_background, random_state=seed)
    by_column = risk.by_column()
    table = concordance(risk, random_state=seed)
    written = []
    for name, content in [("shap_values.csv", risk.to_frame(wide=True)), ("shap_by_column.csv",
                                                                          by_column.to_frame(wide=True)),
                          ("shap_importance.csv", by_column.importance()), ("concordance.csv", table)]:
        write_table(content, out / name)
        written.append(out / name)
    _write_text(concordance_markdown(table), out / "concordance.md")
    written.append(out / "concordance.md")
    written += write_figures(by_column, out / "figures", patients=patients, random_state=seed)
    if horizon_months is not None:
        subset = X
        if patients:
            subset = X[X["patient_id"].astype(str).isin(patients)]
        elif len(X) > max_horizon_patients:
            rows = np.sort(np.random.default_rng(seed).choice(len(X), size=max_horizon_patients, replace=False))
            subset = X.iloc[rows]
        survival = explain(pipeline, subset, output="survival", horizon_months=horizon_months, background=X,
                           n_background=n_background, random_state=seed)
        tag = f"survival_{horizon_months:g}m"
        for name, content in [(f"shap_{tag}.csv", survival.to_frame(wide=True)),
                              (f"shap_{tag}_by_column.csv", survival.by_column().to_frame(wide=True)),
                              (f"shap_{tag}_importance.csv", survival.by_column().importance())]:
            write_table(content, out / name)
            written.append(out / name)
        written += write_figures(survival.by_column(), out / "figures", patients=patients, prefix=f"{tag}_",
                                 random_state=seed)
    return written, table


def loggable(written: list[Path]) -> list[Path]:
    """The outputs that may go to MLflow: aggregates only (mean |SHAP| per column, the concordance with the
    literature, the beeswarm and dependence figures). Per-patient SHAP tables and waterfalls (a patient's id and
    own values) stay in the --out folder."""
    keep = []
    for path in written:
        name = path.name
        if path.suffix == ".png":
            if re.sub(r"^survival_[0-9.e+-]+m_", "", name).startswith(("beeswarm", "dependence_")):
                keep.append(path)
        elif name in ("concordance.csv", "concordance.md") or name.endswith("importance.csv"):
            keep.append(path)
    return keep


def _check_horizon(pipeline, horizon_months: float) -> None:
    """Refuse a horizon beyond the last time the model was trained on (its survival there is a flat guess)."""
    from cartrisk.units import days_to_months, months_to_days

    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    times = getattr(final, "unique_times_", None)
    if times is None or not len(times):
        return
    last = float(np.max(times))
    if float(months_to_days(horizon_months)) > last:
        raise ConfigError(f"--horizon {horizon_months:g} months is beyond the model's training follow-up (its last "
                          f"time is {days_to_months(last):.1f} months); choose a horizon of at most that")


@app.command()
@user_errors
def explain(
    model: Annotated[str, typer.Option("--model", help="Exported bundle folder or MLflow run id.")],
    data: Annotated[Path, typer.Option("--data", help="Cohort extract (.csv or .parquet); outcome not needed.")],
    horizon: Annotated[float | None, typer.Option("--horizon", help="Also explain the survival probability at this "
                                                  "horizon (months, within the model's follow-up).")] = None,
    patients: Annotated[str | None, typer.Option("--patients", help="Comma-separated patient ids: waterfall "
                                                 "figures and the survival explanation.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("explain_out"),
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI for a run id.")] = None,
    n_background: Annotated[int, typer.Option(min=1, help="Background patients (interventional SHAP).")] = 100,
    max_horizon_patients: Annotated[int, typer.Option(min=1, help="Patients explained at --horizon when "
                                                      "--patients is not given (a seeded sample).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the background, permutations and bootstrap.", min=0,
                                      max=2**32 - 1)] = 0,
    log_to_run: Annotated[bool, typer.Option("--log-to-run", help="Also log the aggregate outputs (SHAP importance, "
                                             "literature concordance, summary figures; never a patient's row) to "
                                             "the model's MLflow run (MODEL must be a run id).")] = False,
    trust: TrustOption = None,
    expect_fingerprint: FingerprintOption = None,
) -> None:
    """Explain a model's predictions with SHAP, compare them with the published risk factors, draw figures."""
    from cartrisk.config import DEFAULT_TRACKING_URI
    from cartrisk.data.schema import load_cohort
    from cartrisk.paths import check_output_folder

    if horizon is not None and not (np.isfinite(horizon) and horizon > 0):
        raise ConfigError(f"--horizon must be a positive number of months; got {horizon:g}")
    if log_to_run and not is_run_id(model):
        raise ConfigError(f"--log-to-run needs an MLflow run id as --model; got {model}")
    check_output_folder(out, where="--out")
    refuse_trust_for_runs(model, trust, expect_fingerprint)
    check_trust_options(trust, expect_fingerprint)
    uri = DEFAULT_TRACKING_URI if tracking_uri is None else tracking_uri
    if is_run_id(model) and not Path(model).is_dir():
        from cartrisk.tracking.store import require_store

        require_store(uri)
    frame = load_cohort(data, require_outcome=False)
    selected = _selected(patients, frame)
    if Path(model).is_dir():
        pipeline = open_bundle(model, trust, expect_fingerprint).pipeline
    else:
        from cartrisk.tracking import load_model

        pipeline = load_model(model, tracking_uri=uri)
    if horizon is not None:
        _check_horizon(pipeline, horizon)
    written, table = run_explain(pipeline, frame, out, horizon_months=horizon, patients=selected,
                                 n_background=n_background, max_horizon_patients=max_horizon_patients, seed=seed)
    if log_to_run:
        from cartrisk.tracking import Tracker

        tracker = Tracker(uri)
        for path in loggable(written):
            tracker.log_file(model, path, "explain" if path.parent == out else "explain/figures")
    shown = table[table["status"] != "not in literature"].drop_duplicates(["factor", "column"])
    shown = shown[["factor", "column", "published_direction", "model_direction", "rank", "status"]].astype(object)
    print_frame(shown.where(shown.notna(), ""),
                title=f"{model}: SHAP against the published risk factors ({len(frame):,} patients)")
    console.print(f"wrote {len(written)} files to {out}")
