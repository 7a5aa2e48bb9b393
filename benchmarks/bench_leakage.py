"""Where the leakage guard's figures sit: the strongest honest predictors of the simulated registry, and the leaks.

Run: ``python benchmarks/bench_leakage.py [--n 1500] [--seeds 10]``

For each seed, every covariate column of a simulated registry is screened
(:func:`cartrisk.data.leakage.screen_leakage`); the table gives, per column, the largest figure over the seeds
(AUC of its values and of its missingness for the event indicator, univariable Harrell C for OS-2), strongest
first, beside the thresholds. Then the three planted leaks of the tests (a copy of os2_event, a cause of death
filled in only for the dead, the status at last contact recorded at extraction) and a fainter one that the guard
does not catch: a vital status updated three months after each censored patient's last contact (deaths in
between recorded). Prints figures only.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from cartrisk.data.leakage import SUSPECT_AUC, SUSPECT_C, screen_leakage
from cartrisk.data.schema import to_xy, validate
from cartrisk.data.simulate import simulate

FIGURES = ["value_auc", "missing_auc", "harrell_c"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    honest, leaks = [], []
    for seed in range(args.seeds):
        frame, truth = simulate(args.n, seed)
        typed = validate(frame).raise_if_invalid()
        X, y = to_xy(typed)
        screen = screen_leakage(X, y["os2_event"], y["os2_days"], random_state=seed)
        honest.append(screen.assign(seed=seed))
        rng = np.random.default_rng(seed)
        dead = typed["os2_event"].to_numpy() == 1
        cutoff = (typed["failure_date"].max() - typed["failure_date"]).dt.days.to_numpy()
        lost = ~dead & (typed["os2_days"].to_numpy() < cutoff)
        later = ~dead & (truth["event_time_days"].to_numpy() <= truth["censor_time_days"].to_numpy() + 91.0)
        planted = pd.DataFrame({
            "vital_status_cutoff": dead.astype(float),
            "cause_of_death": np.where(dead, rng.choice(["lymphoma", "infection", "toxicity"], args.n), None),
            "last_status": np.where(dead, "dead", np.where(lost, "lost to follow-up", "alive")),
            "status_3_months_later": np.where(dead | later, "dead", "alive")}, index=X.index)
        leaks.append(screen_leakage(planted, y["os2_event"], y["os2_days"], random_state=seed).assign(seed=seed))
    honest, leaks = pd.concat(honest), pd.concat(leaks)
    pd.set_option("display.width", 160)
    top = honest.groupby("column")[FIGURES].max().sort_values("harrell_c", ascending=False)
    print(f"simulated registry, n = {args.n:,}, {args.seeds} seeds; thresholds: AUC >= {SUSPECT_AUC}, "
          f"Harrell C >= {SUSPECT_C}")
    print(f"honest columns flagged: {int(honest['suspect'].sum())} of {len(honest)} column x seed screens")
    print("largest figure over the seeds, per column (the ten strongest):")
    print(top.head(10).round(3).to_string())
    print(f"largest honest figures: value AUC {top['value_auc'].max():.3f}, missingness AUC "
          f"{top['missing_auc'].max():.3f}, Harrell C {top['harrell_c'].max():.3f}")
    summary = leaks.groupby("column").agg(value_auc_min=("value_auc", "min"), missing_auc_min=("missing_auc", "min"),
                                          harrell_c_min=("harrell_c", "min"), refused=("suspect", "mean"))
    print("planted leaks (smallest figure over the seeds; share of seeds refused):")
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
