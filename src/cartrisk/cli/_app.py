"""The typer app and what every command shares: error handling, table output, progress bars.

User errors (every :class:`~cartrisk.exceptions.CartriskError`: a bad extract, experiment file, option or
bundle) print a message and exit with code 2, never a traceback. Files are written atomically
(:func:`cartrisk.paths.write_table`, :func:`cartrisk.paths.atomic_path`: a temporary file renamed into place),
so a failed command leaves nothing half-written.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cartrisk.exceptions import CartriskError
from cartrisk.paths import write_table  # noqa: F401  (the commands' one table writer, handed on)
from cartrisk.units import is_p_column, p_text

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="cartrisk: survival after lymphoma fails CAR T-cells (OS-2), against the D0-30 rule.")
# Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
log = logging.getLogger("cartrisk")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False) -> None:
    level = logging.INFO if verbose else logging.WARNING
    # MLflow draws a tqdm bar per artefact download; the commands print their own summary instead.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    # Optuna and MLflow log progress at INFO on their own handlers; the progress bars say the same.
    for name in ("optuna", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(level)
    if not verbose:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)


def user_errors(fn: Callable) -> Callable:
    """Turn every :class:`~cartrisk.exceptions.CartriskError` into its message on stderr and exit code 2."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CartriskError as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def print_frame(frame: pd.DataFrame, title: str | None = None, floatfmt: str = "{:.3f}") -> None:
    table = Table(title=title, show_lines=False)
    for c in frame.columns:
        table.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(frame[c]) else "left")
    formats = [p_text if is_p_column(c) else floatfmt.format for c in frame.columns]
    for row in frame.itertuples(index=False):
        table.add_row(*[fmt(v) if isinstance(v, float) else str(v) for fmt, v in zip(formats, row, strict=True)])
    console.print(table)


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display driven by the library's ``progress(stage, done, total)`` callbacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=False) as bars:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int, best: float | None = None) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update
