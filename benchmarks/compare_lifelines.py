"""cartrisk's Cox inference and Schoenfeld test beside lifelines', on the cohort of tests/evaluation/test_coxreg.py.

lifelines needs pandas < 3 and cartrisk's environment has pandas 3, so the comparison runs in two environments:

    python benchmarks/compare_lifelines.py cartrisk /tmp/ph.csv          # cartrisk's venv: writes the cohort, prints
    /tmp/llvenv/bin/python benchmarks/compare_lifelines.py lifelines /tmp/ph.csv   # a side venv with lifelines

(the side venv: ``python3.11 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install lifelines "pandas<3"``). Both print
the coefficients, standard errors and the proportional-hazards chi-square per term (KM and identity time scales).
Prints figures only.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd


def cohort(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The cohort of ``tests/evaluation/test_coxreg.py::_cohort``."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=list("abc"))
    X["e"] = (rng.random(n) < 0.3).astype(float)
    lp = X.to_numpy() @ np.array([0.5, -0.3, 0.1, 0.7])
    t = np.ceil(30 * rng.exponential(size=n) / np.exp(lp))
    c = np.ceil(60 * rng.random(n))
    return X, t <= c, np.minimum(t, c) + 1


def run_cartrisk(path: str) -> None:
    from cartrisk.evaluation.coxreg import cox_regression, ph_test

    X, event, time = cohort()
    X.assign(T=time, E=event.astype(int)).to_csv(path, index=False)
    fit = cox_regression(X, event, time)
    print(fit.table()[["term", "coef", "se"]].to_string(index=False))
    for transform in ("km", "identity"):
        print(transform, ph_test(fit, transform)[["term", "ph_chi2"]].to_string(index=False))


def run_lifelines(path: str) -> None:
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    frame = pd.read_csv(path)
    fit = CoxPHFitter().fit(frame, "T", "E")
    print(pd.DataFrame({"coef": fit.params_, "se": fit.standard_errors_}).to_string())
    for transform in ("km", "identity"):
        print(transform, proportional_hazard_test(fit, frame, time_transform=transform).summary["test_statistic"]
              .to_string())


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("cartrisk", "lifelines"):
        raise SystemExit("usage: compare_lifelines.py cartrisk|lifelines COHORT.csv")
    (run_cartrisk if sys.argv[1] == "cartrisk" else run_lifelines)(sys.argv[2])
