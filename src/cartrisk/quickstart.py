"""The main job end to end on the simulated registry (``cartrisk quickstart``).

simulate -> validate -> nested-CV Optuna study across Cox, Coxnet, RSF and XGBoost Cox -> the best
model explained against the literature -> its calibrated risk groups compared with the D0-30 rule and
the PC-PI on an independent cohort -> exported as a verified bundle -> the bundle scoring a fresh
cohort. Everything the report shows is logged to one MLflow run (see :mod:`cartrisk.report` for its
folders), so ``cartrisk report --run RUN_ID`` can render it again at any time.

The study's own settings (families, search spaces, folds) are the packaged experiment file
``cartrisk/data/quickstart.toml``; copy it into ``experiments/`` to change them.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from cartrisk.config import ExperimentConfig, parse_experiment
from cartrisk.evaluation import CVResult, cross_validate_survival
from cartrisk.exceptions import StatisticalWarning
from cartrisk.rules import make_rule
from cartrisk.schema import OUTCOME_COLUMNS, to_xy, validate
from cartrisk.simreport import cohort_summary, cohort_table, simulation_report
from cartrisk.simulate import simulate
from cartrisk.tracking import Tracker
from cartrisk.tuning import StudyResult, outer_splits, run_study

__all__ = ["QuickstartResult", "quickstart_experiment", "run_quickstart"]

Progress = Callable[[str, int, int], None]
STAGES = ("simulate", "tune", "compare models", "explain", "risk groups", "export", "score")


@dataclass
class QuickstartResult:
    """What the quickstart produced: the MLflow run, the study, the bundle and the scored cohort."""

    run_id: str
    study: StudyResult
    bundle: Path
    scored: pd.DataFrame
    headline: dict[str, float]
    stage_seconds: dict[str, float] = field(default_factory=dict)


def quickstart_experiment(*, n: int = 1500, seed: int = 0) -> ExperimentConfig:
    """The packaged study settings, for a simulated registry of ``n`` patients."""
    text = resources.files("cartrisk.data").joinpath("quickstart.toml").read_text(encoding="utf-8")
    cfg = parse_experiment(text, source="cartrisk/data/quickstart.toml")
    return dataclasses.replace(cfg, seed=seed, data=dataclasses.replace(cfg.data, n=n, seed=seed))


def _pick(rows: pd.DataFrame) -> pd.DataFrame:
    """The 6-month row of a metric when it has one, else its only row (Uno's C and IBS sit at the last horizon)."""
    six = rows[rows["horizon_months"] == 6.0]
    return six if len(six) else rows.iloc[:1]


def _comparison_table(results: dict[str, CVResult], kinds: dict[str, str]) -> pd.DataFrame:
    """One row per candidate: mean [95% interval] of the headline metrics over the outer folds."""
    rows = []
    for label, result in results.items():
        row = {"candidate": label, "kind": kinds[label]}
        summary = result.summary()
        for metric in ("harrell_c", "uno_c", "auc", "brier", "ibs", "ici"):
            for r in _pick(summary[summary["metric"] == metric]).itertuples(index=False):
                name = metric if pd.isna(r.horizon_months) else f"{metric} ({r.horizon_months:g} m)"
                row[name] = f"{r.mean:.3f} [{r.lower:.3f}, {r.upper:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def _metric(result: CVResult, metric: str) -> float:
    """Mean over outer folds of a metric (at 6 months for horizon metrics)."""
    s = result.summary()
    sel = _pick(s[s["metric"] == metric])
    return float(sel["mean"].iloc[0]) if len(sel) else float("nan")


@contextmanager
def _stage(name: str, seconds: dict[str, float], progress: Progress | None) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - started
    if progress:
        progress("quickstart stages", STAGES.index(name) + 1, len(STAGES))


def run_quickstart(*, tracker: Tracker, models_dir: str | Path = "models", n: int = 1500, n_test: int = 3000,
                   n_score: int = 1000, trials: int | None = None, seed: int = 0, bundle_name: str = "quickstart",
                   progress: Progress | None = None) -> QuickstartResult:
    """Run the main job; every artefact of the report goes to one MLflow run (returned)."""
    from cartrisk.explain import concordance, concordance_markdown, explain, write_figures
    from cartrisk.export import export_bundle, load_bundle
    from cartrisk.figures import write_comparison_figures
    from cartrisk.rulecomparison import compare_with_rules

    seconds: dict[str, float] = {}
    cfg = quickstart_experiment(n=n, seed=seed)
    with tempfile.TemporaryDirectory() as tmp, tracker.run("quickstart", tags={"cartrisk.kind": "quickstart"}) as run:
        art = Path(tmp)
        for folder in ("cohort", "models", "explain", "groups", "scoring", "bundle"):
            (art / folder).mkdir()

        with _stage("simulate", seconds, progress):
            frame, _ = simulate(n, seed)
            typed = validate(frame, source="simulated registry").raise_if_invalid()
            X, y = to_xy(typed)
            simulation_report(frame).to_csv(art / "cohort" / "simulated_vs_published.csv", index=False)
            cohort_table(cohort_summary(y, X)).to_csv(art / "cohort" / "summary.csv", index=False)

        with _stage("tune", seconds, progress):
            study = run_study(cfg, tracker=tracker, n_trials=trials, progress=progress)
            best = study.best_pipeline
            study.outer_folds.to_csv(art / "models" / "tuning_inner_vs_outer.csv", index=False)

        with _stage("compare models", seconds, progress):
            folds = outer_splits(cfg, y)
            results = {f"tuned {study.family}": study.outer}
            kinds = {f"tuned {study.family}": "tuned (nested CV)"}
            for rule in ("d0_30", "d0_30_90", "pcpi"):
                results[rule] = cross_validate_survival(make_rule(rule), X, y, cv=_Fixed(folds),
                                                        horizons_months=cfg.evaluation.horizons_months)
                kinds[rule] = "reference rule"
            _comparison_table(results, kinds).to_csv(art / "models" / "comparison.csv", index=False)

        with _stage("explain", seconds, progress):
            sample = X.sample(n=min(len(X), 500), random_state=seed)
            explanation = explain(best, sample, patient_ids=typed.loc[sample.index, "patient_id"].tolist(),
                                  random_state=seed)
            table = concordance(explanation, random_state=seed)
            table.to_csv(art / "explain" / "literature_concordance.csv", index=False)
            (art / "explain" / "literature_concordance.md").write_text(concordance_markdown(table), encoding="utf-8")
            write_figures(explanation, art / "explain", random_state=seed)

        with _stage("risk groups", seconds, progress):
            test_frame, _ = simulate(n_test, seed + 1)
            X_test, y_test = to_xy(validate(test_frame, source="independent simulated cohort").raise_if_invalid())
            groups = compare_with_rules(best, X, y, X_test, y_test, groups="rule-sized", n_boot=500,
                                        random_state=seed)
            for name, tab in groups.tables().items():
                tab.to_csv(art / "groups" / f"{name}.csv", index=False)
            write_comparison_figures(groups, art / "groups")

        with _stage("export", seconds, progress):
            bundle = export_bundle(best, models_dir, name=bundle_name, training_frame=typed,
                                   cv_result=study.outer, risk_groups=_d0_30_sized(groups.groupers),
                                   concordance=table, comparison=groups.comparison, overwrite=True,
                                   metadata={"mlflow_run_id": run, "study": study.study_name, "simulated": True})
            (art / "bundle" / "MODEL_CARD.md").write_text((bundle / "MODEL_CARD.md").read_text(encoding="utf-8"),
                                                          encoding="utf-8")

        with _stage("score", seconds, progress):
            fresh = simulate(n_score, seed + 2)[0].drop(columns=[c for c in (*OUTCOME_COLUMNS, "last_contact_date",
                                                                             "pfs2_days", "pfs2_event")
                                                                 if c != "days_to_failure"])
            started = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:  # expected: a fresh cohort has a few extremes
                warnings.simplefilter("always", StatisticalWarning)
                scored = load_bundle(bundle).score(fresh, source="fresh simulated cohort")
            rate = len(scored) / (time.perf_counter() - started)
            scored.head(25).to_csv(art / "scoring" / "first_patients_scored.csv", index=False)
            notes = [str(w.message) for w in caught if issubclass(w.category, StatisticalWarning)]
            pd.DataFrame({"range warning": notes}).to_csv(art / "scoring" / "range_warnings.csv", index=False)

        summary = groups.summary()
        d030 = summary[summary["rule"] == "d0_30"]
        model_groups = d030[d030["kind"] == "model groups"].iloc[0]
        rule_row = d030[d030["kind"] == "rule"].iloc[0]
        headline = {
            "outer_uno_c": _metric(study.outer, "uno_c"), "outer_harrell_c": _metric(study.outer, "harrell_c"),
            "outer_ibs": _metric(study.outer, "ibs"), "inner_value": study.inner_value,
            "rule_d0_30_uno_c": _metric(results["d0_30"], "uno_c"),
            "c_difference_d0_30": float(model_groups["c_difference"]),
            "hr_model_groups": float(model_groups["hr_top"]), "hr_d0_30": float(rule_row["hr_top"]),
            "scoring_patients_per_second": rate,
        }
        tracker.log_params(run, {"n": n, "n_test": n_test, "n_score": n_score, "seed": seed, "trials": trials or
                                 cfg.tuning.n_trials, "best_family": study.family, "best_params": study.best_params,
                                 "bundle": str(bundle), "study": study.study_name})
        tracker.log_provenance(run, data_hash=study.dataset.data_hash, seed=seed)
        tracker.log_metrics(run, {**headline, **{f"seconds_{k.replace(' ', '_')}": v for k, v in seconds.items()}})
        tracker.log_text(run, cfg.source_text, "experiment.toml")
        for folder in ("cohort", "models", "explain", "groups", "scoring", "bundle"):
            for path in sorted((art / folder).iterdir()):
                tracker.log_file(run, path, folder)
    return QuickstartResult(run, study, bundle, scored, headline, seconds)


def _d0_30_sized(groupers: dict):
    """The model's grouping sized like the D0-30 rule (the bundle's default groups)."""
    return next((g for name, g in groupers.items() if "d0_30" in name and "90" not in name),
                next(iter(groupers.values())))


class _Fixed:
    """A splitter that replays given folds (the study's outer folds, for the rules)."""

    def __init__(self, folds: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.folds, self.n_repeats = folds, 1

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return len(self.folds)

    def split(self, X, y=None, groups=None):
        yield from self.folds
