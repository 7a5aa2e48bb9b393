"""Figure helpers shared by every package: a figure factory, one colour per risk level, one atomic write.

Figures are :class:`matplotlib.figure.Figure` objects on their own Agg canvas: pyplot and its global
state are never touched, so figures can be drawn in threads, tests and servers without a display.
Writers return the paths they wrote; the caller decides whether to log them (MLflow is attached at
the edge, in :mod:`cartrisk.tracking` and :mod:`cartrisk.workflows`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["GROUP_COLOURS", "atomic_path", "new_figure", "save_figure"]

#: Colours of risk groups, low -> high risk (colour-blind safe, Okabe-Ito).
GROUP_COLOURS = ("#0072B2", "#009E73", "#E69F00", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def new_figure(width: float, height: float) -> Figure:
    """An empty figure (inches) with its own Agg canvas and constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    A failed write therefore leaves nothing half-written: neither a partial file nor the temporary one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Write ``figure`` as a PNG at ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return path
