"""Survival model families behind one contract, and their registry.

Every estimator is a scikit-learn estimator taking numeric X and scikit-survival's structured y, with
``predict`` (risk, higher = worse), ``predict_survival_function`` and ``predict_survival_at`` (days), and the
fitted library model as ``model_``. Build them by name with :func:`make_estimator`; :data:`ESTIMATORS` lists the
names.
"""

from __future__ import annotations

from ._base import SlowFitWarning, SurvivalEstimator, SurvivalStepFunction
from .boosting import GBSA, GBSA_WARN_N_SAMPLES
from .forest import RSF, ExtraTrees, coarsen_survival_times
from .linear import Coxnet, CoxPH
from .recalibrated import RecalibratedSurvival
from .registry import ESTIMATORS, make_estimator
from .xgb import XGBAFT, AFTSurvivalFunction, XGBCox

__all__ = [
    "ESTIMATORS",
    "GBSA",
    "GBSA_WARN_N_SAMPLES",
    "RSF",
    "RecalibratedSurvival",
    "XGBAFT",
    "AFTSurvivalFunction",
    "CoxPH",
    "Coxnet",
    "ExtraTrees",
    "SlowFitWarning",
    "SurvivalEstimator",
    "SurvivalStepFunction",
    "XGBCox",
    "coarsen_survival_times",
    "make_estimator",
]
