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
throughout). For interventional TreeSHAP it uses its own float64 kernel (compiled with
numba, a dependency of shap): shap 0.51's interventional code stores leaf values,
thresholds and path weights as float32, so its values add up to the model only to about
1e-7 relative (1e-5 absolute on a forest's risk scale of ~100).
"""

from __future__ import annotations

import functools
import math
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


@functools.cache
def _kernels() -> tuple[Callable[..., np.ndarray], Callable[..., np.ndarray]]:
    """Compile (once per process, on first use) the float64 interventional TreeSHAP and predict kernels.

    shap's own interventional code stores leaf values, thresholds and path weights as float32, so its
    values add up only to about 1e-7 relative; these kernels keep everything in float64. For each
    explained row x, background row r and tree, the leaves that a hybrid of x and r can reach are
    enumerated; a leaf reached by taking the features in A from x and those in B from r adds
    v (|A|-1)! |B|! / (|A|+|B|)! to each feature of A and subtracts v |A|! (|B|-1)! / (|A|+|B|)! from
    each feature of B (the Shapley values of the game 1[A in S, B outside S]).
    """
    import numba  # a dependency of shap; deferred, as compiling takes a few seconds

    @numba.njit(cache=False)
    def child(node, f, row, row_nan, cl, cr, cd, thr):  # pragma: no cover - compiled
        if row_nan[f]:
            return cd[node]
        return cl[node] if row[f] <= thr[node] else cr[node]

    @numba.njit(cache=False)
    def explain(cl, cr, cd, feat, thr, val, X, R, w_pos, w_neg):  # pragma: no cover - compiled
        n, m = X.shape
        phi = np.zeros((n, m))
        status = np.zeros(m, dtype=np.int8)  # 0: feature not yet split differently; 1: taken from x; 2: from r
        path = np.zeros(m, dtype=np.int64)  # the features of status 1 or 2, in the order met
        capacity = 2 * m + 3  # each pending branching leaves at most two entries on the stack
        stack_node = np.empty(capacity, dtype=np.int64)  # node to visit, or -1 for "reset status"
        stack_depth = np.empty(capacity, dtype=np.int64)
        stack_a = np.empty(capacity, dtype=np.int64)
        stack_b = np.empty(capacity, dtype=np.int64)
        stack_feature = np.empty(capacity, dtype=np.int64)  # feature whose status to set on pop, or -1
        stack_status = np.empty(capacity, dtype=np.int8)
        X_nan = np.isnan(X)
        R_nan = np.isnan(R)
        for i in range(n):
            x, x_nan, phi_i = X[i], X_nan[i], phi[i]
            for t in range(cl.shape[0]):
                cl_t, cr_t, cd_t, feat_t, thr_t, val_t = cl[t], cr[t], cd[t], feat[t], thr[t], val[t]
                for j in range(R.shape[0]):
                    r, r_nan = R[j], R_nan[j]
                    top = 1
                    stack_node[0], stack_depth[0], stack_a[0], stack_b[0], stack_feature[0] = 0, 0, 0, 0, -1
                    while top > 0:
                        top -= 1
                        node, depth, a, b = stack_node[top], stack_depth[top], stack_a[top], stack_b[top]
                        if stack_feature[top] >= 0:
                            status[stack_feature[top]] = stack_status[top]
                        if node < 0:
                            continue
                        if cl_t[node] < 0:
                            if depth > 0:
                                plus = val_t[node] * w_pos[a, b]
                                minus = val_t[node] * w_neg[a, b]
                                for k in range(depth):
                                    if status[path[k]] == 1:
                                        phi_i[path[k]] += plus
                                    else:
                                        phi_i[path[k]] -= minus
                            continue
                        f = feat_t[node]
                        x_child = child(node, f, x, x_nan, cl_t, cr_t, cd_t, thr_t)
                        r_child = child(node, f, r, r_nan, cl_t, cr_t, cd_t, thr_t)
                        if x_child == r_child or status[f] == 1:
                            next_nodes = (x_child, -1)
                        elif status[f] == 2:
                            next_nodes = (r_child, -1)
                        else:
                            next_nodes = (-1, -1)
                        if next_nodes[0] >= 0:
                            stack_node[top], stack_depth[top], stack_a[top], stack_b[top] = next_nodes[0], depth, a, b
                            stack_feature[top] = -1
                            top += 1
                            continue
                        # f splits x and r apart for the first time on this path: x's side, then r's, then reset
                        path[depth] = f
                        stack_node[top], stack_feature[top], stack_status[top] = -1, f, 0
                        stack_node[top + 1], stack_depth[top + 1], stack_a[top + 1], stack_b[top + 1] = (
                            r_child,
                            depth + 1,
                            a,
                            b + 1,
                        )
                        stack_feature[top + 1], stack_status[top + 1] = f, 2
                        stack_node[top + 2], stack_depth[top + 2], stack_a[top + 2], stack_b[top + 2] = (
                            x_child,
                            depth + 1,
                            a + 1,
                            b,
                        )
                        stack_feature[top + 2], stack_status[top + 2] = f, 1
                        top += 3
        return phi / R.shape[0]

    @numba.njit(cache=False)
    def predict(cl, cr, cd, feat, thr, val, X):  # pragma: no cover - compiled
        out = np.zeros(X.shape[0])
        X_nan = np.isnan(X)
        for i in range(X.shape[0]):
            for t in range(cl.shape[0]):
                node = 0
                while cl[t, node] >= 0:
                    node = child(node, feat[t, node], X[i], X_nan[i], cl[t], cr[t], cd[t], thr[t])
                out[i] += val[t, node]
        return out

    return explain, predict


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


def _interventional(converted: dict[str, Any], X: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact interventional SHAP values in float64 (see :func:`_kernels`)."""
    explain, predict = _kernels()
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
    phi = explain(*arrays, X64, R64, w_pos, w_neg)
    expected = float(predict(*arrays, R64).mean()) + float(converted["base_offset"])
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
        return _interventional(converted, X32, data)
    explainer = _import_shap().TreeExplainer(converted, feature_perturbation="tree_path_dependent")
    values = np.asarray(explainer.shap_values(X32), dtype=np.float64)
    return values, float(np.ravel(explainer.expected_value)[0])
