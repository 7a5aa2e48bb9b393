"""The main job end to end on the simulated registry (``cartrisk quickstart``).

simulate -> validate -> nested-CV Optuna study across Cox, Coxnet, RSF and XGBoost Cox -> the best
model explained against the literature -> its calibrated risk groups compared with the D0-30 rule and
the PC-PI on an independent cohort -> exported as a verified bundle -> the bundle scoring a fresh
cohort. Everything the report shows is logged to one MLflow run (see :mod:`cartrisk.workflows.report` for its
folders), so ``cartrisk report --run RUN_ID`` can render it again at any time.

The study's own settings (families, search spaces, folds) are the packaged experiment file
``cartrisk/data/quickstart.toml``; copy it into ``experiments/`` to change them.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from cartrisk.bundle import Evidence, export_bundle, load_bundle, outside_training_counts
from cartrisk.config import ExperimentConfig, parse_experiment
from cartrisk.data.datasets import load_dataset
from cartrisk.data.schema import OUTCOME_COLUMNS, to_xy, validate
from cartrisk.data.simreport import cohort_summary, cohort_table, simulation_report
from cartrisk.data.simulate import simulate
from cartrisk.evaluation import CVResult, FixedSplits, comparison_table, cross_validate_survival
from cartrisk.evaluation.preflight import check_experiment
from cartrisk.exceptions import StatisticalWarning
from cartrisk.explain import Explanation, concordance, concordance_markdown, explain, write_figures
from cartrisk.groups import ComparisonSettings, RuleComparison, compare_with_rules, write_comparison_figures
from cartrisk.modelling.rules import make_rule
from cartrisk.paths import write_table
from cartrisk.progress import Progress
from cartrisk.tracking import Tracker
from cartrisk.tuning import StudyResult, outer_splits, run_study
from cartrisk.workflows.describe import DescribeResult, describe_registry, write_describe

__all__ = ["QuickstartResult", "quickstart_experiment", "run_quickstart"]

STAGES = ("simulate", "describe", "tune", "compare models", "explain", "risk groups", "export", "score")
#: The report's artefact folders (:mod:`cartrisk.workflows.report`), in the order they are written.
FOLDERS = ("cohort", "describe", "models", "calibration", "explain", "groups", "scoring", "bundle")
_RULES = ("d0_30", "d0_30_90", "pcpi")


@dataclass
class QuickstartResult:
    """What the quickstart produced: the MLflow run, the study, the bundle and the scored cohort."""

    run_id: str
    study: StudyResult
    bundle: Path
    scored: pd.DataFrame
    headline: dict[str, float]
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Outputs:
    """Everything the stages computed, before anything is written or logged."""

    typed: pd.DataFrame
    study: StudyResult
    results: dict[str, CVResult]
    kinds: dict[str, str]
    explanation: Explanation
    concordance: pd.DataFrame
    groups: RuleComparison
    bundle: Path
    scored: pd.DataFrame
    scoring_rate: float
    range_counts: pd.DataFrame
    description: DescribeResult | None = None


def quickstart_experiment(*, n: int = 1500, seed: int = 0) -> ExperimentConfig:
    """The packaged study settings, for a simulated registry of ``n`` patients."""
    text = resources.files("cartrisk.data").joinpath("quickstart.toml").read_text(encoding="utf-8")
    cfg = parse_experiment(text, source="cartrisk/data/quickstart.toml")
    return dataclasses.replace(cfg, seed=seed, data=dataclasses.replace(cfg.data, n=n, seed=seed))


def _mean(result: CVResult, metric: str) -> float:
    """Mean over outer folds of a metric (at 6 months for horizon metrics)."""
    row = result.headline(metric)
    return float("nan") if row is None else float(row["mean"])


@contextmanager
def _stage(name: str, seconds: dict[str, float], progress: Progress | None) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - started
    if progress:
        progress("quickstart stages", STAGES.index(name) + 1, len(STAGES))


def run_quickstart(*, tracker: Tracker, models_dir: str | Path = "models", n: int = 1500, n_test: int = 3000,
                   n_score: int = 1000, trials: int | None = None, seed: int = 0, bundle_name: str = "quickstart",
                   progress: Progress | None = None, workers: int | None = None) -> QuickstartResult:
    """Run the main job; every artefact of the report goes to one MLflow run (returned).

    ``workers``: worker processes of the tuning stage (default: as many as cores; see
    :func:`cartrisk.tuning.run_study`)."""
    seconds: dict[str, float] = {}
    cfg = quickstart_experiment(n=n, seed=seed)
    with tracker.run("quickstart", tags={"cartrisk.kind": "quickstart"}) as run:
        out = _run_stages(cfg, tracker=tracker, run_id=run, models_dir=models_dir, n_test=n_test, n_score=n_score,
                          trials=trials, bundle_name=bundle_name, seconds=seconds, progress=progress,
                          workers=workers)
        headline = _headline(out)
        with tempfile.TemporaryDirectory() as tmp:
            written = _write_artifacts(out, Path(tmp), seed)
            _log_run(tracker, run, cfg, out, headline, seconds, written,
                     params={"n": n, "n_test": n_test, "n_score": n_score, "seed": seed,
                             "trials": trials or cfg.tuning.n_trials})
    return QuickstartResult(run, out.study, out.bundle, out.scored, headline, seconds)


def _run_stages(cfg: ExperimentConfig, *, tracker: Tracker, run_id: str, models_dir, n_test: int, n_score: int,
                trials: int | None, bundle_name: str, seconds: dict[str, float], progress: Progress | None,
                workers: int | None = None) -> _Outputs:
    """The job itself: each stage computes, nothing is written here but the bundle."""
    seed = cfg.seed
    with _stage("simulate", seconds, progress):
        data = load_dataset(cfg.data, seed=seed)  # simulated and validated once, for every stage and the study
        check_experiment(cfg, data)
        typed, X, y = data.frame, data.X, data.y

    with _stage("describe", seconds, progress):
        description = describe_registry(typed)

    with _stage("tune", seconds, progress):
        study = run_study(cfg, tracker=tracker, n_trials=trials, progress=progress, workers=workers, data=data)
        best = study.best_pipeline

    with _stage("compare models", seconds, progress):
        folds = FixedSplits(outer_splits(cfg, y))
        results = {f"tuned {study.family}": study.outer}
        kinds = {f"tuned {study.family}": "tuned (nested CV)"}
        for rule in _RULES:
            results[rule] = cross_validate_survival(make_rule(rule), X, y, cv=folds,
                                                    horizons_months=cfg.evaluation.horizons_months)
            kinds[rule] = "reference rule"

    with _stage("explain", seconds, progress):
        sample = X.sample(n=min(len(X), 500), random_state=seed)
        explanation = explain(best, sample, random_state=seed)  # logged as aggregates only: no patient ids
        table = concordance(explanation, random_state=seed)

    with _stage("risk groups", seconds, progress):
        test_frame, _ = simulate(n_test, seed + 1)
        X_test, y_test = to_xy(validate(test_frame, source="independent simulated cohort").raise_if_invalid())
        groups = compare_with_rules(best, X, y, X_test, y_test,
                                    ComparisonSettings(groups="rule-sized", n_boot=500, random_state=seed))

    with _stage("export", seconds, progress):
        independent = {"cohort": f"an independent simulated cohort (seed {seed + 1})", "n": n_test,
                       "events": int(groups.patients["os2_event"].sum()),
                       "what": "risk groups against the D0-30 rule and the PC-PI (hazard ratios, C and its bootstrap "
                               "difference, reclassification, decision curve, calibration before and after "
                               "recalibration)"}
        evidence = Evidence(cv_result=study.outer, risk_groups=_d0_30_sized(groups.groupers), concordance=table,
                            comparison=groups.comparison, evaluations=(independent,))
        bundle = export_bundle(best, models_dir, name=bundle_name, training_frame=typed, evidence=evidence,
                               overwrite=True,
                               metadata={"mlflow_run_id": run_id, "study": study.study_name, "simulated": True})

    with _stage("score", seconds, progress):
        fresh = simulate(n_score, seed + 2)[0].drop(columns=[c for c in (*OUTCOME_COLUMNS, "last_contact_date",
                                                                         "pfs2_days", "pfs2_event")
                                                             if c != "days_to_failure"])
        started = time.perf_counter()
        with warnings.catch_warnings():  # expected: a fresh cohort has a few extremes (counted below)
            warnings.simplefilter("ignore", StatisticalWarning)
            reloaded = load_bundle(bundle)
            report = reloaded.score_report(fresh, source="fresh simulated cohort")
        scored = report.scores
        rate = len(scored) / (time.perf_counter() - started)
        counts = outside_training_counts(reloaded.schema, report.typed)
    return _Outputs(typed, study, results, kinds, explanation, table, groups, bundle, scored, rate, counts,
                    description)


def _headline(out: _Outputs) -> dict[str, float]:
    """The numbers on the report's cards."""
    summary = out.groups.summary()
    d030 = summary[summary["rule"] == "d0_30"]
    model_groups = d030[d030["kind"] == "model groups"].iloc[0]
    rule_row = d030[d030["kind"] == "rule"].iloc[0]
    outer = out.study.outer
    return {
        "outer_uno_c": _mean(outer, "uno_c"), "outer_harrell_c": _mean(outer, "harrell_c"),
        "outer_ibs": _mean(outer, "ibs"), "inner_value": out.study.inner_value,
        "rule_d0_30_uno_c": _mean(out.results["d0_30"], "uno_c"),
        "c_difference_d0_30": float(model_groups["c_difference"]),
        "hr_model_groups": float(model_groups["hr_top"]), "hr_d0_30": float(rule_row["hr_top"]),
        "scoring_patients_per_second": out.scoring_rate,
    }


