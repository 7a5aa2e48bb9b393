"""Exact TreeSHAP for scikit-survival's tree ensembles.

``shap.TreeExplainer`` does not know scikit-survival's models. This module rewrites a
fitted :class:`~sksurv.ensemble.RandomSurvivalForest`,
:class:`~sksurv.ensemble.ExtraSurvivalTrees`, :class:`~sksurv.tree.SurvivalTree` or
:class:`~sksurv.ensemble.GradientBoostingSurvivalAnalysis` (``loss="coxph"``) into the
custom tree-ensemble dictionary that ``shap.TreeExplainer`` accepts, so that the fast
exact algorithms (path-dependent and interventional TreeSHAP) apply.

What the leaves hold, so that the trees add up to the model's own numbers:

* forests and single trees, ``output="risk"``: each tree's ``predict`` is the sum of its
  leaf's Nelson-Aalen cumulative hazard over the training event times
  (``tree_.value[leaf, is_event_time_, 0].sum()``, or ``tree_.value[leaf, 0, 0]`` when
  fitted with ``low_memory=True``) and the forest averages the trees, so a leaf holds
  that sum divided by the number of trees;
* forests and single trees, ``output="survival"`` / ``"cumulative_hazard"``: the forest's
  survival (cumulative hazard) function is the average of the trees' Kaplan-Meier
  (Nelson-Aalen) curves, so a leaf holds its curve at the horizon divided by the number
  of trees; the horizon is looked up in ``unique_times_`` as
  :class:`sksurv.functions.StepFunction` does (last time at or before the horizon;
  horizons before the first time take the first time's value);
* gradient boosting: ``predict`` is the raw score ``f(x) = sum_m learning_rate * scale_m
  * tree_m(x)`` (``init="zero"``, so no offset; ``scale_m`` is 1 without dropout), the
  log hazard ratio. Its survival ``exp(-H0(t) exp(f(x)))`` is not a sum over trees, so
  only ``output="risk"`` is offered: explain ``f`` (a feature that raises ``f`` lowers the
  predicted survival at every horizon).

Internal nodes get the training-weight average of their leaves' values, so that the
root holds the path-dependent expected value; ``node_sample_weight`` is the training
(bootstrap-)weighted count ``tree_.weighted_n_node_samples``. Missing values follow
scikit-learn's ``missing_go_to_left``.

:func:`tree_shap` runs path-dependent TreeSHAP with ``shap.TreeExplainer`` (float64
throughout), in forked processes over the cores for large inputs (shap's C code holds the GIL).
For interventional TreeSHAP it uses its own float64 kernel (:mod:`._treeshap_kernels`, compiled
with numba, a dependency of shap, and cached on disk), over numba's threads: shap 0.51's
interventional code stores leaf values, thresholds and path weights as float32, so its values add
up to the model only to about 1e-7 relative (1e-5 absolute on a forest's risk scale of ~100).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from sksurv.ensemble import ExtraSurvivalTrees, GradientBoostingSurvivalAnalysis, RandomSurvivalForest
from sksurv.tree import SurvivalTree

__all__ = ["to_shap_tree_model", "tree_shap"]

Output = Literal["risk", "survival", "cumulative_hazard"]
_OUTPUTS = ("risk", "survival", "cumulative_hazard")
_FORESTS = (RandomSurvivalForest, ExtraSurvivalTrees)
_SUPPORTED = (RandomSurvivalForest, ExtraSurvivalTrees, SurvivalTree, GradientBoostingSurvivalAnalysis)
_SUPPORTED_NAMES = "RandomSurvivalForest, ExtraSurvivalTrees, SurvivalTree, GradientBoostingSurvivalAnalysis"


def _resolve(model: Any) -> Any:
    """Return the fitted scikit-survival estimator behind ``model`` (itself or its ``model_``)."""
    for _ in range(4):  # a wrapper of a wrapper at most; guards against self-references
        if isinstance(model, _SUPPORTED):
            break
        if hasattr(model, "model_"):
            model = model.model_
            continue
        if type(model).__module__.startswith("cartrisk."):
            raise NotFittedError(
                f"{type(model).__name__} has no fitted `model_`: call fit before computing SHAP values."
            )
        raise TypeError(
            f"TreeSHAP supports {_SUPPORTED_NAMES} (or an object whose `model_` is one); "
            f"got {type(model).__name__}. For a Pipeline, explain its final step on the transformed features."
        )
    else:
        raise TypeError(f"could not find a supported scikit-survival model behind {type(model).__name__}.")
    attribute = "tree_" if isinstance(model, SurvivalTree) else "estimators_"
    check_is_fitted(
        model,
        attribute,
        msg=f"This {type(model).__name__} is not fitted yet: call fit before computing SHAP values.",
    )
    return model


def _horizon_column(unique_times: np.ndarray, horizon_days: float | None) -> int:
    """Index of ``unique_times`` whose value a step function takes at ``horizon_days``."""
    if horizon_days is None:
        raise ValueError("horizon_days is required when output is 'survival' or 'cumulative_hazard'.")
    horizon = float(horizon_days)
    if not np.isfinite(horizon) or horizon < 0:
        raise ValueError(f"horizon_days must be a finite number >= 0; got {horizon_days!r}.")
    if horizon > unique_times[-1]:
        raise ValueError(
            f"horizon_days={horizon:g} is beyond the last training time ({unique_times[-1]:g} days), "
            "where the model's survival function is not defined."
        )
    return int(np.searchsorted(unique_times, max(horizon, unique_times[0]), side="right") - 1)


def _fill_internal_values(left: np.ndarray, right: np.ndarray, weight: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Give each internal node the weight-averaged value of its leaves (bottom-up, one depth level at a time)."""
    values = values.astype(np.float64, copy=True)
    levels = []
    frontier = np.array([0])
    while frontier.size:
        levels.append(frontier)
        internal = frontier[left[frontier] >= 0]
        frontier = np.concatenate([left[internal], right[internal]])
    for level in reversed(levels):
        internal = level[left[level] >= 0]
        lft, rgt = left[internal], right[internal]
        w_l, w_r = weight[lft], weight[rgt]
        values[internal] = (w_l * values[lft] + w_r * values[rgt]) / (w_l + w_r)
    return values


