"""Exact TreeSHAP for a random survival forest against shap's model-agnostic PermutationExplainer.

Prints timings only (never asserts on them). On a synthetic cohort with a Weibull truth:

1. convert a fitted ``RandomSurvivalForest`` (100 trees) and explain the same patients with
   cartrisk's exact TreeSHAP (interventional, float64, with the same background rows as the
   permutation explainer; and path-dependent, with shap's C code), and with shap's own
   interventional TreeSHAP on the converted model (float32 internally) for reference;
2. explain them with ``shap.PermutationExplainer`` on ``model.predict`` (default ``max_evals``);
   as that is slow, ``--permutation-patients`` runs it on the first k patients and scales the
   time linearly to all of them (said so in the output);
3. explain ``--large`` patients (default 20,000) with path-dependent TreeSHAP.

cartrisk's TreeSHAP is timed on one core and on all of them (interventional: numba threads; path-dependent:
forked processes); shap's float32 interventional code and the permutation explainer run on one core.

Run: ``python benchmarks/bench_shap.py [--permutation-patients 20] [--large 20000]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sksurv.ensemble import RandomSurvivalForest
from sksurv.util import Surv

from cartrisk.explain._treeshap import _cores, _import_shap, to_shap_tree_model, tree_shap

BETA = np.array([0.8, -0.5, 0.3, 0.6, 0.0, 0.2, -0.3, 0.1])


def _features(rng: np.random.Generator, n: int) -> np.ndarray:
    X = rng.normal(size=(n, BETA.size))
    X[:, 3] = rng.integers(0, 2, size=n)
    X[:, 5] = rng.integers(0, 4, size=n)
    return X


def _cohort(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Weibull proportional hazards (shape 1.3, scale 200 days), uniform censoring on 30-600 days."""
    X = _features(rng, n)
    event_days = 200.0 * (-np.log(rng.uniform(size=n)) / np.exp(X @ BETA)) ** (1 / 1.3)
    censor_days = rng.uniform(30.0, 600.0, size=n)
    time_days = np.maximum(np.ceil(np.minimum(event_days, censor_days)), 1.0)
    return X, Surv.from_arrays(event=event_days <= censor_days, time=time_days)


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=500, help="training patients")
    parser.add_argument("--n-trees", type=int, default=100)
    parser.add_argument("--patients", type=int, default=200, help="patients explained by both methods")
    parser.add_argument("--permutation-patients", type=int, default=20, help="run PermutationExplainer on these")
    parser.add_argument("--background", type=int, default=100, help="background rows (both methods)")
    parser.add_argument("--large", type=int, default=20_000, help="patients for the path-dependent run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    X_train, y_train = _cohort(rng, args.n_train)
    X = _features(rng, args.patients)
    background = X_train[rng.choice(args.n_train, size=args.background, replace=False)]
    model, fit_s = _timed(
        RandomSurvivalForest(n_estimators=args.n_trees, min_samples_leaf=3, n_jobs=1, random_state=args.seed).fit,
        X_train,
        y_train,
    )
    nodes = np.mean([tree.tree_.node_count for tree in model.estimators_])
    depth = np.mean([tree.tree_.max_depth for tree in model.estimators_])
    print(
        f"RSF: {args.n_trees} trees on {args.n_train} patients x {BETA.size} features, fit {fit_s:.1f} s; "
        f"mean {nodes:.0f} nodes, depth {depth:.1f}; {model.unique_times_.size} unique times"
    )

    shap = _import_shap()
    _, compile_s = _timed(lambda: tree_shap(model, X[:1], background=background[:2]))
    converted, convert_s = _timed(to_shap_tree_model, model)
    cores = _cores()
    (phi, expected), interventional_s = _timed(tree_shap, model, X, background=background)
    (phi_1, _), interventional_1_s = _timed(tree_shap, model, X, background=background, n_jobs=1)
    assert np.array_equal(phi, phi_1) or np.abs(phi - phi_1).max() < 1e-9
    error = np.abs(phi.sum(axis=1) + expected - model.predict(X)).max()
    (_, _), path_s = _timed(tree_shap, model, X)
    masker = shap.maskers.Independent(background.astype(np.float32), max_samples=args.background)
    explainer = shap.TreeExplainer(converted, data=masker, feature_perturbation="interventional")
    shap_phi, shap_s = _timed(explainer.shap_values, X.astype(np.float32))
    n = args.patients
    print(f"first call in this process (numba: load from the on-disk cache, or compile on a fresh install; "
          f"not counted below): {compile_s:.1f} s")
    print(f"convert the forest: {convert_s * 1e3:.0f} ms")
    print(
        f"TreeSHAP interventional (cartrisk, float64), {n} patients x {args.background} background: "
        f"{interventional_1_s:.2f} s on 1 core, {interventional_s:.2f} s on {cores} cores; "
        f"max |sum(phi) + E - predict| = {error:.1e}"
    )
    print(f"TreeSHAP path-dependent (shap C code), {n} patients: {path_s:.2f} s")
    print(
        f"shap's own interventional TreeSHAP on the converted model (float32 inside, 1 core): {shap_s:.2f} s; "
        f"max |phi - cartrisk's| = {np.abs(shap_phi - phi).max():.1e}; cartrisk's kernel is "
        f"{shap_s / interventional_1_s:.2f}x its speed on 1 core, {shap_s / interventional_s:.2f}x on {cores}"
    )

    k = min(args.permutation_patients, n)
    permutation = shap.PermutationExplainer(model.predict, masker, seed=args.seed)
    perm, perm_s = _timed(permutation, X[:k], silent=True)
    perm_all_s = perm_s * n / k
    scaled = f" (measured on {k} patients, scaled linearly to {n})" if k < n else ""
    print(
        f"PermutationExplainer (default max_evals, same background), {n} patients: {perm_all_s:.0f} s{scaled}; "
        f"max |phi_perm - phi_exact| = {np.abs(perm.values - phi[:k]).max():.2e} "
        f"(mean |phi_exact| = {np.abs(phi[:k]).mean():.2f})"
    )
    print(
        f"speed-up vs permutation, converter + interventional TreeSHAP: "
        f"{perm_all_s / (convert_s + interventional_1_s):.0f}x "
        f"on 1 core, {perm_all_s / (convert_s + interventional_s):.0f}x on {cores}; "
        f"converter + path-dependent: {perm_all_s / (convert_s + path_s):.0f}x"
    )

    X_large = _features(rng, args.large)
    (phi_1, _), large_1_s = _timed(tree_shap, model, X_large, n_jobs=1)
    (phi_large, expected_large), large_s = _timed(tree_shap, model, X_large)
    large_error = np.abs(phi_large.sum(axis=1) + expected_large - model.predict(X_large)).max()
    print(
        f"path-dependent TreeSHAP, {args.large:,} patients: {large_1_s:.1f} s on 1 core, {large_s:.1f} s on "
        f"{cores} ({large_s / args.large * 1e3:.2f} ms per patient); max additivity error {large_error:.1e}; "
        f"same values: {np.abs(phi_1 - phi_large).max() == 0}"
    )


if __name__ == "__main__":
    main()