def _write_artifacts(out: _Outputs, root: Path, seed: int) -> dict[str, list[Path]]:
    """Write the report's files into ``root/<folder>/``; returns the paths by folder."""
    folders = {name: root / name for name in FOLDERS}
    for path in folders.values():
        path.mkdir()
    X, y = to_xy(out.typed)

    def csv(frame: pd.DataFrame, folder: str, name: str) -> Path:
        return write_table(frame, folders[folder] / name)

    written: dict[str, list[Path]] = {name: [] for name in FOLDERS}
    summary, report = cohort_summary(y, X), simulation_report(out.typed)  # once: the section reads them too
    written["cohort"] += [csv(report, "cohort", "simulated_vs_published.csv"),
                          csv(cohort_table(summary), "cohort", "summary.csv")]
    if out.description is not None:
        written["describe"] += write_describe(out.description, folders["describe"])
    written["models"] += [csv(out.study.outer_folds, "models", "tuning_inner_vs_outer.csv"),
                          csv(comparison_table(out.results, out.kinds), "models", "comparison.csv")]
    markdown = folders["explain"] / "literature_concordance.md"
    markdown.write_text(concordance_markdown(out.concordance), encoding="utf-8")
    written["explain"] += [csv(out.concordance, "explain", "literature_concordance.csv"), markdown]
    # Summary and dependence figures only: a waterfall shows one patient's own values (patients=[]: none).
    written["explain"] += write_figures(out.explanation, folders["explain"], patients=[], random_state=seed)
    written["groups"] += [csv(tab, "groups", f"{name}.csv") for name, tab in out.groups.tables().items()]
    written["groups"] += write_comparison_figures(out.groups, folders["groups"])
    # Aggregates only: the scored patients themselves go to the user's --out folder, never to MLflow.
    # (score_distribution.csv is the scoring section's compact table: written with it)
    written["scoring"] += [csv(out.range_counts, "scoring", "range_warnings.csv")]
    card = folders["bundle"] / "MODEL_CARD.md"
    card.write_text((out.bundle / "MODEL_CARD.md").read_text(encoding="utf-8"), encoding="utf-8")
    written["bundle"].append(card)
    _write_sections(out, root, written, seed, summary, report)
    return written


