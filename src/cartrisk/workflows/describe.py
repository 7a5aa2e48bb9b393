"""The seed analysis on any extract (``cartrisk describe``): what the published papers on CAR T-cell failure report.

Table 1 by failure window (:func:`cartrisk.data.table1.table_one`), Kaplan-Meier OS-2 by window with numbers at
risk and the log-rank test, and univariable and multivariable unpenalised Cox models
(:func:`cartrisk.evaluation.coxreg.cox_regression`: hazard ratio, 95% CI, Wald p, the reference level of each
category, a Schoenfeld-residual test of proportional hazards per term) with the published hazard ratios of the
literature file beside each term. On a registry extract the terms are the established factors coded as their
sources code them (:func:`cartrisk.data.derive.describe_design`); on the generic path, every covariate.

:func:`describe_registry` and :func:`describe_generic` compute (nothing is written);
:func:`write_describe` writes the CSV tables, PNG figures and the report section's ``section.json`` into a
folder (the quickstart logs it as the report's ``describe/`` section). Every file holds aggregates only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cartrisk.data import literature
from cartrisk.data.derive import derive_features, describe_design, generic_design
from cartrisk.data.dictionary import Column
from cartrisk.data.survstats import km_at, km_median, logrank_test
from cartrisk.data.table1 import group_code, table_one
from cartrisk.evaluation.coxreg import cox_regression, ph_test
from cartrisk.groups.figures import plot_km
from cartrisk.paths import write_table
from cartrisk.plotting import GROUP_COLOURS, forest_figure, new_figure, save_figure
from cartrisk.units import days_to_months, interval_text, months_to_days, p_text
from cartrisk.workflows.sections import write_section

__all__ = ["DescribeResult", "describe_generic", "describe_registry", "hazard_ratio_table", "write_describe"]

_KM_HORIZONS_MONTHS = (6.0, 12.0)
_PUBLISHED = ("published_factor", "published_hr", "published_lower", "published_upper", "published_analysis",
              "published_endpoint", "published_source")


@dataclass
class DescribeResult:
    """The seed analysis of one cohort (aggregates, except the arrays the Kaplan-Meier figure is drawn from).

    Attributes
    ----------
    table1, km, logrank, univariable, multivariable, ph_global : DataFrame
        The tables written by :func:`write_describe` (snake_case columns).
    answer : str
        One sentence answering the section's question, with its key numbers.
    group_name : str
        What the groups are (``failure window``).
    outcome : str
        What the time runs to, in words (``OS-2`` on a registry, ``survival`` on the generic path).
    """

    table1: pd.DataFrame
    km: pd.DataFrame
    logrank: pd.DataFrame
    univariable: pd.DataFrame
    multivariable: pd.DataFrame
    ph_global: pd.DataFrame
    answer: str
    group_name: str
    outcome: str = "OS-2"
    _curves: tuple | None = field(default=None, repr=False)


def _published(terms: pd.DataFrame, analysis: str) -> pd.DataFrame:
    """The published HR to print beside each term: OS-2 first, then the same analysis, then the first listed."""
    rf = literature.risk_factors()
    rows = []
    for spec in terms["published"]:
        names = [n.strip() for n in str(spec).split(";") if n.strip()]
        found = rf[rf["factor"].isin(names) & rf["hr"].notna()]
        if found.empty:
            rows.append(dict.fromkeys(_PUBLISHED, np.nan))
            continue
        rank = (found["endpoint"] != "OS-2").astype(int) * 2 + (found["analysis"] != analysis).astype(int)
        best = found.loc[rank.sort_values(kind="stable").index[0]]
        rows.append({"published_factor": best["factor"], "published_hr": best["hr"], "published_lower": best["hr_low"],
                     "published_upper": best["hr_high"], "published_analysis": best["analysis"],
                     "published_endpoint": best["endpoint"], "published_source": best["source"]})
    return pd.DataFrame(rows, index=terms.index)


def _cox_table(design: pd.DataFrame, terms: pd.DataFrame, event, time, strata, analysis: str
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Univariable (one model per term) or multivariable (complete cases) Cox table, with PH tests."""
    event, time = np.asarray(event, dtype=bool), np.asarray(time, dtype=float)
    strata = None if strata is None else np.asarray(strata)
    rows, ph_global = [], pd.DataFrame(columns=["model", "n", "events", "ph_chi2", "ph_df", "ph_p_value"])
    if analysis == "univariable":
        fits = []
        for _, block in terms.groupby("variable", sort=False):
            cols = block["term"].tolist()
            known = design[cols].notna().all(axis=1).to_numpy()
            fits.append((cols, known))
    else:
        fits = [(terms["term"].tolist(), design[terms["term"]].notna().all(axis=1).to_numpy())]
    for cols, known in fits:
        X = design.loc[known, cols]
        keep = [c for c in cols if X[c].std() > 0]
        base = {"n": int(known.sum()), "events": int(event[known].sum())}
        if not keep or base["events"] == 0:
            rows += [{"term": c, **base} for c in cols]
            continue
        try:
            fit = cox_regression(X[keep], event[known], time[known],
                                 strata=None if strata is None else strata[known])
        except ValueError as err:  # collinear or separated terms in this cohort: say so, fit the others
            rows += [{"term": c, **base, "note": str(err)} for c in cols]
            continue
        ph = ph_test(fit)  # Schoenfeld residuals once: per term and, last row, global
        table = fit.table().merge(ph, on="term", how="left")
        for c in cols:
            row = table[table["term"] == c]
            rows.append({"term": c, **base, **(row.iloc[0].to_dict() if len(row) else {})})
        if analysis == "multivariable":
            glob = ph.iloc[-1]
            ph_global = pd.DataFrame([{"model": "multivariable", **base, "ph_chi2": glob["ph_chi2"],
                                       "ph_df": int(glob["ph_df"]), "ph_p_value": glob["ph_p_value"]}])
    out = pd.DataFrame(rows).merge(terms, on="term", how="left")
    out = pd.concat([out, _published(out, analysis)], axis=1)
    columns = ["term", "variable", "level", "reference", "label", "n", "events", "hr", "hr_lower", "hr_upper",
               "p_value", "coef", "se", "ph_chi2", "ph_p_value", *_PUBLISHED, "note"]
    return out.reindex(columns=columns), ph_global


