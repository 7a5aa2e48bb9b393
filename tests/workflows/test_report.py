"""The HTML report: rendered from one MLflow run, its numbers are the run's, and it loads in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from typer.testing import CliRunner

from cartrisk.cli import app
from cartrisk.exceptions import ConfigError
from cartrisk.workflows.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _png(path: Path) -> None:
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1, 2], [1.0, 0.6, 0.3])
    fig.savefig(path)


@pytest.fixture(scope="module")
def run(make_tracker, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    tracker = make_tracker(root, "report-test")
    art = root / "art"
    for folder in ("cohort", "models", "groups", "bundle"):
        (art / folder).mkdir(parents=True)
    (art / "cohort" / "simulation_report.csv").write_text("quantity,published,simulated\nmedian_os2_months,5.2,5.7\n")
    (art / "models" / "comparison.csv").write_text("model,uno_c,lower,upper\nxgb_cox,0.781,0.76,0.80\nd0_30,0.60,0.58,"
                                                   "0.62\n")
    _png(art / "groups" / "km_model_vs_d0_30.png")
    _png(art / "groups" / "decision_curve.png")
    (art / "bundle" / "MODEL_CARD.md").write_text("# Model card\n\n| item | value |\n|---|---|\n| n | 1500 |\n")
    with tracker.run("quickstart") as run_id:
        tracker.log_metrics(run_id, {"outer_uno_c": 0.78123, "rule_d0_30_uno_c": 0.60011, "hr_model_groups": 6.5})
        tracker.log_provenance(run_id, data_hash="ab" * 32, seed=0)
        for folder in ("cohort", "models", "groups", "bundle"):
            for f in (art / folder).iterdir():
                tracker.log_file(run_id, f, folder)
    return tracker, run_id, root


def test_report_numbers_are_the_run_numbers(run):
    tracker, run_id, _ = run
    text = build_report(run_id, tracker=tracker)
    shown = {m: float(v) for m, v in re.findall(r'<td data-metric="([^"]+)">([0-9.]+)</td>', text)}
    logged = tracker.get_run(run_id).data.metrics
    assert shown.keys() == logged.keys()
    for name, value in logged.items():
        assert shown[name] == pytest.approx(value, abs=5e-5)
    assert "Model comparison" in text and "0.781" in text and "<h3>Model card</h3>" in text
    assert text.count("<img ") == 2 and "http" not in text.split("<main>")[1]  # self-contained


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


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (.ci/run installs Debian's chromium)")
def test_report_renders_in_headless_chromium_with_every_figure_loaded(run, tmp_path):
    tracker, run_id, _ = run
    page = tmp_path / "report.html"
    page.write_text(build_report(run_id, tracker=tracker), encoding="utf-8")
    profile = tmp_path / "profile"
    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    figures = int(re.search(r'data-figures="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-loaded="(\d+)"', body).group(1))
    assert figures == 2 and loaded == figures
    keep = os.environ.get("CARTRISK_ARTIFACT_DIR")
    shot = (Path(keep) if keep else tmp_path) / "report-screenshot.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                    "--window-size=1280,2000", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000
