"""The HTML report: rendered from one MLflow run, its numbers are the run's, it reads like a results section
(answer, key figure, compact table, the rest folded), fits 1280 px in Chromium and prints to PDF."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from chromium_checks import CHROMIUM, check_in_chromium, pdf_pages
from matplotlib.figure import Figure
from typer.testing import CliRunner

from cartrisk.cli import app
from cartrisk.exceptions import ConfigError
from cartrisk.workflows.pdf import print_pdf
from cartrisk.workflows.report import LABELS, SECTIONS, build_report, header
from cartrisk.workflows.reportcheck import outline, problems
from cartrisk.workflows.sections import write_section

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (.ci/run installs Debian's)")


def _png(path: Path) -> None:
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1, 2], [1.0, 0.6, 0.3])
    fig.savefig(path)


def _section_folders(art: Path) -> None:
    """A run as a workflow logs it: three sections with section.json, one older folder without."""
    for folder in ("cohort", "models", "groups", "bundle"):
        (art / folder).mkdir(parents=True)
    (art / "cohort" / "summary.csv").write_text("quantity,value\npatients,600\ndeaths,329\n")
    (art / "cohort" / "simulation_report.csv").write_text("quantity,published,simulated\nmedian_os2_months,5.2,5.7\n")
    _png(art / "cohort" / "targets.png")
    write_section(art / "cohort", answer="The registry holds 600 patients with 329 deaths.", figure="targets.png",
                  alt="Published against simulated figures.", table="summary.csv")
    (art / "models" / "comparison.csv").write_text(
        "model,uno_c,uno_c_lower,uno_c_upper,harrell_c@12m\nxgb_cox,0.781,0.76,0.80,0.79\nd0_30,0.60,0.58,0.62,0.6\n")
    _png(art / "models" / "forest.png")
    write_section(art / "models", answer="The model discriminates better: Uno's C 0.781 (0.760-0.800) vs 0.600.",
                  figure="forest.png", alt="Forest plot of Uno's C.", table="comparison.csv")
    wide = ",".join(f"col_{k}" for k in range(22))
    (art / "groups" / "summary.csv").write_text(
        "grouping,hr,hr_lower,hr_upper,logrank_p,observed,median_months,median_lower,median_upper\n"
        "d0_30,3.0475,2.743,3.3857,1.39e-105,0.5665,7.39,6.80,8.05\n"
        "model[d0_30],6.4416,5.7788,7.1805,0.0,0.00038,1.58,1.41,1.83\n")
    (art / "groups" / "wide.csv").write_text(wide + "\n" + ",".join(["0.123456 (0.1-0.2) long text"] * 22) + "\n")
    (art / "groups" / "patients.csv").write_text("patient_id,risk\nSIM-1,0.3\n")
    _png(art / "groups" / "km_d0_30.png")
    _png(art / "groups" / "decision_curve.png")
    write_section(art / "groups", answer="The model's groups separate OS-2 better than the D0-30 rule.",
                  figure="km_d0_30.png", alt="Kaplan-Meier curves, rule beside model.", table="summary.csv",
                  alts={"decision_curve.png": "Decision curve."})
    (art / "bundle" / "MODEL_CARD.md").write_text("# Model card\n\n| item | logrank_p | c_lower |\n|---|---|---|\n"
                                                  "| n | 0 | 0.5 |\n")


@pytest.fixture(scope="module")
def run(make_tracker, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    tracker = make_tracker(root, "report-test")
    art = root / "art"
    _section_folders(art)
    with tracker.run("quickstart") as run_id:
        tracker.log_metrics(run_id, {"outer_uno_c": 0.78123, "rule_d0_30_uno_c": 0.60011, "hr_model_groups": 6.5})
        tracker.log_provenance(run_id, data_hash="ab" * 32, seed=0)
        for folder in ("cohort", "models", "groups", "bundle"):
            for f in (art / folder).iterdir():
                tracker.log_file(run_id, f, folder)
    return tracker, run_id, root


@pytest.fixture(scope="module")
def page(run):
    tracker, run_id, _ = run
    return build_report(run_id, tracker=tracker)


def test_report_numbers_are_the_run_numbers(run, page):
    tracker, run_id, _ = run
    shown = {m: float(v) for m, v in re.findall(r'<td data-metric="([^"]+)">([0-9.]+)</td>', page)}
    logged = tracker.get_run(run_id).data.metrics
    assert shown.keys() == logged.keys()
    for name, value in logged.items():
        assert shown[name] == pytest.approx(value, abs=5e-5)
    assert "0.781 (0.760-0.800)" in re.sub(r"<[^>]+>", "", page) and "<h3>Model card</h3>" in page
    assert "http" not in page.split("<main>")[1]  # self-contained


def test_sections_open_with_the_answer_then_the_key_figure_then_the_compact_table(page):
    sections = {s.id: s for s in outline(page)}
    assert list(sections) == ["cohort", "models", "groups", "bundle"]  # the order of a results section
    for name in ("cohort", "models", "groups"):
        assert sections[name].children[:3] == ["p", "figure", "div"], name
    assert sections["groups"].answer == "The model's groups separate OS-2 better than the D0-30 rule."
    assert sections["groups"].alts[0] == "Kaplan-Meier curves, rule beside model." and all(sections["groups"].alts)
    assert [p for p in problems(page) if not p.startswith("bundle:")] == []
    # the older folder without section.json opens with the section's description, its Markdown folded
    assert sections["bundle"].answer == dict((f, lead) for f, _, lead in SECTIONS)["bundle"]


def test_headers_are_words_intervals_sit_with_their_estimate_and_p_values_are_never_zero(page):
    groups = next(s for s in outline(page) if s.id == "groups")
    assert groups.headers[:6] == ["grouping", "HR (95% CI)", "log-rank p", "observed OS-2",
                                  "median OS-2 (months), 95% CI", "col 0"]
    text = re.sub(r"<[^>]+>", "", page)
    assert "3.05 (2.74-3.39)" in text and "6.44 (5.78-7.18)" in text and "7.4 (6.8-8.1)" in text
    assert "&lt; 1e-300" in text and "1.4e-105" in text
    assert "0.567" in text and "0.000" in text  # one column, one number of decimals (not 3.8e-04 beside 0.567)
    assert "model, groups sized like the D0-30 rule" in text  # codes in cells read as words
    cohort = re.search(r'<section id="cohort">.*?</section>', page, flags=re.S).group(0)
    assert "<td>patients</td><td class=\"num\">600</td>" in cohort  # whole numbers stay whole
    assert all("_" not in h for s in outline(page) for h in s.headers)
    assert all(c.strip() not in ("0", "0.0", "0.000") for s in outline(page) for c in s.p_cells)
    assert "SIM-1" not in page and "Withheld: patients.csv names patients" in page


def test_label_table_gives_human_headers_and_unknown_codes_lose_their_underscores():
    assert header("harrell_c") == "C-index (Harrell)" and header("uno_c") == "Uno's C"
    assert header("auc@6m") == "AUC at 6 months" and header("brier_12m") == "Brier score at 12 months"
    assert header("median_os2_months") == "median OS-2 (months)" and header("logrank_p") == "log-rank p"
    assert header("some_new_code") == "some new code"
    for code in ("oe_ratio", "calibration_slope", "ici", "e50", "e90", "emax", "brier", "ipa", "net_benefit", "hr",
                 "hr_lower", "hr_upper", "p_value", "n", "events", "tau2", "i2", "pi_lower", "pi_upper", "estimate",
                 "lower", "upper"):
        assert code in LABELS or code.endswith(("_lower", "_upper")), code
        assert "_" not in header(code), code


def test_problems_names_each_breach():
    bad = ('<section id="x"><h2>X</h2><figure><img src="a.png"></figure><div class="table"><table><thead><tr>'
           "<th>hr_lower</th><th>log-rank p</th></tr></thead><tbody><tr><td>1</td><td>0</td></tr></tbody></table>"
           "</div></section>")
    found = problems(bad)
    assert any("first element after the title is not a sentence" in p for p in found)
    assert any("second element is not a figure" in p for p in found)
    assert any("image without alt text" in p for p in found)
    assert any("'hr_lower' contains '_'" in p for p in found)
    assert any("p-value cell '0' reads 0" in p for p in found)


def test_unknown_run_is_a_clear_error(run):
    tracker, _, _ = run
    with pytest.raises(ConfigError, match="MLflow run 'nope' not found in sqlite:///"):
        build_report("nope", tracker=tracker)


def test_cli_report_writes_one_file(run, tmp_path):
    tracker, run_id, _ = run
    result = CliRunner().invoke(app, ["report", "--run", run_id, "--out", str(tmp_path / "r"),
                                      "--tracking-uri", tracker.tracking_uri])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["report.html"]


def test_cli_pdf_without_chromium_is_refused_and_writes_nothing(run, tmp_path):
    tracker, run_id, _ = run
    result = CliRunner().invoke(app, ["report", "--run", run_id, "--out", str(tmp_path / "r"), "--pdf",
                                      "--chromium", str(tmp_path / "no-such-chromium"),
                                      "--tracking-uri", tracker.tracking_uri])
    assert result.exit_code == 2
    assert "--chromium" in result.output and "no such executable" in result.output
    assert not (tmp_path / "r").exists()


@needs_chromium
def test_report_fits_1280_px_in_headless_chromium_with_every_figure_loaded(page, tmp_path):
    measured = check_in_chromium(page, tmp_path, "report-fixture")
    assert measured["figures"] == 4


@needs_chromium
def test_pdf_prints_a_page_per_section(page, tmp_path):
    pytest.importorskip("pypdf")
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    pdf = print_pdf(html, tmp_path / "out" / "report.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf_pages(pdf) == 1 + len(outline(page))  # the key results, then each section from a new page


@needs_chromium
def test_cli_report_pdf_writes_html_and_pdf(run, tmp_path):
    tracker, run_id, _ = run
    result = CliRunner().invoke(app, ["report", "--run", run_id, "--out", str(tmp_path / "r"), "--pdf",
                                      "--tracking-uri", tracker.tracking_uri])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.html", "report.pdf"]


def test_old_run_without_section_json_renders_with_its_usual_key_figure(run, tmp_path):
    from cartrisk.workflows.report import _Run, render_report

    _, _, root = run
    art = tmp_path / "art"
    shutil.copytree(root / "art", art)
    for path in art.rglob("section.json"):
        path.unlink()
    html = render_report(art, _Run("r", "old", {"outer_uno_c": 0.7}, {}, {}))
    groups = next(s for s in outline(html) if s.id == "groups")
    assert groups.children[:2] == ["p", "figure"] and groups.alts[0] == "Figure: km d0 30."
    assert groups.answer.startswith("Groups cut on")


def test_pdf_needs_a_chromium_and_says_how_to_get_one(tmp_path, monkeypatch):
    from cartrisk.workflows import pdf

    monkeypatch.setattr(pdf.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="install it \\(Debian: apt-get install chromium\\) or pass --chromium"):
        print_pdf(tmp_path / "r.html", tmp_path / "r.pdf")
    assert not (tmp_path / "r.pdf").exists()
