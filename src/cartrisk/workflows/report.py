"""The HTML report: one self-contained file rendered from one MLflow run, read like a results section.

The report reads nothing but the run: its metrics, parameters, tags and artefacts. So its numbers are the
run's numbers, and any run that logged the artefacts below can be reported again later
(``cartrisk report --run RUN_ID``; ``--pdf`` prints it through headless Chromium, :mod:`.pdf`).

Each artefact folder of :data:`SECTIONS` is a section, in the order of a results section: the cohort and
its description, discrimination, calibration, external and internal-external validation, subgroups, risk
groups, explanations, scoring and the exported model. A section opens with the sentence that answers its
question and its key figure (with alt text), then one compact table; everything else of the folder is
folded away. The sentence, figure and table come from the folder's ``section.json``
(:mod:`cartrisk.workflows.sections`); a folder without one (a run logged before it) opens with the
section's one-line description and the folder's usual key figure and table.

Tables get human headers from one label table (:data:`LABELS`), intervals in one cell with their estimate,
the same decimals within a column and p-values that are never 0 (:mod:`._tables`). A table that names
patients (a ``patient_id`` column) is withheld. Figures are embedded as base64 PNG; the page needs no
server and no network, fits 1280 px without scrolling sideways, and has a print stylesheet.
"""

from __future__ import annotations

import base64
import fnmatch
import html
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt

from cartrisk.groups import grouping_title
from cartrisk.tracking import Tracker
from cartrisk.workflows._style import CSS
from cartrisk.workflows._tables import IDENTIFIER_COLUMNS, header_text, table_html
from cartrisk.workflows.sections import SECTION_FILE, Section, read_section

__all__ = ["LABELS", "SECTIONS", "build_report", "header", "render_folders", "render_report"]

#: (artefact folder, heading, one line saying how the section's numbers were obtained), in reading order.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("cohort", "Cohort",
     "The simulated (or real) registry beside the published figures it is calibrated to."),
    ("describe", "Patients and OS-2 by failure window",
     "Table 1 by failure window after CAR T-cells, Kaplan-Meier OS-2 and Cox hazard ratios."),
    ("models", "Discrimination: the tuned model against the rules",
     "Outer cross-validation: each number is a mean over held-out folds with its 95% interval; the reference "
     "rules are evaluated on the same folds."),
    ("calibration", "Calibration of predicted OS-2",
     "The exported model's predicted survival against Kaplan-Meier survival on an independent cohort, as "
     "fitted and after recalibration on out-of-fold training predictions."),
    ("validation", "External validation",
     "The exported model applied unchanged to another cohort: discrimination, calibration and net benefit."),
    ("clusters", "Internal-external validation across clusters",
     "Each centre (or cluster) held out in turn; estimates pooled by random-effects meta-analysis."),
    ("subgroups", "Performance in subgroups",
     "Discrimination and calibration within subgroups of patients."),
    ("groups", "Risk groups against the D0-30 rule and the PC-PI",
     "Groups cut on out-of-fold training predictions, evaluated on an independent cohort: survival curves, "
     "hazard ratios, C differences (paired bootstrap), reclassification, calibration and net benefit."),
    ("explain", "What drives the predictions",
     "SHAP values of the chosen model, and its direction for each established risk factor against the "
     "published one (Spearman's correlation with a bootstrap interval over patients)."),
    ("scoring", "Scoring new patients",
     "The exported bundle, reloaded and verified, scoring a fresh cohort; only counts are shown."),
    ("bundle", "The exported model", "Intended use, data, validation and limits of the exported model."),
)

#: Key figure and compact table of a folder that has no section.json (runs logged before the contract).
_FALLBACK: dict[str, tuple[tuple[str, ...], str | None]] = {
    "cohort": (("*.png",), "summary.csv"),
    "describe": (("km*.png", "*.png"), "table1.csv"),
    "models": (("forest*.png", "*.png"), "comparison.csv"),
    "calibration": (("calibration*.png",), None),
    "groups": (("km_d0_30.png", "km*.png"), "summary.csv"),
    "explain": (("overview*.png", "beeswarm.png"), None),
    "scoring": (("*.png",), None),
}

