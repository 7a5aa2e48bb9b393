"""``cartrisk explain``: SHAP values of a fitted model on a cohort, its literature concordance and figures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from cartrisk.cli._app import app, console, print_frame, user_errors, write_table
from cartrisk.exceptions import ConfigError
from cartrisk.plotting import atomic_path

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
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
    import numpy as np

    from cartrisk.explain import concordance, concordance_markdown, explain, write_figures

    X = frame.drop(columns=[c for c in _NOT_COVARIATES if c in frame])
    risk = explain(pipeline, X, n_background=n_background, random_state=seed)
    by_column = risk.by_column()
    table = concordance(risk, random_state=seed)
    written = []
    for name, content in [("shap_values.csv", risk.to_frame(wide=True)), ("shap_by_column.csv",
                                                                          by_column.to_frame(wide=True)),
                          ("concordance.csv", table)]:
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
                              (f"shap_{tag}_by_column.csv", survival.by_column().to_frame(wide=True))]:
            write_table(content, out / name)
            written.append(out / name)
        written += write_figures(survival.by_column(), out / "figures", patients=patients, prefix=f"{tag}_",
                                 random_state=seed)
    return written, table


@app.command()
@user_errors
def explain(
    model: Annotated[str, typer.Option("--model", help="Exported bundle folder or MLflow run id.")],
    data: Annotated[Path, typer.Option("--data", help="Cohort extract (.csv or .parquet); outcome not needed.")],
    horizon: Annotated[float | None, typer.Option("--horizon", min=0.0, help="Also explain the survival "
                                                  "probability at this horizon (months).")] = None,
    patients: Annotated[str | None, typer.Option("--patients", help="Comma-separated patient ids: waterfall "
                                                 "figures and the survival explanation.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("explain_out"),
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI for a run id.")] = None,
    n_background: Annotated[int, typer.Option(min=1, help="Background patients (interventional SHAP).")] = 100,
    max_horizon_patients: Annotated[int, typer.Option(min=1, help="Patients explained at --horizon when "
                                                      "--patients is not given (a seeded sample).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the background, permutations and bootstrap.")] = 0,
    log_to_run: Annotated[bool, typer.Option("--log-to-run", help="Also log the outputs to the model's MLflow "
                                             "run (MODEL must be a run id).")] = False,
) -> None:
    """Explain a model's predictions with SHAP, compare them with the published risk factors, draw figures."""
    from cartrisk.data.schema import load_cohort
    from cartrisk.tracking import load_model

    if horizon is not None and horizon <= 0:
        raise ConfigError(f"--horizon must be > 0 months; got {horizon:g}")
    tracker = None
    if log_to_run:
        if not _RUN_ID.match(model):
            raise ConfigError(f"--log-to-run needs an MLflow run id as --model; got {model}")
        from cartrisk.config import DEFAULT_TRACKING_URI
        from cartrisk.tracking import Tracker

        tracker = Tracker(tracking_uri or DEFAULT_TRACKING_URI)
    frame = load_cohort(data, require_outcome=False)
    selected = _selected(patients, frame)
    pipeline = load_model(model, tracking_uri=tracking_uri)
    written, table = run_explain(pipeline, frame, out, horizon_months=horizon, patients=selected,
                                 n_background=n_background, max_horizon_patients=max_horizon_patients, seed=seed)
    if tracker is not None:
        for path in written:
            tracker.log_file(model, path, "explain" if path.parent == out else "explain/figures")
    shown = table[table["status"] != "not in literature"].drop_duplicates(["factor", "column"])
    shown = shown[["factor", "column", "published_direction", "model_direction", "rank", "status"]].astype(object)
    print_frame(shown.where(shown.notna(), ""),
                title=f"{model}: SHAP against the published risk factors ({len(frame):,} patients)")
    console.print(f"wrote {len(written)} files to {out}")
