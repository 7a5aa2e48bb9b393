"""``cartrisk report``: the self-contained HTML report of one MLflow run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from cartrisk.cli._app import app, console, user_errors
from cartrisk.config import DEFAULT_TRACKING_URI
from cartrisk.exceptions import ConfigError
from cartrisk.plotting import atomic_path

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@app.command()
@user_errors
def report(
    run: Annotated[str, typer.Option("--run", help="MLflow run id of a quickstart (or any run with report folders).")],
    out: Annotated[Path, typer.Option(help="Folder for report.html.")] = Path("reports"),
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = DEFAULT_TRACKING_URI,
) -> None:
    """Render one MLflow run as a single HTML file (figures embedded; opens without a server)."""
    from cartrisk.paths import check_output_folder
    from cartrisk.tracking import Tracker
    from cartrisk.tracking.store import require_store
    from cartrisk.workflows.report import build_report

    if not _RUN_ID.match(run):
        raise ConfigError(f"--run: {run!r} is not an MLflow run id (32 hexadecimal characters, as the commands print "
                          "it after `MLflow run`)")
    check_output_folder(out, where="--out")
    require_store(tracking_uri)
    text = build_report(run, tracker=Tracker(tracking_uri))
    path = out / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
