"""The quickstart report's sections: for each folder, the sentence that answers its question, its key figure
and its compact table (the contract of :mod:`cartrisk.workflows.sections`).

One small function per section reads what the quickstart computed, writes the key figure and the compact
table (snake_case columns; the report gives them human headers) and the folder's ``section.json``.
Everything here is an aggregate: counts, shares, estimates and curves; no patient's row or value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sksurv.util import Surv

from cartrisk.bundle import score_distribution
from cartrisk.data.dictionary import column_title
from cartrisk.data.figures import OUTCOME_TARGETS, targets_figure
from cartrisk.evaluation import CVResult, calibration_at_horizon
from cartrisk.evaluation.figures import horizon_calibration_figure
from cartrisk.explain.figures import concordance_points, explanation_overview_figure
from cartrisk.groups import RuleComparison, grouping_title
from cartrisk.groups.figures import group_histogram_figure
from cartrisk.paths import write_table
from cartrisk.plotting import SERIES_COLOURS, forest_figure, save_figure
from cartrisk.units import estimate_text, months_to_days, p_text, percent_text
from cartrisk.workflows.sections import write_section

__all__ = ["bundle_section", "calibration_section", "cohort_section", "explain_section", "groups_section",
           "models_section", "scoring_section"]

_FAMILIES = {"rsf": "random survival forest", "xgb_cox": "XGBoost Cox model", "coxph": "Cox model",
             "coxnet": "elastic-net Cox model", "gbsa": "gradient-boosted survival model",
             "extra_trees": "extra survival trees", "xgb_aft": "XGBoost AFT model"}


def _family(label: str) -> str:
    family = label.removeprefix("tuned ").strip()
    return _FAMILIES.get(family, family)


# ----------------------------------------------------------------------------------------------- cohort
def cohort_section(folder: Path, s: dict, report: pd.DataFrame) -> list[Path]:
    """Who the patients are (``s``: :func:`cartrisk.data.simreport.cohort_summary`), and whether the registry looks
    like the published one (``report``: :func:`cartrisk.data.simreport.simulation_report`)."""
    median, low, high = s["median_os2_months"]
    six = next((r for r in s["os2_at_horizons"] if r["horizon_months"] == 6.0), None)
    early = s.get("failure_window_shares", {}).get("D0-30")
    calib = report[report["use"] == "calibration"]
    parts = [f"The registry holds {s['n']:,} patients with {s['events']:,} deaths "
             f"({percent_text(s['events'] / max(s['n'], 1))}); median OS-2 is {estimate_text(median, low, high, 1)} "
             "months"]
    if six is not None:
        parts.append(f", OS-2 at 6 months {estimate_text(100 * six['km'], 100 * six['lower'], 100 * six['upper'], 0)}%")
    if early is not None:
        parts.append(f", and {percent_text(early)} failed within 30 days of infusion (D0-30)")
    answer = "".join(parts) + (f"; {int(calib['within'].sum())} of {len(calib)} published targets are matched "
                               "within tolerance." if len(calib) else ".")
    figure = save_figure(targets_figure(report), folder / "published_vs_simulated.png")
    drawn = calib[calib["quantity"].isin(OUTCOME_TARGETS)]
    alt = (f"Dot plot of the {len(drawn)} published failure-window, survival and progression figures the registry "
           "is calibrated to (percentages above, months below): a grey bar marks each published value with its "
           f"tolerance, a dot the registry's value, filled when within tolerance; {int(drawn['within'].sum())} are "
           "within.")
    return [figure, write_section(folder, answer=answer, figure=figure.name, alt=alt, table="summary.csv")]


# ----------------------------------------------------------------------------------------------- models
def _headline_row(result: CVResult, metric: str) -> tuple[float, float, float]:
    row = result.headline(metric)
    if row is None:
        return np.nan, np.nan, np.nan
    return float(row["mean"]), float(row["lower"]), float(row["upper"])


def models_section(folder: Path, results: dict[str, CVResult], kinds: dict[str, str]) -> list[Path]:
    """Which model or rule discriminates OS-2 best in outer cross-validation, and by how much."""
    rows = []
    for label, result in results.items():
        row = {"model": grouping_title(label), "kind": kinds[label]}
        for metric, code in (("harrell_c", "harrell_c"), ("uno_c", "uno_c"), ("auc", "auc_6m"),
                             ("brier", "brier_6m")):
            est, lo, hi = _headline_row(result, metric)
            row |= {code: est, f"{code}_lower": lo, f"{code}_upper": hi}
        rows.append(row)
    table = pd.DataFrame(rows)
    compact = write_table(table, folder / "discrimination_summary.csv")
    order = table.sort_values("uno_c", ascending=False, kind="stable")
    colours = [SERIES_COLOURS[0] if k != "reference rule" else SERIES_COLOURS[1 + i % 3]
               for i, k in enumerate(order["kind"])]
    fig = forest_figure(order["model"].tolist(), order["uno_c"], order["uno_c_lower"], order["uno_c_upper"],
                        xlabel="Uno's C, mean over outer folds (95% interval); 0.5 = no discrimination",
                        reference=0.5, colours=colours, title="Discrimination of OS-2, outer cross-validation")
    figure = save_figure(fig, folder / "c_forest.png")
    tuned = table[table["kind"] != "reference rule"].iloc[0]
    rules = table[table["kind"] == "reference rule"]
    best_rule = rules.sort_values("uno_c", ascending=False).iloc[0] if len(rules) else None
    d030 = rules[rules["model"] == grouping_title("d0_30")]

    def c(row) -> str:
        return estimate_text(row["uno_c"], row["uno_c_lower"], row["uno_c_upper"], 3)

    name = _family(next(iter(results)))
    if best_rule is None:
        answer = f"The tuned {name} reaches Uno's C {c(tuned)} in outer cross-validation."
    else:
        better = "better than" if tuned["uno_c"] > best_rule["uno_c"] else "no better than"
        vs = f"{c(d030.iloc[0])} for the D0-30 rule and " if len(d030) and d030.index[0] != best_rule.name else ""
        answer = (f"The tuned {name} discriminates OS-2 {better} the rules in outer cross-validation: Uno's C "
                  f"{c(tuned)} vs {vs}{c(best_rule)} for the {best_rule['model']} (the best rule).")
    alt = ("Forest plot of Uno's C with its 95% interval over the outer folds for the tuned model and each "
           "reference rule, best first; the dashed line at 0.5 is no discrimination.")
    return [compact, figure, write_section(folder, answer=answer, figure=figure.name, alt=alt, table=compact.name)]


# ----------------------------------------------------------------------------------------------- calibration
def calibration_section(folder: Path, groups: RuleComparison) -> list[Path]:
    """Are the model's predicted probabilities right? On the independent cohort, as fitted and recalibrated."""
    pts = groups.patients
    y = Surv.from_arrays(event=pts["os2_event"].to_numpy(bool), time=pts["os2_days"].to_numpy(float))
    horizons = [float(h) for h in groups.settings.get("horizons_months", [groups.horizon_months])]
    rows, curves = [], {}
    for h in horizons:
        for stage, column in (("as fitted", f"surv_{h:g}m"), ("recalibrated", f"recalibrated_{h:g}m")):
            if column not in pts:
                continue
            cal = calibration_at_horizon(y, pts[column].to_numpy(float), float(months_to_days(h)))
            rows.append({"stage": stage, "horizon_months": h, "n": cal.n, "events_by_horizon": cal.n_events,
                         "observed": cal.observed, "mean_predicted": cal.mean_predicted, "ici": cal.ici,
                         "e50": cal.e50, "e90": cal.e90, "calibration_slope": cal.slope})
            if np.isclose(h, groups.horizon_months):
                curves[stage] = cal
    compact = write_table(pd.DataFrame(rows), folder / "calibration_summary.csv")
    h = groups.horizon_months
    fig = horizon_calibration_figure(curves, title=f"{len(pts):,} independent patients, OS-2 at {h:g} months")
    figure = save_figure(fig, folder / f"calibration_curve_{h:g}m.png")
    fitted = curves["as fitted"]
    answer = (f"At {h:g} months the model's predicted OS-2 is close to the observed on {len(pts):,} independent "
              f"patients: {percent_text(fitted.mean_predicted)} predicted vs {percent_text(fitted.observed)} "
              f"observed, ICI {fitted.ici:.3f} and calibration slope {fitted.slope:.2f}")
    if "recalibrated" in curves:
        after = curves["recalibrated"]
        answer += f" as fitted, ICI {after.ici:.3f} and slope {after.slope:.2f} after recalibration."
    else:
        answer += "."
    if fitted.ici > 0.05:
        answer = answer.replace("is close to the observed", "departs from the observed")
    alt = (f"Calibration curve at {h:g} months: observed against predicted probability of death, smoothed (lines) "
           "and by tenths of predicted risk with Kaplan-Meier 95% intervals (dots), as fitted (filled) and after "
           "recalibration (hollow); the dashed diagonal is perfect calibration; below, the spread of predictions.")
    return [compact, figure, write_section(folder, answer=answer, figure=figure.name, alt=alt, table=compact.name)]


