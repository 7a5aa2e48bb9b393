"""External validation of a bundle on a new cohort (``cartrisk validate-model``).

The bundle scores the cohort exactly as ``cartrisk score`` does (same checks, same predictions); the cohort's
outcome is then held against the predictions at one horizon (:func:`cartrisk.evaluation.external_validation`),
in the bundle's risk groups, in subgroups, and the cohort's case mix against the development cohort's (the bundle
keeps the percentiles of its training risk scores, never patients). Registry extracts and generic cohorts alike.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sksurv.util import Surv

from cartrisk.bundle._generic import generic_outcome
from cartrisk.bundle.scoring import Bundle
from cartrisk.data.schema import Problem
from cartrisk.evaluation.external import ExternalValidation, external_validation
from cartrisk.evaluation.subgroups import subgroup_labels, subgroup_performance
from cartrisk.exceptions import SchemaError, StatisticalWarning
from cartrisk.units import estimate_text, months_to_days

__all__ = ["BundleValidation", "membership_c", "validate_bundle", "validation_cohort"]


@dataclass
class BundleValidation:
    """What :func:`validate_bundle` found: aggregates, and the arrays behind the figures (``arrays``: time, event,
    risk score and risk group of each patient), which stay in memory (:func:`cartrisk.workflows.write_validation`
    writes the figures and tables)."""

    bundle: str
    fingerprint: str
    source: str
    external: ExternalValidation
    case_mix: dict[str, float]
    subgroups: pd.DataFrame | None
    group_km: pd.DataFrame | None
    development: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def metrics(self) -> pd.DataFrame:
        return self.external.metrics

    def answer(self) -> str:
        """One sentence with the key numbers and intervals (the report section's answer)."""
        m = self.metrics.set_index("metric")

        def fmt(name: str) -> str:
            return estimate_text(*m.loc[name, ["estimate", "lower", "upper"]])

        return (f"On {self.external.n:,} patients of {self.source} ({self.external.n_events:,} deaths by "
                f"{self.external.horizon_months:g} months), {self.bundle} has Harrell's C {fmt('harrell_c')}, O/E "
                f"{fmt('oe_ratio')}, calibration slope {fmt('calibration_slope')} and ICI {fmt('ici')} "
                f"(95% bootstrap intervals, {self.external.n_boot:,} resamples).")


def validation_cohort(bundle: Bundle, frame: pd.DataFrame, *, source: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The cohort checked as scoring checks it, with its outcome: ``(typed frame, y in days)``.

    Raises
    ------
    SchemaError
        Every problem of the file (file, row, column, value, rule, fix), outcome columns included.
    """
    typed = bundle.validate(frame, source=source, require_outcome=True).raise_if_invalid()
    outcome = generic_outcome(bundle.schema)
    if outcome is not None:
        time = typed[outcome["time"]].to_numpy(float) * float(outcome["time_unit_days"])
        event = typed[outcome["event"]].to_numpy().astype(bool)
    else:
        time, event = typed["os2_days"].to_numpy(float), typed["os2_event"].to_numpy().astype(bool)
    if not event.any():
        raise SchemaError(f"{source}: no deaths in the cohort: it cannot validate a survival model", [
            Problem(source, None, None, None, "all patients are censored", "check the coding of the event column")])
    return typed, Surv.from_arrays(event=event, time=time, name_event="event", name_time="time_days")


def membership_c(development: dict[str, Any] | None, validation: np.ndarray) -> float:
    """C of the risk score as a model of cohort membership (development vs validation), from the development
    cohort's risk-score percentiles: 0.5 = the same case mix; the larger, the more the cohorts differ
    (direction-free: ``max(C, 1 - C)``)."""
    if not development:
        return np.nan
    pct = np.sort(np.asarray(development["percentiles"], dtype=float))
    v = np.asarray(validation, dtype=float)
    below = np.searchsorted(pct, v, side="left")
    ties = np.searchsorted(pct, v, side="right") - below
    c = float(np.mean((below + 0.5 * ties) / pct.size))
    return max(c, 1.0 - c)


def validate_bundle(bundle: Bundle, frame: pd.DataFrame, *, horizon_months: float, source: str = "frame",
                    thresholds=(), n_boot: int = 1000, random_state: int = 0, subgroups: bool = True,
                    n_boot_subgroups: int = 200) -> BundleValidation:
    """Validate a bundle on a cohort with its outcome (see the module docstring).

    Parameters
    ----------
    bundle : Bundle
        :func:`cartrisk.bundle.load_bundle`.
    frame : DataFrame
        The cohort as read (:func:`cartrisk.data.schema.read_extract`), outcome included.
    horizon_months : float
    source : str
        Name in messages and tables (the file path).
    thresholds : sequence of float
        Risk thresholds of the net-benefit rows.
    n_boot : int, default 1000
        Bootstrap resamples for the intervals.
    random_state : int
    subgroups : bool, default True
        Also C, O/E and slope by sex, age band, product, histology and failure window (those present).
    """
    typed, y = validation_cohort(bundle, frame, source=source)
    h = months_to_days(horizon_months)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StatisticalWarning)
        bundle._warn_outside_training(typed, source)
    notes += [str(w.message) for w in caught if issubclass(w.category, StatisticalWarning)]
    Xt = bundle.pipeline.transform_features(typed)
    final = bundle.pipeline.steps[-1][1]
    risk = np.asarray(final.predict(Xt), dtype=float)
    pred_risk = 1.0 - np.clip(final.predict_survival_at(Xt, [h])[:, 0], 0.0, 1.0)
    ext = external_validation(y, risk, pred_risk, h, thresholds=thresholds, n_boot=n_boot, random_state=random_state)
    development = bundle.info["training"].get("risk_score_distribution")
    case_mix = {"development_mean": development["mean"] if development else np.nan,
                "development_sd": development["sd"] if development else np.nan,
                "validation_mean": float(risk.mean()), "validation_sd": float(risk.std(ddof=1)),
                "membership_c": membership_c(development, risk)}
    if not development:
        notes.append("the bundle keeps no training risk-score distribution (exported before cartrisk recorded it): "
                     "the case-mix figure shows the validation cohort only")
    table = None
    if subgroups:
        labels = subgroup_labels(typed)
        if labels:
            table = subgroup_performance(y, risk, pred_risk, h, labels, n_boot=n_boot_subgroups,
                                         random_state=random_state)
    groups, km = None, None
    if bundle.risk_groups:  # from the risk scores above: no second pass of the model
        groups = bundle.risk_group_of(risk, Xt).astype(object)
        km = _group_km(y, groups, list(bundle.risk_groups["labels"]), h)
    result = BundleValidation(bundle.name, bundle.fingerprint, source, ext, case_mix, table, km, development, notes)
    result.arrays = {"time": y["time_days"], "event": y["event"], "risk": risk,
                      **({"groups": groups} if groups is not None else {})}
    return result


def _group_km(y, groups, labels, h) -> pd.DataFrame:
    from cartrisk.data.survstats import km_at

    rows = []
    for label in labels:
        m = groups == label
        s, lo, hi = km_at(y["event"][m], y["time_days"][m], [h])
        rows.append({"risk_group": label, "n": int(m.sum()), "events": int(y["event"][m].sum()),
                     "observed_survival": float(s[0]), "observed_lower": float(lo[0]),
                     "observed_upper": float(hi[0])})
    return pd.DataFrame(rows)
