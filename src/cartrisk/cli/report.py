"""``cartrisk report``: the self-contained HTML report of one MLflow run, and optionally its PDF."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cartrisk.cli._app import app, console, user_errors
from cartrisk.config import DEFAULT_TRACKING_URI
from cartrisk.exceptions import ConfigError
from cartrisk.paths import atomic_path
from cartrisk.tracking.store import is_run_id


@app.command()
@user_errors
def report(
    run: Annotated[str, typer.Option("--run", help="MLflow run id of a quickstart (or any run with report folders).")],
    out: Annotated[Path, typer.Option(help="Folder for report.html (and report.pdf).")] = Path("reports"),
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = DEFAULT_TRACKING_URI,
    pdf: Annotated[bool, typer.Option("--pdf", help="Also print the report to report.pdf with headless "
                                                    "Chromium (A4, a page per section).")] = False,
    chromium: Annotated[Path | None, typer.Option(help="Chromium or Chrome executable for --pdf (default: the "
                                                       "one on PATH).")] = None,
) -> None:
    """Render one MLflow run as a single HTML file (figures embedded; opens without a server)."""
    from cartrisk.paths import check_output_folder
    from cartrisk.tracking import Tracker
    from cartrisk.tracking.store import require_store
    from cartrisk.workflows.pdf import find_chromium, print_pdf
    from cartrisk.workflows.report import build_report

    if not is_run_id(run):
        raise ConfigError(f"--run: {run!r} is not an MLflow run id (32 hexadecimal characters, as the commands print "
                          "it after `MLflow run`)")
    check_output_folder(out, where="--out")
    require_store(tracking_uri)
    if pdf:
        find_chromium(chromium)  # refuse before writing anything
    text = build_report(run, tracker=Tracker(tracking_uri))
    path = out / "report.html"
    if not pdf:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return
    with tempfile.TemporaryDirectory(prefix="cartrisk-report-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(text, encoding="utf-8")
        printed = print_pdf(page, Path(tmp) / "report.pdf", chromium=chromium)
        out.mkdir(parents=True, exist_ok=True)
        for done in (page, printed):
            with atomic_path(out / done.name) as target:
                shutil.copyfile(done, target)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {out / 'report.pdf'} "
                  f"({(out / 'report.pdf').stat().st_size / 1e6:.1f} MB)")