# ----------------------------------------------------------------------------------------------- groups
def _groups_rows(groups: RuleComparison) -> pd.DataFrame:
    summary = groups.summary()
    cdiff = groups.comparison.c_differences.set_index(["grouping", "reference"])
    rows = []
    for r in summary.itertuples(index=False):
        if r.kind == "model score":
            continue
        c = (r.harrell_c, np.nan, np.nan)
        if r.kind == "rule":
            ref = cdiff[cdiff.index.get_level_values("reference") == r.rule]
            if len(ref):
                c = tuple(float(ref.iloc[0][k]) for k in ("c_reference", "c_reference_lower", "c_reference_upper"))
        elif (r.grouping, r.rule) in cdiff.index:
            c = tuple(float(cdiff.loc[(r.grouping, r.rule)][k]) for k in ("c", "c_lower", "c_upper"))
        rows.append({"grouping": r.grouping, "n_groups": r.n_groups, "harrell_c": c[0], "harrell_c_lower": c[1],
                     "harrell_c_upper": c[2], "hr_top": r.hr_top, "hr_top_lower": r.hr_top_lower,
                     "hr_top_upper": r.hr_top_upper, "logrank_p": r.logrank_p, "c_difference": r.c_difference,
                     "c_difference_lower": r.c_difference_lower, "c_difference_upper": r.c_difference_upper,
                     "nri": r.nri})
    return pd.DataFrame(rows)


