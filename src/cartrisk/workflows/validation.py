"""The report sections of ``cartrisk validate-model``: what :func:`cartrisk.bundle.validation.validate_bundle` found,
written as tables, figures and ``section.json`` (:mod:`cartrisk.workflows.sections`).

The ``validation/`` folder holds the metrics with their bootstrap intervals, the calibration curve and deciles, the
decision curve, the bundle's risk groups and the case mix; its ``subgroups/`` folder the performance by subgroup
(:func:`cartrisk.workflows.heterogeneity.write_subgroups`). Aggregates only: the notes keep no row numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cartrisk.bundle.validation import BundleValidation
from cartrisk.evaluation.figures import case_mix_figure, horizon_calibration_figure
from cartrisk.groups.figures import decision_curve_figure, km_figure
from cartrisk.paths import write_table
from cartrisk.plotting import save_figure
from cartrisk.workflows.heterogeneity import write_subgroups
from cartrisk.workflows.sections import write_section

__all__ = ["write_validation"]


def write_validation(result: BundleValidation, out_dir: str | Path) -> list[Path]:
    """Write the tables, figures and ``section.json`` of a validation into ``out_dir`` (subgroups in
    ``out_dir/subgroups/``); returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext, written = result.external, []

    def csv(frame: pd.DataFrame, path: Path) -> None:
        written.append(write_table(frame, path))

    csv(ext.metrics, out / "metrics.csv")
    csv(ext.calibration_curve, out / "calibration_curve.csv")
    csv(ext.deciles, out / "calibration_deciles.csv")
    csv(ext.decision_curve, out / "decision_curve.csv")
    csv(pd.DataFrame([result.case_mix]), out / "case_mix.csv")
    h = ext.horizon_months
    written.append(save_figure(horizon_calibration_figure({result.bundle: ext},
                                                          title=f"calibration at {h:g} months, {result.source}"),
                               out / "calibration.png"))
    long = ext.decision_curve.melt(id_vars="threshold", var_name="strategy", value_name="net_benefit")
    long["strategy"] = long["strategy"].map({"model": result.bundle, "treat_all": "treat all",
                                             "treat_none": "treat none"})
    written.append(save_figure(decision_curve_figure(long, horizon_months=h, title="decision curve"),
                               out / "decision_curve.png"))
    a = result.arrays
    if "groups" in a and result.group_km is not None:
        cats = pd.Categorical(a["groups"], categories=list(result.group_km["risk_group"]), ordered=True)
        csv(result.group_km, out / "risk_groups.csv")
        written.append(save_figure(km_figure({"bundle risk groups": (a["time"], a["event"], cats)},
                                             title=f"OS by the bundle's risk groups, {result.source}"),
                                   out / "km_risk_groups.png"))
    if a:
        written.append(save_figure(case_mix_figure(result.development, a["risk"],
                                                   membership_c=result.case_mix["membership_c"]),
                                   out / "case_mix.png"))
    if result.notes:  # aggregate only: the row numbers of the patients concerned stay on the terminal
        path = out / "notes.md"
        notes = [re.sub(r" \(rows [^)]*\)", "", n) for n in result.notes]
        path.write_text("# Notes\n\n" + "\n".join(f"- {n}" for n in notes) + "\n", encoding="utf-8")
        written.append(path)
    written.append(write_section(out, answer=result.answer(), figure="calibration.png",
                                 alt=f"Smoothed observed against predicted risk of death by {h:g} months with its 95% "
                                     "bootstrap band, and deciles of predicted risk with their Kaplan-Meier risk.",
                                 table="metrics.csv"))
    if result.subgroups is not None:
        written += write_subgroups(result.subgroups, out / "subgroups", horizon_months=h, where=result.source)
    return written