def _write_sections(out: _Outputs, root: Path, written: dict[str, list[Path]], seed: int, summary: dict,
                    report: pd.DataFrame) -> None:
    """Each folder's answer sentence, key figure and compact table (``section.json``, read by the report)."""
    from cartrisk.workflows import quickstart_sections as qs

    written["cohort"] += qs.cohort_section(root / "cohort", summary, report)
    written["models"] += qs.models_section(root / "models", out.results, out.kinds)
    written["calibration"] += qs.calibration_section(root / "calibration", out.groups)
    written["groups"] += qs.groups_section(root / "groups", out.groups)
    written["explain"] += qs.explain_section(root / "explain", out.explanation, out.concordance, seed=seed)
    written["scoring"] += qs.scoring_section(root / "scoring", out.scored, out.scoring_rate, out.range_counts)
    written["bundle"] += qs.bundle_section(root / "bundle", out.groups, _d0_30_sized(out.groups.groupers), out.bundle)


def _log_run(tracker: Tracker, run: str, cfg: ExperimentConfig, out: _Outputs, headline: dict[str, float],
             seconds: dict[str, float], written: dict[str, list[Path]], params: dict) -> None:
    """Log the run's parameters, metrics and every written file (in its folder) to MLflow."""
    study = out.study
    tracker.log_params(run, {**params, "best_family": study.family, "best_params": study.best_params,
                             "bundle": str(out.bundle), "study": study.study_name})
    tracker.log_provenance(run, data_hash=study.dataset.data_hash, seed=cfg.seed)
    tracker.log_metrics(run, {**headline, **{f"seconds_{k.replace(' ', '_')}": v for k, v in seconds.items()}})
    tracker.log_text(run, cfg.source_text, "experiment.toml")
    for folder, paths in written.items():
        for path in sorted(paths):
            tracker.log_file(run, path, folder)


def _d0_30_sized(groupers: dict):
    """The model's grouping sized like the D0-30 rule (the bundle's default groups)."""
    return next((g for name, g in groupers.items() if "d0_30" in name and "90" not in name),
                next(iter(groupers.values())))
