"""The model card of a bundle (``MODEL_CARD.md``), written from the bundle's own JSON files.

The card follows the TRIPOD+AI reporting items that a model bundle can fill (Collins et al., BMJ
2024;385:e078378) and ends with a table saying, item by item, where each is covered or why it is not:
study-level items (ethics, funding, protocol, patient involvement) belong to the publication, not to a model
file. Nothing here computes statistics; it formats what :mod:`cartrisk.bundle.export` recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cartrisk.bundle._generic import generic_outcome
from cartrisk.data.simreport import cohort_table

__all__ = ["TRIPOD_AI_ITEMS", "render"]

_DISCRIMINATION = (("harrell_c", "Harrell's C"), ("uno_c", "Uno's C (IPCW, truncated at the last horizon)"),
                   ("auc", "time-dependent AUC (cumulative/dynamic)"))
_CALIBRATION = (("brier", "Brier score"), ("ici", "ICI"), ("e50", "E50"), ("e90", "E90"),
                ("calibration_slope", "calibration slope"), ("calibration_in_the_large", "calibration-in-the-large"))

#: (item, topic, section of the card that covers it, or None with the reason it cannot be filled).
TRIPOD_AI_ITEMS: tuple[tuple[str, str, str | None, str], ...] = (
    ("1", "Title", "title", ""),
    ("2", "Abstract", "Summary", ""),
    ("3a", "Healthcare context and rationale", "Intended use", ""),
    ("3b", "Target population, care pathway, intended users", "Intended use", ""),
    ("3c", "Known health inequalities", None, "not assessed by cartrisk; belongs to the study report"),
    ("4", "Objectives (development and/or evaluation)", "Summary", ""),
    ("5a", "Data sources", "Training cohort", ""),
    ("5b", "Dates of accrual and end of follow-up", None, "the training extract gave no dates (only durations)"),
    ("6a", "Setting, number and location of centres", None, "not recorded in registry extracts; study report"),
    ("6b", "Eligibility criteria", "Intended use", ""),
    ("6c", "Treatments received", "Predictors", "after-failure treatment is excluded from the predictors"),
    ("7", "Data preparation and quality checks", "Predictors", ""),
    ("8a", "Outcome definition and time horizon", "Outcome and time origin", ""),
    ("8b", "Qualification of outcome assessors", None, "registry outcome; study report"),
    ("8c", "Blinding of outcome assessment", None, "registry outcome; study report"),
    ("9a", "Choice of predictors", "Predictors", ""),
    ("9b", "Predictor definition and time of measurement", "Predictors", ""),
    ("9c", "Qualification of predictor assessors", None, "study report"),
    ("10", "Sample size", "Training cohort", "size and events reported; no sample-size calculation"),
    ("11", "Missing data", "Predictors", ""),
    ("12a", "Data use (development / evaluation)", "Validation design", ""),
    ("12b", "Predictor handling", "Model", ""),
    ("12c", "Model type, building, tuning, internal validation", "Model; Validation design", ""),
    ("12d", "Heterogeneity across clusters", None, "in the evaluate run (`[evaluation] cluster = \"centre_id\"`, "
     "report section clusters), not in the bundle; `cartrisk describe --strata centre_id` and a centre frailty model "
     "also assess it"),
    ("12e", "Performance measures", "Discrimination; Calibration", ""),
    ("12f", "Model updating", None, "no updating: the model is exported as developed"),
    ("12g", "How predictions were calculated (evaluation)", "Scoring", ""),
    ("13", "Class imbalance", "Training cohort", "time-to-event outcome: censoring reported, no resampling"),
    ("14", "Fairness", None, "no subgroup fairness analysis; belongs to the study report"),
    ("15", "Model output and thresholds", "Scoring; Risk groups", ""),
    ("16", "Differences between development and evaluation data", "Validation design",
     "internal validation only: folds of one cohort"),
    ("17", "Ethical approval", None, "study report"),
    ("18a", "Funding", None, "study report"),
    ("18b", "Conflicts of interest", None, "study report"),
    ("18c", "Protocol", None, "study report"),
    ("18d", "Registration", None, "study report"),
    ("18e", "Data sharing", "Reproducibility", "data SHA-256 only; the data are not shared in the bundle"),
    ("18f", "Code sharing", "Reproducibility", ""),
    ("19", "Patient and public involvement", None, "study report"),
    ("20a", "Participant flow", None, "the bundle records the analysed cohort only"),
    ("20b", "Participant characteristics", "Training cohort; Predictors", ""),
    ("20c", "Development vs evaluation data", None, "no separate evaluation cohort"),
    ("21", "Participants and outcome events per analysis", "Training cohort", ""),
    ("22", "Full model specification", "Model", "the fitted model is the bundle's pipeline.skops"),
    ("23a", "Performance with confidence intervals", "Discrimination; Calibration", ""),
    ("23b", "Heterogeneity of performance across subgroups", None, "not assessed"),
    ("24", "Model updating results", None, "no updating"),
    ("25", "Interpretation", "Comparison with the D0-30 rule; Literature concordance", ""),
    ("26", "Limitations", "Known limits", ""),
    ("27a", "Handling of poor-quality or missing input data", "Scoring", ""),
    ("27b", "User interaction and expertise needed", "Intended use; Scoring", ""),
    ("27c", "Future research", "Known limits", ""),
)


def _f(value: Any, fmt: str = "{:.3f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _cell(value: Any) -> str:
    """A table cell: numbers to three decimals (p-values below 0.001 in scientific notation), text as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.1e}" if 0 < abs(value) < 1e-3 else f"{value:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _metric(rows: Sequence[Mapping[str, Any]], metric: str, horizon: float | None) -> str:
    for r in rows:
        h = r.get("horizon_months")
        if r["metric"] == metric and (horizon is None or (h is not None and abs(float(h) - horizon) < 1e-9)):
            return f"{_f(r.get('mean'))} [{_f(r.get('lower'))}, {_f(r.get('upper'))}]"
    return "n/a"


def _endpoint(schema) -> str:
    generic = generic_outcome(schema)
    if generic is None:
        return "OS-2 (overall survival after large B-cell lymphoma fails anti-CD19 CAR T-cell therapy)"
    return f"time to the event of column `{generic['event']}` (time column `{generic['time']}`) in a generic cohort"


def _summary(info, perf, schema) -> list[str]:
    t, meta, m = info["training"], info["metadata"], info["model"]
    sim = " **The training data are simulated**: this model demonstrates the software and must not guide care." \
        if meta.get("simulated") else ""
    c = _metric(perf["metrics"], "harrell_c", None)
    return [f"# Model card: {info['name']}", "",
            "## Summary", "",
            f"Development and {'internal' if not _evaluations(perf) else 'internal and independent'} validation "
            f"of a `{m['family']}` survival model of {_endpoint(schema)}, trained on "
            f"{t['n']:,} patients with {t['events']:,} {'events' if generic_outcome(schema) else 'deaths'}; "
            f"cross-validated Harrell's C {c}. It gives a risk "
            f"score, survival at {', '.join(f'{h:g}' for h in info['horizons_months'])} months and a risk group."
            + sim, "", f"Exported {info['created_utc']} with cartrisk {info['versions'].get('cartrisk', '?')}."
            + (f" {meta['description']}" if meta.get("description") else ""), ""]


def _intended_use(info, schema) -> list[str]:
    if generic_outcome(schema) is not None:
        return ["## Intended use", "",
                "- Population: patients like the training cohort, which cartrisk read as a generic cohort (its "
                "columns named in the experiment's `[data.roles]`); cartrisk knows nothing of its eligibility, "
                "and the person who trained the model must state it.",
                "- Purpose and users: as stated by that person; the output supports, never replaces, judgement.", "",
                "Out of scope:", "",
                "- any population, time origin or outcome definition other than the training cohort's;",
                "- survival beyond the training follow-up "
                f"({_f(info['training'].get('max_followup_months'), '{:.0f}')} months), and patients whose "
                "predictors lie outside the training ranges (scoring warns);",
                "- any clinical use while the model has been validated only internally.", ""]
    ages = next((c for c in schema["columns"] if c["name"] == "age_years"), None)
    age = f" aged {_f(ages.get('train_min'), '{:.0f}')}-{_f(ages.get('train_max'), '{:.0f}')} years" if ages else ""
    return ["## Intended use", "",
            f"- Population: adults{age} with large B-cell lymphoma whose disease progressed or relapsed after "
            "anti-CD19 CAR T-cell infusion, at the date of that failure (eligibility of the training cohort: "
            "every registry patient with a recorded failure after CAR T-cells).",
            "- Purpose: prognosis at the failure date, to inform discussion with patients and to stratify research "
            "cohorts, set beside the D0-30 rule (failure within 30 days of infusion) that clinicians use today.",
            "- Users: haematologists and researchers familiar with the predictors below; the output supports, "
            "never replaces, clinical judgement.", "",
            "Out of scope:", "",
            "- choosing a salvage treatment: the model is prognostic, estimated without treatments decided after "
            "failure, and says nothing about their effect;",
            "- patients who have not failed CAR T-cells, other diseases or cell therapies, and predictions made at "
            "any time other than the failure date;",
            "- survival beyond the training follow-up "
            f"({_f(info['training'].get('max_followup_months'), '{:.0f}')} months), and patients whose predictors lie "
            "outside the training ranges (scoring warns);",
            "- any clinical use while the model has been validated only internally." , ""]


def _outcome(info, schema) -> list[str]:
    generic = generic_outcome(schema)
    if generic is not None:
        unit = float(generic.get("time_unit_days", 1.0))
        return ["## Outcome and time origin", "",
                f"Time column `{generic['time']}` (1 unit = {unit:g} day{'s' if unit != 1 else ''}), event column "
                f"`{generic['event']}` (1 = event, 0 = censored); the time origin is the training cohort's own. "
                "Horizons: " + ", ".join(f"{h:g}" for h in info["horizons_months"])
                + " months (1 month = 30.4375 days).", ""]
    return ["## Outcome and time origin", "",
            "OS-2: time zero is the date of failure (progression or relapse) after CAR T-cell infusion; the event is "
            "death from any cause; patients alive are censored at last contact. Every predictor must be known at "
            "time zero. Time from infusion (day 0) to failure is itself a predictor. Horizons: "
            f"{', '.join(f'{h:g}' for h in info['horizons_months'])} months (1 month = 30.4375 days).", ""]


def _predictors(info, schema) -> list[str]:
    rows = []
    for c in schema["columns"]:
        if c.get("levels") is not None:
            seen = ", ".join(c["levels"])
        else:
            seen = f"{_f(c.get('train_min'), '{:g}')} to {_f(c.get('train_max'), '{:g}')}"
        name = f"`{c['name']}`" + (" (declared)" if "declared" in c else "")
        rows.append((name, c["measured"], c["unit"] or "-", seen, f"{100 * c['train_missing_share']:.1f}%"))
    m = info["model"]
    return ["## Predictors", "",
            f"Feature set `{m['feature_set']}`. Each predictor, when it is measured, and its training values "
            "(range or levels seen) and share missing. Treatments given after failure are never predictors"
            + (" (allowed here: see the model settings)." if m["allow_after_failure"] else "."), "",
            *_table(("column", "measured", "unit", "training values", "missing"), rows),
            "Input data are validated against the data dictionary (`cartrisk validate`: types, ranges, levels, "
            "dates). Missing numeric values are imputed with the training median plus a missing indicator; missing "
            "categories form their own level. Derived features (failure window, LDH / ULN, log scales, literature "
            "codings) are computed by the pipeline.", "", *_declared(schema), *_leakage(info, schema)]


def _declared(schema) -> list[str]:
    """The site's own columns ([data.extra]), with their declarations."""
    rows = [(f"`{c['name']}`", c["declared"]["kind"], c["declared"]["role"], c["allowed"], c["meaning"])
            for c in schema["columns"] if "declared" in c]
    if not rows:
        return []
    return ["Columns declared by the site (`[data.extra]` of the experiment; validated like dictionary columns when "
            "scoring):", "", *_table(("column", "kind", "role", "allowed", "meaning"), rows)]


def _leakage(info, schema) -> list[str]:
    """The leakage guard's verdict on the predictors, and the columns let through (``allow_suspect``)."""
    screened = [c for c in schema["columns"] if "leakage" in c]
    if not screened:
        return []
    allowed = [c for c in screened if c["leakage"].get("allowed") and c["leakage"].get("suspect")]
    top = max(screened, key=lambda c: max(v for k, v in c["leakage"].items()
                                          if k in ("value_auc", "missing_auc", "harrell_c") and v is not None))
    figures = ", ".join(f"{k.replace('_', ' ')} {_f(top['leakage'][k])}" for k in ("value_auc", "missing_auc",
                                                                                  "harrell_c"))
    lines = [f"Leakage guard: every predictor was screened on the training data for giving the outcome away (AUC "
             "of its values or missingness for death >= 0.95, univariable Harrell C >= 0.90, or a copy of an outcome "
             f"column). The strongest was `{top['name']}` ({figures})."]
    if allowed:
        lines.append("**Let through although suspect** (`allow_suspect` in the experiment): "
                     + "; ".join(f"`{c['name']}`: {c['leakage']['reason']}" for c in allowed) + ".")
    elif info["model"].get("allow_suspect"):
        lines.append(f"`allow_suspect` named {', '.join(info['model']['allow_suspect'])}, none of them suspect here.")
    return [" ".join(lines), ""]


def _cohort(info) -> list[str]:
    t, meta = info["training"], info["metadata"]
    source = meta.get("data_source") or ("simulated registry" if meta.get("simulated") else "not recorded")
    if meta.get("simulated"):
        source += " (simulated, calibrated to published DESCAR-T figures"
        source += "; inferred from SIM- identifiers)" if meta.get("simulated_inferred") else ")"
    rows = [("source", source), *cohort_table(t).itertuples(index=False, name=None)]
    if t.get("accrual"):
        a = t["accrual"]
        rows.append(("accrual (failure dates)", f"{a['first_failure']} to {a['last_failure']}"))
        rows.append(("end of follow-up", a["end_of_followup"]))
    rows.append(("data SHA-256", f"`{t['data_sha256']}`"))
    return ["## Training cohort", "", *_table(("quantity", "value"), rows)]


def _model(info) -> list[str]:
    m = info["model"]
    params = ", ".join(f"{k}={v}" for k, v in sorted(m["params"].items()))
    return ["## Model", "",
            f"Pipeline `{' -> '.join(m['steps'])}`: cartrisk `FeatureBuilder` then `{m['class']}` "
            f"({params}). {len(m['features'])} model features after preprocessing (numeric features standardised).",
            "The fitted pipeline (`pipeline.skops`, with `booster.json` for XGBoost) is the full model specification; "
            "load it with `cartrisk.load_bundle`.", ""]


def _evaluations(perf) -> list[Mapping[str, Any]]:
    return list(perf.get("evaluations") or [])


def _validation(perf) -> list[str]:
    lines = ["## Validation design", "",
             f"{perf.get('validation') or 'not recorded (no cross-validation result was given at export)'}. "
             "The exported model is refitted on all training patients; metrics come from held-out folds."]
    evaluations = _evaluations(perf)
    if not evaluations:
        return [*lines[:-1], lines[-1] + " Internal validation only: no external or temporal validation cohort.", ""]
    lines += ["", "Also evaluated on cohorts other than the training one:", ""]
    lines += [f"- {e.get('cohort', 'another cohort')} ({_count(e.get('n'))} patients"
              f"{', ' + _count(e.get('events')) + ' deaths' if e.get('events') is not None else ''}): "
              f"{e.get('what', '')}" for e in evaluations]
    return lines + [""]


def _count(value: Any) -> str:
    return "?" if value is None else f"{int(value):,}"


def _lineage(info) -> list[str]:
    lin = info.get("lineage")
    if not lin:
        return []
    parent = lin["parent"]
    rows = [(r["comparison"], f"{r['lr']:.2f}", r["df"], f"{r['p_value']:.3g}") for r in lin.get("tests", [])]
    ci = ""
    if lin.get("intercept_exp_ci"):
        lo, hi = lin["intercept_exp_ci"]
        ci += f" (95% CI {lo:.3f}-{hi:.3f})"
    slope_ci = f" (95% CI {lin['slope_ci'][0]:.3f}-{lin['slope_ci'][1]:.3f})" if lin.get("slope_ci") else ""
    return ["## Updating", "",
            f"Updated from bundle `{parent['name']}` (fingerprint `{parent['fingerprint']}`) on {lin['update_data']} "
            f"(SHA-256 `{lin['update_data_sha256']}`; {lin['n']:,} patients, {lin['deaths_by_horizon']:,} deaths by "
            f"{lin['horizon_months']:g} months). Method asked: `{lin['method_requested']}`; applied: "
            f"`{lin['method']}`. {lin['reason']}.", "",
            f"Baseline hazard multiplied by {lin['baseline_hazard_factor']:.3f}{ci}; calibration slope "
            f"{lin['slope']:.3f}{slope_ci}. Closed testing procedure (Vergouwe et al., Stat Med 2017), "
            f"likelihood-ratio tests at level {lin.get('alpha', 0.05):g} on the Poisson full likelihood:", "",
            *_table(("comparison", "LR", "df", "p"), rows)]


def _subgroups(perf) -> list[str]:
    rows = perf.get("subgroups")
    if not rows:
        return []
    out = []
    for r in rows:
        if r["metric"] != "harrell_c" and r["variable"] != "all":
            continue
        out.append((r["variable"], r["subgroup"], _count(r["n"]), _count(r["events"]), r["metric"],
                    f"{_f(r['estimate'])} [{_f(r['lower'])}, {_f(r['upper'])}]", "yes" if r["flag"] else ""))
    flagged = [r for r in rows if r["flag"]]
    note = ("No subgroup's interval excludes the overall value." if not flagged else
            "Flagged (interval excludes the overall value): " + "; ".join(
                f"{r['variable']} {r['subgroup']} {r['metric']} {_f(r['estimate'])}" for r in flagged) + ".")
    return ["## Performance in subgroups", "",
            "Harrell's C by subgroup on out-of-fold predictions (O/E and calibration slope are in "
            "performance.json), 95% bootstrap intervals. " + note, "",
            *_table(("variable", "subgroup", "patients", "deaths", "metric", "estimate [95% CI]", "flag"), out)]


def _sample_size(info, perf) -> list[str]:
    t = info["training"]
    if t.get("n_parameters") is None:
        return []
    epp = t.get("events_per_parameter")
    text = (f"{t['n']:,} patients, {t['events']:,} deaths, {t['n_parameters']} model parameters (features after "
            f"encoding): {_f(epp, '{:.1f}')} deaths per parameter.")
    ss = perf.get("sample_size")
    if ss:
        text += (f" Riley et al. (Stat Med 2019): apparent Cox-Snell R2 {_f(ss.get('r2_cs'))}, expected shrinkage "
                 f"{_f(ss.get('expected_shrinkage'), '{:.2f}')} (target 0.9); minimum size for these parameters "
                 f"{_f(ss.get('required_n'), '{:,.0f}')} patients.")
    return ["## Sample size", "", text, ""]


def _performance(info, perf) -> list[str]:
    rows, hs = perf["metrics"], info["horizons_months"]
    lines = ["## Discrimination", "", f"Held-out folds: {perf['interval']}.", ""]
    if not rows:
        return lines + ["No cross-validation metrics were given at export.", ""]
    disc = [("Harrell's C", _metric(rows, "harrell_c", None)), (_DISCRIMINATION[1][1], _metric(rows, "uno_c", max(hs)))]
    disc += [(f"AUC at {h:g} months", _metric(rows, "auc", h)) for h in hs]
    lines += _table(("measure", "mean [95% interval]"), disc)
    lines += ["## Calibration", ""]
    cal_rows = [(label, *(_metric(rows, key, h) for h in hs)) for key, label in _CALIBRATION]
    cal_rows.append(("integrated Brier score", _metric(rows, "ibs", max(hs)), *[""] * (len(hs) - 1)))
    lines += _table(("measure", *(f"{h:g} months" for h in hs)), cal_rows)
    for key, cal in sorted(perf.get("calibration", {}).items(), key=lambda kv: float(kv[0])):
        if "unavailable" in cal:
            lines += [f"Calibration at {key} months not estimable: {cal['unavailable']}", ""]
            continue
        lines += [f"Out-of-fold calibration at {key} months ({cal['n']:,} patients, {cal['n_events']:,} deaths by "
                  f"then): mean predicted survival {_f(cal['mean_predicted'])}, observed (KM) {_f(cal['observed'])}, "
                  f"ICI {_f(cal['ici'])}, slope {_f(cal['calibration_slope'])}.", ""]
        lines += _table(("risk decile", "n", "predicted", "observed (95% CI)"),
                        [(r["group"], r["n"], _f(r["mean_predicted"]),
                          f"{_f(r['observed'])} ({_f(r['observed_lower'])}-{_f(r['observed_upper'])})")
                         for r in cal["table"]])
    return lines


def _groups(groups, schema) -> list[str]:
    if groups is None:
        return ["## Risk groups", "", "No risk groups in this bundle.", ""]
    hs = groups["horizons_months"]
    cuts = ", ".join(_f(c, "{:.4g}") for c in groups["cutpoints"])
    rows = [(g["label"], f"{g['n']:,} ({100 * g['share']:.1f}%)", g["events"],
             *(f"{_f(p)} / {_f(o)}" for p, o in zip(g["predicted"], g["observed_km"], strict=True)))
            for g in groups["training_groups"]]
    return ["## Risk groups", "",
            f"{groups['origin']}. Method `{groups['method']}`, cut-points on the {groups['scale']}: {cuts} "
            f"(labels low -> high risk: {', '.join(groups['labels'])}). On the training patients (apparent, "
            f"optimistic), predicted / observed (KM) {'survival' if generic_outcome(schema) else 'OS-2'}:", "",
            *_table(("group", "patients", "events" if generic_outcome(schema) else "deaths",
                     *(f"{h:g} months" for h in hs)), rows)]


def _comparison(info, perf, schema) -> list[str]:
    comp, hs = perf.get("comparison"), info["horizons_months"]
    if comp is None and generic_outcome(schema) is not None:
        return []  # a generic cohort has no failure date, so no D0-30 rule to compare with
    lines = ["## Comparison with the D0-30 rule", ""]
    if comp is None:
        return lines + ["Not provided at export (run `cartrisk evaluate`, which cross-validates the rules on the "
                        "same folds).", ""]
    if comp["kind"] == "groups":
        rows = [(r.get("grouping", r.get("index", "")), _f(r.get("harrell_c")), _f(r.get("logrank_p"), "{:.2g}"))
                for r in comp["discrimination"]]
        lines += _table(("grouping", "Harrell's C", "log-rank p"), rows)
        keys = [k for k in (comp["c_differences"][0].keys() if comp["c_differences"] else []) if k != "index"]
        rows = [tuple(_cell(r[k]) for k in keys) for r in comp["c_differences"]]
        if rows:
            lines += _table(tuple(keys), rows)
        return lines
    models = {"this model": perf["metrics"], **comp["models"]}
    measures = [("harrell_c", None, "Harrell's C"), ("uno_c", max(hs), "Uno's C")]
    measures += [("auc", h, f"AUC {h:g} mo") for h in hs] + [("brier", h, f"Brier {h:g} mo") for h in hs]
    rows = [(label, *(_metric(r, m, h) for m, h, _ in measures)) for label, r in models.items()]
    lines += ["Same folds, mean [95% interval]:", "", *_table(("", *(t for _, _, t in measures)), rows)]
    return lines


def _concordance(perf) -> list[str]:
    rows = perf.get("concordance")
    lines = ["## Literature concordance", ""]
    if not rows:
        return lines + ["Not provided at export (`cartrisk explain` compares the model's feature effects with the "
                        "published risk factors).", ""]
    return lines + _table(tuple(rows[0].keys()), [tuple(str(v) for v in r.values()) for r in rows])


def _limits(info, perf, groups) -> list[str]:
    sim = ["- The training data are simulated: figures describe the simulator, not patients."] \
        if info["metadata"].get("simulated") else []
    external = ("- Internal validation only; performance in other centres, countries, products or later years is "
                "unknown: validate externally (and temporally, `cartrisk validate-model`) before any clinical use."
                if not _evaluations(perf) else
                "- Evaluated beyond the training cohort only as listed under Validation design; performance in other "
                "centres, countries, products or later years remains to be shown (`cartrisk validate-model`).")
    cut = ("- Risk-group cut-points: " + groups["origin"] + "." if groups else "- No risk groups.")
    fair = ("- Fairness across sex, age or other subgroups was not assessed; future work should, with external data."
            if not perf.get("subgroups") else
            "- Subgroup performance (Performance in subgroups) comes from the training cohort's out-of-fold "
            "predictions; small subgroups have wide intervals.")
    return ["## Known limits", "", *sim, external,
            "- Cross-validation intervals come from correlated folds and are too narrow to be formal confidence "
            "intervals.",
            "- Missing values are imputed with training medians; patients whose data are missing for reasons other "
            "than in training may be mis-predicted.",
            "- Calibration holds for the training population's baseline risk; recalibrate before use elsewhere "
            "(`cartrisk update-model`).",
            cut, fair, ""]


def _scoring(info) -> list[str]:
    hs = ", ".join(f"`survival_{h:g}m`" for h in info["horizons_months"])
    return ["## Scoring", "",
            f"`cartrisk score models/{info['name']} PATIENTS.csv --out scores.csv` verifies the bundle's checksums "
            "and package versions, validates the file with the data dictionary (outcome not needed; invalid rows "
            "stop the run unless `--skip-invalid`), warns per column when values lie outside the training ranges, "
            f"and writes `patient_id`, `risk_score` (higher = worse), {hs} and `risk_group`, in input order.", ""]


def _reproducibility(info) -> list[str]:
    prov, meta = info["provenance"], info["metadata"]
    rows = [(k, v) for k, v in sorted(info["versions"].items())]
    rows += [("python", prov.get("python", "?")), ("git commit", prov.get("git_commit", "?"))]
    rows += [(k, meta[k]) for k in ("experiment", "seed", "source_run_id") if meta.get(k) is not None]
    return ["## Reproducibility", "", *_table(("item", "value"), rows)]


def _tripod_items(info, perf) -> list[tuple[str, str, str | None, str]]:
    """TRIPOD_AI_ITEMS with the rows this bundle's evidence fills."""
    t, evaluations, lin = info["training"], _evaluations(perf), info.get("lineage")
    over: dict[str, tuple[str | None, str]] = {}
    if t.get("accrual"):
        a = t["accrual"]
        over["5b"] = ("Training cohort", f"failures {a['first_failure']} to {a['last_failure']}, follow-up to "
                                         f"{a['end_of_followup']} (month precision)")
    if t.get("n_parameters") is not None:
        over["10"] = ("Sample size", "deaths per parameter" + ("; Riley et al. criteria" if perf.get("sample_size")
                                                                else "; no Riley calculation was given at export"))
    if evaluations:
        where = "; ".join(e.get("cohort", "another cohort") for e in evaluations)
        over["16"] = ("Validation design", f"evaluated also on: {where}")
        over["20c"] = ("Validation design", f"separate evaluation cohort(s): {where}")
    if perf.get("subgroups"):
        over["14"] = ("Performance in subgroups", "C, O/E and slope by sex, age band, product, histology, failure "
                                                  "window (out-of-fold)")
        over["23b"] = ("Performance in subgroups", "subgroups whose interval excludes the overall value are flagged")
    if lin:
        over["12f"] = ("Updating", f"{lin['method']} update of bundle {lin['parent']['name']}")
        over["24"] = ("Updating", "closed testing and the update's parameters")
    over["23a"] = ("Discrimination; Calibration",
                   "fold-to-fold 95% intervals only (a guide, not formal confidence intervals)"
                   + ("; bootstrap 95% CIs for subgroups" if perf.get("subgroups") else "")
                   + "; `cartrisk validate-model` gives bootstrap 95% CIs on a new cohort")
    return [(item, topic, *over.get(item, (where, note))) for item, topic, where, note in TRIPOD_AI_ITEMS]


def _tripod(info, perf) -> list[str]:
    rows = [(item, topic, where or "not covered", note) for item, topic, where, note in _tripod_items(info, perf)]
    return ["## TRIPOD+AI items", "",
            "Where this card covers each item of the TRIPOD+AI checklist (Collins et al., BMJ 2024;385:e078378); "
            "items about the study rather than the model are left to the study report.", "",
            *_table(("item", "topic", "section", "note"), rows)]


def render(info: Mapping[str, Any], schema: Mapping[str, Any], groups: Mapping[str, Any] | None,
           performance: Mapping[str, Any]) -> str:
    """The model card as Markdown, from the contents of ``bundle.json``, ``schema.json``, ``risk_groups.json``
    (or None) and ``performance.json``."""
    lines = [*_summary(info, performance, schema), *_intended_use(info, schema), *_outcome(info, schema),
             *_predictors(info, schema), *_cohort(info), *_sample_size(info, performance), *_model(info),
             *_validation(performance), *_lineage(info), *_performance(info, performance),
             *_subgroups(performance), *_groups(groups, schema), *_comparison(info, performance, schema),
             *_concordance(performance), *_scoring(info), *_limits(info, performance, groups),
             *_reproducibility(info), *_tripod(info, performance)]
    return "\n".join(lines).rstrip() + "\n"
