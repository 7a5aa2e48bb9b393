"""What ``cartrisk evaluate`` and ``cartrisk tune`` add about where a model holds: internal-external validation
across clusters (``[evaluation] cluster``), performance by subgroup on out-of-fold predictions, and Riley's
sample-size check of the candidate parameters. Each writes a report section (``clusters/``, ``subgroups/``) with
its ``section.json``; ``cartrisk validate-model`` writes its ``subgroups/`` with the same :func:`write_subgroups`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cartrisk.config import ExperimentConfig
from cartrisk.data.datasets import Dataset
from cartrisk.evaluation.clusters import ClusterValidation, internal_external_validation
from cartrisk.evaluation.samplesize import TARGET_SHRINKAGE, sample_size_check
from cartrisk.evaluation.subgroups import subgroup_labels, subgroup_performance
from cartrisk.exceptions import ConfigError
from cartrisk.paths import write_table
from cartrisk.plotting import GROUP_COLOURS, figure_stem, forest_figure, save_figure
from cartrisk.units import DAYS_PER_MONTH, estimate_text, months_to_days
from cartrisk.workflows.sections import write_section

__all__ = ["cluster_validations", "sample_size_notes", "subgroups_from_oof", "tune_heterogeneity", "write_clusters",
           "write_subgroups"]


def cluster_validations(cfg: ExperimentConfig, data: Dataset, estimators: dict[str, object]
                        ) -> dict[str, ClusterValidation]:
    """Internal-external validation of each estimator across the experiment's cluster column."""
    ev = cfg.evaluation
    if ev.cluster is None:
        return {}
    labels = data.column(ev.cluster)
    if labels is None:
        raise ConfigError(f"{cfg.name}: evaluation.cluster = {ev.cluster!r} is not a column of {data.name}; name a "
                          "column of the data (e.g. 'centre_id' or 'infusion_year')")
    return {label: internal_external_validation(est, data.X, data.y, labels, design=ev.cluster_design,
                                                horizon_months=ev.cluster_horizon_months,
                                                min_events=ev.cluster_min_events, random_state=cfg.seed)
            for label, est in estimators.items()}


def write_clusters(results: dict[str, ClusterValidation], folder: Path, column: str) -> list[Path]:
    """``clusters/``: per-cluster and pooled tables, a forest plot per metric and model, ``section.json`` (the
    first model's answer and C forest plot)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    per, pooled = [], []
    for label, res in results.items():
        per.append(res.per_cluster.assign(model=label))
        pooled.append(res.pooled.assign(model=label))
        slug = figure_stem(label)
        for metric, ref in (("harrell_c", None), ("oe_ratio", 1.0), ("calibration_slope", 1.0)):
            rows = res.per_cluster.rename(columns={metric: "estimate", f"{metric}_lower": "lower",
                                                   f"{metric}_upper": "upper"})
            rows = rows.assign(label=rows["cluster"].astype(str) + " (n=" + rows["n"].astype(str) + ")")
            p = res.pooled.set_index("metric").loc[metric]
            pooled_row = p.to_dict() if np.isfinite(p.get("estimate", np.nan)) else None
            fig = forest_figure(rows["label"].tolist(), rows["estimate"], rows["lower"], rows["upper"],
                                pooled=pooled_row, reference=ref, xlabel=metric.replace("_", " "),
                                log_scale=metric == "oe_ratio", colours=[GROUP_COLOURS[0]] * len(rows), decimals=2,
                                title=f"{label}: {metric.replace('_', ' ')} by held-out {column}")
            written.append(save_figure(fig, folder / f"forest_{slug}_{metric}.png"))
    for name, frames in (("clusters.csv", per), ("pooled.csv", pooled)):
        frame = pd.concat(frames, ignore_index=True)
        frame = frame[["model", *[c for c in frame.columns if c != "model"]]]
        written.append(write_table(frame, folder / name))
    first_label, first = next(iter(results.items()))
    slug = figure_stem(first_label)
    written.append(write_section(folder, answer=first.answer(first_label), figure=f"forest_{slug}_harrell_c.png",
                                 alt=f"Harrell's C in each held-out {column} with its 95% interval, the REML pooled "
                                     "estimate (diamond) and the 95% prediction interval for a new cluster.",
                                 table="pooled.csv"))
    return written


def write_subgroups(table: pd.DataFrame, out_dir: str | Path, *, horizon_months: float, where: str) -> list[Path]:
    """Write a subgroup table, its forest plot of the C by subgroup and ``section.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_table(table, out / "subgroups.csv")]
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
                f"{r.variable} {r.subgroup} ({r.metric} {estimate_text(r.estimate, r.lower, r.upper)})"
                for r in flagged.itertuples()))
    c = table[(table["metric"] == "harrell_c") & (table["variable"] != "all")]
    span = f"{c['estimate'].min():.2f} to {c['estimate'].max():.2f}" if len(c) else "n/a"
    written.append(write_section(out, answer=f"Across subgroups of {where}, Harrell's C ranges from {span} at "
                                             f"{horizon_months:g} months; {what}.", figure="forest_harrell_c.png",
                                 alt="Harrell's C with its 95% bootstrap interval in each subgroup, against the "
                                     "overall C (dashed); flagged subgroups in vermillion.", table="subgroups.csv"))
    return written


