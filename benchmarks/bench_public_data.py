"""Real data no one here wrote: GBSG2 and WHAS500 through cartrisk's generic path, beside reference fits.

On the same repeated, event-stratified 5-fold splits, prints Harrell's and Uno's C (mean and sd over
folds) of:
- every cartrisk family, through the experiment files ``experiments/evaluate_gbsg2.toml`` and
  ``experiments/evaluate_whas500.toml`` (FeatureBuilder -> estimator, preprocessing fitted per fold);
- scikit-survival's estimators at their defaults (CoxPH, RSF, extra trees, GBSA) on one-hot
  encoded covariates, as its user guide prepares them;
- lifelines' CoxPHFitter at its defaults, when lifelines is importable. lifelines 0.30.3 needs
  pandas < 3, so it is no dependency of cartrisk; run this script in an environment that has it:
  ``python -m venv /tmp/venv-bench && /tmp/venv-bench/bin/pip install "pandas<3" lifelines==0.30.3 -e .``

Published reference: scikit-survival's user guide reports Harrell's C = 0.676 for an RSF of 1000
trees on a single 75/25 split of GBSG2, "matching the Random Survival Forests paper" (Ishwaran et al.
2008). Run: ``python benchmarks/bench_public_data.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sksurv.ensemble import ExtraSurvivalTrees, GradientBoostingSurvivalAnalysis, RandomSurvivalForest
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.preprocessing import OneHotEncoder

from cartrisk.config import load_experiment
from cartrisk.data.datasets import load_dataset
from cartrisk.evaluation import EventStratifiedKFold, harrell_c, uno_c
from cartrisk.modelling.pipeline import build_pipeline
from cartrisk.units import months_to_days

ROOT = Path(__file__).resolve().parents[1]


def _sksurv_defaults(seed: int) -> dict[str, object]:
    return {"sksurv CoxPH": CoxPHSurvivalAnalysis(), "sksurv RSF": RandomSurvivalForest(random_state=seed),
            "sksurv ExtraSurvivalTrees": ExtraSurvivalTrees(random_state=seed),
            "sksurv GBSA": GradientBoostingSurvivalAnalysis(random_state=seed)}


class _LifelinesCox:
    """lifelines' CoxPHFitter at its defaults, on one-hot encoded covariates."""

    def __init__(self) -> None:
        from lifelines import CoxPHFitter

        self.model = CoxPHFitter()

    def fit(self, X: pd.DataFrame, y) -> _LifelinesCox:
        frame = X.assign(_t=y["os2_days"], _e=y["os2_event"].astype(int))
        self.model.fit(frame, duration_col="_t", event_col="_e")
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_log_partial_hazard(X).to_numpy()


def run(name: str, repeats: int, seed: int = 0) -> pd.DataFrame:
    cfg = load_experiment(ROOT / "experiments" / f"evaluate_{name}.toml")
    data = load_dataset(cfg.data, seed=seed)
    tau = months_to_days(max(cfg.evaluation.horizons_months))
    X_onehot = OneHotEncoder().fit_transform(data.X.astype({c: "category" for c in data.X.select_dtypes("object")}))
    candidates: dict[str, tuple[object, pd.DataFrame]] = {
        f"cartrisk {m.label}": (build_pipeline(cfg, m), data.X) for m in cfg.models}
    candidates.update({k: (v, X_onehot) for k, v in _sksurv_defaults(seed).items()})
    try:
        candidates["lifelines CoxPHFitter"] = (_LifelinesCox(), X_onehot)
    except ImportError:
        print("lifelines is not installed here: its column is left out (see the module docstring)")
    cv = EventStratifiedKFold(n_splits=5, n_repeats=repeats, shuffle=True, random_state=seed)
    rows = []
    for label, (model, X) in candidates.items():
        started = time.perf_counter()
        for fold, (train, test) in enumerate(cv.split(X, data.y)):
            fitted = model.fit(X.iloc[train], data.y[train]) if label.startswith("lifelines") else \
                clone(model).fit(X.iloc[train], data.y[train])
            risk = fitted.predict(X.iloc[test])
            rows.append({"data": name, "model": label, "fold": fold,
                         "harrell_c": harrell_c(data.y[train], data.y[test], risk),
                         "uno_c": uno_c(data.y[train], data.y[test], risk, tau)})
        rows[-1]["seconds"] = time.perf_counter() - started
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats of 5-fold CV")
    args = parser.parse_args()
    with warnings.catch_warnings():
        # lifelines and GBSA at defaults may warn about convergence on some folds; the C-index is still reported.
        warnings.simplefilter("ignore", category=UserWarning)
        folds = pd.concat([run(name, args.repeats) for name in ("gbsg2", "whas500")])
    table = folds.groupby(["data", "model"], sort=False).agg(
        harrell_mean=("harrell_c", "mean"), harrell_sd=("harrell_c", "std"),
        uno_mean=("uno_c", "mean"), uno_sd=("uno_c", "std"), folds=("fold", "count"), seconds=("seconds", "sum"))
    print(f"repeated ({args.repeats}x) event-stratified 5-fold CV, same folds for every model\n")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
