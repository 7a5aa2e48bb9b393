"""External validation of a bundle on a new cohort (``cartrisk validate-model``).

The bundle scores the cohort exactly as ``cartrisk score`` does (same checks, same predictions); the cohort's
outcome is then held against the predictions at one horizon (:func:`cartrisk.evaluation.external_validation`),
in the bundle's risk groups, in subgroups, and the cohort's case mix against the development cohort's (the bundle
keeps the percentiles of its training risk scores, never patients). Registry extracts and generic cohorts alike.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sksurv.util import Surv

from cartrisk.bundle.scoring import Bundle
from cartrisk.data.schema import Problem, validate
from cartrisk.evaluation.external import ExternalValidation, external_validation
from cartrisk.evaluation.figures import case_mix_figure, horizon_calibration_figure
from cartrisk.evaluation.subgroups import subgroup_labels, subgroup_performance
from cartrisk.exceptions import SchemaError, StatisticalWarning
from cartrisk.plotting import GROUP_COLOURS, forest_figure, save_figure
from cartrisk.units import months_to_days

__all__ = ["BundleValidation", "membership_c", "validate_bundle", "validation_cohort", "write_validation"]


@dataclass
class BundleValidation:
    """What :func:`validate_bundle` found (aggregates only; the arrays behind the figures stay in memory)."""

    bundle: str
    fingerprint: str
    source: str
    external: ExternalValidation
    case_mix: dict[str, float]
    subgroups: pd.DataFrame | None
    group_km: pd.DataFrame | None
    development: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def metrics(self) -> pd.DataFrame:
        return self.external.metrics

    def answer(self) -> str:
        """One sentence with the key numbers and intervals (the report section's answer)."""
        m = self.metrics.set_index("metric")

        def fmt(name: str) -> str:
            r = m.loc[name]
            return f"{r['estimate']:.2f} ({r['lower']:.2f}-{r['upper']:.2f})"

        return (f"On {self.external.n:,} patients of {self.source} ({self.external.n_events:,} deaths by "
                f"{self.external.horizon_months:g} months), {self.bundle} has Harrell's C {fmt('harrell_c')}, O/E "
                f"{fmt('oe_ratio')}, calibration slope {fmt('calibration_slope')} and ICI {fmt('ici')} "
                f"(95% bootstrap intervals, {self.external.n_boot:,} resamples).")


def validation_cohort(bundle: Bundle, frame: pd.DataFrame, *, source: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The cohort checked as scoring checks it, with its outcome: ``(typed frame, y in days)``.

    Raises
    ------
    SchemaError
        Every problem of the file (file, row, column, value, rule, fix), outcome columns included.
    """
    if bundle.schema.get("cohort") == "generic":
        from cartrisk.bundle._generic import validate_generic

        typed = validate_generic(frame, bundle.schema, source=source, require_outcome=True).raise_if_invalid()
        outcome = bundle.schema["outcome"]
        time = typed[outcome["time"]].to_numpy(float) * float(outcome["time_unit_days"])
        event = typed[outcome["event"]].to_numpy().astype(bool)
    else:
        checked = validate(frame, source=source, require_outcome=True)
        scoring = bundle.validate(frame, source=source)
        known = {(p.row, p.column) for p in checked.problems}
        problems = checked.problems + [p for p in scoring.problems if (p.row, p.column) not in known]
        if problems:
            raise SchemaError(f"{source}: {len(problems)} problem{'s' * (len(problems) > 1)} found", problems)
        typed = checked.raise_if_invalid()
        time, event = typed["os2_days"].to_numpy(float), typed["os2_event"].to_numpy().astype(bool)
    if not event.any():
        raise SchemaError(f"{source}: no deaths in the cohort: it cannot validate a survival model", [
            Problem(source, None, None, None, "all patients are censored", "check the coding of the event column")])
    return typed, Surv.from_arrays(event=event, time=time, name_event="event", name_time="time_days")


def membership_c(development: dict[str, Any] | None, validation: np.ndarray) -> float:
    """C of the risk score as a model of cohort membership (development vs validation), from the development
    cohort's risk-score percentiles: 0.5 = the same case mix; the larger, the more the cohorts differ
    (direction-free: ``max(C, 1 - C)``)."""
    if not development:
        return np.nan
    pct = np.sort(np.asarray(development["percentiles"], dtype=float))
    v = np.asarray(validation, dtype=float)
    below = np.searchsorted(pct, v, side="left")
    ties = np.searchsorted(pct, v, side="right") - below
    c = float(np.mean((below + 0.5 * ties) / pct.size))
    return max(c, 1.0 - c)


def validate_bundle(bundle: Bundle, frame: pd.DataFrame, *, horizon_months: float, source: str = "frame",
                    thresholds=(), n_boot: int = 1000, random_state: int = 0, subgroups: bool = True,
                    n_boot_subgroups: int = 200) -> BundleValidation:
    """Validate a bundle on a cohort with its outcome (see the module docstring).

    Parameters
    ----------
    bundle : Bundle
        :func:`cartrisk.bundle.load_bundle`.
    frame : DataFrame
        The cohort as read (:func:`cartrisk.data.schema.read_extract`), outcome included.
    horizon_months : float
    source : str
        Name in messages and tables (the file path).
    thresholds : sequence of float
        Risk thresholds of the net-benefit rows.
    n_boot : int, default 1000
        Bootstrap resamples for the intervals.
    random_state : int
    subgroups : bool, default True
        Also C, O/E and slope by sex, age band, product, histology and failure window (those present).
    """
    typed, y = validation_cohort(bundle, frame, source=source)
    h = months_to_days(horizon_months)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StatisticalWarning)
        bundle._warn_outside_training(typed, source)
    notes += [str(w.message) for w in caught if issubclass(w.category, StatisticalWarning)]
    Xt = bundle.pipeline.transform_features(typed)
    final = bundle.pipeline.steps[-1][1]
    risk = np.asarray(final.predict(Xt), dtype=float)
    pred_risk = 1.0 - np.clip(final.predict_survival_at(Xt, [h])[:, 0], 0.0, 1.0)
    ext = external_validation(y, risk, pred_risk, h, thresholds=thresholds, n_boot=n_boot, random_state=random_state)
    development = bundle.info["training"].get("risk_score_distribution")
    case_mix = {"development_mean": development["mean"] if development else np.nan,
                "development_sd": development["sd"] if development else np.nan,
                "validation_mean": float(risk.mean()), "validation_sd": float(risk.std(ddof=1)),
                "membership_c": membership_c(development, risk)}
    if not development:
        notes.append("the bundle keeps no training risk-score distribution (exported before cartrisk recorded it): "
                     "the case-mix figure shows the validation cohort only")
    table = None
    if subgroups:
        labels = subgroup_labels(typed)
        if labels:
            table = subgroup_performance(y, risk, pred_risk, h, labels, n_boot=n_boot_subgroups,
                                         random_state=random_state)
    groups, km = None, None
    if bundle.risk_groups:
        groups = bundle.predict_frame(typed)["risk_group"].to_numpy(dtype=object)
        km = _group_km(y, groups, list(bundle.risk_groups["labels"]), h)
    result = BundleValidation(bundle.name, bundle.fingerprint, source, ext, case_mix, table, km, development, notes)
    result._arrays = {"time": y["time_days"], "event": y["event"], "risk": risk,
                      **({"groups": groups} if groups is not None else {})}
    return result


def _group_km(y, groups, labels, h) -> pd.DataFrame:
    from cartrisk.data.survstats import km_at

    rows = []
    for label in labels:
        m = groups == label
        s, lo, hi = km_at(y["event"][m], y["time_days"][m], [h])
        rows.append({"risk_group": label, "n": int(m.sum()), "events": int(y["event"][m].sum()),
                     "observed_survival": float(s[0]), "observed_lower": float(lo[0]),
                     "observed_upper": float(hi[0])})
    return pd.DataFrame(rows)


def _section(folder: Path, answer: str, figure: str, alt: str, table: str | None) -> Path:
    body = {"answer": answer, "figure": figure, "alt": alt, **({"table": table} if table else {})}
    path = folder / "section.json"
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path


def write_validation(result: BundleValidation, out_dir: str | Path) -> list[Path]:
    """Write the tables, figures and ``section.json`` of a validation into ``out_dir`` (subgroups in
    ``out_dir/subgroups/``); returns the paths written."""
    from cartrisk.groups.figures import decision_curve_figure, km_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext, written = result.external, []

    def csv(frame: pd.DataFrame, path: Path) -> None:
        frame.to_csv(path, index=False)
        written.append(path)

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
    a = result._arrays
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
    written.append(_section(out, result.answer(), "calibration.png",
                            f"Smoothed observed against predicted risk of death by {h:g} months with its 95% "
                            "bootstrap band, and deciles of predicted risk with their Kaplan-Meier risk.",
                            "metrics.csv"))
    if result.subgroups is not None:
        written += write_subgroups(result.subgroups, out / "subgroups", horizon_months=h, where=result.source)
    return written


def write_subgroups(table: pd.DataFrame, out_dir: str | Path, *, horizon_months: float, where: str) -> list[Path]:
    """Write a subgroup table, its forest plot of the C by subgroup and ``section.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "subgroups.csv"
    table.to_csv(path, index=False)
    written = [path]
    for metric in ("harrell_c", "oe_ratio", "calibration_slope"):
        rows = table[(table["metric"] == metric) & (table["variable"] != "all")]
        if rows.empty:
            continue
        rows = rows.assign(label=rows["variable"] + ": " + rows["subgroup"] + " (n=" + rows["n"].astype(str) + ")")
        overall = float(table[(table["metric"] == metric) & (table["variable"] == "all")]["estimate"].iloc[0])
        colours = [GROUP_COLOURS[3] if flag else GROUP_COLOURS[0] for flag in rows["flag"]]
        fig = forest_figure(rows["label"].tolist(), rows["estimate"], rows["lower"], rows["upper"], reference=overall,
                            xlabel=metric.replace("_", " "), colours=colours, decimals=2,
                            title=f"{metric.replace('_', ' ')} by subgroup (dashed: overall)")
        written.append(save_figure(fig, out / f"forest_{metric}.png"))
    flagged = table[table["flag"]]
    what = ("no subgroup's interval excludes the overall value" if flagged.empty else
            "flagged (interval excludes the overall value): " + ", ".join(
                f"{r.variable} {r.subgroup} ({r.metric} {r.estimate:.2f}, {r.lower:.2f}-{r.upper:.2f})"
                for r in flagged.itertuples()))
    c = table[(table["metric"] == "harrell_c") & (table["variable"] != "all")]
    span = f"{c['estimate'].min():.2f} to {c['estimate'].max():.2f}" if len(c) else "n/a"
    written.append(_section(out, f"Across subgroups of {where}, Harrell's C ranges from {span} at "
                                 f"{horizon_months:g} months; {what}.", "forest_harrell_c.png",
                            "Harrell's C with its 95% bootstrap interval in each subgroup, against the overall C "
                            "(dashed); flagged subgroups in orange.", "subgroups.csv"))
    return written