def groups_section(folder: Path, groups: RuleComparison) -> list[Path]:
    """Do the model's risk groups separate OS-2 better than the D0-30 rule?"""
    table = _groups_rows(groups)
    compact = write_table(table, folder / "groups_vs_rules.csv")
    n = len(groups.patients)
    rule = table[table["grouping"] == "d0_30"]
    model = table[table["grouping"].str.startswith("model[d0_30]")]
    if len(rule) and len(model):
        r, m = rule.iloc[0], model.iloc[0]
        better = "better than" if m["harrell_c"] > r["harrell_c"] else "no better than"
        answer = (f"The model's two groups separate OS-2 {better} the D0-30 rule on {n:,} independent patients: "
                  f"C {estimate_text(m['harrell_c'], m['harrell_c_lower'], m['harrell_c_upper'], 3)} vs "
                  f"{estimate_text(r['harrell_c'], r['harrell_c_lower'], r['harrell_c_upper'], 3)}, HR high vs low "
                  f"{estimate_text(m['hr_top'], m['hr_top_lower'], m['hr_top_upper'], 1)} vs "
                  f"{estimate_text(r['hr_top'], r['hr_top_lower'], r['hr_top_upper'], 1)} "
                  f"(log-rank {p_text(m['logrank_p'], prose=True)}).")
    else:
        answer = f"The model's risk groups are compared with the reference rules on {n:,} independent patients."
    kms = sorted(p.name for p in folder.glob("km*.png"))
    figure = "km_d0_30.png" if "km_d0_30.png" in kms else kms[0]
    alt = (f"Kaplan-Meier OS-2 of the {n:,} independent patients: left, the D0-30 rule's groups (failure after day "
           "30 in blue, within 30 days in vermillion); right, the model's two groups of the same sizes (low risk "
           "blue, high risk vermillion); shaded 95% bands, numbers at risk below.")
    alts = {p.name: _group_alt(p.stem) for p in folder.glob("*.png") if p.name != figure}
    return [compact, write_section(folder, answer=answer, figure=figure, alt=alt, table=compact.name, alts=alts)]


