"""Fit time and peak memory of every estimator family in 5-fold cross-validation.

Each (family, configuration, n) runs in a fresh Python process, pinned to one thread (OMP/BLAS and the
estimators' own n_jobs = 1), so that its peak resident memory (``ru_maxrss``) is its own. Configurations:
``cartrisk`` (our defaults, every family) and ``sksurv`` (scikit-survival's defaults, for rsf, extra_trees and
gbsa). Runs that are known to scale badly (every ``sksurv`` run and gbsa) are first projected from two small
pilot fits (2,000 and 4,000 training samples, at most 10 trees) and skipped, with the projection printed, when
the projected 5-fold fit time or model size exceeds the limits.

Usage::

    python benchmarks/bench_estimators.py                       # n = 1,500 and 20,000, every family
    python benchmarks/bench_estimators.py --n 1500 --families rsf,gbsa
    python benchmarks/bench_estimators.py --n 20000 --configs cartrisk
    python benchmarks/bench_estimators.py --source simulate     # cartrisk.data.simulate instead of synthetic data

Figures are printed, never asserted on. ``fit_s`` is wall-clock time, ``fit_cpu_s`` the process's CPU time (the
wall-clock time on an idle core, since every run is single-threaded); on a shared machine the two part with load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import resource
import subprocess
import sys
import time

import numpy as np

FAMILIES = ("coxph", "coxnet", "rsf", "extra_trees", "gbsa", "xgb_cox", "xgb_aft")
SKSURV_DEFAULT_FAMILIES = ("rsf", "extra_trees", "gbsa")
PILOT_SIZES = (2000, 4000)
PILOT_MAX_TREES = 10
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# -- data ----------------------------------------------------------------------------------------------------
def synthetic_cohort(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """30 features (15 continuous, 15 binary as after one-hot encoding), Weibull OS-2 in whole days.

    Median survival about 5 months, censoring uniform over 1-60 months, about 70% deaths: at n = 20,000 some
    1,500 distinct days, as a registry would have.
    """
    from sksurv.util import Surv

    rng = np.random.default_rng(seed)
    X = np.hstack([rng.normal(size=(n, 15)), (rng.uniform(size=(n, 15)) < 0.3).astype(float)])
    beta = np.zeros(30)
    beta[[0, 1, 2, 15, 16, 17]] = [0.6, -0.4, 0.3, 0.7, 0.5, -0.3]
    log_hazard = X @ beta + 0.3 * X[:, 0] * X[:, 15]
    death = 200.0 * (rng.exponential(size=n) / np.exp(log_hazard)) ** (1 / 1.1)
    censor = rng.uniform(30.0, 1826.0, size=n)
    time_days = np.maximum(np.ceil(np.minimum(death, censor)), 1.0)
    return X, Surv.from_arrays(event=death <= censor, time=time_days)


def simulated_cohort(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``cartrisk.data.simulate.simulate(n, seed)``, one-hot encoded and median-imputed (a stand-in for features)."""
    try:
        from cartrisk.data.simulate import simulate
    except ImportError as exc:  # written in parallel; the synthetic source does not need it
        raise SystemExit(f"--source simulate needs cartrisk.simulate ({exc}); use --source synthetic") from exc
    import pandas as pd
    from sksurv.util import Surv

    from cartrisk.data.dictionary import columns_by_role

    frame, _truth = simulate(n, seed)  # the registry extract and each patient's true risk
    columns = [c for c in columns_by_role("infusion", "relapse") if c.name in frame.columns]
    numeric = frame[[c.name for c in columns if c.kind != "category"]].astype(float)
    numeric = numeric.fillna(numeric.median())
    categories = pd.get_dummies(frame[[c.name for c in columns if c.kind == "category"]], dtype=float)
    X = pd.concat([numeric, categories], axis=1).to_numpy(dtype=float)
    y = Surv.from_arrays(event=frame["os2_event"].astype(bool), time=frame["os2_days"].astype(float))
    return X, y


