"""Time :func:`cartrisk.explain.explain` through the fitted pipeline, for every model family.

Prints timings only (never asserts on them). Each family is fitted with its default parameters on a
simulated registry (``--n-train`` patients, feature set ``infusion+relapse``: 69 features after
transformation), then explains:

1. the risk score of ``--sizes`` patients (default 1,000 and 20,000, drawn from an independent
   simulated cohort): exact TreeSHAP, xgboost's ``pred_contribs`` or linear SHAP;
2. the survival probability at ``--horizon`` months for ``--survival-patients`` patients (exact
   TreeSHAP for the forests, sampled permutations for the others, 10 orders, 100 background rows);
3. for the first family, the literature concordance (1,000 bootstrap resamples) and the figures on
   the largest cohort.

Run: ``python benchmarks/bench_explain.py [--families xgb_cox,rsf] [--sizes 1000,20000]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from cartrisk.data.schema import to_xy, validate
from cartrisk.data.simulate import simulate
from cartrisk.estimators import ESTIMATORS
from cartrisk.explain import concordance, explain, write_figures
from cartrisk.modelling.pipeline import make_pipeline

_SEEDED = {"rsf", "extra_trees", "gbsa", "xgb_cox", "xgb_aft"}


def _cohort(n: int, seed: int):
    frame, _ = simulate(n, seed)
    typed = validate(frame).raise_if_invalid()
    X, y = to_xy(typed)
    return X.assign(patient_id=typed["patient_id"].to_numpy()), y


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--sizes", default="1000,20000", help="patients explained (risk score), comma-separated")
    parser.add_argument("--families", default=",".join(ESTIMATORS))
    parser.add_argument("--survival-patients", type=int, default=100)
    parser.add_argument("--horizon", type=float, default=6.0, help="months")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    X_train, y_train = _cohort(args.n_train, args.seed)
    X_all, _ = _cohort(max(sizes), args.seed + 1)
    print(f"training cohort n={args.n_train:,}; explained cohorts {', '.join(f'{s:,}' for s in sizes)} patients")
    print(f"{'family':<12} {'fit s':>7} " + " ".join(f"{'risk n=' + format(s, ','):>16}" for s in sizes)
          + f" {'survival n=' + str(args.survival_patients):>16}  methods (risk / survival)")
    first = None
    for family in args.families.split(","):
        params = {"random_state": args.seed} if family in _SEEDED else {}
        pipe, fit_s = _timed(make_pipeline("infusion+relapse", family, **params).fit, X_train, y_train)
        cells, risk = [], None
        for size in sizes:
            risk, seconds = _timed(explain, pipe, X_all.iloc[:size])
            cells.append(f"{seconds:>14.2f} s")
        survival, surv_s = _timed(explain, pipe, X_all.iloc[:args.survival_patients], output="survival",
                                  horizon_months=args.horizon, background=X_train, random_state=args.seed)
        print(f"{family:<12} {fit_s:>7.1f} " + " ".join(cells) + f" {surv_s:>14.2f} s  "
              f"{risk.method} / {survival.method} ({'exact' if survival.exact else 'approximate'}); "
              f"max additivity error {risk.additivity_error:.1e} / {survival.additivity_error:.1e}")
        first = first or (family, risk)
    family, risk = first
    table, seconds = _timed(concordance, risk, random_state=args.seed)
    print(f"concordance ({family}, n={len(risk.values):,}, 1,000 bootstrap resamples): {seconds:.2f} s, "
          f"{(table['status'] == 'agrees').sum()} factor rows agree")
    with tempfile.TemporaryDirectory() as tmp:
        paths, seconds = _timed(write_figures, risk.by_column(), tmp)
    print(f"figures ({family}, n={len(risk.values):,}, beeswarm of at most 5,000): {len(paths)} PNG in {seconds:.2f} s")


if __name__ == "__main__":
    main()
