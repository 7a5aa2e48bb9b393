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

The helpers below write and read that file. Answer sentences format their numbers the way the report formats
its tables, with :mod:`cartrisk.units`' ``estimate_text``, ``p_text`` and ``percent_text`` (handed on here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cartrisk.units import estimate_text, p_text, percent_text

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
