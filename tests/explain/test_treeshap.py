"""Tests for cartrisk.explain._treeshap: exact TreeSHAP for scikit-survival's tree ensembles.

The references are brute-force Shapley values over all 2^M coalitions, built from the
native models (their own ``predict`` and ``tree_`` structures), never from the converter.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sksurv.ensemble import ExtraSurvivalTrees, GradientBoostingSurvivalAnalysis, RandomSurvivalForest
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.tree import SurvivalTree
from sksurv.util import Surv

from cartrisk.explain._treeshap import _import_shap, to_shap_tree_model, tree_shap

N_FEATURES = 6
TOL = 1e-6


def _cohort(seed: int, n: int = 200, missing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Weibull proportional-hazards truth (shape 1.3, scale 200 days), uniform censoring, whole days."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 3] = rng.integers(0, 2, size=n)
    X[:, 5] = rng.integers(0, 4, size=n)
    beta = np.array([0.8, -0.5, 0.3, 0.6, 0.0, 0.2])
    event_days = 200.0 * (-np.log(rng.uniform(size=n)) / np.exp(X @ beta)) ** (1 / 1.3)
    censor_days = rng.uniform(30.0, 600.0, size=n)
    time = np.maximum(np.ceil(np.minimum(event_days, censor_days)), 1.0)
    if missing:
        X[rng.uniform(size=X.shape) < missing] = np.nan
    return X, Surv.from_arrays(event=event_days <= censor_days, time=time, name_event="os2_event", name_time="os2_days")


@pytest.fixture(scope="module")
def cohort() -> tuple[np.ndarray, np.ndarray]:
    return _cohort(seed=7)


def _make(name: str) -> object:
    return {
        "rsf": RandomSurvivalForest(n_estimators=12, min_samples_leaf=5, random_state=0),
        "est": ExtraSurvivalTrees(n_estimators=12, min_samples_leaf=5, random_state=1),
        "tree": SurvivalTree(min_samples_leaf=8, random_state=2),
        "rsf_low_memory": RandomSurvivalForest(n_estimators=8, min_samples_leaf=5, low_memory=True, random_state=3),
        "gbsa": GradientBoostingSurvivalAnalysis(n_estimators=25, max_depth=3, random_state=4),
        "gbsa_dropout": GradientBoostingSurvivalAnalysis(
            n_estimators=20, max_depth=2, dropout_rate=0.2, subsample=0.8, random_state=5
        ),
    }[name]


MODELS = ["rsf", "est", "tree", "rsf_low_memory", "gbsa", "gbsa_dropout"]
CURVE_MODELS = ["rsf", "est", "tree"]


@pytest.fixture(scope="module")
def fitted(cohort: tuple[np.ndarray, np.ndarray]) -> dict[str, object]:
    X, y = cohort
    return {name: _make(name).fit(X, y) for name in MODELS}


# ---------------------------------------------------------------- brute-force references
def _coalitions(m: int) -> np.ndarray:
    """(2^m, m) boolean membership of every coalition, coalition k holding the features of k's set bits."""
    return (np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1 == 1


def _shapley(values: np.ndarray) -> np.ndarray:
    """Exact Shapley values from a game's values over all coalitions, shape (n, 2^m) -> (n, m)."""
    m = int(round(math.log2(values.shape[1])))
    masks = np.arange(2**m)
    sizes = _coalitions(m).sum(axis=1)
    weight = np.array(
        [math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) if s < m else 0.0 for s in range(m + 1)]
    )
    phi = np.empty((values.shape[0], m))
    for i in range(m):
        without = masks[(masks >> i) & 1 == 0]
        phi[:, i] = (values[:, without | (1 << i)] - values[:, without]) @ weight[sizes[without]]
    return phi


def _interventional_values(f, X: np.ndarray, background: np.ndarray) -> np.ndarray:
    """v(S) = mean over background b of f(x_S, b_notS), for every row x and coalition S."""
    inside = _coalitions(X.shape[1])
    hybrid = np.where(inside[None, :, None, :], X[:, None, None, :], background[None, None, :, :])
    out = f(hybrid.reshape(-1, X.shape[1])).reshape(X.shape[0], inside.shape[0], background.shape[0])
    return out.mean(axis=2)


def _leaf_values(model, X_train: np.ndarray) -> list[tuple[object, dict[int, float]]]:
    """Each tree with its leaves' contributions to ``model.predict``, read off the native trees' own predict."""
    if isinstance(model, GradientBoostingSurvivalAnalysis):
        scale = getattr(model, "_scale", np.ones(len(model.estimators_)))
        trees = [(t, model.learning_rate * s) for t, s in zip(model.estimators_[:, 0], scale, strict=True)]
    elif isinstance(model, SurvivalTree):
        trees = [(model, 1.0)]
    else:
        trees = [(t, 1.0 / len(model.estimators_)) for t in model.estimators_]
    X_train = X_train.astype(np.float32)  # SurvivalTree.apply hands X to tree_.apply without casting it
    out = []
    for tree, factor in trees:
        leaves = tree.apply(X_train)
        prediction = tree.predict(X_train) * factor
        out.append((tree.tree_, dict(zip(leaves.tolist(), prediction.tolist(), strict=True))))
    return out


