"""Workflows that compose the modules: an experiment file in, results (and MLflow runs) out.

Tracking is attached at the edge: a workflow takes an optional
:class:`~cartrisk.tracking.Tracker` and logs what the maths returned; nothing
inside the models or metrics knows about MLflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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
from cartrisk.modelling.pipeline import SurvivalPipeline, build_pipeline
from cartrisk.modelling.rules import make_rule
from cartrisk.progress import Progress
from cartrisk.tracking import Tracker

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

    def table(self) -> pd.DataFrame:
        """Models and rules side by side (mean and 95% interval of each metric)."""
        return compare(self.results)


def summary_table(report: EvaluationReport, metrics=HEADLINE_METRICS) -> pd.DataFrame:
    """One row per model or rule: mean [95% interval] of the headline metrics at 6 months
    (:func:`cartrisk.evaluation.comparison_table`)."""
    return comparison_table(report.results, report.kinds, metrics)


def evaluate_experiment(cfg: ExperimentConfig, *, tracker: Tracker | None = None,
                        progress: Progress | None = None) -> EvaluationReport:
    """Cross-validate every model of an experiment, and the reference rules, on the same folds.

    Every model and rule sees identical folds (one seeded splitter). With a tracker, the
    experiment is a parent MLflow run (the experiment file, data hash, seed, versions, the
    comparison table) and each model a nested run (parameters, per-fold and summary metrics,
    and the pipeline refitted on all data).
    """
    data = load_dataset(cfg.data, seed=cfg.seed)
    check_experiment(cfg, data)  # the whole experiment against its data, before anything is fitted or logged
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
    report = EvaluationReport(cfg, data, results, kinds)
    if tracker is not None:
        _track(report, {k: v for k, (_, v) in candidates.items()}, tracker)
    return report


def _track(report: EvaluationReport, estimators: dict[str, object], tracker: Tracker) -> None:
    cfg, data = report.config, report.dataset
    with tracker.run(f"evaluate:{cfg.name}", tags={"cartrisk.kind": "evaluation"}) as parent:
        report.run_id = parent
        tracker.log_params(parent, {"experiment": cfg.name, "data": data.name, "n": len(data.y),
                                    "events": int(data.y["os2_event"].sum()), "features": cfg.features.set,
                                    "cv": {"n_splits": cfg.evaluation.n_splits,
                                           "n_repeats": cfg.evaluation.n_repeats},
                                    "horizons_months": list(cfg.evaluation.horizons_months), "seed": cfg.seed})
        tracker.log_provenance(parent, data_hash=data.data_hash, seed=cfg.seed)
        if cfg.source_text:
            tracker.log_text(parent, cfg.source_text, "experiment.toml")
        tracker.log_text(parent, report.table().to_csv(), "comparison.csv")
        tracker.log_text(parent, summary_table(report).to_csv(index=False), "summary.csv")
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