def _tree_dict(tree: Any, leaf_values: np.ndarray) -> dict[str, np.ndarray]:
    """One scikit-learn ``tree_`` as shap's custom tree dictionary with the given node values."""
    left = tree.children_left.astype(np.int32)
    right = tree.children_right.astype(np.int32)
    is_leaf = left < 0
    go_left = np.asarray(getattr(tree, "missing_go_to_left", np.ones(left.shape, dtype=bool)), dtype=bool)
    weight = tree.weighted_n_node_samples.astype(np.float64)
    return {
        "children_left": left,
        "children_right": right,
        "children_default": np.where(is_leaf, -1, np.where(go_left, left, right)).astype(np.int32),
        "features": np.where(is_leaf, -1, tree.feature).astype(np.int32),
        "thresholds": np.where(is_leaf, 0.0, tree.threshold).astype(np.float64),
        "values": _fill_internal_values(left, right, weight, leaf_values).reshape(-1, 1),
        "node_sample_weight": weight,
    }


def _survival_tree_dicts(model: Any, output: str, horizon_days: float | None) -> list[dict[str, np.ndarray]]:
    trees = list(model.estimators_) if isinstance(model, _FORESTS) else [model]
    n_trees = len(trees)
    if output != "risk":
        if model.low_memory:
            raise ValueError(
                f"{type(model).__name__} was fitted with low_memory=True, which stores no survival or "
                "cumulative hazard curves: refit with low_memory=False or use output='risk'."
            )
        column = _horizon_column(model.unique_times_, horizon_days)
        which = 1 if output == "survival" else 0
    converted = []
    for tree in trees:
        value = tree.tree_.value
        if output != "risk":
            leaf = value[:, column, which]
        elif tree.low_memory:
            leaf = value[:, 0, 0]
        else:
            leaf = value[:, tree.is_event_time_, 0].sum(axis=1)
        converted.append(_tree_dict(tree.tree_, np.asarray(leaf, dtype=np.float64) / n_trees))
    return converted