def _path_dependent_values(model, X_train: np.ndarray, X: np.ndarray) -> np.ndarray:
    """v(S) = sum over trees of E[tree(x_S, X_notS)] with the trees' training weights (Lundberg et al. 2020, Alg. 1)."""
    inside = _coalitions(X.shape[1])
    X32 = X.astype(np.float32).astype(np.float64)
    total = np.zeros((X.shape[0], inside.shape[0]))
    for tree, leaf_value in _leaf_values(model, X_train):
        weight = tree.weighted_n_node_samples
        mass = np.zeros((tree.node_count, X.shape[0], inside.shape[0]))
        mass[0] = 1.0
        for node in range(tree.node_count):  # scikit-learn numbers children after their parent
            left, right = tree.children_left[node], tree.children_right[node]
            if left < 0:
                total += mass[node] * leaf_value[node]
                continue
            f = tree.feature[node]
            default_left = tree.missing_go_to_left[node] == 1
            x_left = np.where(np.isnan(X32[:, f]), default_left, X32[:, f] <= tree.threshold[node])
            share = np.where(inside[None, :, f], x_left[:, None], weight[left] / weight[node])
            mass[left] += mass[node] * share
            mass[right] += mass[node] * (1.0 - share)
    return total


def _survival_at(model, horizon_days: float):
    return lambda rows: np.array([fn(horizon_days) for fn in model.predict_survival_function(rows)])


# ---------------------------------------------------------------- the converter
def _predict_converted(converted: dict, X: np.ndarray) -> np.ndarray:
    X32 = X.astype(np.float32).astype(np.float64)
    out = np.full(X.shape[0], float(converted["base_offset"]))
    for tree in converted["trees"]:
        for i, x in enumerate(X32):
            node = 0
            while tree["children_left"][node] >= 0:
                f = tree["features"][node]
                if np.isnan(x[f]):
                    node = tree["children_default"][node]
                elif x[f] <= tree["thresholds"][node]:
                    node = tree["children_left"][node]
                else:
                    node = tree["children_right"][node]
            out[i] += tree["values"][node, 0]
    return out


