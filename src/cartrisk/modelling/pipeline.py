"""The unit that is validated, tuned, tracked and exported: features -> estimator.

scikit-learn's Pipeline does not forward survival methods. scikit-survival
monkey-patches them onto sklearn's class at import; cartrisk subclasses
instead, so importing cartrisk changes nothing else.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline

from cartrisk.config import ExperimentConfig, ModelConfig
from cartrisk.estimators import make_estimator
from cartrisk.modelling.features import FeatureBuilder

__all__ = ["SurvivalPipeline", "build_features", "build_pipeline", "make_pipeline"]


class SurvivalPipeline(Pipeline):
    """A scikit-learn Pipeline whose last step is a survival estimator.

    Adds ``predict_survival_function`` and ``predict_survival_at``, which
    transform ``X`` through every step but the last and delegate to the final
    estimator. ``predict`` (risk, higher = worse) is Pipeline's own.
    """

    def _transform_all(self, X):
        return self[:-1].transform(X)

    def predict_survival_function(self, X, **params):
        """Survival functions from the final estimator (see its documentation)."""
        return self.steps[-1][1].predict_survival_function(self._transform_all(X), **params)

    def predict_survival_at(self, X, times_days) -> np.ndarray:
        """Survival probabilities at ``times_days``, shape (n_samples, n_times)."""
        return self.steps[-1][1].predict_survival_at(self._transform_all(X), np.asarray(times_days, dtype=float))

    def transform_features(self, X) -> pd.DataFrame:
        """The model's input: ``X`` after every step but the last (named features)."""
        return self._transform_all(X)


def make_pipeline(
    features: FeatureBuilder | str | list[str] = "infusion+relapse",
    estimator: BaseEstimator | str = "coxph",
    **estimator_params,
) -> SurvivalPipeline:
    """Build ``features -> estimator``.

    Parameters
    ----------
    features : FeatureBuilder, str or list of str
        A FeatureBuilder, or a feature set name / column list for a default one.
    estimator : estimator or str
        An estimator, or a name from :data:`cartrisk.estimators.ESTIMATORS`.
    **estimator_params
        Passed to :func:`cartrisk.estimators.make_estimator` when ``estimator`` is a name.

    A FeatureBuilder whose ``coding`` is ``"auto"`` (a copy, when one is given) gets the estimator's categorical
    coding: reference-level coding for linear models (Cox, Coxnet: one level dropped, the reference named, so
    an unpenalised Cox model has no collinear columns), full one-hot coding for trees.
    """
    if not isinstance(features, FeatureBuilder):
        features = FeatureBuilder(feature_set=features)
    if isinstance(estimator, str):
        estimator = make_estimator(estimator, **estimator_params)
    elif estimator_params:
        estimator = estimator.set_params(**estimator_params)
    if features.coding == "auto":
        features = clone(features).set_params(coding=getattr(estimator, "categorical_coding", "onehot"))
    return SurvivalPipeline([("features", features), ("model", estimator)])


def build_features(cfg: ExperimentConfig) -> FeatureBuilder:
    """The experiment's feature builder: its feature set, declared covariates and allowed leakage suspects."""
    return FeatureBuilder(feature_set=cfg.features.set, allow_after_failure=cfg.features.allow_after_failure,
                          declared=cfg.data.extra_specs or None, allow_suspect=tuple(cfg.features.allow_suspect))


def build_pipeline(cfg: ExperimentConfig, model: ModelConfig) -> SurvivalPipeline:
    """The pipeline of one model of an experiment: its features, estimator and parameters, seeded by the experiment.

    An estimator with a ``random_state`` parameter that the model entry does not fix gets the experiment's seed.
    """
    pipe = make_pipeline(build_features(cfg), model.estimator, **model.params)
    est = pipe.named_steps["model"]
    if "random_state" in est.get_params() and "random_state" not in model.params:
        est.set_params(random_state=cfg.seed)
    return pipe
