"""Reclassification and clinical usefulness of risk groups: censoring-aware NRI and net benefit.

Functions on survival targets and group codes (times in days unless a name says months). The
public names are re-exported by :mod:`cartrisk.groups`; import them from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cartrisk.data.survstats import km_at
from cartrisk.groups._stats import as_vector, encode_groups, survival_arrays
from cartrisk.units import months_to_days

__all__ = ["NRIResult", "decision_curve", "net_benefit", "net_reclassification", "observed_group_risk"]


# --------------------------------------------------------------------------- reclassification
@dataclass(frozen=True)
class NRIResult:
    """Net reclassification improvement at a horizon for censored data.

    Attributes
    ----------
    nri_events, nri_nonevents, nri : float
        Event NRI, non-event NRI and their sum.
    n_up, n_down : int
        Patients moved to a higher / lower risk group by the new grouping.
    km_up, km_down, km_all : float
        Kaplan-Meier survival at the horizon among those moved up, moved down, and all.
    horizon_months : float
    """

    nri_events: float
    nri_nonevents: float
    nri: float
    n_up: int
    n_down: int
    km_up: float
    km_down: float
    km_all: float
    horizon_months: float


def net_reclassification(y, groups_old, groups_new, horizon_months: float = 6.0) -> NRIResult:
    """Kaplan-Meier based net reclassification improvement (categorical NRI) at a horizon.

    Events are deaths by the horizon t. Following Pencina, D'Agostino & Steyerberg
    (Stat Med 2011;30:11-21, section on survival data) and Steyerberg & Pencina (Ann Intern
    Med 2010;152:195-6), the conditional probabilities come from Kaplan-Meier estimates by
    Bayes' rule, so patients censored before t contribute instead of being dropped:

        P(up | event)    = (1 - S_up(t)) n_up / (n (1 - S(t)))
        P(up | no event) = S_up(t) n_up / (n S(t))           (likewise for "down")
        NRI_events    = P(up | event) - P(down | event)
        NRI_nonevents = P(down | no event) - P(up | no event)

    with S_up the KM curve of those the new grouping moves to a higher group and S that of
    everyone. Without censoring before t this is the classical NRI (Pencina et al., Stat Med
    2008;27:157-72). NaN when a KM curve is not estimable at t (follow-up ends before it).

    Parameters
    ----------
    y : structured array
    groups_old, groups_new : Categorical or integer codes of shape (n_samples,)
        Groupings on the same ordinal scale: the same number of groups, ordered low -> high
        risk (e.g. the D0-30 rule and a model's groups of the same sizes).
    horizon_months : float

    Returns
    -------
    NRIResult
    """
    event, time = survival_arrays(y)
    codes_old, labels_old = encode_groups(groups_old, name="groups_old", require_order=True)
    codes_new, labels_new = encode_groups(groups_new, name="groups_new", require_order=True)
    if len(labels_old) != len(labels_new):
        raise ValueError(
            f"groupings must have the same number of groups to define up/down moves, got {len(labels_old)} "
            f"and {len(labels_new)}"
        )
    if not len(codes_old) == len(codes_new) == len(time):
        raise ValueError(f"groupings must have {len(time)} values, got {len(codes_old)} and {len(codes_new)}")
    horizon_days = months_to_days(horizon_months)
    up, down = codes_new > codes_old, codes_new < codes_old
    n = len(time)
    km_all = km_at(event, time, horizon_days)[0][0]

    def km_sub(mask):
        return km_at(event[mask], time[mask], horizon_days)[0][0] if mask.any() else 0.0

    km_up, km_down = km_sub(up), km_sub(down)
    n_up, n_down = int(up.sum()), int(down.sum())
    with np.errstate(divide="ignore", invalid="ignore"):  # NaN / inf when nobody (or everybody) died by t
        nri_e = np.float64(n_up * (1 - km_up) - n_down * (1 - km_down)) / (n * (1 - km_all))
        nri_ne = np.float64(n_down * km_down - n_up * km_up) / (n * km_all)
    return NRIResult(
        nri_events=float(nri_e), nri_nonevents=float(nri_ne), nri=float(nri_e + nri_ne), n_up=n_up,
        n_down=n_down, km_up=float(km_up) if n_up else np.nan, km_down=float(km_down) if n_down else np.nan,
        km_all=float(km_all), horizon_months=float(horizon_months),
    )


# --------------------------------------------------------------------------- decision curve
def net_benefit(y, risk, thresholds, horizon_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Net benefit of treating patients whose predicted risk of death by t is >= p_t.

    Vickers, Cronin, Elkin & Gonen, BMC Med Inform Decis Mak 2008;8:53 (extension to
    censored data): with x = 1 for "treat", true positives per patient are
    P(x=1) (1 - S_{x=1}(t)) and false positives P(x=1) S_{x=1}(t), S_{x=1} the Kaplan-Meier
    survival of the treated at t, so

        NB(p_t) = P(x=1) [(1 - S_{x=1}(t)) - S_{x=1}(t) p_t / (1 - p_t)].

    Treat-all is ``risk = 1`` for everyone; treat-none has NB = 0. NaN where the treated
    group's KM is not estimable at t.

    Returns
    -------
    net_benefit, treated_share : ndarray of shape (n_thresholds,)
    """
    event, time = survival_arrays(y, allow_all_censored=True)
    risk = np.asarray(risk, dtype=float)
    thresholds = np.asarray(thresholds, dtype=float)
    nb, share = np.empty(thresholds.shape), np.empty(thresholds.shape)
    for k, p in enumerate(thresholds):
        treat = risk >= p
        share[k] = treat.mean()
        if not treat.any():
            nb[k] = 0.0
            continue
        s = km_at(event[treat], time[treat], horizon_days)[0][0]
        nb[k] = share[k] * ((1.0 - s) - s * p / (1.0 - p))
    return nb, share


def observed_group_risk(y_ref, groups_ref, groups, horizon_months: float = 6.0) -> np.ndarray:
    """Each patient's risk of death by the horizon as observed in their group of a reference cohort.

    The "predicted" mortality of a rule: 1 - KM(h) of the patient's group, estimated on
    ``y_ref`` / ``groups_ref`` (use the training cohort; the same cohort gives an optimistic
    curve). Groups are matched by label (Categoricals) or code.
    """
    event, time = survival_arrays(y_ref, allow_all_censored=True)
    codes_ref, labels_ref = encode_groups(groups_ref, name="groups_ref")
    codes, labels = encode_groups(groups, name="groups")
    missing = set(labels) - set(labels_ref)
    if missing:
        raise ValueError(f"groups {sorted(missing)} do not occur in groups_ref")
    hdays = months_to_days(horizon_months)
    risk_by_label = {lab: 1.0 - km_at(event[codes_ref == k], time[codes_ref == k], hdays)[0][0]
                     for k, lab in enumerate(labels_ref)}
    return np.array([risk_by_label[labels[c]] for c in codes], dtype=float)


def decision_curve(y, risks: Mapping[str, object], horizon_months: float = 6.0, thresholds=None) -> pd.DataFrame:
    """Net benefit across thresholds of mortality by the horizon, with treat-all and treat-none.

    Parameters
    ----------
    y : structured array
    risks : mapping of name -> array of shape (n_samples,)
        Predicted probability of death by the horizon (a model's ``1 - S(h)``, a rule's
        :func:`observed_group_risk` or its groups' predicted mortality).
    horizon_months : float
    thresholds : array-like, optional
        Threshold probabilities in (0, 1); default 0.05, 0.10, ..., 0.95.

    Returns
    -------
    DataFrame with columns ``strategy, threshold, net_benefit, treated_share``, the
    censoring-aware net benefit of :func:`net_benefit` (Vickers et al. 2008).
    """
    event, time = survival_arrays(y, allow_all_censored=True)
    if thresholds is None:
        thresholds = np.round(np.arange(0.05, 0.951, 0.05), 10)
    thresholds = as_vector(thresholds, "thresholds")
    if np.any((thresholds <= 0) | (thresholds >= 1)):
        raise ValueError("thresholds must lie strictly between 0 and 1")
    hdays = months_to_days(horizon_months)
    frames = []
    strategies = {**{name: as_vector(r, f"risks[{name!r}]", len(time)) for name, r in risks.items()},
                  "treat all": np.ones(len(time))}
    for name, risk in strategies.items():
        nb, share = net_benefit(y, risk, thresholds, hdays)
        frames.append(pd.DataFrame({"strategy": name, "threshold": thresholds, "net_benefit": nb,
                                    "treated_share": share}))
    frames.append(pd.DataFrame({"strategy": "treat none", "threshold": thresholds, "net_benefit": 0.0,
                                "treated_share": 0.0}))
    return pd.concat(frames, ignore_index=True)
