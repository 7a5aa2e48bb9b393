"""Every command's --help shows its text whole: rich reads "[word]" as markup and would drop it silently."""

import re

import pytest
from typer.testing import CliRunner

from cartrisk.cli import app

_COMMANDS = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
_BRACKETED = re.compile(r"\[[a-z][^\]\s]*\]")


def _texts(command) -> list[str]:
    import inspect
    import typing

    texts = [inspect.getdoc(command.callback) or ""]
    for hint in typing.get_type_hints(command.callback, include_extras=True).values():
        for meta in getattr(hint, "__metadata__", ()):
            if getattr(meta, "help", None):
                texts.append(meta.help)
    return texts


@pytest.mark.parametrize("name", _COMMANDS)
def test_help_keeps_every_bracketed_word(name):
    command = next(c for c in app.registered_commands if (c.name or c.callback.__name__.replace("_", "-")) == name)
    shown = CliRunner().invoke(app, [name, "--help"], terminal_width=240).output
    expected = [w for text in _texts(command) for w in _BRACKETED.findall(text.replace("\\[", "["))]
    missing = [w for w in expected if w not in shown]
    assert not missing, f"`cartrisk {name} --help` drops {missing}: write them as \\\\[...] in the help text"


def test_the_tune_help_names_its_table():
    shown = CliRunner().invoke(app, ["tune", "--help"], terminal_width=240).output
    assert "Experiment file with a [tuning] table" in shown