def _boosting_tree_dicts(model: GradientBoostingSurvivalAnalysis, output: str) -> list[dict[str, np.ndarray]]:
    if model.loss != "coxph":
        raise ValueError(
            f"GradientBoostingSurvivalAnalysis with loss={model.loss!r} predicts exp(sum of trees), which is not "
            "additive over trees; only loss='coxph' is supported."
        )
    if output != "risk":
        raise ValueError(
            "GradientBoostingSurvivalAnalysis: S(t) = exp(-H0(t) exp(f(x))) is not additive over trees; "
            "explain the log hazard ratio f(x) with output='risk' (higher f means lower survival at every t)."
        )
    if not (isinstance(model.init_, str) and model.init_ == "zero"):
        raise ValueError(f"GradientBoostingSurvivalAnalysis with init_={model.init_!r} is not supported.")
    # scikit-survival's _raw_predict multiplies tree m by learning_rate * _scale[m] when fitted with dropout
    scale = getattr(model, "_scale", None)
    converted = []
    for m, tree in enumerate(model.estimators_[:, 0]):
        factor = model.learning_rate * (1.0 if scale is None else scale[m])
        converted.append(_tree_dict(tree.tree_, tree.tree_.value[:, 0, 0] * factor))
    return converted


def to_shap_tree_model(model: Any, *, output: Output = "risk", horizon_days: float | None = None) -> dict[str, Any]:
    """Convert a fitted scikit-survival tree model into shap's custom tree-ensemble dictionary.

    Parameters
    ----------
    model : RandomSurvivalForest, ExtraSurvivalTrees, SurvivalTree or GradientBoostingSurvivalAnalysis
        Fitted; or any object whose ``model_`` attribute holds one (cartrisk's estimators).
    output : {"risk", "survival", "cumulative_hazard"}, default "risk"
        ``"risk"``: the trees add up to ``model.predict(X)`` (for a forest, the sum of the
        ensemble cumulative hazard over the training event times; for gradient boosting,
        the log hazard ratio). ``"survival"``: they add up to the forest's (tree's)
        ``predict_survival_function(X)`` evaluated at ``horizon_days``, a probability.
        ``"cumulative_hazard"``: to ``predict_cumulative_hazard_function(X)`` at the horizon.
        Gradient boosting supports ``"risk"`` only.
    horizon_days : float, optional
        The horizon, in days, for ``"survival"`` and ``"cumulative_hazard"``.

    Returns
    -------
    dict
        ``{"trees": [...], "base_offset", "tree_output", "input_dtype", "internal_dtype",
        "output", "horizon_days", "n_features"}``, accepted by ``shap.TreeExplainer``.
        Each tree has ``children_left``, ``children_right``, ``children_default``,
        ``features``, ``thresholds``, ``values`` (n_nodes, 1) and ``node_sample_weight``.
        ``input_dtype`` is float32 because scikit-learn's trees compare float32 inputs.

    Raises
    ------
    TypeError
        ``model`` is not a supported type.
    sklearn.exceptions.NotFittedError
        ``model`` is not fitted.
    ValueError
        An unknown ``output``, a missing or out-of-range horizon, a ``low_memory`` forest
        asked for curves, or gradient boosting asked for anything but the risk score.
    """
    if output not in _OUTPUTS:
        raise ValueError(f"output must be one of {_OUTPUTS}; got {output!r}.")
    if output == "risk" and horizon_days is not None:
        raise ValueError("horizon_days is only used with output='survival' or 'cumulative_hazard'.")
    estimator = _resolve(model)
    if isinstance(estimator, GradientBoostingSurvivalAnalysis):
        trees = _boosting_tree_dicts(estimator, output)
    else:
        trees = _survival_tree_dicts(estimator, output, horizon_days)
    return {
        "trees": trees,
        "base_offset": 0.0,
        "tree_output": "raw_value",
        "input_dtype": np.float32,
        "internal_dtype": np.float64,
        "output": output,
        "horizon_days": None if output == "risk" else float(horizon_days),
        "n_features": int(estimator.n_features_in_),
    }