@pytest.mark.parametrize("name", MODELS)
def test_converted_trees_add_up_to_predict(name, fitted, cohort):
    X, _ = cohort
    converted = to_shap_tree_model(fitted[name])
    assert {
        "children_left",
        "children_right",
        "children_default",
        "features",
        "thresholds",
        "values",
        "node_sample_weight",
    } <= set(converted["trees"][0])
    np.testing.assert_allclose(
        _predict_converted(converted, X[:40]), fitted[name].predict(X[:40]), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", CURVE_MODELS)
@pytest.mark.parametrize("output", ["survival", "cumulative_hazard"])
def test_converted_trees_add_up_to_curves(name, output, fitted, cohort):
    X, _ = cohort
    model = fitted[name]
    method = model.predict_survival_function if output == "survival" else model.predict_cumulative_hazard_function
    times = model.unique_times_
    for horizon in (0.0, times[0], 0.5 * (times[3] + times[4]), times[10], 182.0, times[-1]):
        converted = to_shap_tree_model(model, output=output, horizon_days=horizon)
        expected = np.array([fn(horizon) for fn in method(X[:15])])
        np.testing.assert_allclose(_predict_converted(converted, X[:15]), expected, rtol=1e-12, atol=1e-12)


def test_converted_model_is_accepted_by_shap_in_both_modes(fitted, cohort):
    X, _ = cohort
    shap = _import_shap()
    converted = to_shap_tree_model(fitted["rsf"])
    path = shap.TreeExplainer(converted, feature_perturbation="tree_path_dependent")
    assert path.shap_values(X[:5].astype(np.float32)).shape == (5, N_FEATURES)
    background = X[100:120].astype(np.float32)
    masker = shap.maskers.Independent(background, max_samples=background.shape[0])
    interventional = shap.TreeExplainer(converted, data=masker, feature_perturbation="interventional")
    ours, expected = tree_shap(fitted["rsf"], X[:5], background=X[100:120])
    # shap's own interventional code keeps leaf values and weights in float32: equal to ~1e-7 relative only
    np.testing.assert_allclose(interventional.shap_values(X[:5].astype(np.float32)), ours, rtol=0, atol=1e-4)
    assert interventional.expected_value == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- exactness of the SHAP values
@pytest.mark.parametrize("name", ["rsf", "est", "gbsa", "gbsa_dropout", "rsf_low_memory"])
def test_interventional_equals_brute_force(name, fitted, cohort):
    X, _ = cohort
    model, rows, background = fitted[name], X[:4], X[150:170]
    phi, expected = tree_shap(model, rows, background=background)
    values = _interventional_values(model.predict, rows, background)
    np.testing.assert_allclose(phi, _shapley(values), rtol=0, atol=TOL)
    assert expected == pytest.approx(values[0, 0], abs=TOL)
    np.testing.assert_allclose(phi.sum(axis=1) + expected, model.predict(rows), rtol=0, atol=TOL)


@pytest.mark.parametrize("name", ["rsf", "est", "tree", "gbsa", "gbsa_dropout", "rsf_low_memory"])
def test_path_dependent_equals_brute_force(name, fitted, cohort):
    X, _ = cohort
    model, rows = fitted[name], X[:5]
    phi, expected = tree_shap(model, rows)
    values = _path_dependent_values(model, X, rows)
    np.testing.assert_allclose(phi, _shapley(values), rtol=0, atol=TOL)
    assert expected == pytest.approx(values[0, 0], abs=TOL)
    # the converted roots hold their leaves' training-weighted means, as scaled for predict: the dictionary is
    # self-consistent for any consumer, not only for shap (which recomputes internal values itself)
    roots = sum(tree["values"][0, 0] for tree in to_shap_tree_model(model)["trees"])
    assert roots == pytest.approx(values[0, 0], abs=TOL)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("with_background", [False, True])
def test_rows_add_up_to_predict(name, with_background, fitted, cohort):
    X, _ = cohort
    background = X[120:160] if with_background else None
    phi, expected = tree_shap(fitted[name], X[:60], background=background)
    np.testing.assert_allclose(phi.sum(axis=1) + expected, fitted[name].predict(X[:60]), rtol=0, atol=TOL)


@pytest.mark.parametrize("name", CURVE_MODELS)
@pytest.mark.parametrize("with_background", [False, True])
def test_survival_output_adds_up_to_predicted_survival(name, with_background, fitted, cohort):
    X, _ = cohort
    model = fitted[name]
    background = X[120:160] if with_background else None
    for horizon in (91.3125, 182.625, 365.25):
        phi, expected = tree_shap(model, X[:30], background=background, output="survival", horizon_days=horizon)
        np.testing.assert_allclose(phi.sum(axis=1) + expected, _survival_at(model, horizon)(X[:30]), rtol=0, atol=TOL)
        assert 0.0 <= expected <= 1.0


def test_survival_output_equals_brute_force(fitted, cohort):
    X, _ = cohort
    model, rows, background, horizon = fitted["rsf"], X[:3], X[150:165], 182.625
    phi, expected = tree_shap(model, rows, background=background, output="survival", horizon_days=horizon)
    values = _interventional_values(_survival_at(model, horizon), rows, background)
    np.testing.assert_allclose(phi, _shapley(values), rtol=0, atol=TOL)
    assert expected == pytest.approx(values[0, 0], abs=TOL)


def test_cumulative_hazard_output_adds_up(fitted, cohort):
    X, _ = cohort
    model = fitted["est"]
    phi, expected = tree_shap(model, X[:20], output="cumulative_hazard", horizon_days=200.0)
    chf = np.array([fn(200.0) for fn in model.predict_cumulative_hazard_function(X[:20])])
    np.testing.assert_allclose(phi.sum(axis=1) + expected, chf, rtol=0, atol=TOL)


def test_missing_values_follow_the_trees_default_direction():
    X, y = _cohort(seed=11, n=160, missing=0.15)
    model = RandomSurvivalForest(n_estimators=6, min_samples_leaf=5, random_state=0).fit(X, y)
    rows, background = X[:3], X[100:112]
    assert np.isnan(rows).any() and np.isnan(background).any()
    phi, expected = tree_shap(model, rows, background=background)
    np.testing.assert_allclose(phi, _shapley(_interventional_values(model.predict, rows, background)), atol=TOL)
    phi, expected = tree_shap(model, X[:40])
    np.testing.assert_allclose(phi.sum(axis=1) + expected, model.predict(X[:40]), rtol=0, atol=TOL)


# ---------------------------------------------------------------- inputs
class _Wrapper:
    """Stands for a cartrisk estimator: the fitted scikit-survival model lives in ``model_``."""

    def __init__(self, model):
        self.model_ = model

    def predict(self, X):
        return self.model_.predict(X)


def test_wrapper_with_model_attribute_and_data_frames(fitted, cohort):
    X, y = cohort
    columns = [f"x{i}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(X, columns=columns)
    model = RandomSurvivalForest(n_estimators=5, min_samples_leaf=5, random_state=0).fit(frame, y)
    wrapped = _Wrapper(model)
    phi, expected = tree_shap(wrapped, frame.iloc[:10], background=frame.iloc[50:60])
    native_phi, native_expected = tree_shap(model, X[:10], background=X[50:60])
    np.testing.assert_array_equal(phi, native_phi)
    assert expected == native_expected
    np.testing.assert_allclose(phi.sum(axis=1) + expected, wrapped.predict(frame.iloc[:10]), rtol=0, atol=TOL)
    with pytest.raises(ValueError, match=r"X columns \['x1', 'x0'"):
        tree_shap(wrapped, frame[["x1", "x0", "x2", "x3", "x4", "x5"]])


def test_rejects_unfitted_models(cohort):
    X, _ = cohort
    for model in (RandomSurvivalForest(), SurvivalTree(), GradientBoostingSurvivalAnalysis()):
        with pytest.raises(NotFittedError, match=f"This {type(model).__name__} is not fitted yet: call fit"):
            tree_shap(model, X[:2])

    class Unfitted:  # a cartrisk estimator before fit has no model_
        __module__ = "cartrisk.estimators.forest"

    with pytest.raises(NotFittedError, match="Unfitted has no fitted `model_`: call fit"):
        to_shap_tree_model(Unfitted())


def test_rejects_unsupported_models(cohort):
    X, y = cohort
    cox = CoxPHSurvivalAnalysis().fit(X, y)
    for model in (cox, _Wrapper(cox), "rsf"):
        with pytest.raises(
            TypeError,
            match="TreeSHAP supports RandomSurvivalForest, ExtraSurvivalTrees, SurvivalTree, "
            "GradientBoostingSurvivalAnalysis .* got (CoxPHSurvivalAnalysis|str)",
        ):
            tree_shap(model, X[:2])
    ipcw = GradientBoostingSurvivalAnalysis(loss="ipcwls", n_estimators=3).fit(X, y)
    with pytest.raises(ValueError, match="loss='ipcwls' predicts exp.* only loss='coxph' is supported"):
        tree_shap(ipcw, X[:2])


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        (
            "gbsa",
            {"output": "survival", "horizon_days": 100.0},
            r"S\(t\) = exp\(-H0\(t\) exp\(f\(x\)\)\) is not additive",
        ),
        ("rsf_low_memory", {"output": "survival", "horizon_days": 100.0}, "fitted with low_memory=True"),
        ("rsf", {"output": "survival"}, "horizon_days is required"),
        ("rsf", {"output": "survival", "horizon_days": -1.0}, "horizon_days must be a finite number >= 0"),
        ("rsf", {"output": "cumulative_hazard", "horizon_days": 1e5}, "is beyond the last training time"),
        ("rsf", {"output": "hazard"}, "output must be one of"),
        ("rsf", {"horizon_days": 365.25}, "horizon_days is only used with output='survival'"),
    ],
)
def test_rejects_bad_outputs(name, kwargs, message, fitted, cohort):
    X, _ = cohort
    with pytest.raises(ValueError, match=message):
        tree_shap(fitted[name], X[:2], **kwargs)


