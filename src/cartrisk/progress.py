"""The progress callback that long-running jobs accept (tuning, evaluation, the quickstart).

The library never prints: it calls ``progress(stage, done, total, best)`` and the command line draws
bars from it. ``best`` is the best objective value so far where a stage has one (a study), else None.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "no_progress"]


class Progress(Protocol):
    """``progress(stage, done, total, best=None)``: ``done`` of ``total`` steps of ``stage`` finished."""

    def __call__(self, stage: str, done: int, total: int, best: float | None = None) -> None: ...


def no_progress(stage: str, done: int, total: int, best: float | None = None) -> None:
    """A progress callback that does nothing."""
