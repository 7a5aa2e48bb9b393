"""Tuning benchmarks: bookkeeping overhead, 1 vs 2 workers, and tuned vs untuned models by nested CV.

Usage::

    python benchmarks/bench_tuning.py overhead [--n 1500] [--trials 20] [--repeats 3] [--experiment tune_rsf.toml]
    python benchmarks/bench_tuning.py workers  [--n 1500] [--trials 8] [--repeats 3]
    python benchmarks/bench_tuning.py nested   [--n 1500] [--trials 50] [--workers 2]
    python benchmarks/bench_tuning.py determinism [--n 1500] [--trials 20] [--seeds 5]

``overhead``
    Runs the trial loop of one study (by default xgb_cox, the fastest family, with the search space of
    experiments/tune_xgb_cox.toml; 3 inner folds on all n patients) with SQLite storage and no MLflow,
    with SQLite + MLflow (one run per trial), with the journal file + MLflow, and with PostgreSQL + an MLflow
    tracking server on PostgreSQL (``--postgres URL``, else a throwaway cluster; ``--no-postgres`` skips it),
    ``--repeats`` times each (medians printed). The work of a trial
    (fit, predict, metrics) is timed inside the objective; everything else in the loop's wall time
    (sampling, storage writes, pruning checks, MLflow runs) is bookkeeping, printed as a share of the
    wall time.
``workers``
    The whole nested run (3 studies: 2 outer folds + final, 3 inner folds) with 1 and with 2 worker
    processes on a journal file, reporting wall time and finished trials per minute (2 workers pay
    the start of two fresh Python processes that load the data themselves).
``determinism``
    The workers study with 1 and with 2 workers for ``--seeds`` seeds: the difference between the outer-fold
    estimates that the worker count makes, beside their spread across seeds.
``nested``
    experiments/tune_xgb_cox.toml and experiments/tune_rsf.toml as they are (3 outer x 3 inner folds,
    50 trials per study), against the same families at their untuned defaults on the same outer folds:
    outer-fold Uno's C, and the gap between the inner (tuning) and outer (reported) values.

Every run writes to a temporary folder. Figures are printed, never asserted on; on a shared machine
they vary with load.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cartrisk.config import load_experiment
from cartrisk.data.datasets import load_dataset
from cartrisk.evaluation import FixedSplits, cross_validate_survival
from cartrisk.modelling.pipeline import build_pipeline
from cartrisk.tracking import Tracker
from cartrisk.tuning import TrackedObjective, outer_splits, run_study
from cartrisk.tuning.nested import study_folds
from cartrisk.tuning.search import Objective, ObjectiveSpec, SearchSpace, inner_horizon_days
from cartrisk.tuning.studies import StudyJob, open_storage, prepare_studies, run_trials, study_lock
from cartrisk.tuning.workers import release_connections

ROOT = Path(__file__).resolve().parents[1]


def experiment(name: str, n: int, **tuning):
    cfg = load_experiment(ROOT / "experiments" / name)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, n=n))
    return dataclasses.replace(cfg, tuning=dataclasses.replace(cfg.tuning, **tuning)) if tuning else cfg


@contextlib.contextmanager
def _servers(args):
    """A PostgreSQL URL (``--postgres``, else a throwaway cluster of Debian's postgresql) and an MLflow server on it."""
    sys.path.insert(0, str(ROOT / "tests"))
    import servers

    with contextlib.ExitStack() as stack:
        url = args.postgres or stack.enter_context(servers.postgres_server())
        study_db = stack.enter_context(servers.fresh_database(url))
        runs_db = stack.enter_context(servers.fresh_database(url))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        tracking = stack.enter_context(servers.mlflow_server(runs_db.replace("postgresql://", "postgresql+psycopg://"),
                                                             Path(tmp) / "artefacts"))
        yield study_db, tracking


def _overhead_once(args, objective, cfg, label: str, storage_kind: str, tracked: bool, pg=None) -> dict:
    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        url = {"sqlite": f"sqlite:///{tmp}/optuna.db", "journal": f"journal:{tmp}/optuna.log"}.get(storage_kind)
        tracking_uri = f"sqlite:///{tmp}/mlruns/mlflow.db"
        name = f"bench-{time.time_ns()}"
        if storage_kind == "postgresql":
            url, tracking_uri = pg
        storage = open_storage(url)
        prepare_studies(storage, [name], objective.objective.direction, resume=False, fingerprint="bench", where=url)
        func = objective
        if tracked:
            tracker = Tracker(tracking_uri, name)
            with tracker.run("study") as run_id:
                func = TrackedObjective(objective, tracker.tracking_uri, tracker.experiment, name, run_id)
                tracker.experiment_id  # noqa: B018  (store and experiment made before timing starts)
                started = time.perf_counter()
                run_trials(storage, StudyJob(name, func, args.trials, cfg.seed, pruner="none"),
                           lock=study_lock(url, name, storage))
                wall = time.perf_counter() - started
        else:
            started = time.perf_counter()
            run_trials(storage, StudyJob(name, func, args.trials, cfg.seed, pruner="none"),
                       lock=study_lock(url, name, storage))
            wall = time.perf_counter() - started
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        work = sum(t.user_attrs["inner_cv"]["work_seconds"] for t in trials)
        release_connections(storage)
    return {"setting": label, "trials": len(trials), "wall_s": wall, "work_s": work,
            "bookkeeping_ms_per_trial": 1000 * (wall - work) / len(trials), "bookkeeping_share": 1 - work / wall}


def overhead(args) -> None:
    cfg = experiment(args.experiment, args.n)
    data = load_dataset(cfg.data, seed=cfg.seed)
    spec = ObjectiveSpec.from_weights(cfg.tuning.objective_weights)
    objective = Objective(SearchSpace(cfg), data.X, data.y, study_folds(cfg, data.y)[-1], spec,
                          inner_horizon_days(cfg))
    settings = [("sqlite, no MLflow", "sqlite", False), ("sqlite + MLflow", "sqlite", True),
                ("journal + MLflow", "journal", True)]
    with contextlib.ExitStack() as stack:
        pg = None
        if not args.no_postgres:
            pg = stack.enter_context(_servers(args))
            settings.append(("postgresql + MLflow server", "postgresql", True))
        rows = [_overhead_once(args, objective, cfg, *setting, pg=pg) for _ in range(args.repeats)
                for setting in settings]
    table = pd.DataFrame(rows)
    print(f"bookkeeping overhead, {args.experiment}, n = {args.n}, 3 inner folds, {args.trials} trials, pruning off; "
          f"{args.repeats} run(s) per setting (load before: {os.getloadavg()[0]:.2f})")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    median = table.groupby("setting", sort=False)[["wall_s", "work_s", "bookkeeping_ms_per_trial",
                                                    "bookkeeping_share"]].median()
    print(f"\nmedians of {args.repeats}:")
    print(median.to_string(float_format=lambda v: f"{v:.3f}"))


def workers(args) -> None:
    cfg = experiment("tune_xgb_cox.toml", args.n, outer_folds=2, n_trials=args.trials)
    rows = []
    for repeat in range(args.repeats):
        for k in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                load = os.getloadavg()[0]
                started = time.perf_counter()
                result = run_study(cfg, storage=f"journal:{tmp}/optuna.log", workers=k)
                wall = time.perf_counter() - started
            done = int(result.trials["state"].isin(["COMPLETE", "PRUNED"]).sum())
            rows.append({"run": repeat + 1, "workers": k, "finished_trials": done, "wall_s": wall,
                         "trials_per_min": 60 * done / wall,
                         "work_s_per_trial": float(result.trials["work_seconds"].mean()), "load_1min": load})
    table = pd.DataFrame(rows)
    print(f"1 vs 2 workers, xgb_cox, n = {args.n}, 3 studies x {args.trials} trials, 3 inner folds")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    median = table.groupby("workers")[["wall_s", "trials_per_min"]].median()
    print(f"\nmedians of {args.repeats}:")
    print(median.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"throughput, 2 workers / 1 worker: {median.loc[2, 'trials_per_min'] / median.loc[1, 'trials_per_min']:.2f}x")


def determinism(args) -> None:
    """The same study with 1 and with 2 workers, for several seeds: how far apart the outer estimates land."""
    rows = []
    for seed in range(args.seeds):
        cfg = dataclasses.replace(experiment("tune_xgb_cox.toml", args.n, outer_folds=2, n_trials=args.trials),
                                  seed=seed)
        for k in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                result = run_study(cfg, storage=f"journal:{tmp}/optuna.log", workers=k)
            rows.append({"seed": seed, "workers": k, "outer_uno_c": result.outer_value,
                         "inner_value": result.inner_value, "best_params": result.best_params})
    table = pd.DataFrame(rows)
    print(f"1 vs 2 workers, xgb_cox, n = {args.n}, 3 studies x {args.trials} trials, seeds 0-{args.seeds - 1}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    wide = table.pivot(index="seed", columns="workers", values="outer_uno_c")
    gap = (wide[2] - wide[1]).abs()
    print(f"|outer Uno C (2 workers) - (1 worker)|: max {gap.max():.4f}, mean {gap.mean():.4f}; spread of the "
          f"1-worker estimate across seeds (sd): {wide[1].std(ddof=1):.4f}")


def nested(args) -> None:
    rows = []
    for name in ("tune_xgb_cox.toml", "tune_rsf.toml"):
        cfg = experiment(name, args.n, n_trials=args.trials)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = run_study(cfg, storage=f"journal:{tmp}/optuna.log", workers=args.workers)
            wall = time.perf_counter() - started
        data = result.dataset
        model = dataclasses.replace(cfg.models[0], search={})
        default_c = []
        for train, test in outer_splits(cfg, data.y):
            res = cross_validate_survival(build_pipeline(cfg, model), data.X, data.y, cv=FixedSplits([(train, test)]),
                                          horizons_months=cfg.evaluation.horizons_months)
            default_c.append(float(res.per_fold.loc[res.per_fold["metric"] == "uno_c", "value"].iloc[0]))
        folds = result.outer_folds
        print(f"\n{name}: {wall / 60:.1f} min with {args.workers} worker(s); outer folds:")
        print(folds.assign(default_outer=default_c).drop(columns=["params"]).to_string(
            index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"best parameters (final study): {result.best_params}")
        untuned = float(np.mean(default_c))
        rows.append({"family": cfg.models[0].label, "untuned outer Uno C": untuned,
                     "tuned outer Uno C": result.outer_value, "tuned - untuned": result.outer_value - untuned,
                     "inner best (outer studies)": float(folds["inner_value"].mean()),
                     "inner - outer gap": result.gap, "inner best (final study)": result.inner_value})
    print(f"\nnested CV, simulated registry n = {args.n}, 3 outer x 3 inner folds, {args.trials} trials per study "
          "(Uno's C truncated at 12 months; mean over outer folds)")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("overhead", "workers", "nested", "determinism"))
    parser.add_argument("--seeds", type=int, default=5, help="determinism: seeds 0..SEEDS-1")
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--experiment", default="tune_xgb_cox.toml", help="overhead: the experiment file's search")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (medians printed)")
    parser.add_argument("--postgres", default=None, help="overhead: PostgreSQL server URL (default: a throwaway one)")
    parser.add_argument("--no-postgres", action="store_true", help="overhead: skip PostgreSQL + MLflow server")
    args = parser.parse_args()
    if args.trials is None:
        args.trials = {"overhead": 20, "workers": 8, "nested": 50, "determinism": 20}[args.what]
    {"overhead": overhead, "workers": workers, "nested": nested, "determinism": determinism}[args.what](args)


if __name__ == "__main__":
    main()