def subgroups_from_oof(results: dict, data: Dataset, cfg: ExperimentConfig, kinds: dict[str, str]
                       ) -> dict[str, pd.DataFrame]:
    """Subgroup performance of each model on its out-of-fold predictions (one repeat only), at the cluster
    horizon (6 months by default)."""
    if not cfg.evaluation.subgroups or data.frame is None:
        return {}
    labels = subgroup_labels(data.frame.reset_index(drop=True))
    h = cfg.evaluation.cluster_horizon_months
    out = {}
    for label, res in results.items():
        if kinds.get(label) != "model" or res.oof_survival is None or h not in res.oof_survival.columns:
            continue
        pred = 1.0 - res.oof_survival[h].to_numpy(float)
        out[label] = subgroup_performance(data.y, res.oof_risk, pred, months_to_days(h), labels,
                                          random_state=cfg.seed)
    return out


def sample_size_notes(cfg: ExperimentConfig, data: Dataset) -> tuple[dict[str, float], list[str]]:
    """Riley's check of the experiment's candidate parameters (the encoded features) on its cohort, and the
    warning to print when the expected shrinkage is below the target (0.9)."""
    from cartrisk.modelling.pipeline import build_features

    Z = build_features(cfg).fit(data.X).transform(data.X)
    event, time = data.y["os2_event"], data.y["os2_days"] / DAYS_PER_MONTH
    check = sample_size_check(Z.to_numpy(float), time, event, horizon=max(cfg.evaluation.horizons_months))
    notes = []
    if np.isfinite(check["expected_shrinkage"]) and check["expected_shrinkage"] < TARGET_SHRINKAGE:
        notes.append(f"sample size: {check['parameters']} candidate parameters on {check['n']:,} patients "
                     f"({check['events']:,} deaths, {check['events_per_parameter']:.1f} per parameter) give an "
                     f"expected shrinkage of {check['expected_shrinkage']:.2f} (< {TARGET_SHRINKAGE:g}, Riley et al. "
                     f"2019): expect overfitting; use fewer candidate parameters or penalise (coxnet), or about "
                     f"{check['required_n']:,.0f} patients")
    return check, notes


def tune_heterogeneity(cfg: ExperimentConfig, result, tracker=None) -> dict[str, ClusterValidation]:
    """Internal-external validation of a tuning run's final specification (the best family and parameters of the
    final study, refitted per held-out cluster; the search is not repeated per cluster), logged as the parent
    run's ``clusters/`` section."""
    if cfg.evaluation.cluster is None:
        return {}
    results = cluster_validations(cfg, result.dataset, {f"tuned {result.family}": result.best_pipeline})
    if tracker is not None and result.parent_run_id:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            for path in write_clusters(results, Path(tmp) / "clusters", cfg.evaluation.cluster):
                tracker.log_file(result.parent_run_id, path, "clusters")
    return results
