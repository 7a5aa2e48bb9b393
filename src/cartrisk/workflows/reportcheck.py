"""Read a rendered report back and list where it breaks the results-section rules.

:func:`outline` parses the HTML of :func:`cartrisk.workflows.report.render_report` (the standard library's
parser; no browser) into one :class:`SectionOutline` per ``<section>``; :func:`problems` lists every
breach of the rules the report promises, so that tests of every workflow that logs a section (the
quickstart's, and those of the description and validation workflows) can hold their report to them:

* a section's first element after its title is a sentence (the answer), its second a figure;
* every image has alt text;
* no table header contains ``_`` (codes get human headers);
* no p-value cell reads ``0``;
* no cell is a bare interval bound beside its estimate (intervals sit in one cell).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["SectionOutline", "outline", "problems"]

_VOID = {"img", "br", "hr", "meta", "link", "input", "col", "source", "wbr"}
_P_HEADER = re.compile(r"(^|\s)p$|^p\b|p-value", re.IGNORECASE)


@dataclass
class SectionOutline:
    """What a reader meets in one section, in order."""

    id: str
    heading: str = ""
    children: list[str] = field(default_factory=list)  # tags of the section's direct children, after the h2
    answer: str = ""  # text of the first child when it is a paragraph
    alts: list[str] = field(default_factory=list)  # alt text of every image in the section
    headers: list[str] = field(default_factory=list)  # every table header cell
    p_cells: list[str] = field(default_factory=list)  # every cell under a p-value header


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[SectionOutline] = []
        self.stack: list[str] = []
        self.section_depth: int | None = None
        self.capture: str | None = None  # "h2", "answer", "th", "td"
        self.text: list[str] = []
        self.table_headers: list[str] = []
        self.column = 0

    @property
    def current(self) -> SectionOutline | None:
        return self.sections[-1] if self.section_depth is not None else None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        depth = len(self.stack)
        section = self.current
        if tag == "section":
            self.sections.append(SectionOutline(id=attrs.get("id") or ""))
            self.section_depth = depth
        elif section is not None:
            if depth == self.section_depth + 1:
                if tag == "h2":
                    self.capture, self.text = "h2", []
                else:
                    section.children.append(tag)
                    if tag == "p" and len(section.children) == 1:
                        self.capture, self.text = "answer", []
            if tag == "img":
                section.alts.append((attrs.get("alt") or "").strip())
            elif tag == "thead":
                self.table_headers = []
            elif tag == "tr":
                self.column = 0
            elif tag in ("th", "td"):
                self.capture, self.text = tag, []
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in _VOID or tag not in self.stack:
            return
        while self.stack:
            top = self.stack.pop()
            if top == tag:
                break
        section = self.current
        text = " ".join("".join(self.text).split())
        if section is not None and self.capture == tag == "h2":
            section.heading, self.capture = text, None
        elif section is not None and self.capture == "answer" and tag == "p":
            section.answer, self.capture = text, None
        elif section is not None and self.capture == tag == "th":
            section.headers.append(text)
            self.table_headers.append(text)
            self.capture = None
        elif section is not None and self.capture == tag == "td":
            if self.column < len(self.table_headers) and _P_HEADER.search(self.table_headers[self.column]):
                section.p_cells.append(text)
            self.column += 1
            self.capture = None
        if tag == "section":
            self.section_depth = None

    def handle_data(self, data):
        if self.capture:
            self.text.append(data)


def outline(html: str) -> list[SectionOutline]:
    """One outline per ``<section>`` of a rendered report, in page order."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.sections


def _is_sentence(text: str) -> bool:
    return len(text.split()) >= 4 and text[:1].isupper() and text.rstrip()[-1:] in ".!?"


def problems(html: str) -> list[str]:
    """Every breach of the report's rules, as ``"<section id>: <what>"`` lines (empty when it reads right)."""
    found = []
    for s in outline(html):
        where = s.id or s.heading or "a section"
        if not s.children or s.children[0] != "p" or not _is_sentence(s.answer):
            found.append(f"{where}: the first element after the title is not a sentence ({s.children[:1]}, "
                         f"{s.answer!r})")
        if len(s.children) < 2 or s.children[1] != "figure":
            found.append(f"{where}: the second element is not a figure ({s.children[1:2]})")
        found += [f"{where}: an image without alt text" for alt in s.alts if not alt]
        found += [f"{where}: table header {h!r} contains '_'" for h in s.headers if "_" in h]
        found += [f"{where}: p-value cell {c!r} reads 0" for c in s.p_cells
                  if re.fullmatch(r"0(\.0*)?(e[+-]?0+)?", c.strip(), re.IGNORECASE)]
        found += [f"{where}: header {h!r} is a bare interval bound" for h in s.headers
                  if h.lower() in ("lower", "upper", "ci low", "ci high")]
    return found
