"""Errors and warnings raised by cartrisk.

Both error classes derive from :class:`ValueError`, so callers that only know
scikit-learn conventions still catch them; the command line turns them into a
message and exit code 2 without a traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "SchemaError", "StatisticalWarning"]


class SchemaError(ValueError):
    """A cohort frame or file breaks the data dictionary.

    Parameters
    ----------
    message : str
        Summary line.
    problems : list of Problem, optional
        Every problem found (file, row, column, value, rule, fix), so that a
        user sees all of them at once rather than one per run.
    """

    def __init__(self, message: str, problems: list | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            lines = [message] + [f"  - {p}" for p in self.problems]
            message = "\n".join(lines)
        super().__init__(message)


class ConfigError(ValueError):
    """An experiment file or a command-line option is not valid."""


class StatisticalWarning(UserWarning):
    """A result is computed but should be read with care (small groups, heavy censoring...)."""
