"""What a bundle records beside the model: input schema, training cohort, risk groups, performance.

Each function returns plain data (dicts and lists, JSON-ready through :func:`cartrisk.bundle._format.write_json`) that
:mod:`cartrisk.bundle.export` writes and :mod:`cartrisk.bundle.modelcard` renders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cartrisk.data.dictionary import COLUMNS, column_spec, declared_columns
from cartrisk.data.leakage import screen_leakage
from cartrisk.data.survstats import km_at
from cartrisk.exceptions import BundleError
from cartrisk.units import months_to_days

__all__ = ["declared_from_schema", "evidence_extras", "input_schema", "model_description", "performance_section",
           "risk_group_section", "training_extras", "training_predictions"]

_BY_NAME = {c.name: c for c in COLUMNS}
_WHEN = {
    "outcome": "at failure (time zero of OS-2): days from infusion to failure",
    "setting": "where and when the patient was treated (centre, year of infusion)",
    "infusion": "at or before CAR T-cell infusion (day 0)",
    "post_infusion": "after infusion and before failure (known at failure, time zero of OS-2)",
    "relapse": "at failure (progression or relapse), time zero of OS-2",
    "after_failure": "after the failure date (not a prognostic predictor)",
}
_MLFLOW_METRIC = re.compile(r"^(?P<metric>[a-z][a-z0-9_]*?)(?:_(?P<h>\d+(?:\.\d+)?)m)?_(?P<stat>mean|lower|upper)$")


# ------------------------------------------------------------------------------------------------ model
def _family(final) -> str:
    from cartrisk.estimators import ESTIMATORS, RecalibratedSurvival, make_estimator

    if isinstance(final, RecalibratedSurvival):  # an updated bundle: "coxph, slope-updated"
        return f"{_family(final.base_estimator)}, {final.method}-updated"
    for name in ESTIMATORS:
        if type(make_estimator(name)) is type(final):
            return name
    return type(final).__name__


def _feature_builder(pipeline):
    from cartrisk.modelling.features import FeatureBuilder

    first = pipeline.steps[0][1]
    if not isinstance(first, FeatureBuilder):
        raise BundleError(f"the pipeline's first step is {type(first).__name__}; a bundle needs a "
                          "cartrisk.modelling.FeatureBuilder (build it with cartrisk.modelling.make_pipeline)")
    return first


def model_description(pipeline) -> dict[str, Any]:
    """Family, hyper-parameters, feature set and the model's input features."""
    fb, final = _feature_builder(pipeline), pipeline.steps[-1][1]
    feature_set = fb.feature_set if isinstance(fb.feature_set, str) else list(fb.feature_set)
    return {
        "family": _family(final),
        "class": f"{type(final).__module__}.{type(final).__qualname__}",
        "params": {k: v for k, v in final.get_params(deep=False).items()},
        "feature_set": feature_set,
        "allow_after_failure": bool(fb.allow_after_failure),
        "allow_suspect": [str(c) for c in (getattr(fb, "allow_suspect", ()) or ())],
        "coding": getattr(fb, "coding", "onehot"),
        "reference_levels": {str(k): str(v) for k, v in getattr(fb, "reference_levels_", {}).items()},
        "features": [str(f) for f in fb.feature_names_out_],
        "steps": [name for name, _ in pipeline.steps],
    }


