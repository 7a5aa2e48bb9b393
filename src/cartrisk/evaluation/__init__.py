"""Honest performance estimates: event-stratified cross-validation, survival metrics with
scikit-survival's signature, calibration at a horizon, bootstrap intervals.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "BootstrapCI": "metrics",
    "CVResult": "crossval",
    "CoxFit": "coxreg",
    "DCalibration": "calibration",
    "EventStratifiedKFold": "crossval",
    "FixedSplits": "crossval",
    "FrailtyFit": "frailty",
    "HEADLINE_METRICS": "crossval",
    "HorizonCalibration": "calibration",
    "IBS_GRID_POINTS": "metrics",
    "bootstrap_ci": "metrics",
    "centre_frailty": "frailty",
    "brier_at": "metrics",
    "calibration_at_horizon": "calibration",
    "check_horizons": "calibration",
    "check_survival_probabilities": "calibration",
    "compare": "crossval",
    "comparison_table": "crossval",
    "cox_regression": "coxreg",
    "cross_validate_survival": "crossval",
    "d_calibration": "calibration",
    "harrell_c": "metrics",
    "horizon_problems": "calibration",
    "integrated_brier": "metrics",
    "lookup_survival": "calibration",
    "ph_test": "coxreg",
    "seed_estimator": "crossval",
    "survival_at_own_time": "calibration",
    "time_dependent_auc": "metrics",
    "uno_c": "metrics",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