def _km_table(event, time, groups: pd.Series, by_published: Mapping[str, float]) -> pd.DataFrame:
    rows = []
    horizons = months_to_days(np.asarray(_KM_HORIZONS_MONTHS))
    for label in ["all", *groups.cat.categories]:
        m = np.ones(len(groups), dtype=bool) if label == "all" else (groups == label).to_numpy()
        med = [days_to_months(v) if np.isfinite(v) else np.nan for v in km_median(event[m], time[m])]
        surv, low, high = km_at(event[m], time[m], horizons)
        row = {"group": label, "group_code": group_code(label), "n": int(m.sum()), "events": int(event[m].sum()),
               "median_months": med[0], "median_lower": med[1], "median_upper": med[2]}
        for h, s, lo, hi in zip(_KM_HORIZONS_MONTHS, surv, low, high, strict=True):
            row |= {f"os2_{h:g}m": s, f"os2_{h:g}m_lower": lo, f"os2_{h:g}m_upper": hi}
        row["published_median_months"] = by_published.get(str(label), np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _logrank(event, time, groups: pd.Series, first: str | None) -> pd.DataFrame:
    known = groups.notna().to_numpy()
    rows = []
    if groups[known].nunique() >= 2:
        rows.append({"comparison": f"all {groups[known].nunique()} groups", **logrank_test(event[known], time[known],
                                                                                          groups[known])})
    if first is not None and groups[known].nunique() > 2:
        early = (groups[known] == first).to_numpy()
        rows.append({"comparison": f"{first} vs later", **logrank_test(event[known], time[known], early)})
    return pd.DataFrame(rows, columns=["comparison", "chi2", "df", "p_value"])


def _median_text(row) -> str:
    """A Kaplan-Meier median with its interval, "not reached" / "NR" where the curve stays above one half."""
    if not np.isfinite(row.median_months):
        return "not reached"
    upper = f"{row.median_upper:.1f}" if np.isfinite(row.median_upper) else "NR"
    return f"{row.median_months:.1f} months (95% CI {row.median_lower:.1f}-{upper})"


def _answer(km: pd.DataFrame, logrank: pd.DataFrame, multi: pd.DataFrame, group_name: str, lead: str | None,
            outcome: str = "OS-2") -> str:
    parts = []
    two = "{:.2f}".format
    groups = km[km["group"] != "all"]
    if len(groups):
        medians = "; ".join(f"{r.group} {_median_text(r)}" for r in groups.itertuples())
        tests = ", ".join(f"{r.comparison} {p_text(r.p_value, prose=True)}" for r in logrank.itertuples())
        parts.append(f"Median {outcome} by {group_name}: {medians} (log-rank {tests})")
    else:
        parts.append(f"Median {outcome} {_median_text(next(km.itertuples()))}")
    fitted = multi.dropna(subset=["hr"])
    if len(fitted):
        top = fitted[fitted["term"] == lead] if lead is not None and (fitted["term"] == lead).any() else \
            fitted.loc[[fitted["p_value"].idxmin()]]
        r = top.iloc[0]
        deaths = "deaths" if outcome == "OS-2" else "events"
        text = (f"in the multivariable Cox model ({int(r.n)} complete cases, {int(r.events)} {deaths}) "
                f"{_reads(r.label)} had HR "
                f"{r.hr:.2f} (95% CI {interval_text(r.hr_lower, r.hr_upper, two)}, {p_text(r.p_value, prose=True)})")
        if np.isfinite(r.published_hr):
            text += (f", published {r.published_hr:.2f} ({interval_text(r.published_lower, r.published_upper, two)}, "
                     f"{r.published_source})")
        parts.append(text)
    return "; ".join(parts) + "."


def _describe(frame: pd.DataFrame, event, time, groups: pd.Series | None, design: pd.DataFrame, terms: pd.DataFrame,
              *, defined=None, strata=None, group_name: str, published_medians=None, lead=None,
              table_columns=None, outcome: str = "OS-2") -> DescribeResult:
    event, time = np.asarray(event, dtype=bool), np.asarray(time, dtype=float)
    cat = groups if groups is not None else pd.Series(pd.Categorical([np.nan] * len(frame)), index=frame.index)
    uni, _ = _cox_table(design, terms, event, time, strata, "univariable")
    multi, ph_global = _cox_table(design, terms, event, time, strata, "multivariable")
    km = _km_table(event, time, cat, published_medians or {})
    first = str(cat.cat.categories[0]) if groups is not None and len(cat.cat.categories) else None
    logrank = _logrank(event, time, cat, first)
    t1 = table_one(frame, groups, columns=table_columns, defined=defined)
    answer = _answer(km, logrank, multi, group_name, lead, outcome)
    return DescribeResult(t1, km, logrank, uni, multi, ph_global, answer, group_name, outcome,
                          _curves=(time, event, cat))


def describe_registry(typed: pd.DataFrame, *, declared: Mapping[str, Column] | None = None,
                      strata: str | None = None, adjust: pd.DataFrame | None = None) -> DescribeResult:
    """The seed analysis of a validated registry extract, by failure window.

    Parameters
    ----------
    typed : DataFrame
        A validated extract (:func:`cartrisk.data.schema.validate`), outcome included.
    declared : mapping of name -> Column, optional
        The site's declared columns: shown in Table 1.
    strata : str, optional
        A column (e.g. ``centre_id``) whose levels get their own baseline hazard in the Cox models.
    adjust : DataFrame, optional
        Extra design columns (same index) every Cox model adjusts for, e.g. a flexible form of the time to failure.
    """
    window = derive_features(typed[["days_to_failure"]])["failure_window"]
    labels = literature.rule_constants()["failure_windows"]
    groups = pd.Series(pd.Categorical(window, categories=labels), index=typed.index)
    design, terms = describe_design(typed)
    if adjust is not None:
        design = pd.concat([design, adjust], axis=1)
        terms = pd.concat([terms, pd.DataFrame({"term": adjust.columns, "variable": adjust.columns, "level": "",
                                                "reference": "", "label": adjust.columns, "published": ""})],
                          ignore_index=True)
    medians = {g: literature.target("median_os2_months", g) for g in ("all", *labels)}
    return _describe(typed, typed["os2_event"], typed["os2_days"], groups, design, terms, defined=declared,
                     strata=None if strata is None else typed[strata].astype(str), group_name="failure window",
                     published_medians=medians, lead="failure_d0_30")


def describe_generic(X: pd.DataFrame, y: np.ndarray, *, by: str | None = None, strata: str | None = None
                     ) -> DescribeResult:
    """The same analysis on any cohort (the generic path): Table 1 and Kaplan-Meier by ``by`` (a covariate, or
    none), Cox models of every covariate (categories against their most frequent level), no published HRs."""
    event_field, time_field = y.dtype.names
    groups = None
    covariates = X
    if by is not None:
        values = X[by]
        groups = pd.Series(pd.Categorical(values.astype(object).where(values.isna(), values.astype(str))),
                           index=X.index)
        covariates = X.drop(columns=[by])
    if strata is not None:
        covariates = covariates.drop(columns=[strata])
    design, terms = generic_design(covariates)
    return _describe(X, y[event_field], y[time_field], groups, design, terms,
                     strata=None if strata is None else X[strata].astype(str), group_name=by or "cohort",
                     table_columns=list(X.columns), outcome="survival")


def _reads(label: str) -> str:
    """A term's label inside a sentence: lower-case first unless it starts with an acronym (LDH, ECOG, CR)."""
    first = label.split(" ")[0]
    return label if first[1:2].isupper() or not first[:1].isupper() else label[0].lower() + label[1:]


def hazard_ratio_table(multi: pd.DataFrame) -> pd.DataFrame:
    """The compact table of the multivariable Cox model: one row per fitted term, named for a reader, with its
    HR, 95% CI and p-value beside the published HR and its source."""
    rows = multi.dropna(subset=["hr"])
    return pd.DataFrame({"factor": rows["label"], "hr": rows["hr"], "hr_lower": rows["hr_lower"],
                         "hr_upper": rows["hr_upper"], "p_value": rows["p_value"],
                         "published_hr": rows["published_hr"], "published_lower": rows["published_lower"],
                         "published_upper": rows["published_upper"],
                         "published_source": rows["published_source"]}).reset_index(drop=True)


def _forest(multi: pd.DataFrame, outcome: str):
    rows = multi.dropna(subset=["hr"])
    labels = rows["label"].tolist()
    published = rows["published_hr"]
    return forest_figure(labels, rows["hr"], rows["hr_lower"], rows["hr_upper"], reference=1.0, log_scale=True,
                         xlabel=f"hazard ratio ({outcome}), log scale; this cohort with its 95% CI",
                         overlay={"published HR": published} if published.notna().any() else None,
                         colours=[GROUP_COLOURS[0]] * len(rows), title="Multivariable Cox model", width=7.5,
                         decimals=2)


def _km_figure(result: DescribeResult):
    time, event, groups = result._curves
    codes = groups if groups.notna().all() else pd.Series(pd.Categorical(["all"] * len(groups)), index=groups.index)
    fig = new_figure(7.0, 5.6)
    grid = fig.add_gridspec(2, 1, height_ratios=[4, 1.1])
    ax, table_ax = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    title = f"{result.outcome} by {result.group_name}"
    if len(result.logrank):
        title += "; log-rank " + ", ".join(f"{r.comparison} {p_text(r.p_value, prose=True)}"
                                           for r in result.logrank.itertuples())
    plot_km(ax, time, event, codes.cat.remove_unused_categories(), table_ax=table_ax, title=title)
    ax.title.set_fontsize("small")
    return fig


def write_describe(result: DescribeResult, out_dir: str | Path) -> list[Path]:
    """Write the seed analysis into ``out_dir``: CSV tables, PNG figures and ``section.json`` (the report
    section contract: the answer sentence, the key figure and its alt text, the compact table)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    tables = {"table1.csv": result.table1, "km_by_group.csv": result.km, "logrank.csv": result.logrank,
              "cox_univariable.csv": result.univariable, "cox_multivariable.csv": result.multivariable,
              "cox_hazard_ratios.csv": hazard_ratio_table(result.multivariable), "ph_global.csv": result.ph_global}
    written += [write_table(table, out / name) for name, table in tables.items()]
    written.append(save_figure(_km_figure(result), out / "km_by_group.png"))
    if result.multivariable["hr"].notna().any():
        written.append(save_figure(_forest(result.multivariable, result.outcome), out / "cox_forest.png"))
    written.append(write_section(out, answer=result.answer, figure="km_by_group.png",
                                 alt=f"Kaplan-Meier curves of {result.outcome} by {result.group_name} with 95% bands "
                                     "and numbers at risk; log-rank test in the title.", table="cox_hazard_ratios.csv"))
    return written