# ------------------------------------------------------------------------------------------------ schema
def input_schema(pipeline, X: pd.DataFrame, y: np.ndarray | None = None, cohort: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The columns the pipeline reads (data dictionary, and the site's declared ones with their declaration), with
    their training ranges, levels and missingness, and each column's leakage figures when ``y`` is given.

    Generic cohorts (``cohort`` gives the ``time`` and ``event`` column names, ``time_unit_days`` and optionally
    ``id``): the training columns themselves (:func:`cartrisk.bundle._generic.generic_schema`).

    Raises
    ------
    BundleError
        A column outside the dictionary that was not declared, or a leakage suspect the pipeline was not allowed
        to use (``allow_suspect``).
    """
    fb = _feature_builder(pipeline)
    if cohort is not None:
        from cartrisk.bundle._generic import generic_schema

        return generic_schema(X, list(fb.input_columns_), cohort)
    needed = list(fb.input_columns_)
    declared = declared_columns(getattr(fb, "declared", None))
    unknown = sorted(c for c in needed if c not in _BY_NAME and c not in declared)
    if unknown:
        raise BundleError(f"the pipeline reads column(s) outside the data dictionary ({', '.join(unknown)}) that were "
                          "not declared; bundles score registry extracts, so declare a site's own columns in "
                          "[data.extra] (they travel with the pipeline) or export only models trained on registry "
                          "data")
    screen = None
    if y is not None:
        event_field, time_field = y.dtype.names
        screen = screen_leakage(X, y[event_field], y[time_field], needed).set_index("column")
        allowed = set(getattr(fb, "allow_suspect", ()) or ())
        refused = [c for c in screen.index[screen["suspect"]] if c not in allowed]
        if refused:
            raise BundleError("the pipeline reads column(s) that give the outcome away: "
                              + "; ".join(f"'{c}': {screen.loc[c, 'reason']}" for c in refused)
                              + ". Retrain without them, or with [features] allow_suspect naming them")
    columns = []
    for col in [c for c in COLUMNS if c.name in needed] + [declared[c] for c in needed if c in declared]:
        entry: dict[str, Any] = {"name": col.name, "role": col.role, "kind": col.kind, "unit": col.unit,
                                 "meaning": col.meaning, "allowed": col.rule(), "measured": _WHEN.get(col.role, "")}
        if col.name in declared:
            entry["declared"] = column_spec(col)
        values = X[col.name] if col.name in X else pd.Series(np.nan, index=X.index)
        entry["train_missing_share"] = float(values.isna().mean())
        if col.kind in ("category", "string"):
            counts = values.dropna().astype(str).value_counts()
            entry["levels"] = sorted(counts.index.tolist())
            entry["train_mode"] = str(counts.index[0]) if len(counts) else None
        else:
            x = pd.to_numeric(values, errors="coerce")
            known = x.notna().any()
            entry["train_min"] = float(x.min()) if known else None
            entry["train_max"] = float(x.max()) if known else None
            entry["train_median"] = float(x.median()) if known else None
        if screen is not None and col.name in screen.index:
            row = screen.loc[col.name]
            entry["leakage"] = {k: (None if pd.isna(row[k]) else float(row[k]))
                                for k in ("value_auc", "missing_auc", "harrell_c")}
            entry["leakage"].update(suspect=bool(row["suspect"]), reason=str(row["reason"]),
                                    allowed=col.name in (getattr(fb, "allow_suspect", ()) or ()))
        columns.append(entry)
    return {"columns": columns, "id_column": "patient_id",
            "note": "Validated with the data dictionary (cartrisk validate) and the declared columns; outcome columns "
                    "are not needed."}


def declared_from_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The declared columns of a bundle's ``schema.json`` as Columns (to validate new patients with them)."""
    return declared_columns({c["name"]: c["declared"] for c in schema.get("columns", []) if "declared" in c})


# ------------------------------------------------------------------------------------------------ cohort
def _month(values: pd.Series) -> pd.Series | None:
    dates = pd.to_datetime(values, errors="coerce").dropna()
    return None if dates.empty else dates


def training_predictions(pipeline, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """``(Xt, risk)``: the training patients' transformed features and in-sample risk scores, computed once for
    :func:`training_extras` and :func:`risk_group_section`."""
    Xt = pipeline.transform_features(X)
    return Xt, np.asarray(pipeline.steps[-1][1].predict(Xt), dtype=float)


def training_extras(Xt: pd.DataFrame, risk: np.ndarray, y: np.ndarray, frame: pd.DataFrame | None
                    ) -> dict[str, Any]:
    """Aggregates of the training cohort beside its summary (``Xt``, ``risk``: :func:`training_predictions`): the
    risk-score distribution (percentiles 1-99, for the case-mix comparison of ``cartrisk validate-model``), the
    accrual period at month precision (TRIPOD+AI 5b) and the model's parameters per event (item 10). Nothing
    patient-level."""
    n_parameters = int(Xt.shape[1])
    events = int(np.asarray(y[y.dtype.names[0]], dtype=bool).sum())
    out: dict[str, Any] = {
        "risk_score_distribution": {"percentiles": [float(v) for v in np.percentile(risk, np.arange(1, 100))],
                                    "mean": float(risk.mean()), "sd": float(risk.std(ddof=1)) if risk.size > 1
                                    else 0.0, "n": int(risk.size)},
        "n_parameters": n_parameters,
        "events_per_parameter": events / n_parameters if n_parameters else None,
    }
    if frame is not None and {"failure_date", "last_contact_date"} <= set(frame.columns):
        failure, contact = _month(frame["failure_date"]), _month(frame["last_contact_date"])
        if failure is not None and contact is not None:
            out["accrual"] = {"first_failure": failure.min().strftime("%Y-%m"),
                              "last_failure": failure.max().strftime("%Y-%m"),
                              "end_of_followup": contact.max().strftime("%Y-%m")}
    return out


def evidence_extras(evidence) -> dict[str, Any]:
    """The performance sections of :class:`~cartrisk.bundle.Evidence`'s independent evaluations, subgroups and
    sample-size check."""
    subgroups = evidence.subgroups
    return {"evaluations": [dict(e) for e in evidence.evaluations],
            "subgroups": None if subgroups is None else pd.DataFrame(subgroups).to_dict(orient="records"),
            "sample_size": None if evidence.sample_size is None else dict(evidence.sample_size)}


# ------------------------------------------------------------------------------------------------ groups
def _default_grouper():
    from cartrisk.data.literature import target
    from cartrisk.groups import RiskGrouper

    high = target("window_share_pct", "D0-30") / 100.0
    return RiskGrouper(method="quantiles", sizes=(1.0 - high, high), labels=("low", "high")), (
        f"default: two groups on the training risk scores, the high-risk group as large as the published share of "
        f"D0-30 failures ({100 * high:.1f}%, DB22), so that it can be set beside the D0-30 rule")


def risk_group_section(pipeline, Xt: pd.DataFrame, risk: np.ndarray, risk_groups, y: np.ndarray, horizons_months,
                       oof_risk: np.ndarray | None = None, oof_source: str = "cross-validation") -> dict[str, Any]:
    """Cut-points and labels, and each group's size, predicted and (apparent) observed OS-2 on the training data
    (``Xt``, ``risk``: :func:`training_predictions`).

    Cut-points that are learned here are learned on the out-of-fold risk scores ``oof_risk`` when given (as
    ``cartrisk compare-rules`` does: in-sample predictions of a flexible model are optimistic), else on the final
    model's in-sample risk scores; ``origin`` says which.
    """
    from cartrisk.groups import RiskGrouper

    final = pipeline.steps[-1][1]
    horizons = np.asarray(horizons_months, dtype=float)
    surv = final.predict_survival_at(Xt, months_to_days(horizons))
    learn_on, learned = risk, "the final model's in-sample training risk scores"
    if oof_risk is not None:
        oof_risk = np.asarray(oof_risk, dtype=float)
        if oof_risk.shape != risk.shape or not np.isfinite(oof_risk).all():
            raise BundleError(f"oof_risk must hold one finite out-of-fold risk score per training patient "
                              f"({risk.shape[0]}), got shape {oof_risk.shape}")
        learn_on, learned = oof_risk, f"out-of-fold training risk scores ({oof_source})"
    origin = "given (a fitted RiskGrouper)"
    if risk_groups is None:
        grouper, origin = _default_grouper()
        grouper.fit(learn_on)
        origin += f"; cut-points learned on the {learned}"
    elif isinstance(risk_groups, RiskGrouper):
        grouper = risk_groups
        if not hasattr(grouper, "cutpoints_"):
            if grouper.method == "threshold" or oof_risk is None:
                grouper = risk_groups.fit(risk, surv_curves=surv, times_days=months_to_days(horizons))
                origin = "given (a RiskGrouper, fitted here on the final model's in-sample training predictions)"
            else:
                grouper = risk_groups.fit(learn_on)
                origin = f"given (a RiskGrouper, fitted here on the {learned})"
    else:
        cuts = np.asarray(risk_groups, dtype=float)
        if cuts.ndim != 1 or cuts.size < 1 or np.any(np.diff(cuts) <= 0):
            raise BundleError(f"risk_groups cut-points must be increasing risk scores, got {risk_groups!r}")
        grouper = RiskGrouper.from_cutpoints(cuts)
        origin = "given (risk-score cut-points)"
    surv_h = None
    if grouper.method == "threshold":
        surv_h = final.predict_survival_at(Xt, [months_to_days(grouper.horizon_months)])[:, 0]
    codes = grouper.transform(risk, surv_h)
    event_field, time_field = y.dtype.names
    event, time = np.asarray(y[event_field], dtype=bool), np.asarray(y[time_field], dtype=float)
    groups = []
    for k, label in enumerate(grouper.labels_):
        member = codes == k
        observed = km_at(event[member], time[member], months_to_days(horizons))
        groups.append({
            "label": label, "n": int(member.sum()), "share": float(member.mean()), "events": int(event[member].sum()),
            "predicted": [float(v) for v in (surv[member].mean(axis=0) if member.any() else np.full(horizons.size,
                                                                                                    np.nan))],
            "observed_km": [float(v) for v in observed[0]],
            "observed_lower": [float(v) for v in observed[1]],
            "observed_upper": [float(v) for v in observed[2]],
        })
    return {"method": grouper.method, "cutpoints": [float(c) for c in grouper.cutpoints_],
            "labels": list(grouper.labels_), "horizon_months": float(grouper.horizon_months),
            "scale": "survival probability at horizon_months" if grouper.method == "threshold" else "risk score",
            "origin": origin, "horizons_months": [float(h) for h in horizons], "training_groups": groups}


# ------------------------------------------------------------------------------------------------ performance
def _tidy_metrics(source) -> list[dict[str, Any]]:
    from cartrisk.evaluation import CVResult

    if source is None:
        return []
    if isinstance(source, CVResult):
        source = source.summary()
    if isinstance(source, pd.DataFrame):
        cols = [c for c in ("metric", "horizon_months", "n_folds", "mean", "sd", "lower", "upper") if c in source]
        return source[cols].to_dict(orient="records")
    if isinstance(source, Mapping):
        rows: dict[tuple, dict[str, Any]] = {}
        for key, value in source.items():
            found = _MLFLOW_METRIC.match(str(key))
            if found is None:
                continue
            h = float(found["h"]) if found["h"] else None
            row = rows.setdefault((found["metric"], h), {"metric": found["metric"], "horizon_months": h})
            row[found["stat"]] = float(value)
        return list(rows.values())
    raise BundleError(f"cv_result must be a CVResult, its summary() or a mapping of metrics, got {type(source)}")


def _calibration(calibration, cv_result, y) -> dict[str, Any]:
    from cartrisk.evaluation import CVResult
    from cartrisk.evaluation.calibration import calibration_at_horizon

    out: dict[str, Any] = {}
    if calibration is None and isinstance(cv_result, CVResult) and cv_result.oof_survival is not None and y is not None:
        calibration = {}
        for h in cv_result.horizons_months:
            try:
                calibration[h] = calibration_at_horizon(y, cv_result.oof_survival[h].to_numpy(), months_to_days(h))
            except ValueError as err:  # horizon beyond follow-up or without events: say so in the card
                out[f"{h:g}"] = {"horizon_months": float(h), "unavailable": str(err)}
    for h, cal in (calibration or {}).items():
        out[f"{float(h):g}"] = {"horizon_months": float(h), "n": cal.n, "n_events": cal.n_events,
                                "observed": cal.observed, "mean_predicted": cal.mean_predicted, **cal.as_dict(),
                                "table": cal.table.to_dict(orient="records"),
                                "source": "out-of-fold predictions of the cross-validation"}
    return out


def _comparison(comparison) -> dict[str, Any] | None:
    from cartrisk.groups import GroupComparison

    if comparison is None:
        return None
    if isinstance(comparison, GroupComparison):
        return {"kind": "groups", "reference": comparison.reference, "horizon_months": comparison.horizon_months,
                "discrimination": comparison.discrimination.reset_index().to_dict(orient="records"),
                "c_differences": comparison.c_differences.reset_index().to_dict(orient="records")}
    if isinstance(comparison, Mapping):
        return {"kind": "cv", "reference": next(iter(comparison), None),
                "models": {str(label): _tidy_metrics(result) for label, result in comparison.items()}}
    raise BundleError(f"comparison must be a mapping of label -> CVResult or a GroupComparison, got {type(comparison)}")


def performance_section(cv_result, calibration, comparison, concordance, y, meta: Mapping[str, Any],
                        extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Outer-CV metrics, calibration per horizon, comparison with rules and literature concordance; ``extra`` adds
    the sections of :class:`cartrisk.bundle.Evidence`'s later fields (independent evaluations, subgroups, sample
    size)."""
    from cartrisk.evaluation import CVResult

    design = meta.get("validation")
    if design is None and isinstance(cv_result, CVResult):
        design = (f"event-stratified {cv_result.n_splits}-fold cross-validation x {cv_result.n_repeats} repeat(s); "
                  "every preprocessing step refitted inside each training fold")
    return {
        "validation": design,
        "interval": "mean over folds and 95% t-interval (a guide to fold-to-fold noise, not a formal CI)",
        "metrics": _tidy_metrics(cv_result),
        "calibration": _calibration(calibration, cv_result, y),
        "comparison": _comparison(comparison),
        "concordance": None if concordance is None else pd.DataFrame(concordance).to_dict(orient="records"),
        **dict(extra or {}),
    }