def test_rejects_bad_data(fitted, cohort):
    X, _ = cohort
    with pytest.raises(ValueError, match=r"X must be 2-D with 6 columns \(as in fit\); got shape \(2, 5\)"):
        tree_shap(fitted["rsf"], X[:2, :5])
    with pytest.raises(ValueError, match=r"background must be 2-D with 6 columns"):
        tree_shap(fitted["rsf"], X[:2], background=X[0])
    with pytest.raises(ValueError, match="background has no rows"):
        tree_shap(fitted["rsf"], X[:2], background=X[:0])
    bad = X[:2].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="X contains infinite values"):
        tree_shap(fitted["rsf"], bad)


@pytest.mark.parametrize("with_background", [False, True], ids=["path-dependent", "interventional"])
def test_every_core_gives_the_same_values_as_one(with_background, fitted, cohort):
    """Path-dependent TreeSHAP over forked processes and the interventional kernel over threads: same numbers."""
    X_train, _ = cohort
    model = fitted["rsf"]
    rng = np.random.default_rng(3)
    rows = X_train[rng.integers(0, len(X_train), size=2400)] + rng.normal(scale=0.05, size=(2400, X_train.shape[1]))
    if with_background:
        rows = rows[:300]
    background = X_train[:20] if with_background else None
    one, expected_one = tree_shap(model, rows, background=background, n_jobs=1)
    two, expected_two = tree_shap(model, rows, background=background, n_jobs=2)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-12)
    assert expected_two == expected_one
    np.testing.assert_allclose(two.sum(axis=1) + expected_two, model.predict(rows.astype(np.float32)), atol=1e-9)
