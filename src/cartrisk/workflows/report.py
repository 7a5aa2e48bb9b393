"""The HTML report: one self-contained file rendered from one MLflow run.

The report reads nothing but the run: its metrics, parameters, tags and
artefacts. So its numbers are the run's numbers, and any run that logged the
artefacts below can be reported again later (``cartrisk report --run RUN_ID``).

Artefact folders, each a section when present (CSV tables, PNG figures and
Markdown files are rendered in name order):

``cohort/``   the cohort against the published figures
``describe/`` the seed analysis: Table 1 by failure window, Kaplan-Meier OS-2 with the log-rank test, Cox models
``models/``   model comparison from the outer cross-validation, with intervals
``explain/``  SHAP summary and literature concordance
``groups/``   risk groups vs the D0-30 rule and the PC-PI: Kaplan-Meier curves,
              calibration, reclassification, decision curve
``scoring/``  the exported bundle scoring a fresh cohort
``bundle/``   the model card

Figures are embedded as base64 PNG; the page needs no server and no network.
"""

from __future__ import annotations

import base64
import html
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt

from cartrisk.tracking import Tracker

__all__ = ["SECTIONS", "build_report", "render_report"]

#: (artefact folder, heading, one line saying what the section shows)
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("cohort", "Cohort against the published figures",
     "The simulated (or real) registry beside the figures of the literature it is calibrated to."),
    ("describe", "The seed analysis: survival by failure window and Cox models",
     "What the published papers report, on this cohort: Table 1 by failure window, Kaplan-Meier OS-2 with the "
     "log-rank test, univariable and multivariable Cox hazard ratios beside the published ones."),
    ("models", "Model comparison",
     "Outer cross-validation: each number is a mean over held-out folds with its 95% interval; "
     "the reference rules are evaluated on the same folds."),
    ("explain", "Why the model predicts what it does",
     "SHAP values of the chosen model, and its direction for each established risk factor against the "
     "published one."),
    ("groups", "Risk groups against the D0-30 rule and the PC-PI",
     "Groups cut on training predictions, evaluated on an independent cohort: survival curves, calibration, "
     "reclassification and net benefit."),
    ("scoring", "Scoring new patients", "The exported bundle, reloaded and checked, scoring a fresh cohort."),
    ("bundle", "Model card", "Intended use, data, validation and limits of the exported model."),
)

