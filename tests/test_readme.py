"""The README's data section is the data dictionary, word for word."""

from __future__ import annotations

from pathlib import Path

from cartrisk.dictionary import data_dictionary_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_data_dictionary_matches_the_definition():
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- data-dictionary:start -->\n", "<!-- data-dictionary:end -->"
    section = text[text.index(start) + len(start): text.index(end)]
    assert section == data_dictionary_markdown(), "regenerate the README section from cartrisk.dictionary"


def test_readme_opens_with_the_two_setup_commands():
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make quickstart",
                                                                                         "make test"]
