"""The ``cartrisk`` command: the only place that reads argv, configures logging and prints.

One module per group of commands, so that each command's code sits beside its kind and several
people can add commands without editing one long file. Each module registers its commands on the
shared typer ``app``; the library below never prints, reads argv or sets exit codes.
"""

from __future__ import annotations

from cartrisk.cli import (  # noqa: F401  (registers the commands)
    data,
    describe,
    evaluate,
    explain,
    export,
    groups,
    quickstart,
    report,
    tune,
    validation,
)
from cartrisk.cli._app import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="cartrisk")