def _kernels() -> tuple[Callable[..., np.ndarray], Callable[..., np.ndarray]]:
    """The float64 interventional TreeSHAP and predict kernels (:mod:`cartrisk.explain._treeshap_kernels`: compiled
    by numba on first use and cached on disk, so later processes load them instead of compiling)."""
    from cartrisk.explain import _treeshap_kernels as kernels  # deferred: numba's import costs a few hundred ms

    return kernels.explain, kernels.predict


def _dense(converted: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """Stack the trees' arrays into (n_trees, max_nodes) arrays, children padded with -1."""
    trees = converted["trees"]
    width = max(len(t["children_left"]) for t in trees)
    out = []
    for key, fill, dtype in [
        ("children_left", -1, np.int64),
        ("children_right", -1, np.int64),
        ("children_default", -1, np.int64),
        ("features", -1, np.int64),
        ("thresholds", 0.0, np.float64),
        ("values", 0.0, np.float64),
    ]:
        array = np.full((len(trees), width), fill, dtype=dtype)
        for i, tree in enumerate(trees):
            column = np.ravel(tree[key])
            array[i, : column.size] = column
        out.append(array)
    return tuple(out)


def _interventional(converted: dict[str, Any], X: np.ndarray, background: np.ndarray, n_jobs: int | None = None
                    ) -> tuple[np.ndarray, float]:
    """Exact interventional SHAP values in float64 (see :func:`_kernels`)."""
    explain, predict = _kernels()
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(min(numba.config.NUMBA_NUM_THREADS, _cores() if n_jobs is None else max(1, int(n_jobs))))
    arrays = _dense(converted)
    m = X.shape[1]
    factorial = np.array([math.factorial(k) for k in range(m + 1)], dtype=np.float64)
    w_pos = np.zeros((m + 1, m + 1))
    w_neg = np.zeros((m + 1, m + 1))
    for a in range(m + 1):
        for b in range(m + 1 - a):
            if a > 0:
                w_pos[a, b] = factorial[a - 1] * factorial[b] / factorial[a + b]
            if b > 0:
                w_neg[a, b] = factorial[a] * factorial[b - 1] / factorial[a + b]
    X64 = np.ascontiguousarray(X, dtype=np.float64)
    R64 = np.ascontiguousarray(background, dtype=np.float64)
    try:
        phi = explain(*arrays, X64, R64, w_pos, w_neg)
        expected = float(predict(*arrays, R64).mean()) + float(converted["base_offset"])
    finally:
        numba.set_num_threads(threads)
    return phi, expected


def _import_shap() -> ModuleType:
    """Import shap, deferred so that importing cartrisk stays cheap."""
    with warnings.catch_warnings():
        # shap 0.51's colour maps call Colormap.set_bad/set_over/set_under at import, which matplotlib
        # marks as pending deprecation: harmless to us, and outside our control.
        warnings.filterwarnings(
            "ignore", message="The set_.* function will be deprecated", category=PendingDeprecationWarning
        )
        import shap
    return shap


def _as_matrix(data: Any, estimator: Any, name: str) -> np.ndarray:
    """Validate ``data`` against the fitted model and cast it to float32, as scikit-learn's trees do."""
    names = getattr(estimator, "feature_names_in_", None)
    if isinstance(data, pd.DataFrame) and names is not None and list(data.columns) != list(names):
        raise ValueError(f"{name} columns {list(data.columns)} differ from those seen in fit {list(names)}.")
    array = np.asarray(data, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"{name} must be 2-D with {estimator.n_features_in_} columns (as in fit); got shape {array.shape}."
        )
    if np.isinf(array).any():
        raise ValueError(f"{name} contains infinite values.")
    return array.astype(np.float32)


def tree_shap(
    model: Any,
    X: Any,
    *,
    background: Any = None,
    output: Output = "risk",
    horizon_days: float | None = None,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, float]:
    """Exact SHAP values of a scikit-survival tree model (TreeSHAP, float64).

    Parameters
    ----------
    model : estimator
        As in :func:`to_shap_tree_model`.
    X : array-like, shape (n_samples, n_features)
        The patients to explain, in the model's feature space.
    background : array-like, shape (n_background, n_features), optional
        With a background, interventional TreeSHAP (cartrisk's float64 kernel): the value
        of a coalition S is the mean over background rows b of f(x_S, b_notS), all rows used
        (no subsampling); cost grows with n_samples x n_background x n_trees. Without one,
        path-dependent TreeSHAP (``shap.TreeExplainer``) over the training weights stored
        in the trees.
    output : {"risk", "survival", "cumulative_hazard"}, default "risk"
        What is explained; see :func:`to_shap_tree_model`.
    horizon_days : float, optional
        The horizon for ``"survival"`` and ``"cumulative_hazard"``.
    n_jobs : int, optional
        Cores to use (default: all this process may use). Interventional: numba threads over the explained
        rows (``numba.set_num_threads``). Path-dependent: shap's C code in forked processes on Linux, one
        block of rows each, from 2,000 rows up (one process below).

    Returns
    -------
    shap_values : ndarray, shape (n_samples, n_features)
        Each row adds up to the explained output minus ``expected_value``.
    expected_value : float
        The mean output over the background (interventional), or over the training
        weights (path-dependent).
    """
    converted = to_shap_tree_model(model, output=output, horizon_days=horizon_days)
    estimator = _resolve(model)
    X32 = _as_matrix(X, estimator, "X")
    if background is not None:
        data = _as_matrix(background, estimator, "background")
        if data.shape[0] == 0:
            raise ValueError("background has no rows.")
        return _interventional(converted, X32, data, n_jobs)
    explainer = _import_shap().TreeExplainer(converted, feature_perturbation="tree_path_dependent")
    values = _path_dependent(explainer, X32, n_jobs)
    return values, float(np.ravel(explainer.expected_value)[0])


#: Rows below which path-dependent TreeSHAP stays in one process (forking costs more than it saves).
_PARALLEL_MIN_ROWS = 2000
_EXPLAINER: Any = None  # the explainer forked workers inherit


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _shap_rows(rows: np.ndarray) -> np.ndarray:
    return np.asarray(_EXPLAINER.shap_values(rows), dtype=np.float64)


def _path_dependent(explainer: Any, X32: np.ndarray, n_jobs: int | None) -> np.ndarray:
    """shap's path-dependent TreeSHAP (C code that holds the GIL), over ``n_jobs`` forked processes for large X."""
    global _EXPLAINER
    jobs = _cores() if n_jobs is None else max(1, int(n_jobs))
    jobs = min(jobs, max(1, X32.shape[0] // (_PARALLEL_MIN_ROWS // 2)))
    if jobs == 1 or not sys.platform.startswith("linux"):
        return np.asarray(explainer.shap_values(X32), dtype=np.float64)
    _EXPLAINER = explainer
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            parts = pool.map(_shap_rows, np.array_split(X32, jobs))
    finally:
        _EXPLAINER = None
    return np.concatenate(parts, axis=0)
