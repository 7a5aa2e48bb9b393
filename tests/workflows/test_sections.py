"""cartrisk.workflows.sections: the section contract, and numbers as the report writes them."""

from __future__ import annotations

import json

import pytest
from matplotlib.figure import Figure

from cartrisk.workflows.sections import estimate_text, p_text, percent_text, read_section, write_section


@pytest.fixture
def folder(tmp_path):
    Figure(figsize=(2, 2)).savefig(tmp_path / "key.png")
    (tmp_path / "compact.csv").write_text("n\n1\n")
    return tmp_path


def test_write_then_read_the_contract(folder):
    path = write_section(folder, answer="The model wins: C 0.68 (0.67-0.70).", figure="key.png", alt="A figure.",
                         table="compact.csv", alts={"other.png": "Another."})
    assert json.loads(path.read_text()) == {"answer": "The model wins: C 0.68 (0.67-0.70).", "figure": "key.png",
                                            "alt": "A figure.", "table": "compact.csv",
                                            "alts": {"other.png": "Another."}}
    section = read_section(folder)
    assert section.answer.startswith("The model wins") and section.table == "compact.csv"
    assert read_section(folder / "nowhere") is None


@pytest.mark.parametrize("kwargs, message", [
    ({"answer": "no capital and no stop"}, "is not one sentence"),
    ({"alt": " "}, "alt is empty"),
    ({"figure": "missing.png"}, "figure 'missing.png' is not a file of the folder"),
    ({"table": "../compact.csv"}, "table '../compact.csv' is not a file of the folder"),
    ({"figure": "compact.csv"}, "must be a PNG"),
])
def test_a_bad_section_is_refused_with_what_is_wrong(folder, kwargs, message):
    args = {"answer": "A sentence here.", "figure": "key.png", "alt": "Alt.", "table": None} | kwargs
    with pytest.raises(ValueError, match=message):
        write_section(folder, **args)
    assert not (folder / "section.json").exists()


def test_read_refuses_unknown_keys(folder):
    (folder / "section.json").write_text(json.dumps({"answer": "A sentence.", "figure": "key.png", "alt": "x",
                                                     "colour": "red"}))
    with pytest.raises(ValueError, match="expected the keys answer, figure, alt"):
        read_section(folder)
    (folder / "section.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_section(folder)


def test_numbers_as_the_report_writes_them():
    assert estimate_text(0.6842, 0.6731, 0.6953) == "0.68 (0.67-0.70)"
    assert estimate_text(0.091, -0.106, 0.288, 3) == "0.091 (-0.106 to 0.288)"
    assert estimate_text(6.44, float("nan"), 7.0, 1) == "6.4" and estimate_text(float("nan")) == "n/a"
    assert p_text(0.0) == "< 1e-300" and p_text(1.39e-105) == "1.4e-105" and p_text(0.5871) == "0.587"
    assert p_text(0.0, prose=True) == "p < 0.001" and p_text(0.012, prose=True) == "p = 0.012"
    assert percent_text(0.2323) == "23%" and percent_text(0.2323, 1) == "23.2%"


def test_the_scoring_section_describes_no_group_smaller_than_min_cell(tmp_path):
    """Its compact table is the logged aggregate (bundle.score_distribution): a group of fewer than MIN_CELL
    patients is counted, not described, since its mean would come close to one patient's own value."""
    import numpy as np
    import pandas as pd

    from cartrisk.bundle.aggregates import MIN_CELL
    from cartrisk.workflows.quickstart_sections import scoring_section

    rng = np.random.default_rng(0)
    n_low, n_high = 40, MIN_CELL - 2
    scored = pd.DataFrame({"patient_id": [f"P{i}" for i in range(n_low + n_high)],
                           "risk_score": np.r_[rng.normal(0, 1, n_low), rng.normal(3, 1, n_high)],
                           "survival_6m": np.r_[rng.uniform(0.6, 0.9, n_low), rng.uniform(0.1, 0.3, n_high)],
                           "risk_group": ["low"] * n_low + ["high"] * n_high})
    ranges = pd.DataFrame(columns=["column", "problem", "n_patients", "training_min", "training_max"])
    scoring_section(tmp_path, scored, 1000.0, ranges)
    table = pd.read_csv(tmp_path / "score_distribution.csv").set_index("group")
    assert list(table.index) == ["low", "high", "all"]
    assert table.loc["high", "n_patients"] == n_high and table[["risk_score_p50", "survival_6m_mean"]].loc[
        "high"].isna().all()
    assert table.loc["low", "survival_6m_mean"] > 0.6
    section = json.loads((tmp_path / "section.json").read_text(encoding="utf-8"))
    assert section["table"] == "score_distribution.csv" and "fell in the high-risk group" in section["answer"]
    assert "P4" not in (tmp_path / "score_distribution.csv").read_text()