#: The one label table: column code -> (header, format). Format: decimals (int), "int", "pct" (a share shown
#: as a percentage), "p" (a p-value) or None (decimals from the column's magnitude). Codes with a horizon
#: suffix (``auc@6m``, ``brier_6m``) read "<label> at 6 months"; unknown codes lose their underscores.
LABELS: dict[str, tuple[str, object]] = {
    # discrimination
    "harrell_c": ("C-index (Harrell)", 3), "uno_c": ("Uno's C", 3), "c": ("C-index", 3),
    "c_reference": ("C-index of the rule", 3), "c_index": ("C-index", 3), "auc": ("AUC", 3),
    "td_auc": ("time-dependent AUC", 3), "c_difference": ("C gain over the rule", 3),
    "difference": ("difference", 3), "nri": ("NRI", 3), "nri_events": ("NRI, deaths", 3),
    "nri_nonevents": ("NRI, survivors", 3), "n_up": ("moved up", "int"), "n_down": ("moved down", "int"),
    # calibration and accuracy
    "oe_ratio": ("O/E ratio", 2), "calibration_slope": ("calibration slope", 2), "slope": ("calibration slope", 2),
    "calibration_in_the_large": ("calibration-in-the-large", 3), "citl": ("calibration-in-the-large", 3),
    "ici": ("ICI", 3), "e50": ("E50", 3), "e90": ("E90", 3), "emax": ("Emax", 3), "brier": ("Brier score", 3),
    "ibs": ("integrated Brier score", 3), "ipa": ("IPA", 3), "net_benefit": ("net benefit", 3),
    "threshold": ("threshold probability", 2), "treated_share": ("treated", "pct"),
    "observed": ("observed OS-2", 3), "predicted": ("predicted OS-2", 3),
    "mean_predicted": ("mean predicted OS-2", 3), "stage": ("stage", "text"),
    # survival, hazard ratios, tests
    "hr": ("HR", 2), "hr_top": ("HR high vs low", 2), "hr_low": ("HR lower", 2), "coef": ("log HR", 3),
    "se": ("SE", 3), "p_value": ("p", "p"), "p": ("p", "p"), "logrank_p": ("log-rank p", "p"),
    "logrank_chisq": ("log-rank chi-square", 1), "logrank_df": ("df", "int"),
    "median_os2_months": ("median OS-2 (months)", 1), "median_months": ("median OS-2 (months)", 1),
    "median_pfs2_months": ("median PFS-2 (months)", 1), "os2_6mo_pct": ("OS-2 at 6 months (%)", 1),
    "os2_12mo_pct": ("OS-2 at 12 months (%)", 1), "horizon_months": ("horizon (months)", None),
    "contrast": ("contrast", "text"), "versus": ("versus", "text"),
    # counts and shares
    "n": ("patients", "int"), "patients": ("patients", "int"), "n_patients": ("patients", "int"),
    "events": ("deaths", "int"), "n_events": ("deaths", "int"), "deaths": ("deaths", "int"),
    "events_by_horizon": ("deaths by the horizon", "int"), "share": ("share", "pct"), "n_groups": ("groups", "int"),
    "rank": ("rank", "int"), "n_folds": ("folds", "int"), "fold": ("fold", "int"),
    "patients_outside": ("patients outside the training range", "int"),
    "median_predicted": ("median predicted OS-2", 3), "share_training": ("share of training patients", "pct"),
    "share_independent": ("share of independent patients", "pct"), "score_from": ("risk score from", 1),
    # meta-analysis and validation
    "tau2": ("tau²", 3), "i2": ("I²", 1), "pi": ("95% prediction interval", None),
    "estimate": ("estimate", None), "lower": ("lower", None), "upper": ("upper", None),
    "cluster": ("centre", "text"), "centre": ("centre", "text"), "subgroup": ("subgroup", "text"),
    "weight": ("weight", "pct"),
    "metric": ("measure", "text"), "variable": ("variable", "text"), "overall": ("overall", None),
    "flag": ("flag", "text"), "k": ("clusters", "int"), "scale": ("scale", "text"),
    "membership_c": ("C of a membership model", 3), "treat_all": ("treat all", 3), "treat_none": ("treat none", 3),
    "development_mean": ("development mean", 3), "development_sd": ("development SD", 3),
    "validation_mean": ("validation mean", 3), "validation_sd": ("validation SD", 3),
    "observed_survival": ("observed OS-2", 3), "comparison": ("comparison", "text"),
    "lr": ("likelihood ratio", 2), "df": ("df", "int"), "significant": ("significant", "text"),
    # explanations and the literature
    "mean_abs_shap": ("mean |SHAP|", None), "relative_importance": ("share of the largest", "pct"),
    "spearman": ("Spearman's rho", 2), "agreement": ("agreement (rho)", 2),
    "model_direction": ("model direction", "text"), "published_direction": ("published direction", "text"),
    "factor": ("factor", "text"), "published_hr": ("published HR", 2), "published_source": ("source", "text"),
    "column": ("column", "text"), "predictor": ("predictor", "text"),
    "coding": ("coding", "text"),
    "sources": ("sources", "int"), "status": ("literature", "text"),
    # tables of the cohort, models and groups
    "quantity": ("quantity", "text"), "value": ("value", "text"), "published": ("published", None),
    "simulated": ("simulated", None), "unit": ("unit", "text"), "tolerance": ("tolerance", None),
    "tolerance_kind": ("tolerance kind", "text"), "within": ("within tolerance", "text"),
    "model": ("model", "text"), "kind": ("kind", "text"), "rule": ("rule", "text"), "grouping": ("grouping", "text"),
    "reference": ("reference", "text"), "reference_group": ("group by the reference", "text"),
    "reference_rank": ("rank by the reference", "int"), "group": ("group", "text"),
    "risk_group": ("risk group", "text"),
    "strategy": ("strategy", "text"), "family": ("family", "text"), "params": ("parameters", "text"),
    "best_trial": ("best trial", "int"), "inner_value": ("inner (tuning) value", 3),
    "outer_value": ("outer value", 3), "gap": ("optimism (inner - outer)", 3),
}

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