#: Headline metrics shown as cards, with the words a reader needs.
_HEADLINE = {
    "outer_uno_c": "Uno's C of the tuned model (outer folds)",
    "rule_d0_30_uno_c": "Uno's C of the D0-30 rule (same folds)",
    "outer_harrell_c": "Harrell's C of the tuned model (outer folds)",
    "inner_value": "inner (tuning) value: optimistic",
    "outer_ibs": "integrated Brier score (lower is better)",
    "c_difference_d0_30": "C gain of D0-30-sized model groups over the rule",
    "hr_model_groups": "hazard ratio high vs low, model groups",
    "hr_d0_30": "hazard ratio D0-30 vs later, the rule",
    "scoring_patients_per_second": "patients scored per second (bundle)",
}
_LONG_TABLE_ROWS = 20

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:28px 40px}header h1{margin:0 0 6px;font-size:26px}
header p{margin:0;opacity:.85}main{max-width:1180px;margin:0 auto;padding:24px 40px 60px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:22px 28px;margin:22px 0}
h2{margin-top:0;color:#1f3a5f}h3{color:#34495e;font-size:16px;margin:22px 0 8px}.lead{color:#56606e;margin-top:-6px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 16px;width:auto;max-width:100%;display:block;
overflow-x:auto}th,td{border-bottom:1px solid #e3e6ea;padding:5px 10px;text-align:right;white-space:nowrap}
th{background:#eef2f7;color:#1f3a5f;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
tr:hover td{background:#f8fafc}figure{margin:12px 0 20px}figure img{max-width:100%;border:1px solid #e3e6ea;
border-radius:6px}figcaption{color:#56606e;font-size:12px}.kpis{display:flex;flex-wrap:wrap;gap:12px}
.kpi{background:#eef2f7;border-radius:8px;padding:10px 16px;min-width:150px}.kpi b{display:block;font-size:22px;
color:#1f3a5f}.kpi span{font-size:12px;color:#56606e}.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.md table{display:table}.note{color:#56606e;font-size:12px}details{margin:8px 0 14px}
summary{cursor:pointer;color:#1f3a5f;font-size:13px}.kpi{max-width:210px}
"""

_SCRIPT = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.figures = imgs.length;
  document.body.dataset.loaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
});
</script>"""


@dataclass(frozen=True)
class _Run:
    run_id: str
    name: str
    metrics: Mapping[str, float]
    params: Mapping[str, str]
    tags: Mapping[str, str]


def _title(name: str) -> str:
    return Path(name).stem.replace("_", " ").replace("-", " ").strip().capitalize()


def _number(value: float) -> str:
    """Whole numbers plainly, tiny ones (p-values) in scientific notation, the rest to three decimals."""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.1e}" if abs(value) < 1e-3 else f"{value:.3f}"


def _table(path: Path) -> str:
    frame = pd.read_csv(path)
    if "Unnamed: 0" in frame:
        frame = frame.rename(columns={"Unnamed: 0": ""})
    table = frame.to_html(index=False, na_rep="", float_format=_number, border=0, escape=True)
    if len(frame) > _LONG_TABLE_ROWS:  # long tables fold away so that the figures stay in view
        return f"<details><summary>{len(frame)} rows: show the table</summary>{table}</details>"
    return table


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = html.escape(_title(path.name))
    return (f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _markdown(path: Path, md: MarkdownIt) -> str:
    body = md.render(path.read_text(encoding="utf-8"))
    body = re.sub(r"<(/?)h([1-4])>", lambda m: f"<{m.group(1)}h{int(m.group(2)) + 2}>", body)  # under the section's h2
    return f'<div class="md">{body}</div>'


def _section(folder: Path, heading: str, lead: str, md: MarkdownIt) -> str:
    parts = [f'<section id="{folder.name}"><h2>{html.escape(heading)}</h2><p class="lead">{html.escape(lead)}</p>']
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: (p.stem != "summary", p.name))
    for path in [p for p in files if p.suffix == ".csv"]:
        parts.append(f"<h3>{html.escape(_title(path.name))}</h3>{_table(path)}")
    figures = [p for p in files if p.suffix == ".png"]
    if figures:
        parts.append('<div class="grid">' + "".join(_figure(p) for p in figures) + "</div>")
    for path in [p for p in files if p.suffix == ".md"]:
        parts.append(_markdown(path, md))
    parts.append("</section>")
    return "".join(parts)


def _card_value(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"


def _headline(run: _Run) -> str:
    shown = {k: label for k, label in _HEADLINE.items() if k in run.metrics} or \
        {k: k.replace("_", " ") for k in sorted(run.metrics)[:8]}
    cards = "".join(f'<div class="kpi"><b>{_card_value(run.metrics[k])}</b><span>{html.escape(label)}</span></div>'
                    for k, label in shown.items())
    rows = "".join(f'<tr><td>{html.escape(k)}</td><td data-metric="{html.escape(k)}">{v:.4f}</td></tr>'
                   for k, v in sorted(run.metrics.items()))
    return (f'<section id="summary"><h2>Summary</h2><div class="kpis">{cards}</div>'
            f"<details><summary>Every metric of the run ({len(run.metrics)})</summary>"
            f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table></details></section>")


def render_report(artifacts: Path, run: _Run, *, title: str = "cartrisk report") -> str:
    """The report's HTML from a folder of downloaded artefacts and the run's metrics and tags."""
    md = MarkdownIt("commonmark").enable("table")
    provenance = ", ".join(f"{k.removeprefix('version.')} {v}" for k, v in sorted(run.tags.items())
                           if k.startswith("version."))
    body = [_headline(run)]
    for folder, heading, lead in SECTIONS:
        if (artifacts / folder).is_dir():
            body.append(_section(artifacts / folder, heading, lead, md))
    data_hash, seed = run.tags.get("data_sha256", "n/a")[:16], run.tags.get("seed", "n/a")
    sub = (f"MLflow run {html.escape(run.run_id)} ({html.escape(run.name)}); data SHA-256 "
           f"{html.escape(data_hash)}...; seed {html.escape(seed)}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><header><h1>{html.escape(title)}</h1><p>{sub}</p></header>"
            f"<main>{''.join(body)}<p class=\"note\">Package versions: {html.escape(provenance)}. "
            f"git commit {html.escape(run.tags.get('git_commit', 'unknown'))}.</p></main>{_SCRIPT}</body></html>")


def build_report(run_id: str, *, tracker: Tracker, title: str = "cartrisk: OS-2 after CAR T-cell failure") -> str:
    """Download a run's artefacts and render its report (HTML text; the caller writes it)."""
    info = tracker.get_run(run_id)
    run = _Run(run_id=run_id, name=info.info.run_name or run_id, metrics=dict(info.data.metrics),
               params=dict(info.data.params), tags=dict(info.data.tags))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder, _, _ in SECTIONS:
            if any(a.path == folder for a in tracker.client.list_artifacts(run_id)):
                tracker.download(run_id, folder, root)
        return render_report(root, run, title=title)
