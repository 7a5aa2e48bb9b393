"""Workflows that compose the modules: an experiment file in, results (and MLflow runs) out.

Tracking is attached at the edge: a workflow takes an optional
:class:`~cartrisk.tracking.Tracker` and logs what the maths returned; nothing
inside the models or metrics knows about MLflow.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.base import clone

from cartrisk.config import ExperimentConfig
from cartrisk.data.datasets import Dataset, load_dataset
from cartrisk.evaluation import (
    HEADLINE_METRICS,
    CVResult,
    EventStratifiedKFold,
    compare,
    comparison_table,
    cross_validate_survival,
)
from cartrisk.evaluation.preflight import check_experiment
from cartrisk.modelling.leakage import guard_experiment
from cartrisk.modelling.pipeline import SurvivalPipeline, build_pipeline
from cartrisk.modelling.rules import make_rule
from cartrisk.paths import write_table
from cartrisk.progress import Progress
from cartrisk.tracking import Tracker
from cartrisk.workflows.heterogeneity import (
    cluster_validations,
    sample_size_notes,
    subgroups_from_oof,
    write_clusters,
    write_subgroups,
)

__all__ = ["EvaluationReport", "evaluate_experiment", "summary_table"]



@dataclass
class EvaluationReport:
    """What ``cartrisk evaluate`` produced."""

    config: ExperimentConfig
    dataset: Dataset
    results: dict[str, CVResult]
    kinds: dict[str, str]
    run_id: str | None = None
    child_run_ids: dict[str, str] = field(default_factory=dict)
    clusters: dict = field(default_factory=dict)
    subgroups: dict = field(default_factory=dict)
    sample_size: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    leakage: pd.DataFrame | None = None

    def table(self) -> pd.DataFrame:
        """Models and rules side by side (mean and 95% interval of each metric)."""
        return compare(self.results)


def summary_table(report: EvaluationReport, metrics=HEADLINE_METRICS) -> pd.DataFrame:
    """One row per model or rule: mean [95% interval] of the headline metrics at 6 months
    (:func:`cartrisk.evaluation.comparison_table`)."""
    return comparison_table(report.results, report.kinds, metrics)


def evaluate_experiment(cfg: ExperimentConfig, *, tracker: Tracker | None = None,
                        progress: Progress | None = None, data: Dataset | None = None) -> EvaluationReport:
    """Cross-validate every model of an experiment, and the reference rules, on the same folds.

    Every model and rule sees identical folds (one seeded splitter). With a tracker, the
    experiment is a parent MLflow run (the experiment file, data hash, seed, versions, the
    comparison table) and each model a nested run (parameters, per-fold and summary metrics,
    and the pipeline refitted on all data). ``data``: the experiment's data already loaded and checked against it
    (:func:`cartrisk.evaluation.preflight.check_experiment`); else both are done here.
    """
    if data is None:
        data = load_dataset(cfg.data, seed=cfg.seed)
        check_experiment(cfg, data)  # the whole experiment against its data, before anything is fitted or logged
    leakage = guard_experiment(cfg, data)  # before any fit
    candidates: dict[str, tuple[str, object]] = {}
    for model in cfg.models:
        candidates[model.label] = ("model", build_pipeline(cfg, model))
    if data.registry:
        for rule in cfg.evaluation.rules:
            candidates[rule] = ("rule", make_rule(rule))
    ev = cfg.evaluation
    cv = EventStratifiedKFold(n_splits=ev.n_splits, n_repeats=ev.n_repeats, shuffle=True, random_state=cfg.seed)
    results: dict[str, CVResult] = {}
    total = len(candidates)
    for i, (label, (_, estimator)) in enumerate(candidates.items()):
        step = (lambda done, n, _label=label: progress(f"CV {_label}", done, n)) if progress else None
        results[label] = cross_validate_survival(estimator, data.X, data.y, cv=cv, horizons_months=ev.horizons_months,
                                                 random_state=cfg.seed, progress=step)
        if progress:
            progress("models", i + 1, total)
    kinds = {label: kind for label, (kind, _) in candidates.items()}
    report = EvaluationReport(cfg, data, results, kinds, leakage=leakage)
    _where_it_holds(report, {k: v for k, (kind, v) in candidates.items() if kind == "model"}, progress)
    if tracker is not None:
        _track(report, {k: v for k, (_, v) in candidates.items()}, tracker)
    return report


def _where_it_holds(report: EvaluationReport, models: dict[str, object], progress: Progress | None) -> None:
    """Sample-size check, subgroups on the out-of-fold predictions, internal-external validation by cluster."""
    cfg, data = report.config, report.dataset
    if models:
        report.sample_size, report.notes = sample_size_notes(cfg, data)
    report.subgroups = subgroups_from_oof(report.results, data, cfg, report.kinds)
    if cfg.evaluation.cluster is not None and models:
        if progress:
            progress("internal-external validation", 0, 1)
        report.clusters = cluster_validations(cfg, data, models)
        if progress:
            progress("internal-external validation", 1, 1)


def _log_sections(report: EvaluationReport, tracker: Tracker, parent: str) -> None:
    """The ``clusters/`` and ``subgroups/`` report sections of the parent run."""
    cfg = report.config
    with tempfile.TemporaryDirectory() as tmp:
        written: list[tuple[Path, str]] = []
        if report.clusters:
            written += [(p, "clusters") for p in write_clusters(report.clusters, Path(tmp) / "clusters",
                                                                cfg.evaluation.cluster)]
        if report.subgroups:  # the section shows the first model; the table of every model is logged beside it
            label, table = next(iter(report.subgroups.items()))
            written += [(p, "subgroups") for p in write_subgroups(
                table, Path(tmp) / "subgroups", horizon_months=cfg.evaluation.cluster_horizon_months,
                where=f"the out-of-fold predictions of {label}")]
            if len(report.subgroups) > 1:
                every = Path(tmp) / "subgroups" / "subgroups_by_model.csv"
                write_table(pd.concat([t.assign(model=k) for k, t in report.subgroups.items()]), every)
                written.append((every, "subgroups"))
        for path, folder in written:
            tracker.log_file(parent, path, folder)
    if report.sample_size:
        tracker.log_metrics(parent, {f"sample_size.{k}": v for k, v in report.sample_size.items()})
    for label, res in report.clusters.items():
        tracker.log_metrics(parent, {f"clusters.{label}.{r.metric}": r.estimate for r in res.pooled.itertuples()
                                     if hasattr(r, "estimate")})


def _track(report: EvaluationReport, estimators: dict[str, object], tracker: Tracker) -> None:
    cfg, data = report.config, report.dataset
    with tracker.run(f"evaluate:{cfg.name}", tags={"cartrisk.kind": "evaluation"}) as parent:
        report.run_id = parent
        tracker.log_params(parent, {"experiment": cfg.name, "data": data.name, "n": len(data.y),
                                    "events": int(data.y["os2_event"].sum()), "features": cfg.features.set,
                                    "cv": {"n_splits": cfg.evaluation.n_splits,
                                           "n_repeats": cfg.evaluation.n_repeats},
                                    "horizons_months": list(cfg.evaluation.horizons_months), "seed": cfg.seed,
                                    "allow_suspect": list(cfg.features.allow_suspect)})
        tracker.log_provenance(parent, data_hash=data.data_hash, seed=cfg.seed)
        if report.leakage is not None:
            tracker.log_text(parent, report.leakage.to_csv(index=False), "leakage.csv")
        if cfg.source_text:
            tracker.log_text(parent, cfg.source_text, "experiment.toml")
        tracker.log_text(parent, report.table().to_csv(), "comparison.csv")
        tracker.log_text(parent, summary_table(report).to_csv(index=False), "summary.csv")
        _log_sections(report, tracker, parent)
        for label, result in report.results.items():
            with tracker.run(label, parent_run_id=parent, tags={"cartrisk.kind": report.kinds[label]}) as child:
                report.child_run_ids[label] = child
                est = estimators[label]
                params = est.named_steps["model"].get_params() if isinstance(est, SurvivalPipeline) else {}
                tracker.log_params(child, {"kind": report.kinds[label], "name": label, "params": params})
                tracker.log_provenance(child, data_hash=data.data_hash, seed=cfg.seed)
                tracker.log_metrics(child, result.metric_dict())
                for fold_index, fold in enumerate(result.per_fold.groupby(["repeat", "fold"], sort=True)):
                    per = {(m if pd.isna(h) else f"{m}_{h:g}m"): v for m, h, v in
                           fold[1][["metric", "horizon_months", "value"]].itertuples(index=False)}
                    tracker.log_metrics(child, {f"fold.{k}": v for k, v in per.items()}, step=fold_index)
                tracker.log_text(child, result.per_fold.to_csv(index=False), "per_fold.csv")
                started = time.perf_counter()
                final = clone(est).fit(data.X, data.y)
                tracker.log_metrics(child, {"refit_seconds": time.perf_counter() - started})
                tracker.log_pipeline(child, final)
