"""Minimum sample size for a survival prediction model (Riley et al., Stat Med 2019;38:1276-96, part II; BMJ
2020;368:m441), as R's ``pmsampsize`` (type "s") computes it, and the check of a cohort against it.

Criterion 1: expected uniform shrinkage >= S (0.9): ``n = p / ((S - 1) ln(1 - R2cs / S))``. Criterion 2: optimism
in Nagelkerke's R^2 <= 0.05: the same with ``S2 = R2cs / (R2cs + 0.05 max R2cs)``, where for an exponential null
model ``max R2cs = 1 - exp(2 lnL_null / n)``, ``lnL_null = E ln(E / n) - E``. Criterion 3: the overall risk at the
horizon within a 95% interval, reported for the size the first two need. Riley's targets (S = 0.9, 0.05) are in
the literature data file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from cartrisk.data.literature import method_constants

__all__ = ["SampleSize", "expected_shrinkage", "riley_survival", "sample_size_check"]

#: Riley et al. 2019: target expected shrinkage, and the largest acceptable optimism in Nagelkerke's R^2.
TARGET_SHRINKAGE = float(method_constants()["sample_size"]["target_shrinkage"])
NAGELKERKE_OPTIMISM = float(method_constants()["sample_size"]["nagelkerke_optimism"])


@dataclass(frozen=True)
class SampleSize:
    """The criteria's sizes and what they imply (as ``pmsampsize``'s results table)."""

    parameters: int
    rate: float
    horizon: float
    mean_followup: float
    r2_cs: float
    max_r2_cs: float
    nagelkerke_r2: float
    n_criterion1: int
    n_criterion2: int
    shrinkage_criterion2: float
    n: int
    shrinkage: float
    events: float
    events_per_parameter: float
    person_time: float
    overall_risk: float
    overall_risk_lower: float
    overall_risk_upper: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def riley_survival(*, parameters: int, rate: float, horizon: float, mean_followup: float, r2_cs: float,
                   shrinkage: float = TARGET_SHRINKAGE) -> SampleSize:
    """The minimum sample size of a survival prediction model (``pmsampsize(type = "s")``).

    Parameters
    ----------
    parameters : int
        Candidate predictor parameters (after encoding: a 4-level category counts 3).
    rate : float
        Overall event rate per unit of time (e.g. deaths per person-month).
    horizon : float
        Time point of interest, in the rate's unit.
    mean_followup : float
        Anticipated mean follow-up, in the rate's unit.
    r2_cs : float
        Anticipated Cox-Snell R^2 of the model (e.g. ``1 - exp(-LR / n)`` of an existing model).
    shrinkage : float, default 0.9

    Raises
    ------
    ValueError
        Out-of-range inputs, with the range allowed.
    """
    if parameters < 1 or rate <= 0 or horizon <= 0 or mean_followup <= 0:
        raise ValueError(f"parameters must be >= 1 and rate, horizon and mean follow-up positive, got {parameters}, "
                         f"{rate}, {horizon}, {mean_followup}")
    if not 0 < shrinkage < 1 or not 0 < r2_cs < shrinkage:
        raise ValueError(f"the anticipated Cox-Snell R2 must lie between 0 and the target shrinkage {shrinkage:g} "
                         f"(got {r2_cs:g})")
    n_ref = 10000
    events_ref = math.ceil(rate * mean_followup * n_ref)
    ln_null = events_ref * math.log(events_ref / n_ref) - events_ref
    max_r2 = 1.0 - math.exp(2.0 * ln_null / n_ref)
    if r2_cs >= max_r2:
        raise ValueError(f"the anticipated Cox-Snell R2 {r2_cs:g} is not below its maximum {max_r2:.3f} for this "
                         "event rate and follow-up; lower it")
    n1 = math.ceil(parameters / ((shrinkage - 1.0) * math.log(1.0 - r2_cs / shrinkage)))
    s2 = r2_cs / (r2_cs + NAGELKERKE_OPTIMISM * max_r2)
    n2 = math.ceil(parameters / ((s2 - 1.0) * math.log(1.0 - r2_cs / s2)))
    n = max(n1, n2)
    person_time = round(mean_followup * n, 1)
    half = 1.96 * math.sqrt(rate / person_time)
    risk = lambda r: 1.0 - math.exp(-r * horizon)  # noqa: E731
    events = n * rate * mean_followup
    return SampleSize(parameters=int(parameters), rate=rate, horizon=horizon, mean_followup=mean_followup,
                      r2_cs=r2_cs, max_r2_cs=max_r2, nagelkerke_r2=r2_cs / max_r2, n_criterion1=n1, n_criterion2=n2,
                      shrinkage_criterion2=s2, n=n, shrinkage=max(shrinkage, s2), events=events,
                      events_per_parameter=events / parameters, person_time=person_time, overall_risk=risk(rate),
                      overall_risk_lower=risk(rate - half), overall_risk_upper=risk(rate + half))


def expected_shrinkage(n: int, parameters: int, r2_cs: float) -> float:
    """Van Houwelingen's heuristic shrinkage of a model with ``parameters`` fitted on ``n`` patients with apparent
    Cox-Snell R^2 ``r2_cs``: ``1 + p / (n ln(1 - R2cs))`` (Riley et al. 2019, equation of criterion 1)."""
    if not 0 < r2_cs < 1:
        return float("nan")
    return 1.0 + parameters / (n * math.log(1.0 - r2_cs))


def sample_size_check(X_features, time, event, *, horizon: float | None = None) -> dict[str, float]:
    """A cohort against Riley's criteria for a model on the candidate features ``X_features`` (encoded).

    The anticipated Cox-Snell R^2 is that of an unpenalised Cox model on the candidate features (``1 - exp(-LR /
    n)``); the expected shrinkage is van Houwelingen's; the minimum size uses the cohort's event rate and mean
    follow-up (in the unit of ``time``). Returns a dict (``n, events, parameters, events_per_parameter, r2_cs,
    expected_shrinkage, required_n, required_events_per_parameter``; NaN where not computable).
    """
    from cartrisk.evaluation.coxreg import fit_cox

    Z = np.asarray(X_features, dtype=float)
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    keep = np.ptp(Z, axis=0) > 0
    Z = (Z[:, keep] - Z[:, keep].mean(axis=0)) / Z[:, keep].std(axis=0)
    n, p = Z.shape
    events = int(event.sum())
    with np.errstate(all="ignore"):
        fit = fit_cox(Z, event, time)
    lr = max(2.0 * (fit.loglik - fit.loglik_null), 0.0)
    r2 = 1.0 - math.exp(-lr / n) if lr > 0 else float("nan")
    out = {"n": n, "events": events, "parameters": p, "events_per_parameter": events / p if p else float("nan"),
           "r2_cs": r2, "expected_shrinkage": expected_shrinkage(n, p, r2), "required_n": float("nan"),
           "required_events_per_parameter": float("nan")}
    rate = events / time.sum()
    if np.isfinite(r2) and p:
        try:
            need = riley_survival(parameters=p, rate=rate, horizon=horizon or float(np.median(time)),
                                  mean_followup=float(time.mean()), r2_cs=min(r2, 0.899))
            out.update(required_n=float(need.n), required_events_per_parameter=need.events_per_parameter)
        except ValueError:
            pass
    return out
