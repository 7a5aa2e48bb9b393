"""The README's data section is the data dictionary, word for word."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cartrisk.cli import app
from cartrisk.data.dictionary import data_dictionary_markdown
from cartrisk.tracking import DEFAULT_TRACKING_URI, Tracker

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_data_dictionary_matches_the_definition():
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- data-dictionary:start -->\n", "<!-- data-dictionary:end -->"
    section = text[text.index(start) + len(start): text.index(end)]
    assert section == data_dictionary_markdown(), "regenerate the README section from cartrisk.data.dictionary"


def test_readme_opens_with_the_two_setup_commands():
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make quickstart",
                                                                                         "make test"]


def _walkthrough() -> tuple[list[str], str]:
    """The `cartrisk` commands of the README's walkthrough, in order, and its experiment file."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Walkthrough"):text.index("## Reading results")]
    blocks = re.findall(r"```(bash|toml)\n(.*?)```", section, flags=re.S)
    commands = [line.strip() for kind, body in blocks if kind == "bash" for line in body.splitlines()
                if line.strip().startswith("cartrisk ")]
    (toml,) = [body for kind, body in blocks if kind == "toml"]
    return commands, toml


# A 900-patient cohort with 69 features: the smallest ridge penalties of a search may stop short of
# convergence, and a fresh cohort has a few values outside the training range; both warnings are expected.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::cartrisk.exceptions.StatisticalWarning")
def test_every_readme_command_runs(tmp_path, monkeypatch):
    commands, toml = _walkthrough()
    assert len(commands) >= 10
    shutil.copytree(README.parent / "experiments", tmp_path / "experiments")
    (tmp_path / "my_study.toml").write_text(toml, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}"
    # The report command of the MLflow section, on the study's parent run.
    tracker = Tracker(DEFAULT_TRACKING_URI, "my-study")
    (run,) = tracker.client.search_runs([tracker.experiment_id], "tags.`cartrisk.kind` = 'tuning'")
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Reading results"):]
    report = re.search(r"`(cartrisk report --run RUN_ID[^`]*)`", section).group(1).replace("RUN_ID", run.info.run_id)
    result = runner.invoke(app, shlex.split(report)[1:])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "report.html").is_file()
    assert (tmp_path / "scored.csv").is_file() and (tmp_path / "models" / "my_model" / "MODEL_CARD.md").is_file()
