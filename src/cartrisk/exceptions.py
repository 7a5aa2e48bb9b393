"""Errors and warnings raised by cartrisk.

Every error a user can cause (a bad extract, experiment file, option, bundle or store) is a
:class:`CartriskError`, with a message that names the file, option or key, the problem and the
fix. The command line turns every ``CartriskError`` into its message and exit code 2, without a
traceback. ``CartriskError`` derives from :class:`ValueError`, so callers that only know
scikit-learn's conventions still catch it.
"""

from __future__ import annotations

__all__ = ["BundleError", "CartriskError", "ConfigError", "SchemaError", "StatisticalWarning"]


class CartriskError(ValueError):
    """Base of every error a user can cause; the CLI prints its message and exits with code 2."""


class SchemaError(CartriskError):
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


class ConfigError(CartriskError):
    """An experiment file, a command-line option or a setting is not valid."""


class BundleError(ConfigError):
    """A bundle cannot be written or loaded: altered file, untrusted type, incompatible versions."""


class StatisticalWarning(UserWarning):
    """A result is computed but should be read with care (small groups, heavy censoring...)."""
