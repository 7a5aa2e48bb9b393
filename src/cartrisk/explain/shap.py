"""SHAP explanations of a fitted cartrisk pipeline, for every model family, and their figures.

:func:`explain` explains the final estimator of a fitted :class:`~cartrisk.modelling.pipeline.SurvivalPipeline`
on the pipeline's transformed, named features (``pipe.transform_features(X)``); each feature maps back
to its data-dictionary column through the FeatureBuilder's ``feature_sources_``, and
:meth:`Explanation.by_column` sums one-hot levels, missing indicators and derived forms per column.

Which algorithm, by family and output (``output="risk"``: the estimator's ``predict``;
``output="survival"``: its ``predict_survival_at`` at one horizon)
-----------------------------------------------------------------------------------------------------
==================  ==============================================  =================================
family              risk score                                      survival at a horizon
==================  ==============================================  =================================
xgb_cox, xgb_aft    TreeSHAP on the booster (xgboost's              model-agnostic (below)
                    ``pred_contribs``, path-dependent), exact;
                    xgb_aft's ``predict`` is minus the margin, so
                    the signs are flipped to add up to ``predict``
rsf, extra_trees    exact TreeSHAP (:mod:`cartrisk.explain._treeshap`)      exact TreeSHAP (same)
gbsa                exact TreeSHAP (:mod:`cartrisk.explain._treeshap`)      model-agnostic
coxph, coxnet       exact linear SHAP, beta_j (x_j - mean_b b_j)    model-agnostic
anything else       model-agnostic                                  model-agnostic
==================  ==============================================  =================================

Model-agnostic: brute force over all 2^M coalitions (exact) when the model has at most
``max_exact_features`` features, else sampled permutations (``exact=False``).

Interventional values (linear, brute force, permutations, TreeSHAP with ``feature_perturbation=
"interventional"``) treat features as independent: the value of a coalition S for patient x is the
mean over background rows b of f(x_S, b_notS). Path-dependent TreeSHAP weighs the background by the
training data stored in the trees. Every result adds up: ``values.sum(1) + base_value ==
predictions`` (checked; :attr:`Explanation.additivity_error`).

The survival probability S(t | x) = S0(t) ** exp(score) of Cox-type models (coxph, coxnet, xgb_cox,
gbsa) is not additive in the features. For speed, their survival at the horizon is evaluated as
exp(-H0(t) exp(score)) with H0(t) read off the model itself (checked against ``predict_survival_at``
to 1e-9 on the background, else ``predict_survival_at`` is called directly). This is the spirit of
SurvSHAP(t) (Krzyzinski et al. 2023) at fixed horizons.

Permutation sampling: cartrisk's own antithetic permutation estimator (each permutation and its
reverse, a Generator seeded by ``random_state``), the algorithm of shap's ``PermutationExplainer``.
shap's class is not used because it reseeds NumPy's global random state (``np.random.seed`` in its
constructor, even with ``seed=None``), which cartrisk never does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from cartrisk.exceptions import CartriskError
from cartrisk.explain._treeshap import tree_shap
from cartrisk.explain.explanation import Explanation, encode_column
from cartrisk.units import months_to_days

__all__ = ["explain"]

Output = Literal["risk", "survival"]
_CHUNK_ELEMENTS = 4_000_000  # hybrid-row elements built at once by the model-agnostic engines
_LINK_TOL = 1e-9
_RISK_SCALES = {
    "coxph": "log partial hazard (linear predictor; risk score)",
    "coxnet": "log partial hazard (linear predictor; risk score)",
    "xgb_cox": "log hazard ratio (booster margin; risk score)",
    "gbsa": "log hazard ratio (boosted trees; risk score)",
    "xgb_aft": "minus the predicted log survival time (minus the booster margin; risk score)",
    "rsf": "ensemble cumulative hazard summed over the event times (risk score)",
    "extra_trees": "ensemble cumulative hazard summed over the event times (risk score)",
}


def _family(estimator: Any) -> str:
    from sksurv.ensemble import ExtraSurvivalTrees, GradientBoostingSurvivalAnalysis, RandomSurvivalForest
    from sksurv.linear_model import CoxnetSurvivalAnalysis, CoxPHSurvivalAnalysis

    from cartrisk import estimators as e

    kinds = [(e.XGBAFT, "xgb_aft"), (e.XGBCox, "xgb_cox"), (e.RSF, "rsf"), (e.ExtraTrees, "extra_trees"),
             (e.GBSA, "gbsa"), (e.CoxPH, "coxph"), (e.Coxnet, "coxnet"), (RandomSurvivalForest, "rsf"),
             (ExtraSurvivalTrees, "extra_trees"), (GradientBoostingSurvivalAnalysis, "gbsa"),
             (CoxPHSurvivalAnalysis, "coxph"), (CoxnetSurvivalAnalysis, "coxnet")]
    return next((name for kind, name in kinds if isinstance(estimator, kind)), type(estimator).__name__)


def _library_model(estimator: Any) -> Any:
    return getattr(estimator, "model_", estimator)


def _inputs(model: Any, X: pd.DataFrame, background: pd.DataFrame | None
            ) -> tuple[Any, pd.DataFrame, pd.DataFrame, dict[str, str], dict[str, tuple[str, ...]]]:
    """(final estimator, its numeric input for X and for the background pool, feature -> column, category levels)."""
    from cartrisk.modelling.pipeline import SurvivalPipeline

    if isinstance(model, SurvivalPipeline):
        Xt = model.transform_features(X).astype(float)
        pool = Xt if background is None else model.transform_features(background).astype(float)
        sources = getattr(model.steps[0][1], "feature_sources_", {})
        return model.steps[-1][1], Xt, pool, {f: sources.get(f, f) for f in Xt.columns}, {}
    both = X if background is None else pd.concat([X, background[X.columns]], ignore_index=True)
    data, levels = {}, {}
    for name in X.columns:  # one coding for X and the background
        data[name], found = encode_column(both[name], name)
        if found:
            levels[name] = found
    coded = pd.DataFrame(data)
    Xt = coded.iloc[:len(X)].set_axis(X.index, axis=0)
    pool = Xt if background is None else coded.iloc[len(X):].reset_index(drop=True)
    return model, Xt, pool, {c: c for c in X.columns}, levels


def _as_model_input(Z: np.ndarray, columns: list[str], levels: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(Z, columns=columns)
    for name, found in levels.items():  # decode categories for a model that takes raw columns
        codes = frame[name].to_numpy()
        lookup = np.asarray(found, dtype=object)
        frame[name] = np.where(np.isnan(codes), None, lookup[np.nan_to_num(codes).astype(int)])
    return frame


def _cox_link(surv: np.ndarray, score: np.ndarray) -> Any:
    """g with S(horizon | x) = g(score(x)) = exp(-H0 exp(score)), if that holds on the background; else None.

    ``surv`` and ``score`` are the model's survival at the horizon and its score on the background rows.
    """
    inside = (surv > 0) & (surv < 1)
    if not inside.any():
        return None if np.any(surv < 1) else (lambda s: np.ones_like(s))
    h0 = float(np.median(-np.log(surv[inside]) / np.exp(score[inside])))

    def link(s: np.ndarray) -> np.ndarray:
        return np.exp(-h0 * np.exp(s))

    return link if np.max(np.abs(link(score) - surv)) <= _LINK_TOL else None


# -------------------------------------------------------------------------------- model-agnostic engines
def _hybrid_means(f: Any, X: np.ndarray, background: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean over background rows b of f(x_S, b_notS) for each row x of X and each mask S.

    ``masks`` is (P, M) shared by every row, or (n, P, M) per row. Returns (n, P).
    """
    n, m = X.shape
    shared = masks.ndim == 2
    p = masks.shape[-2]
    nb = background.shape[0]
    out = np.empty((n, p))
    step = max(1, _CHUNK_ELEMENTS // (p * nb * m))
    for start in range(0, n, step):
        x = X[start:start + step]
        mk = masks[None] if shared else masks[start:start + step]
        Z = np.where(mk[:, :, None, :], x[:, None, None, :], background[None, None, :, :])
        out[start:start + step] = f(Z.reshape(-1, m)).reshape(len(x), p, nb).mean(axis=2)
    return out


def _brute_force(f: Any, X: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact interventional Shapley values over all 2^M coalitions."""
    m = X.shape[1]
    masks = ((np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)
    size = masks.sum(axis=1)
    weight = np.array([math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)])
    # phi_j = sum over T of v(T) * (w(|T|-1) if j in T else -w(|T|)); w(m) never used (j not in the full set)
    coef = np.where(masks, weight[np.maximum(size - 1, 0)][:, None], -weight[np.minimum(size, m - 1)][:, None])
    values = _hybrid_means(f, X, background, masks)
    base = float(np.mean(f(background)))
    return values @ coef, base


def _permutations(f: Any, X: np.ndarray, background: np.ndarray, n_permutations: int, rng: np.random.Generator,
                  linear: tuple[np.ndarray, float, Any] | None = None) -> tuple[np.ndarray, float]:
    """Antithetic permutation sampling: each sampled order and its reverse, drawn per patient.

    ``linear=(beta, offset, link)`` says f(z) = link(z @ beta + offset): the score of each hybrid row
    along an order is then a cumulative sum, and no hybrid row is built.
    """
    n, m = X.shape
    nb = background.shape[0]
    half = max(1, (n_permutations + 1) // 2)
    phi = np.empty((n, m))
    step = max(1, _CHUNK_ELEMENTS // (2 * half * (m + 1) * nb * (1 if linear else m)))
    for start in range(0, n, step):
        x = X[start:start + step]
        c = len(x)
        order = np.argsort(rng.random((c, half, m)), axis=2)
        order = np.concatenate([order, order[:, :, ::-1]], axis=1)  # (c, K, M)
        k = order.shape[1]
        rank = np.argsort(order, axis=2)  # position of each feature in each order
        if linear is None:
            prefix = rank[:, :, None, :] < np.arange(m + 1)[None, None, :, None]  # (c, K, M+1, M): first t features
            values = _hybrid_means(f, x, background, prefix.reshape(c, k * (m + 1), m)).reshape(c, k, m + 1)
        else:
            beta, offset, link = linear
            gain = beta * (x[:, None, :] - background[None, :, :])  # (c, nb, M): score change of taking x_j
            path = np.take_along_axis(gain[:, None, :, :], order[:, :, None, :], axis=3)  # (c, K, nb, M)
            start_score = (background @ beta + offset)[None, None, :, None]
            score = np.concatenate([np.broadcast_to(start_score, (c, k, nb, 1)),
                                    start_score + np.cumsum(path, axis=3)], axis=3)
            values = link(score).mean(axis=2)  # (c, K, M+1)
        steps = np.diff(values, axis=2)  # (c, K, M): the gain from adding order[t]
        phi[start:start + step] = np.take_along_axis(steps, rank, axis=2).mean(axis=1)
    return phi, float(np.mean(f(background)))


# ------------------------------------------------------------------------------------------ explain
def explain(
    model: Any,
    X: pd.DataFrame,
    *,
    output: Output = "risk",
    horizon_months: float | None = None,
    background: pd.DataFrame | None = None,
    n_background: int = 100,
    feature_perturbation: Literal["auto", "interventional", "tree_path_dependent"] = "auto",
    method: Literal["auto", "exact", "permutation"] = "auto",
    max_exact_features: int = 10,
    n_permutations: int = 10,
    patient_ids: Any = None,
    aggregate: Literal["feature", "column"] = "feature",
    random_state: int = 0,
) -> Explanation:
    """SHAP values of a fitted pipeline (or estimator) for the patients of ``X``.

    Parameters
    ----------
    model : SurvivalPipeline or estimator
        Fitted. For a pipeline, its final estimator is explained on ``transform_features(X)``; any
        other estimator is explained on the columns of ``X`` (categories coded as integers for the
        model-agnostic engines and decoded before each call).
    X : DataFrame
        The patients: data-dictionary columns (extra columns such as ``patient_id`` are ignored by
        the pipeline; an estimator that is no pipeline sees every column but ``patient_id``).
    output : {"risk", "survival"}, default "risk"
        The risk score (``predict``, higher = worse) or the survival probability at ``horizon_months``
        (``predict_survival_at``, higher = better).
    horizon_months : float, optional
        Required for ``output="survival"`` (months; days = months x 30.4375).
    background : DataFrame, optional
        Rows like ``X`` from which the background sample is drawn (default ``X`` itself).
    n_background : int, default 100
        Background rows (a seeded sample without replacement when there are more). The cost of the
        model-agnostic engines grows linearly with it.
    feature_perturbation : {"auto", "interventional", "tree_path_dependent"}, default "auto"
        For scikit-survival trees: "auto" is path-dependent TreeSHAP (fast; the trees' training
        weights as background). XGBoost boosters are always path-dependent; every other engine is
        interventional.
    method : {"auto", "exact", "permutation"}, default "auto"
        For the model-agnostic cases: "auto" is brute force over every coalition when the model has
        at most ``max_exact_features`` features, else sampled permutations; "exact" raises instead
        of sampling.
    max_exact_features : int, default 10
    n_permutations : int, default 10
        Orders sampled per patient (rounded up to an even number: each order and its reverse).
    patient_ids : sequence, optional
        Index of the result; default ``X["patient_id"]`` when present, else ``X.index``.
    aggregate : {"feature", "column"}, default "feature"
        "column" returns :meth:`Explanation.by_column`.
    random_state : int, default 0
        Seeds the background sample and the permutations.

    Returns
    -------
    Explanation

    Raises
    ------
    ValueError
        Bad ``output`` / horizon / ``method``, or ``method="exact"`` with too many features for brute force.
    CartriskError
        The values do not add up to the model's predictions (a model whose ``predict`` is not what
        its family's engine assumes).

    Notes
    -----
    Cost, measured on one loaded core (``benchmarks/bench_explain.py``, 69 features): linear SHAP and
    xgboost's TreeSHAP take seconds for 20,000 patients; path-dependent TreeSHAP of a 200-tree forest
    grown without a depth limit about 10 ms per patient; sampled permutations of a tree model's
    survival (10 orders, 100 background rows) about 0.3-0.6 s per patient. Explain survival on a
    sample of patients.
    """
    if output not in ("risk", "survival"):
        raise ValueError(f"output must be 'risk' or 'survival'; got {output!r}")
    if output == "survival" and (horizon_months is None or not np.isfinite(horizon_months) or horizon_months <= 0):
        raise ValueError(f"output='survival' needs a horizon_months > 0; got {horizon_months!r}")
    if feature_perturbation not in ("auto", "interventional", "tree_path_dependent"):
        raise ValueError("feature_perturbation must be 'auto', 'interventional' or 'tree_path_dependent'; "
                         f"got {feature_perturbation!r}")
    if method not in ("auto", "exact", "permutation"):
        raise ValueError(f"method must be 'auto', 'exact' or 'permutation'; got {method!r}")
    if not isinstance(X, pd.DataFrame) or len(X) == 0:
        raise ValueError("X must be a non-empty DataFrame of patients (data-dictionary columns)")
    ids = _patient_ids(X, patient_ids)
    raw = X.drop(columns=["patient_id"], errors="ignore").set_axis(ids, axis=0)
    pool_raw = None if background is None else background.drop(columns=["patient_id"], errors="ignore")
    estimator, Xt, pool, sources, levels = _inputs(model, raw, pool_raw)
    rng = np.random.default_rng(random_state)
    take = rng.choice(len(pool), size=min(n_background, len(pool)), replace=False) if len(pool) > n_background \
        else np.arange(len(pool))
    bg = pool.to_numpy(dtype=float)[np.sort(take)]
    columns = list(Xt.columns)
    horizon_days = None if output == "risk" else float(months_to_days(horizon_months))

    def predict(Z: np.ndarray) -> np.ndarray:
        return np.asarray(estimator.predict(_as_model_input(Z, columns, levels)), dtype=float)

    family = _family(estimator)
    Xnp = Xt.to_numpy(dtype=float)
    request = _Request(family, estimator, predict, output, horizon_days, feature_perturbation, method,
                       max_exact_features, n_permutations, rng, columns, levels)
    phi, base, how = _dispatch(request, Xnp, bg)
    frame_in = _as_model_input(Xnp, columns, levels)
    if output == "risk":
        predictions = np.asarray(estimator.predict(frame_in), dtype=float)
        scale = _RISK_SCALES.get(family, "risk score (predict)")
    else:
        predictions = np.asarray(estimator.predict_survival_at(frame_in, [horizon_days]), dtype=float)[:, 0]
        scale = f"survival probability at {horizon_months:g} months"
    error = float(np.max(np.abs(phi.sum(axis=1) + base - predictions)))
    if error > 1e-4 * max(1.0, float(np.max(np.abs(predictions)))):
        raise CartriskError(f"SHAP values ({how}) of {family} do not add up to its predictions (max error "
                            f"{error:.3g}): its predict is not what the {how} engine assumes; explain it with "
                            "method='permutation'")
    result = Explanation(
        values=pd.DataFrame(phi, index=ids, columns=columns), base_value=base,
        predictions=pd.Series(predictions, index=ids, name="prediction"), data=Xt.set_axis(ids, axis=0),
        raw=raw, feature_sources=sources, scale=scale, output=output, horizon_months=horizon_months, method=how,
        exact=how != "permutation", model=family, additivity_error=error, levels=levels,
    )
    return result.by_column() if aggregate == "column" else result


def _patient_ids(X: pd.DataFrame, patient_ids: Any) -> pd.Index:
    if patient_ids is not None:
        ids = pd.Index([str(v) for v in patient_ids], name="patient_id")
        if len(ids) != len(X):
            raise ValueError(f"patient_ids has {len(ids)} entries for {len(X)} patients")
    elif "patient_id" in X:
        ids = pd.Index(X["patient_id"].astype(str).to_numpy(dtype=object), name="patient_id")
    else:
        ids = pd.Index([str(v) for v in X.index], name="patient_id")
    return ids


@dataclass(frozen=True)
class _Request:
    """What one explanation asks for: the model, its output and the engine settings (see :func:`explain`)."""

    family: str
    estimator: Any
    predict: Any
    output: str
    horizon_days: float | None
    feature_perturbation: str
    method: str
    max_exact: int
    n_permutations: int
    rng: np.random.Generator
    columns: list[str]
    levels: dict[str, tuple[str, ...]]


def _dispatch(req: _Request, X: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, float, str]:
    """(SHAP values, base value, method name) from the engine that fits the family and output."""
    family, estimator, predict, output, horizon_days = req.family, req.estimator, req.predict, req.output, \
        req.horizon_days
    feature_perturbation, method, max_exact = req.feature_perturbation, req.method, req.max_exact
    library = _library_model(estimator)
    trees = family in ("rsf", "extra_trees") or (family == "gbsa" and output == "risk")
    if trees and method != "permutation":
        interventional = feature_perturbation == "interventional"
        if output == "survival" and horizon_days < library.unique_times_[0]:  # before any death: S = 1
            return np.zeros_like(X), 1.0, "tree_interventional" if interventional else "tree_path_dependent"
        phi, base = tree_shap(library, X, background=bg if interventional else None, output=output,
                              horizon_days=None if output == "risk" else min(horizon_days, library.unique_times_[-1]))
        return phi, base, "tree_interventional" if interventional else "tree_path_dependent"
    if family in ("xgb_cox", "xgb_aft") and output == "risk" and method != "permutation":
        import xgboost
        from joblib import effective_n_jobs

        threads = int(effective_n_jobs(getattr(estimator, "n_jobs", None) or 1))  # the estimator's own setting
        contribs = library.predict(xgboost.DMatrix(X, nthread=threads), pred_contribs=True).astype(np.float64)
        sign = -1.0 if family == "xgb_aft" else 1.0  # xgb_aft: predict = -margin (see XGBAFT)
        return sign * contribs[:, :-1], float(sign * contribs[0, -1]), "xgboost_tree_path_dependent"
    if family in ("coxph", "coxnet") and output == "risk" and method != "permutation":
        coef = np.asarray(library.coef_, dtype=float)
        beta = coef[:, -1] if coef.ndim == 2 else coef  # coxnet: the coefficients at the last (fitted) alpha
        return beta * (X - bg.mean(axis=0)), float(np.mean(predict(bg))), "linear"
    f, linear = predict, None
    if output == "survival":
        f, linear = _survival_function(family, estimator, predict, bg, horizon_days, req.columns, req.levels)
    m = X.shape[1]
    if method == "exact" and m > max_exact:
        raise ValueError(f"method='exact': {family} with output={output!r} needs brute force over 2^{m} coalitions; "
                         f"at most max_exact_features={max_exact} features are allowed (use 'permutation')")
    if method != "permutation" and m <= max_exact:
        phi, base = _brute_force(f, X, bg)
        return phi, base, "brute_force"
    phi, base = _permutations(f, X, bg, req.n_permutations, req.rng, linear=linear)
    return phi, base, "permutation"


def _survival_function(family, estimator, predict, bg, horizon_days, columns, levels):
    """Survival at the horizon as a function of the model input, and (beta, offset, link) for a linear Cox model.

    Cox-type models use exp(-H0 exp(score)) when it reproduces ``predict_survival_at`` on the background.
    """
    surv = np.asarray(estimator.predict_survival_at(_as_model_input(bg, columns, levels), [horizon_days]),
                      dtype=float)[:, 0]
    if family in ("coxph", "coxnet"):  # a linear score: no DataFrame round trip per hybrid row
        coef = np.asarray(_library_model(estimator).coef_, dtype=float)
        beta = coef[:, -1] if coef.ndim == 2 else coef
        offset = float(np.mean(predict(bg) - bg @ beta))  # coxnet: predict = X @ beta - offset
        link = _cox_link(surv, bg @ beta + offset)
        if link is not None:
            return (lambda Z: link(Z @ beta + offset)), (beta, offset, link)
    link = _cox_link(surv, predict(bg))
    if link is not None:
        return (lambda Z: link(predict(Z))), None
    return (lambda Z: np.asarray(
        estimator.predict_survival_at(_as_model_input(Z, columns, levels), [horizon_days]), dtype=float)[:, 0]), None
