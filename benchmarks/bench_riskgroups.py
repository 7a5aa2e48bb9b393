"""A tuned model's risk groups against the D0-30 rule, its three-window form and the PC-PI, on the simulated registry.

Training cohort ``simulate(N_TRAIN, seed=1)``, independent test cohort ``simulate(N_TEST, seed=2)``. The
model's cut-points and recalibration are learned on 5-fold out-of-fold training predictions; every figure is
measured on the test patients (:func:`cartrisk.groups.rulecomparison.compare_with_rules`). Printed: per rule, the rule,
the model's groups sized like the rule's groups and the model's continuous score (Harrell's and Uno's C, AUC at
6 months, hazard ratio of the top vs the bottom group, log-rank p, C difference against the rule with its paired
bootstrap 95% CI, NRI at 6 months); group calibration at 6 months before and after recalibration; the
reclassification table D0-30 x model with observed 6-month OS-2 per cell; wall time of each step.

Usage::

    python benchmarks/bench_riskgroups.py                          # xgb_cox, 1,500 / 5,000 patients
    python benchmarks/bench_riskgroups.py --estimator rsf --n-boot 200
    python benchmarks/bench_riskgroups.py --groups 3 --figures /tmp/riskgroup-figures

Figures are printed, never asserted on (the slow test in tests/test_compare_rules.py asserts the claims).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

#: Reasonable settings per family (not tuned on the test cohort).
PARAMS = {
    "xgb_cox": {"learning_rate": 0.03, "max_depth": 2, "n_estimators": 400, "random_state": 0},
    "rsf": {"n_estimators": 300, "min_samples_leaf": 15, "max_features": "sqrt", "random_state": 0},
    "coxph": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("--estimator", choices=sorted(PARAMS), default="xgb_cox")
    parser.add_argument("--groups", default="rule-sized")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figures", default=None, help="Write the PNG figures to this folder.")
    args = parser.parse_args()

    from cartrisk.cli.groups import display_table
    from cartrisk.data.schema import to_xy, validate
    from cartrisk.data.simulate import simulate
    from cartrisk.groups.rulecomparison import ComparisonSettings, compare_with_rules
    from cartrisk.modelling.pipeline import make_pipeline

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    pd.set_option("display.max_rows", 100)
    started = time.perf_counter()
    X_tr, y_tr = to_xy(validate(simulate(args.n_train, seed=1)[0]).raise_if_invalid())
    X_te, y_te = to_xy(validate(simulate(args.n_test, seed=2)[0]).raise_if_invalid())
    t_data = time.perf_counter() - started
    pipe = make_pipeline("infusion+relapse", args.estimator, **PARAMS[args.estimator])
    started = time.perf_counter()
    res = compare_with_rules(pipe, X_tr, y_tr, X_te, y_te,
                             ComparisonSettings(groups=args.groups, n_boot=args.n_boot, random_state=args.seed))
    t_compare = time.perf_counter() - started

    print(f"{args.estimator} {PARAMS[args.estimator]}, features infusion+relapse; train n={len(y_tr):,} "
          f"({int(y_tr['os2_event'].sum()):,} deaths), test n={len(y_te):,} ({int(y_te['os2_event'].sum()):,} deaths); "
          f"groups {args.groups}; training predictions: {res.settings['training_predictions']}; n_boot={args.n_boot}")
    print(display_table(res.summary(), res.horizon_months).to_string(index=False))
    print("\nmodel group shares on the training predictions:", res.settings["sizes"])
    cal = res.calibration[res.calibration["horizon_months"] == res.horizon_months]
    cal = cal.pivot_table(index=["grouping", "group"], columns="stage", values=["observed", "predicted"], sort=False)
    print(f"\ngroup calibration at {res.horizon_months:g} months on the test patients (KM observed vs mean predicted):")
    print(cal.round(3).to_string())
    first_model, first_rule = res.pairs[0]
    for value, what in (("n", "patients"), ("observed", f"observed {res.horizon_months:g}-month OS-2")):
        print(f"\nreclassification {first_rule} (rows) x {first_model} (columns): {what}")
        print(res.comparison.reclassification_matrix(first_model, value=value, reference=first_rule).round(3))
    for note in res.notes:
        print("note:", note)
    if args.figures:
        from cartrisk.groups.figures import write_comparison_figures

        started = time.perf_counter()
        paths = write_comparison_figures(res, args.figures)
        print(f"\nwrote {len(paths)} figures to {args.figures} in {time.perf_counter() - started:.1f} s")
    print(f"\nwall time: data {t_data:.1f} s, compare_with_rules (5-fold OOF + refit + statistics) {t_compare:.1f} s "
          "(2 shared cores, under load)")


if __name__ == "__main__":
    main()
