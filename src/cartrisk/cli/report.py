"""``cartrisk report``: the self-contained HTML report of one MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cartrisk.cli._app import app, console, user_errors
from cartrisk.config import DEFAULT_TRACKING_URI
from cartrisk.plotting import atomic_path


@app.command()
@user_errors
def report(
    run: Annotated[str, typer.Option("--run", help="MLflow run id of a quickstart (or any run with report folders).")],
    out: Annotated[Path, typer.Option(help="Folder for report.html.")] = Path("reports"),
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = DEFAULT_TRACKING_URI,
) -> None:
    """Render one MLflow run as a single HTML file (figures embedded; opens without a server)."""
    from cartrisk.tracking import Tracker
    from cartrisk.workflows.report import build_report

    text = build_report(run, tracker=Tracker(tracking_uri))
    path = out / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