def load_cohort(source: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return synthetic_cohort(n, seed) if source == "synthetic" else simulated_cohort(n, seed)


# -- one run, in a fresh process -----------------------------------------------------------------------------
def make_model(family: str, config: str, seed: int, n_estimators: int | None = None):
    """Our estimator, or scikit-survival's with its defaults (``config == "sksurv"``)."""
    if config == "sksurv":
        from sksurv.ensemble import ExtraSurvivalTrees, GradientBoostingSurvivalAnalysis, RandomSurvivalForest

        cls = {"rsf": RandomSurvivalForest, "extra_trees": ExtraSurvivalTrees}.get(
            family, GradientBoostingSurvivalAnalysis
        )
        model = cls(random_state=seed)
    else:
        from cartrisk.estimators import make_estimator

        model = make_estimator(family)
        if "random_state" in model.get_params():
            model.set_params(random_state=seed)
    if n_estimators is not None and "n_estimators" in model.get_params():
        model.set_params(n_estimators=min(n_estimators, model.get_params()["n_estimators"]))
    return model


def survival_at(model, X: np.ndarray, times_days: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict_survival_at"):
        return model.predict_survival_at(X, times_days)
    surv = model.predict_survival_function(X, return_array=True)
    idx = np.searchsorted(model.unique_times_, times_days, side="right") - 1
    return np.where(idx >= 0, surv[:, np.maximum(idx, 0)], 1.0)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cross_validate(family: str, config: str, n: int, source: str, folds: int, seed: int) -> dict:
    from sklearn.model_selection import StratifiedKFold
    from sksurv.metrics import concordance_index_censored

    from cartrisk.units import DEFAULT_HORIZONS_MONTHS, months_to_days

    X, y = load_cohort(source, n, seed)
    horizons = months_to_days(np.array(DEFAULT_HORIZONS_MONTHS))
    before = peak_mib()
    fit_s = fit_cpu_s = predict_s = 0.0
    c_index = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y["event"]):
        model = make_model(family, config, seed)
        start, start_cpu = time.perf_counter(), time.process_time()
        model.fit(X[train], y[train])
        fit_s += time.perf_counter() - start
        fit_cpu_s += time.process_time() - start_cpu
        start = time.perf_counter()
        risk = model.predict(X[test])
        survival_at(model, X[test], horizons)
        predict_s += time.perf_counter() - start
        c_index.append(concordance_index_censored(y["event"][test], y["time"][test], risk)[0])
        del model
    return {
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu_s,
        "predict_s": predict_s,
        "peak_mib": peak_mib(),
        "peak_above_data_mib": peak_mib() - before,
        "c_index": float(np.mean(c_index)),
        "n_features": X.shape[1],
        "n_unique_times": int(np.unique(y["time"]).shape[0]),
    }


def pilot(family: str, config: str, source: str, seed: int) -> dict:
    """Fit time and pickled size at the pilot sizes, with at most PILOT_MAX_TREES trees."""
    X, y = load_cohort(source, max(PILOT_SIZES), seed)
    out = {"n_estimators": make_model(family, config, seed).get_params().get("n_estimators", 1), "points": []}
    for size in PILOT_SIZES:
        model = make_model(family, config, seed, n_estimators=PILOT_MAX_TREES)
        start = time.perf_counter()
        model.fit(X[:size], y[:size])
        out["points"].append((size, time.perf_counter() - start, len(pickle.dumps(model))))
        out["pilot_trees"] = model.get_params().get("n_estimators", 1)
    return out


def project(pilot_result: dict, n_train: int, folds: int) -> tuple[float, float, str]:
    """Projected total fit seconds and model GiB at ``n_train``, from a power law through the pilot points."""
    (n_a, t_a, b_a), (n_b, t_b, b_b) = pilot_result["points"]
    tree_factor = pilot_result["n_estimators"] / pilot_result["pilot_trees"]
    t_exp = min(max(math.log(t_b / t_a) / math.log(n_b / n_a), 1.0), 2.5)
    b_exp = min(max(math.log(b_b / b_a) / math.log(n_b / n_a), 1.0), 2.5)
    seconds = folds * t_b * tree_factor * (n_train / n_b) ** t_exp
    gib = b_b * tree_factor * (n_train / n_b) ** b_exp / 2**30
    why = (
        f"pilot {pilot_result['pilot_trees']} trees: {t_a:.2f} s at n={n_a:,}, {t_b:.2f} s at n={n_b:,}; "
        f"time ~ n^{t_exp:.1f}, size ~ n^{b_exp:.1f}"
    )
    return seconds, gib, why


# -- driver --------------------------------------------------------------------------------------------------
def run_child(args: list[str]) -> dict:
    env = {**os.environ, **SINGLE_THREAD_ENV}
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1500, 20000], help="cohort sizes (default 1500 20000)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated (default: all)")
    parser.add_argument("--configs", default="cartrisk,sksurv", help="cartrisk and/or sksurv (default both)")
    parser.add_argument("--source", choices=("synthetic", "simulate"), default="synthetic")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-projected-s", type=float, default=240.0, help="skip runs projected slower (240)")
    parser.add_argument("--max-projected-gib", type=float, default=3.0, help="skip runs projected larger (3)")
    parser.add_argument("--worker", choices=("cv", "pilot"), help=argparse.SUPPRESS)
    parser.add_argument("--family", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.families.split(",")) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker == "cv":
        print(json.dumps(cross_validate(args.family, args.config, args.n[0], args.source, args.folds, args.seed)))
        return
    if args.worker == "pilot":
        print(json.dumps(pilot(args.family, args.config, args.source, args.seed)))
        return
    configs = args.configs.split(",")
    common = ["--source", args.source, "--folds", str(args.folds), "--seed", str(args.seed)]
    print(f"# {args.folds}-fold CV, source={args.source}, one thread per run, fresh process per run")
    header = f"{'n':>7} {'family':<12} {'config':<9} {'fit_s':>8} {'fit_cpu_s':>9} {'fit_s/fold':>10} {'predict_s':>9} "
    print(header + f"{'peak_MiB':>9} {'above_data':>10} {'C':>6}")
    for n in args.n:
        for family in args.families.split(","):
            for config in configs:
                if config == "sksurv" and family not in SKSURV_DEFAULT_FAMILIES:
                    continue
                label = f"{n:>7,} {family:<12} {config:<9}"
                if (config == "sksurv" or family == "gbsa") and n > max(PILOT_SIZES):
                    pilot_result = run_child(["--worker", "pilot", "--family", family, "--config", config, *common])
                    if "error" in pilot_result:
                        print(f"{label} pilot failed: {pilot_result['error']}")
                        continue
                    seconds, gib, why = project(pilot_result, n * (args.folds - 1) // args.folds, args.folds)
                    if seconds > args.max_projected_s or gib > args.max_projected_gib:
                        print(f"{label} skipped: projected fit {seconds:,.0f} s, model {gib:,.2f} GiB ({why})")
                        continue
                worker = ["--worker", "cv", "--family", family, "--config", config, "--n", str(n), *common]
                result = run_child(worker)
                if "error" in result:
                    print(f"{label} failed: {result['error']}")
                    continue
                print(
                    f"{label} {result['fit_s']:>8.1f} {result['fit_cpu_s']:>9.1f} "
                    f"{result['fit_s'] / args.folds:>10.2f} {result['predict_s']:>9.2f} {result['peak_mib']:>9.0f} "
                    f"{result['peak_above_data_mib']:>10.0f} {result['c_index']:>6.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
