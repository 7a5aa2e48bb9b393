"""The one pipeline serialiser, used by bundles and by MLflow runs alike: skops with one allow-list, never pickle.

- the fitted pipeline is a skops file (``pipeline.skops``). skops is given no trust of its own: before
  saving and before loading, every type in the file (:func:`skops.io.get_untrusted_types` lists even the
  ones skops would trust by default, once ``trusted`` is empty) is checked against :data:`TRUSTED_TYPES`,
  an explicit allow-list of the cartrisk, scikit-learn, scikit-survival and numpy types that cartrisk's
  pipelines hold; a pipeline holding anything else is refused, naming the type;
- an XGBoost booster is taken out of its estimator before the skops file is written and saved in XGBoost's
  own JSON model format (``booster.json``); loading reads it with ``Booster.load_model`` and puts it back in
  the estimator's ``model_``. The skops file therefore never holds a booster.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from cartrisk.exceptions import BundleError

__all__ = ["BOOSTER_FILE", "PIPELINE_FILE", "TRUSTED_TYPES", "dump_pipeline", "load_pipeline"]

PIPELINE_FILE = "pipeline.skops"
BOOSTER_FILE = "booster.json"

#: Types a bundle's skops file may hold beyond those skops trusts by default (scikit-learn's own estimators,
#: builtins, numpy arrays). Every entry is a data holder whose loading runs no code of the file's choosing.
TRUSTED_TYPES: tuple[str, ...] = (
    # cartrisk
    "cartrisk.modelling.pipeline.SurvivalPipeline",
    "cartrisk.modelling.features.FeatureBuilder",
    "cartrisk.estimators.linear.CoxPH",
    "cartrisk.estimators.linear.Coxnet",
    "cartrisk.estimators.forest.RSF",
    "cartrisk.estimators.forest.ExtraTrees",
    "cartrisk.estimators.boosting.GBSA",
    "cartrisk.estimators.xgb.XGBCox",
    "cartrisk.estimators.xgb.XGBAFT",
    "cartrisk.estimators.recalibrated.RecalibratedSurvival",
    "cartrisk.modelling.rules.D0_30Rule",
    "cartrisk.modelling.rules.ThreeWindowRule",
    "cartrisk.modelling.rules.PCPI",
    # scikit-survival
    "sksurv.functions.StepFunction",
    "sksurv.linear_model.coxph.BreslowEstimator",
    "sksurv.linear_model.coxph.CoxPHSurvivalAnalysis",
    "sksurv.linear_model.coxnet.CoxnetSurvivalAnalysis",
    "sksurv.ensemble.forest.RandomSurvivalForest",
    "sksurv.ensemble.forest.ExtraSurvivalTrees",
    "sksurv.ensemble.boosting.GradientBoostingSurvivalAnalysis",
    "sksurv.ensemble.survival_loss.CoxPH",
    "sksurv.tree.tree.SurvivalTree",
    "sksurv.tree.tree.ExtraSurvivalTree",
    # scikit-learn and numpy
    "sklearn.tree._tree.Tree",
    "numpy.dtype",
)


def _is_booster(model) -> bool:
    return model is not None and type(model).__module__.startswith("xgboost") and type(model).__name__ == "Booster"


def _booster_holder(pipeline) -> Any | None:
    """The last step when it keeps an XGBoost booster in ``model_`` (or wraps, as ``base_estimator``, a model that
    does: an updated bundle), else None."""
    steps = getattr(pipeline, "steps", None)
    if not steps:  # a bare estimator or a reference rule
        return None
    final = steps[-1][1]
    if _is_booster(getattr(final, "model_", None)):
        return final
    if _is_booster(getattr(getattr(final, "base_estimator", None), "model_", None)):
        return final
    return None


def _detach(holder):
    """A copy of the holder without its booster, and the booster."""
    if _is_booster(getattr(holder, "model_", None)):
        detached = copy.copy(holder)
        del detached.model_
        return detached, holder.model_
    base, detached = copy.copy(holder.base_estimator), copy.copy(holder)
    del base.model_
    detached.base_estimator = base
    return detached, holder.base_estimator.model_


def _check_types(untrusted: list[str], allowed: tuple[str, ...], what: str) -> None:
    refused = sorted(set(untrusted) - set(allowed))
    if refused:
        raise BundleError(f"{what} holds type(s) not on cartrisk's allow-list: {', '.join(refused)}. Bundles "
                          "store only cartrisk, scikit-learn, scikit-survival and numpy objects (see "
                          "cartrisk.bundle.serialise.TRUSTED_TYPES); build the pipeline with "
                          "cartrisk.modelling.make_pipeline")


def dump_pipeline(pipeline, directory: Path) -> list[str]:
    """Write the fitted pipeline (skops) and, for XGBoost families, its booster (XGBoost JSON).

    Returns the names of the files written. The caller's pipeline is not modified.
    """
    import skops.io as sio

    holder = _booster_holder(pipeline)
    to_save, written = pipeline, [PIPELINE_FILE]
    if holder is not None:
        detached, booster = _detach(holder)
        booster.save_model(str(directory / BOOSTER_FILE))
        to_save = copy.copy(pipeline)
        to_save.steps = [*pipeline.steps[:-1], (pipeline.steps[-1][0], detached)]
        written.append(BOOSTER_FILE)
    target = directory / PIPELINE_FILE
    sio.dump(to_save, target)
    try:
        _check_types(sio.get_untrusted_types(file=target), TRUSTED_TYPES, "the pipeline")
    except BundleError:
        for name in written:
            (directory / name).unlink(missing_ok=True)
        raise
    return written


def load_pipeline(path: Path, *, allowed: tuple[str, ...] = TRUSTED_TYPES, booster: Path | None = None):
    """Load a skops pipeline after checking its types against ``allowed``; re-attach a booster from JSON."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:  # skops raises assorted errors on a file that is not its format
        raise BundleError(f"{path}: not a skops file ({type(err).__name__}: {err})") from err
    _check_types(untrusted, allowed, str(path))
    pipeline = sio.load(path, trusted=untrusted)
    if booster is not None:
        import xgboost

        final = pipeline.steps[-1][1]
        if type(final).__name__ == "RecalibratedSurvival":
            final = final.base_estimator  # an updated bundle: the booster belongs to the wrapped model
        model = xgboost.Booster()
        model.load_model(str(booster))
        n_jobs = getattr(final, "n_jobs", None)
        model.set_param({"nthread": 1 if n_jobs is None else max(int(n_jobs), 0)})
        final.model_ = model
    return pipeline
