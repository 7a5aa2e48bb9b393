"""Update a bundle on new data (``cartrisk update-model``): recalibrate its baseline hazard (``intercept``), also
its calibration slope (``slope``), refit every coefficient (``refit``), or let the closed testing procedure choose
(``auto``, Vergouwe et al. 2017; :mod:`cartrisk.evaluation.updating`). The new bundle records its lineage (parent
fingerprint, update data hash, method, the tests and why) in ``bundle.json`` and its model card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from cartrisk.bundle._generic import generic_outcome
from cartrisk.bundle.export import Evidence, export_bundle
from cartrisk.bundle.scoring import Bundle
from cartrisk.bundle.validation import validation_cohort
from cartrisk.data.schema import frame_hash
from cartrisk.estimators.recalibrated import RecalibratedSurvival
from cartrisk.evaluation.calibration import lookup_survival
from cartrisk.evaluation.crossval import EventStratifiedKFold
from cartrisk.evaluation.updating import UPDATE_METHODS, UpdateTests, closed_test
from cartrisk.exceptions import ConfigError
from cartrisk.groups import RiskGrouper
from cartrisk.modelling.pipeline import SurvivalPipeline
from cartrisk.units import months_to_days

__all__ = ["UpdateResult", "update_bundle"]

_TINY = 1e-12


@dataclass(frozen=True)
class UpdateResult:
    """The updated bundle's folder, the method asked for and the one applied, the closed test and the lineage."""

    path: Path
    requested: str
    method: str
    tests: UpdateTests
    lineage: dict[str, Any]


def _expected(final, Xt, time, event, h) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deaths by h, the cumulative hazard the model expects up to min(t, h), and log H(h | x)."""
    own = np.minimum(time, h)
    grid = np.unique(own)
    s_own = lookup_survival(final.predict_survival_at(Xt, grid), grid, own)
    s_h = np.asarray(final.predict_survival_at(Xt, [h]), dtype=float)[:, 0]
    log_h = np.log(np.maximum(-np.log(np.clip(s_h, _TINY, 1.0)), _TINY))
    return (event & (time <= h)).astype(float), -np.log(np.clip(s_own, _TINY, 1.0)), log_h


def _groups(bundle: Bundle, method: str, slope: float, pipeline, X, y, seed: int):
    """The updated bundle's risk groups: the parent's (cut-points on the risk score rescaled by the slope), or for a
    refit the parent's group shares learned again on out-of-fold risk scores of the update data."""
    spec = bundle.risk_groups
    if not spec:
        return None, None
    cuts = np.asarray(spec["cutpoints"], dtype=float)
    labels, horizon = list(spec["labels"]), float(spec["horizon_months"])
    if method != "refit":
        if spec["method"] != "threshold":
            cuts = cuts * slope  # the updated risk score is the parent's times the slope
        return RiskGrouper.from_cutpoints(cuts, method=spec["method"], labels=labels, horizon_months=horizon), None
    if spec["method"] == "threshold":
        return RiskGrouper(method="threshold", threshold=list(cuts), horizon_months=horizon, labels=labels), None
    shares = np.array([g["share"] for g in spec["training_groups"]], dtype=float)
    oof = np.full(len(y), np.nan)
    for train, test in EventStratifiedKFold(5, shuffle=True, random_state=seed).split(X, y):
        oof[test] = clone(pipeline).fit(X.iloc[train], y[train]).predict(X.iloc[test])
    return RiskGrouper(method="quantiles", sizes=tuple(shares / shares.sum()), labels=labels), oof