_SCRIPT = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images), d = document.documentElement, b = document.body;
  b.dataset.figures = imgs.length;
  b.dataset.loaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  b.dataset.scrollWidth = d.scrollWidth;
  b.dataset.viewportWidth = d.clientWidth;
  b.dataset.scrollHeight = d.scrollHeight;
  b.dataset.overflowing = Array.prototype.filter.call(document.querySelectorAll("main *"),
    function (e) { return e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible"; }).length;
});
</script>"""


@dataclass(frozen=True)
class _Run:
    run_id: str
    name: str
    metrics: Mapping[str, float]
    params: Mapping[str, str]
    tags: Mapping[str, str]


def header(code: str) -> str:
    """The human header of a column code (:data:`LABELS`; unknown codes without underscores)."""
    return header_text(code, LABELS)


def _title(name: str) -> str:
    return Path(name).stem.replace("_", " ").replace("-", " ").strip().capitalize()


def _value_label(text: str) -> str:
    return grouping_title(text)


def _table(path: Path, *, fold_long: bool = True) -> str:
    frame = pd.read_csv(path)
    ids = sorted(IDENTIFIER_COLUMNS & {str(c).lower() for c in frame.columns})
    if ids:
        return (f'<p class="note">Withheld: {html.escape(path.name)} names patients ({", ".join(ids)}); the '
                "report shows no patient-level rows.</p>")
    table = table_html(frame, LABELS, _value_label)
    if fold_long and len(frame) > _LONG_TABLE_ROWS:  # long tables fold away so that the figures stay in view
        return f"<details><summary>{len(frame)} rows: show the table</summary>{table}</details>"
    return table


def _figure(path: Path, alt: str, *, number: int | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    label = f"<b>Figure {number}.</b> " if number else ""
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{label}{html.escape(alt)}</figcaption></figure>")


_MISSING = {"": pd.NA, "n/a": pd.NA, "NA": pd.NA, "nan": pd.NA, "-": pd.NA}


def _cell_text(content: str) -> str:
    return re.sub(r"^(\*\*|`)(.*)\1$", r"\2", content.strip()).replace("\\|", "|")


def _markdown_table(tokens) -> str:
    """A Markdown table through the same formatting as a CSV: human headers, intervals, decimals, p-values."""
    head, rows, row, in_head = [], [], [], False
    for k, tok in enumerate(tokens):
        if tok.type in ("thead_open", "thead_close"):
            in_head = tok.type == "thead_open"
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close" and not in_head:
            rows.append(row)
        elif tok.type == "inline" and tokens[k - 1].type in ("th_open", "td_open"):
            (head if in_head else row).append(_cell_text(tok.content))
    seen: dict[str, int] = {}
    columns = []
    for h in head:
        seen[h] = seen.get(h, -1) + 1
        columns.append(h + " " * seen[h])  # repeated headers stay distinct columns
    frame = pd.DataFrame([r + [""] * (len(columns) - len(r)) for r in rows], columns=columns)
    for col in frame.columns:
        cells = frame[col].str.replace(",", "").replace(_MISSING)
        numbers = pd.to_numeric(cells.dropna(), errors="coerce")
        if len(numbers) and numbers.notna().all():
            frame[col] = pd.to_numeric(cells, errors="coerce")
    return table_html(frame, LABELS, _value_label)


def _markdown(path: Path, md: MarkdownIt) -> str:
    tokens = md.parse(path.read_text(encoding="utf-8"))
    parts, start, i = [], 0, 0
    while i < len(tokens):
        if tokens[i].type != "table_open":
            i += 1
            continue
        end = next(k for k in range(i, len(tokens)) if tokens[k].type == "table_close")
        parts += [md.renderer.render(tokens[start:i], md.options, {}), _markdown_table(tokens[i:end + 1])]
        start = i = end + 1
    body = "".join(parts + [md.renderer.render(tokens[start:], md.options, {})])
    body = re.sub(r"<(/?)h([1-4])>", lambda m: f"<{m.group(1)}h{int(m.group(2)) + 2}>", body)  # under the section's h2
    return f'<div class="md">{body}</div>'


def _pick(files: list[Path], patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        found = [p for p in files if fnmatch.fnmatch(p.name, pattern)]
        if found:
            return found[0]
    return None


def _default_alt(path: Path) -> str:
    return f"Figure: {_title(path.name).lower()}."


def _section(folder: Path, heading: str, lead: str, md: MarkdownIt, figure_number: int) -> tuple[str, str, bool]:
    """The section's HTML, its answer sentence and whether it has a key figure."""
    files = sorted((p for p in folder.rglob("*") if p.is_file() and p.name != SECTION_FILE),
                   key=lambda p: (p.stem != "summary", p.name))
    note = ""
    try:
        section = read_section(folder)
    except ValueError as err:
        section, note = None, f'<p class="note">section.json ignored: {html.escape(str(err))}</p>'
    if section is None:
        figures, table = _FALLBACK.get(folder.name, (("*.png",), None))
        key_figure = _pick(files, figures)
        compact = next((p for p in files if table and p.name == table), None)
        section = Section(answer=lead, figure=key_figure.name if key_figure else "",
                          alt=_default_alt(key_figure) if key_figure else "", table=compact.name if compact else None)
        lead = ""
    key_figure = folder / section.figure if section.figure else None
    compact = folder / section.table if section.table else None
    parts = [f'<section id="{html.escape(folder.name)}"><h2>{html.escape(heading)}</h2>',
             f'<p class="answer">{html.escape(section.answer)}</p>']
    if key_figure is not None:
        parts.append(_figure(key_figure, section.alt, number=figure_number))
    if compact is not None:
        parts.append(_table(compact, fold_long=False))
    if lead:
        parts.append(f'<p class="method">{html.escape(lead)}</p>')
    parts.append(note)
    rest = [p for p in files if p not in (key_figure, compact)]
    parts.append(_folded(rest, section.alts, md))
    parts.append("</section>")
    return "".join(parts), section.answer, key_figure is not None