def _group_alt(stem: str) -> str:
    if stem.startswith("km_"):
        name = grouping_title(stem.removeprefix("km_"))
        return (f"Kaplan-Meier OS-2 by group of the {name} beside the model's groups of the same sizes, with "
                "95% bands and numbers at risk.")
    if stem.startswith("calibration_"):
        return ("Group calibration: observed (Kaplan-Meier, 95% CI) against mean predicted OS-2 for each group at "
                f"3, 6 and 12 months ({stem.removeprefix('calibration_').replace('_', ' ')}).")
    if stem == "decision_curve":
        return "Decision curve: net benefit of the model, the rules, treating all and treating none by threshold."
    return f"Figure: {stem.replace('_', ' ')}."


# ----------------------------------------------------------------------------------------------- explain
def _top_predictors(table: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    order = {"disagrees": 0, "agrees": 1, "not significant": 2, "not in literature": 3}
    used = table[table["status"].isin(order)].copy()
    used["_order"] = used["status"].map(order)
    used = used.sort_values(["rank", "_order"], kind="stable").drop_duplicates("column")
    top = used.nsmallest(k, "rank")
    top = top.assign(predictor=[column_title(c) for c in top["column"]])
    return top[["predictor", "column", "rank", "mean_abs_shap", "relative_importance", "model_direction", "status"]]


def explain_section(folder: Path, explanation, table: pd.DataFrame, *, seed: int = 0) -> list[Path]:
    """What drives the predictions, and does it agree with the published risk factors?"""
    by_column = explanation.by_column() if explanation.level == "feature" else explanation
    fig = explanation_overview_figure(by_column, table, random_state=seed)
    figure = save_figure(fig, folder / "overview.png", dpi=100)
    top = _top_predictors(table)
    compact = write_table(top, folder / "top_predictors.csv")
    points = concordance_points(table)
    counts = points["status"].value_counts()
    first = top["predictor"].head(3).tolist()
    names = ", ".join(first[:-1]) + f" and {first[-1]}" if len(first) > 1 else "".join(first)
    answer = (f"The predictions rest mostly on {names}; of the {len(points)} established risk factors the model "
              f"uses, its direction agrees with the literature for {counts.get('agrees', 0)}, disagrees for "
              f"{counts.get('disagrees', 0)} and is not significant for {counts.get('not significant', 0)}.")
    alt = ("Left: beeswarm of SHAP values for the 12 most important predictors, one dot per patient coloured by "
           "the predictor's value (blue low, red high). Right: for each established risk factor the model uses, "
           "Spearman's correlation between the factor and its SHAP value with a 95% bootstrap interval, signed so "
           "that right of 0 agrees with the published direction; green agrees, purple disagrees, grey not "
           "significant.")
    alts = {p.name: (f"Dependence plot: SHAP value against {p.stem.removeprefix('dependence_')}."
                     if p.stem.startswith("dependence_") else "Beeswarm of SHAP values, 15 most important features.")
            for p in folder.glob("*.png") if p.name != figure.name and not p.stem.startswith("waterfall")}
    return [figure, compact, write_section(folder, answer=answer, figure=figure.name, alt=alt, table=compact.name,
                                           alts=alts)]


# ----------------------------------------------------------------------------------------------- scoring
def scoring_section(folder: Path, scored: pd.DataFrame, rate: float, ranges: pd.DataFrame,
                    horizon_months: float = 6.0) -> list[Path]:
    """What the exported bundle does with new patients (aggregates only; ``ranges``: per-column counts of values
    outside the training range, :func:`cartrisk.bundle.outside_training_counts`)."""
    surv = f"survival_{horizon_months:g}m"
    order = scored.groupby("risk_group", observed=True)[surv].mean().sort_values(ascending=False).index.tolist()
    groups = pd.Categorical(scored["risk_group"], categories=order, ordered=True)
    # the aggregate logged beside it (groups under MIN_CELL patients counted, not described), lowest risk first
    table = score_distribution(scored).set_index("group").loc[[*order, "all"]].reset_index()
    compact = write_table(table, folder / "score_distribution.csv")
    written = [compact]
    fig = group_histogram_figure(scored[surv], groups, xlabel=f"predicted OS-2 at {horizon_months:g} months",
                                 title=f"{len(scored):,} newly scored patients by risk group")
    figure = save_figure(fig, folder / "predicted_survival_by_group.png")
    high = table.iloc[len(order) - 1]
    outside = (f"{len(ranges)} column(s) had values outside the training range ({int(ranges['n_patients'].sum())}"
               " values in all)" if len(ranges) else "no value lay outside the training ranges")
    answer = (f"The exported bundle, reloaded and verified, scored {len(scored):,} new patients ({rate:,.0f} per "
              f"second): {percent_text(high['share'])} fell in the {high['group']}-risk group, and {outside}.")
    alt = (f"Stacked histogram of predicted OS-2 at {horizon_months:g} months for the newly scored patients, coloured "
           "by risk group (low blue, high vermillion).")
    return [*written, figure, write_section(folder, answer=answer, figure=figure.name, alt=alt, table=compact.name)]


# ----------------------------------------------------------------------------------------------- bundle
def bundle_section(folder: Path, groups: RuleComparison, grouper, bundle: Path) -> list[Path]:
    """What was exported, and how its cut-points split risk."""
    name = next((g for g, ref in groups.pairs if ref == "d0_30" and g.startswith("model[")), None)
    pts = groups.patients
    rows = []
    for k, label in enumerate(grouper.labels_):
        share_test = float((pts[name].astype(str) == str(label)).mean()) if name in pts else np.nan
        rows.append({"group": label, "score_from": -np.inf if k == 0 else float(grouper.cutpoints_[k - 1]),
                     "share_training": float(grouper.train_shares_.iloc[k]), "share_independent": share_test})
    table = pd.DataFrame(rows).replace(-np.inf, np.nan)
    compact = write_table(table, folder / "risk_group_cutpoints.csv")
    codes = pts[name] if name in pts else pd.Categorical.from_codes(grouper.transform(pts["model_risk"]),
                                                                     categories=grouper.labels_, ordered=True)
    fig = group_histogram_figure(pts["model_risk"], codes, xlabel="risk score of the exported model",
                                 cutpoints=grouper.cutpoints_,
                                 title=f"The bundle's cut-point on {len(pts):,} independent patients")
    figure = save_figure(fig, folder / "risk_score_cutpoints.png")
    high = rows[-1]
    answer = (f"The model is exported as a verified bundle ({bundle.name}) whose cut-point puts "
              f"{percent_text(high['share_training'])} of training patients in the high-risk group, the D0-30 "
              "rule's share; its model card (under More) states intended use, data, validation and limits.")
    alt = ("Stacked histogram of the exported model's risk score on the independent patients, coloured by the "
           "risk group the bundle assigns (low blue, high vermillion); the dashed line is the cut-point.")
    return [compact, figure, write_section(folder, answer=answer, figure=figure.name, alt=alt, table=compact.name)]
