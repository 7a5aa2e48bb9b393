"""The one pipeline serialiser, used by bundles and by MLflow runs alike: skops with one allow-list, never pickle.

- the fitted pipeline is a skops file (``pipeline.skops``). skops is given no trust of its own: before
  saving and before loading, every node of the file's object tree (its ``schema.json``: each object, type,
  function and array it will construct) is checked against :data:`ALLOWED_TYPES`, an explicit allow-list of
  the cartrisk, scikit-learn, scikit-survival, numpy and builtin types that cartrisk's pipelines hold. The
  types skops trusts by default (every scikit-learn estimator, ``FunctionTransformer`` among them, and numpy's
  functions) are *not* trusted unless listed, and no function or method is ever loaded; a file holding anything
  else is refused, naming the type;
- an XGBoost booster is taken out of its estimator before the skops file is written and saved in XGBoost's
  own JSON model format (``booster.json``); loading reads it with ``Booster.load_model`` and puts it back in
  the estimator's ``model_``. The skops file therefore never holds a booster.
"""

from __future__ import annotations

import copy
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cartrisk.exceptions import BundleError

__all__ = ["ALLOWED_TYPES", "BOOSTER_FILE", "PIPELINE_FILE", "TRUSTED_TYPES", "dump_pipeline", "file_types",
           "load_pipeline"]

PIPELINE_FILE = "pipeline.skops"
BOOSTER_FILE = "booster.json"

#: cartrisk's and scikit-survival's types a bundle's skops file may hold (:data:`ALLOWED_TYPES` adds the
#: scikit-learn, numpy and builtin ones). Every entry is a data holder whose loading runs no code of the file's
#: choosing.
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


#: Every type a skops file of cartrisk may hold: :data:`TRUSTED_TYPES` and the scikit-learn, numpy and builtin
#: types inside them. Nothing else is loaded, whatever skops itself would trust.
ALLOWED_TYPES: tuple[str, ...] = (
    *TRUSTED_TYPES,
    # scikit-learn: the preprocessing of FeatureBuilder, and what the tree ensembles and GBSA keep
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.impute._base.MissingIndicator",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    # numpy
    "numpy.ndarray",
    "numpy.random.mtrand.RandomState",
    *(f"numpy.{t}" for t in ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                             "float16", "float32", "float64", "object_", "str_")),
    # builtins
    *(f"builtins.{t}" for t in ("dict", "list", "tuple", "set", "slice", "str", "int", "float", "bool", "NoneType",
                                "bytes")),
)
#: skops loaders that would construct a callable from the file: never allowed, whatever the name.
_CALLABLE_LOADERS = ("FunctionNode", "MethodNode", "PartialNode", "OperatorFuncNode")


def _nodes(tree: Any) -> Iterator[dict]:
    """Every node of a skops object tree (each dict with ``__class__`` and ``__module__``)."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__class__" in item and "__module__" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def file_types(path: Path) -> tuple[set[str], set[str]]:
    """``(types, callables)``: the fully qualified names of every type in a skops file, and of the functions or
    methods it would construct, read from its object tree without constructing anything.

    Raises
    ------
    BundleError
        The file is not a skops file (not a zip archive with a ``schema.json``).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json").decode("utf-8"))
    except (OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path}: not a skops file ({type(err).__name__}: {err}); the file is damaged or was "
                          "replaced: export the model again") from None
    types, callables = set(), set()
    for node in _nodes(schema):
        name = f"{node['__module__']}.{node['__class__']}"
        (callables if node.get("__loader__") in _CALLABLE_LOADERS else types).add(name)
    return types, callables


def _audit(path: Path, allowed: tuple[str, ...], what: str) -> set[str]:
    """The types of the file, after refusing any callable and any type not in ``allowed``."""
    types, callables = file_types(path)
    if callables:
        raise BundleError(f"{what} holds function(s) or method(s) {', '.join(sorted(callables))}; a cartrisk "
                          "pipeline stores none, so the file was altered or not made by cartrisk. Export the model "
                          "again")
    _check_types(sorted(types), allowed, what)
    return types

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
        _audit(target, ALLOWED_TYPES, "the pipeline")
    except BundleError:
        for name in written:
            (directory / name).unlink(missing_ok=True)
        raise
    return written


def load_pipeline(path: Path, *, allowed: tuple[str, ...] = ALLOWED_TYPES, booster: Path | None = None):
    """Load a skops pipeline after checking every type in it against ``allowed``; re-attach a booster from JSON.

    Raises
    ------
    BundleError
        Naming the file: not a skops file, a type outside ``allowed`` or a function in it, a file skops cannot
        construct, or a booster file XGBoost cannot read.
    """
    import skops.io as sio

    types = _audit(Path(path), allowed, str(path))
    try:  # trusted: exactly the audited types (skops adds its defaults, which every node above had to pass too)
        pipeline = sio.load(path, trusted=sorted(types))
    except Exception as err:  # skops raises assorted errors on a damaged file
        raise BundleError(f"{path}: cannot be loaded ({type(err).__name__}: {err}); the file is damaged: export the "
                          "model again") from None
    if booster is not None:
        import xgboost

        from cartrisk.estimators import XGBAFT, XGBCox

        final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else None
        if type(final).__name__ == "RecalibratedSurvival":
            final = final.base_estimator  # an updated bundle: the booster belongs to the wrapped model
        if not isinstance(final, XGBCox | XGBAFT):
            raise BundleError(f"{booster}: a booster file beside a pipeline whose model is not an XGBoost family; "
                              "the bundle was altered: export it again")
        model = xgboost.Booster()
        try:
            model.load_model(str(booster))
        except xgboost.core.XGBoostError as err:
            reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else "unreadable"
            raise BundleError(f"{booster}: not an XGBoost model file XGBoost can read ({reason}); the file is "
                              "damaged: export the model again") from None
        n_jobs = getattr(final, "n_jobs", None)
        model.set_param({"nthread": 1 if n_jobs is None else max(int(n_jobs), 0)})
        final.model_ = model
    return pipeline