def _folded(files: list[Path], alts: Mapping[str, str], md: MarkdownIt) -> str:
    tables = [p for p in files if p.suffix == ".csv"]
    figures = [p for p in files if p.suffix == ".png"]
    notes = [p for p in files if p.suffix == ".md"]
    if not (tables or figures or notes):
        return ""
    counts = [f"{len(x)} {word}{'s' if len(x) > 1 else ''}" for x, word in
              ((tables, "table"), (figures, "figure"), (notes, "document")) if x]
    body = [_markdown(p, md) for p in notes]
    body += [f"<h3>{html.escape(_title(p.name))}</h3>{_table(p)}" for p in tables]
    if figures:
        body.append('<div class="grid">' + "".join(_figure(p, alts.get(p.name) or _default_alt(p))
                                                   for p in figures) + "</div>")
    return (f'<details class="more"><summary>More: {", ".join(counts)}</summary>{"".join(body)}</details>'
            f'<p class="print-only note">More tables and figures: {", ".join(counts)} in the HTML report.</p>')


def _card_value(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"


def _summary(run: _Run, answers: list[tuple[str, str, str]]) -> str:
    shown = {k: label for k, label in _HEADLINE.items() if k in run.metrics} or \
        {k: k.replace("_", " ") for k in sorted(run.metrics)[:8]}
    cards = "".join(f'<div class="kpi"><b>{_card_value(run.metrics[k])}</b><span>{html.escape(label)}</span></div>'
                    for k, label in shown.items())
    rows = "".join(f'<tr><td>{html.escape(k)}</td><td data-metric="{html.escape(k)}">{v:.4f}</td></tr>'
                   for k, v in sorted(run.metrics.items()))
    items = "".join(f'<li><a href="#{html.escape(folder)}">{html.escape(heading)}</a>: {html.escape(answer)}</li>'
                    for folder, heading, answer in answers)
    results = f'<ol class="results">{items}</ol>' if items else ""
    return (f'<div id="summary" class="abstract"><h2>Key results</h2>{results}<div class="kpis">{cards}</div>'
            f"<details><summary>Every metric of the run ({len(run.metrics)})</summary>"
            f'<div class="table"><table><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>{rows}'
            f"</tbody></table></div></details></div>")


def _folders(artifacts: Path) -> list[tuple[str, str, str]]:
    """Known sections first in their order (each once), then any other folder that carries a section.json."""
    seen, out = set(), []
    for folder, heading, lead in SECTIONS:
        if folder not in seen and (artifacts / folder).is_dir():
            seen.add(folder)
            out.append((folder, heading, lead))
    for path in sorted(p for p in artifacts.iterdir() if p.is_dir() and p.name not in seen):
        if (path / SECTION_FILE).is_file():
            out.append((path.name, _title(path.name), ""))
    return out


def render_report(artifacts: Path, run: _Run, *, title: str = "cartrisk report") -> str:
    """The report's HTML from a folder of downloaded artefacts and the run's metrics and tags."""
    md = MarkdownIt("commonmark").enable("table")
    provenance = ", ".join(f"{k.removeprefix('version.')} {v}" for k, v in sorted(run.tags.items())
                           if k.startswith("version."))
    sections, answers, number = [], [], 1
    for folder, heading, lead in _folders(artifacts):
        text, answer, has_figure = _section(artifacts / folder, heading, lead, md, number)
        number += has_figure
        sections.append(text)
        answers.append((folder, heading, answer))
    data_hash, seed = run.tags.get("data_sha256", "n/a")[:16], run.tags.get("seed", "n/a")
    sub = (f"MLflow run {html.escape(run.run_id)} ({html.escape(run.name)}); data SHA-256 "
           f"{html.escape(data_hash)}...; seed {html.escape(seed)}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body><header><h1>{html.escape(title)}</h1><p>{sub}</p></header>"
            f"<main>{_summary(run, answers)}{''.join(sections)}<p class=\"note\">Package versions: "
            f"{html.escape(provenance)}. git commit {html.escape(run.tags.get('git_commit', 'unknown'))}.</p></main>"
            f"{_SCRIPT}</body></html>")


def build_report(run_id: str, *, tracker: Tracker, title: str = "cartrisk: OS-2 after CAR T-cell failure") -> str:
    """Download a run's artefacts and render its report (HTML text; the caller writes it)."""
    info = tracker.get_run(run_id)
    run = _Run(run_id=run_id, name=info.info.run_name or run_id, metrics=dict(info.data.metrics),
               params=dict(info.data.params), tags=dict(info.data.tags))
    logged = [a.path for a in tracker.client.list_artifacts(run_id) if a.is_dir]
    known = {folder for folder, _, _ in SECTIONS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in logged:
            if folder in known or any(a.path == f"{folder}/{SECTION_FILE}"
                                      for a in tracker.client.list_artifacts(run_id, folder)):
                tracker.download(run_id, folder, root)
        return render_report(root, run, title=title)


def render_folders(folders: Mapping[str, Path], *, title: str, metrics: Mapping[str, float] | None = None,
                   name: str = "local folder") -> str:
    """The report's HTML from section folders on disk (``{"validation": DIR, ...}``), without an MLflow run:
    ``cartrisk validate-model --report`` renders its output folder through this, with the same renderer."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for section, folder in folders.items():
            target = root / section
            target.mkdir()
            for path in Path(folder).iterdir():
                if path.is_file():
                    shutil.copy2(path, target / path.name)
        run = _Run(run_id="(no MLflow run)", name=name, metrics=dict(metrics or {}), params={}, tags={})
        return render_report(root, run, title=title)