def update_bundle(bundle: Bundle, frame: pd.DataFrame, *, method: str, name: str, models_dir: str | Path = "models",
                  source: str = "frame", horizon_months: float | None = None, overwrite: bool = False,
                  random_state: int = 0) -> UpdateResult:
    """Update ``bundle`` on ``frame`` (with its outcome) and export the result as the bundle ``models_dir/name``.

    Parameters
    ----------
    method : {"intercept", "slope", "refit", "auto"}
        ``auto`` runs the closed test and applies its choice (which may be to keep the original model).
    horizon_months : float, optional
        Horizon of the recalibration (deaths and expected hazard counted up to it; the slope acts on the log
        cumulative hazard there). Default: the bundle's last horizon.
    """
    if method not in (*UPDATE_METHODS, "auto"):
        raise ConfigError(f"--method {method!r}: use one of {', '.join(UPDATE_METHODS)} or auto")
    typed, y = validation_cohort(bundle, frame, source=source)
    horizon = float(horizon_months or max(bundle.horizons_months))
    h = months_to_days(horizon)
    features, final = bundle.pipeline.steps[0][1], bundle.pipeline.steps[-1][1]
    Xt = bundle.pipeline.transform_features(typed)
    event, time = y["event"], y["time_days"]
    deaths, expected, log_h = _expected(final, Xt, time, event, h)
    centre = float(log_h.mean())
    tests = closed_test(deaths, expected, log_h - centre, Xt.to_numpy(float))
    chosen = tests.chosen if method == "auto" else method
    a, b = tests.parameters(chosen) if chosen in ("intercept", "slope") else (0.0, 1.0)
    X = typed.drop(columns=["patient_id"], errors="ignore")
    y_fit = np.array(list(zip(event, time, strict=True)), dtype=[("os2_event", bool), ("os2_days", float)])
    if chosen == "original":
        pipeline = bundle.pipeline
    elif chosen == "refit":
        pipeline = clone(bundle.pipeline).fit(X, y_fit)
    else:
        wrapper = RecalibratedSurvival(final, method=chosen, horizon_days=h).set_update(a, b, centre)
        pipeline = SurvivalPipeline([(bundle.pipeline.steps[0][0], features), ("model", wrapper)])
    grouper, oof = _groups(bundle, chosen, b, pipeline, X, y_fit, random_state)
    ci = {}
    if chosen in ("intercept", "slope"):
        fit = tests.fits[chosen]
        se = np.sqrt(np.diag(fit.cov))
        ci["intercept_exp_ci"] = [float(np.exp(a - 1.96 * se[0])), float(np.exp(a + 1.96 * se[0]))]
        if chosen == "slope" and se.size > 1:
            ci["slope_ci"] = [b - 1.96 * float(se[1]), b + 1.96 * float(se[1])]
    lineage = {
        "parent": {"name": bundle.name, "fingerprint": bundle.fingerprint, "created_utc": bundle.info["created_utc"],
                   "data_sha256": bundle.info["training"]["data_sha256"]},
        "update_data": source, "update_data_sha256": frame_hash(X.assign(_time=time, _event=event)),
        "n": int(len(time)), "deaths_by_horizon": int(deaths.sum()), "horizon_months": horizon,
        "method_requested": method, "method": chosen,
        "reason": tests.reason if method == "auto" else f"asked for (--method {method}); the closed test would "
                                                        f"have chosen '{tests.chosen}': {tests.reason}",
        "tests": tests.tests.to_dict(orient="records"), "alpha": tests.alpha,
        "baseline_hazard_factor": float(np.exp(a)), "slope": float(b), "centre": centre, **ci,
    }
    cohort = None
    outcome = generic_outcome(bundle.schema)
    if outcome is not None:
        cohort = {**outcome, "id": bundle.schema.get("id_column")}
        X = X.drop(columns=[outcome["time"], outcome["event"]], errors="ignore")
    meta = {k: v for k, v in bundle.info["metadata"].items() if k in ("simulated", "data_source", "description")}
    meta["description"] = f"Updated from bundle '{bundle.name}' on {source} (method: {chosen})."
    keep_schema = bundle.schema if chosen != "refit" else None
    path = export_bundle(pipeline, models_dir, name=name, X=X, y=y_fit, overwrite=overwrite, metadata=meta,
                         data_sha256=lineage["update_data_sha256"],  # one hash of the update data, as in its lineage
                         horizons_months=bundle.horizons_months, cohort=cohort, lineage=lineage, schema=keep_schema,
                         evidence=Evidence(risk_groups=grouper, oof_risk=oof,
                                           oof_source="5-fold cross-validation of the refit on the update data"))
    return UpdateResult(path, method, chosen, tests, lineage)
