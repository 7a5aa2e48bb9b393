"""The report's section contract: what a workflow writes beside its artefacts so that its section reads alike.

Every artefact folder that a workflow logs for the HTML report (:mod:`cartrisk.workflows.report`) carries a
``section.json``::

    {"answer": "One sentence that answers the section's question, with its key numbers and intervals.",
     "figure": "key_figure.png",      # shown right after the sentence
     "alt": "What the figure shows (alt text).",
     "table": "compact.csv",          # optional: the one compact table shown under the figure
     "alts": {"other.png": "..."}}    # optional: alt text of the folder's other figures

Every other file of the folder is folded away under the section. CSV columns stay snake_case codes; the
report maps them to human headers through its one label table (:data:`cartrisk.workflows.report.LABELS`).

The helpers below write and read that file and format the numbers of answer sentences the way the report
formats its tables: an estimate with its interval in one string (``0.68 (0.67-0.70)``), p-values never
``0`` (``< 1e-300`` in tables, ``p < 0.001`` in prose).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SECTION_FILE", "Section", "estimate_text", "p_text", "percent_text", "read_section", "write_section"]

SECTION_FILE = "section.json"
_KEYS = {"answer", "figure", "alt", "table", "alts"}


@dataclass(frozen=True)
class Section:
    """A folder's ``section.json``: the answer sentence, the key figure with its alt text, the compact table."""

    answer: str
    figure: str
    alt: str
    table: str | None = None
    alts: dict[str, str] = field(default_factory=dict)


def _check(section: Section, folder: Path, where: str) -> Section:
    problems = []
    text = section.answer.strip()
    if not text or not text[0].isupper() or text[-1] not in ".!?":
        problems.append(f"answer {section.answer!r} is not one sentence (a capital first, a full stop last)")
    if not section.alt.strip():
        problems.append("alt is empty: describe what the figure shows")
    for key, name in (("figure", section.figure), ("table", section.table)):
        if name is not None and (Path(name).name != name or not (folder / name).is_file()):
            problems.append(f"{key} {name!r} is not a file of the folder {folder}")
    if Path(section.figure).suffix.lower() != ".png":
        problems.append(f"figure {section.figure!r} must be a PNG")
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))
    return section


def write_section(folder: str | Path, *, answer: str, figure: str, alt: str, table: str | None = None,
                  alts: dict[str, str] | None = None) -> Path:
    """Write ``folder/section.json`` after checking it (the figure and table must already be in the folder).

    Raises
    ------
    ValueError
        When the answer is not a sentence, the alt text is empty, or a named file is not in the folder.
    """
    folder = Path(folder)
    section = _check(Section(answer.strip(), figure, alt.strip(), table, dict(alts or {})), folder,
                     f"section of {folder.name}")
    payload = {"answer": section.answer, "figure": section.figure, "alt": section.alt}
    if section.table is not None:
        payload["table"] = section.table
    if section.alts:
        payload["alts"] = section.alts
    path = folder / SECTION_FILE
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_section(folder: str | Path) -> Section | None:
    """The folder's ``section.json``, or None when it has none (a run logged before the contract).

    Raises
    ------
    ValueError
        When the file is not a JSON object with the contract's keys, or names files the folder lacks.
    """
    folder = Path(folder)
    path = folder / SECTION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not {"answer", "figure", "alt"} <= set(data) or set(data) - _KEYS:
        raise ValueError(f"{path}: expected the keys answer, figure, alt (and optionally table, alts), got "
                         f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
    alts = data.get("alts") or {}
    return _check(Section(str(data["answer"]), str(data["figure"]), str(data["alt"]), data.get("table"),
                          {str(k): str(v) for k, v in alts.items()}), folder, str(path))


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def estimate_text(estimate: float, lower: float | None = None, upper: float | None = None, decimals: int = 2) -> str:
    """An estimate with its interval in one string: ``0.68 (0.67-0.70)``; ``-0.11 to 0.29`` when a bound is
    negative (a hyphen would read as a minus); the estimate alone when a bound is missing."""
    if not _finite(estimate):
        return "n/a"
    text = f"{estimate:.{decimals}f}"
    if not (_finite(lower) and _finite(upper)):
        return text
    sep = " to " if min(lower, upper) < 0 else "-"
    return f"{text} ({lower:.{decimals}f}{sep}{upper:.{decimals}f})"


def p_text(p: float, *, prose: bool = False) -> str:
    """A p-value that is never ``0``.

    Tables (``prose=False``): three decimals from 0.001 up, two significant digits in scientific notation
    below, ``< 1e-300`` when the computation underflowed to 0. Prose: ``p = 0.012`` or ``p < 0.001``.
    """
    if not _finite(p):
        return "n/a" if prose else ""
    p = float(p)
    if prose:
        return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    if p < 1e-300:
        return "< 1e-300"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def percent_text(share: float, decimals: int = 0) -> str:
    """A share (0-1) as a percentage: ``0.232`` -> ``23%``."""
    return "n/a" if not _finite(share) else f"{100 * share:.{decimals}f}%"
