"""Risk groupings of the same patients compared: discrimination, separation, reclassification, net benefit.

:func:`compare_groupings` sets groupings (a rule's, a model's) and continuous scores side by
side on one evaluation cohort: Harrell's and Uno's C, the time-dependent AUC, log-rank, hazard
ratios between groups, KM OS-2 and medians per group, paired bootstrap C differences, the
reclassification table with observed OS-2 per cell, the NRI and the decision curve. Re-exported
by :mod:`cartrisk.groups`. Times are days in arguments and months in result tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sksurv.compare import compare_survival
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw, cumulative_dynamic_auc
from sksurv.util import Surv

from cartrisk.data.survstats import km_at, km_median
from cartrisk.evaluation.calibration import check_horizons
from cartrisk.groups._stats import (
    as_vector,
    bootstrap_harrell,
    bootstrap_weights,
    encode_groups,
    group_hazard_ratios,
    paired_c_difference,
    survival_arrays,
)
from cartrisk.groups.reclassification import decision_curve, net_reclassification
from cartrisk.units import DEFAULT_HORIZONS_MONTHS, days_to_months, months_to_days

__all__ = ["GroupComparison", "compare_groupings"]


@dataclass(frozen=True)
class GroupComparison:
    """Groupings of the same patients compared (e.g. the D0-30 rule against a model's groups).

    Attributes
    ----------
    discrimination : DataFrame
        Per grouping (and continuous score): ``kind`` ("grouping" / "score"), ``n_groups``,
        Harrell's C, Uno's C (truncated at ``tau_months``) and the cumulative/dynamic AUC at the
        horizon of its score, and the log-rank test (``logrank_chisq``, ``logrank_df``,
        ``logrank_p``; NaN for a continuous score).
    groups : DataFrame
        Per grouping and group (``rank`` 0 = lowest risk): ``n, share, events``, KM OS-2 at the
        horizon with CI (``observed*``) and median OS-2 in months with CI (NaN: not reached).
    hazard_ratios : DataFrame
        Cox hazard ratios of each group "vs lowest" and "vs previous" with CI and Wald p.
    c_differences : DataFrame
        One row per compared pair: Harrell's C of ``grouping`` and of ``reference``, the
        difference and its paired bootstrap interval (the same resampled patients for every pair).
    reclassification : DataFrame
        Per pair of groupings, reference group x group cells: ``n`` and KM OS-2 at the horizon with CI.
    nri : DataFrame
        KM-based NRI at the horizon per pair of groupings (NaN when the numbers of groups differ).
    decision_curve : DataFrame or None
        :func:`decision_curve` output when ``mortality`` was given.
    reference : str
        The default reference (the first grouping unless named).
    horizon_months, tau_months, conf_level : float
    """

    discrimination: pd.DataFrame
    groups: pd.DataFrame
    hazard_ratios: pd.DataFrame
    c_differences: pd.DataFrame
    reclassification: pd.DataFrame
    nri: pd.DataFrame
    decision_curve: pd.DataFrame | None
    reference: str
    horizon_months: float
    tau_months: float
    conf_level: float

    def reclassification_matrix(self, grouping: str, value: str = "n", reference: str | None = None) -> pd.DataFrame:
        """Reference groups (rows) x ``grouping``'s groups (columns), both ordered low -> high risk.

        ``reference`` defaults to :attr:`reference`; ``value`` is a column of :attr:`reclassification`
        (``"n"``, ``"observed"``, ...).
        """
        reference = self.reference if reference is None else reference
        table = self.reclassification
        cells = table[(table["grouping"] == grouping) & (table["reference"] == reference)]
        if cells.empty:
            raise ValueError(f"no reclassification table for {grouping!r} against {reference!r}")
        matrix = cells.pivot(index="reference_group", columns="group", values=value)
        rows = cells.sort_values("reference_rank")["reference_group"].unique()
        cols = cells.sort_values("rank")["group"].unique()
        return matrix.loc[rows, cols]


def _km_row(event, time, hdays: float, conf_level: float) -> dict:
    obs, lo, hi = (v[0] for v in km_at(event, time, hdays, conf_level))
    return {"observed": obs, "observed_lower": lo, "observed_upper": hi}


def _check_pairs(pairs, names: list[str], continuous: list[str], reference: str) -> list[tuple[str, str]]:
    known = names + continuous
    if pairs is None:
        return [(name, reference) for name in known if name != reference]
    out = []
    for pair in pairs:
        a, b = pair
        for nm in (a, b):
            if nm not in known:
                raise ValueError(f"pair {tuple(pair)!r} names {nm!r}, not among the groupings or scores {known}")
        if a == b:
            raise ValueError(f"pair {tuple(pair)!r} compares {a!r} with itself")
        out.append((a, b))
    return out


def _reclassify(event, time, y_eval, a, b, hdays, horizon_months, conf_level) -> tuple[list[dict], dict]:
    """Cells of reference ``b`` x grouping ``a`` and the NRI of ``a`` against ``b``."""
    (name, codes, labels), (ref, ref_codes, ref_labels) = a, b
    cells = []
    for i, ref_lab in enumerate(ref_labels):
        for k, lab in enumerate(labels):
            m = (ref_codes == i) & (codes == k)
            cells.append({"grouping": name, "reference": ref, "reference_group": ref_lab, "reference_rank": i,
                          "group": lab, "rank": k, "n": int(m.sum()), **_km_row(event[m], time[m], hdays, conf_level)})
    row = {"grouping": name, "reference": ref}
    keys = ("nri_events", "nri_nonevents", "nri", "n_up", "n_down")
    if len(labels) == len(ref_labels):
        r = net_reclassification(y_eval, pd.Categorical.from_codes(ref_codes, ref_labels),
                                 pd.Categorical.from_codes(codes, labels), horizon_months)
        row |= {k: getattr(r, k) for k in keys}
    else:
        row |= dict.fromkeys(keys, np.nan)
    return cells, row


def compare_groupings(
    y,
    groupings: Mapping[str, object],
    scores: Mapping[str, object] | None = None,
    y_train=None,
    *,
    continuous: Mapping[str, object] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    horizon_months: float = 6.0,
    reference: str | None = None,
    tau_months: float = max(DEFAULT_HORIZONS_MONTHS),
    mortality: Mapping[str, object] | None = None,
    thresholds=None,
    n_boot: int = 1000,
    conf_level: float = 0.95,
    random_state=None,
) -> GroupComparison:
    """Compare risk groupings of the same patients: discrimination, separation, reclassification.

    Parameters
    ----------
    y : structured array
        Survival target of the evaluation patients.
    groupings : mapping of name -> Categorical or integer codes
        Each grouping ordered low -> high risk (a model's :meth:`RiskGrouper.predict`, a rule's
        groups). Plain string labels are ordered by their mean score when one is given.
    scores : mapping of name -> array, optional
        Continuous risk score behind a grouping (higher = worse), used for its C and AUC; a
        grouping without one is scored by its group code, which is how a rule is scored.
    y_train : structured array, optional
        Training target, for the censoring distribution of Uno's C and the AUC (default ``y``).
    continuous : mapping of name -> array, optional
        Continuous risk scores without groups (e.g. a model's own prediction): they get the
        discrimination rows and enter C differences, nothing else.
    pairs : sequence of (name, reference name), optional
        Pairs compared by C difference (and, for two groupings, reclassification and NRI).
        Default: every grouping and score against ``reference``.
    horizon_months : float
        Horizon of the AUC, KM read-outs, reclassification, NRI and decision curve.
    reference : str, optional
        Grouping the others are compared against by default (default: the first, e.g. the D0-30 rule).
    tau_months : float
        Truncation time of Uno's C.
    mortality : mapping of name -> array, optional
        Predicted probability of death by the horizon, for the decision curve.
    thresholds : array-like, optional
        Decision-curve thresholds.
    n_boot : int
        Bootstrap resamples of the C differences (shared by all pairs).
    conf_level : float
    random_state : int, Generator or None

    Returns
    -------
    GroupComparison

    Raises
    ------
    ValueError
        When the horizon lies outside the follow-up (:func:`cartrisk.evaluation.calibration.check_horizons`),
        a grouping has fewer than two non-empty groups, or names do not match.
    """
    event, time = survival_arrays(y)
    n = len(time)
    if not groupings:
        raise ValueError("groupings is empty")
    names, continuous = list(groupings), dict(continuous or {})
    if set(names) & set(continuous):
        raise ValueError(f"names used both as grouping and as continuous score: {sorted(set(names) & set(continuous))}")
    reference = names[0] if reference is None else reference
    if reference not in groupings:
        raise ValueError(f"reference {reference!r} is not among the groupings {names}")
    scores = dict(scores or {})
    if set(scores) - set(names):
        raise ValueError(f"scores given for unknown groupings {sorted(set(scores) - set(names))}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    pairs = _check_pairs(pairs, names, list(continuous), reference)
    hdays, tau_days = months_to_days(horizon_months), months_to_days(tau_months)
    y_eval = Surv.from_arrays(event, time)
    check_horizons([hdays], y_eval, y_train)
    enc, score_of = {}, {}
    for name in names:
        s = as_vector(scores[name], f"scores[{name!r}]", n) if name in scores else None
        codes, labels = encode_groups(groupings[name], s, name=f"groupings[{name!r}]", require_order=True)
        if len(codes) != n:
            raise ValueError(f"groupings[{name!r}] has {len(codes)} values, expected {n}")
        if len(np.unique(codes)) < 2:
            raise ValueError(f"grouping {name!r} has fewer than two non-empty groups")
        enc[name] = (codes, [str(lab) for lab in labels])
        score_of[name] = s if s is not None else codes.astype(float)
    for name, s in continuous.items():
        score_of[name] = as_vector(s, f"continuous[{name!r}]", n)

    y_cens = y_eval if y_train is None else y_train
    y_auc = Surv.from_arrays(event & (time <= hdays), time)  # events after h are controls either way
    disc, grp, hrs = [], [], []
    for name, score in score_of.items():
        row = {"grouping": name, "kind": "grouping" if name in enc else "score",
               "n_groups": len(enc[name][1]) if name in enc else np.nan,
               "harrell_c": concordance_index_censored(event, time, score)[0],
               "uno_c": concordance_index_ipcw(y_cens, y_eval, score, tau=tau_days)[0],
               "td_auc": cumulative_dynamic_auc(y_cens, y_auc, score, [hdays])[0][0],
               "logrank_chisq": np.nan, "logrank_df": np.nan, "logrank_p": np.nan}
        if name in enc:
            codes, labels = enc[name]
            chisq, p_lr = compare_survival(y_eval, codes)
            row |= {"logrank_chisq": chisq, "logrank_df": len(np.unique(codes)) - 1, "logrank_p": p_lr}
            for k, lab in enumerate(labels):
                m = codes == k
                med = days_to_months(np.array(km_median(event[m], time[m], conf_level)))
                grp.append({"grouping": name, "group": lab, "rank": k, "n": int(m.sum()), "share": m.mean(),
                            "events": int(event[m].sum()), **_km_row(event[m], time[m], hdays, conf_level),
                            "median_months": med[0], "median_lower": med[1], "median_upper": med[2]})
            hrs.append(group_hazard_ratios(event, time, codes, labels, conf_level).assign(grouping=name))
        disc.append(row)

    in_pairs = list(dict.fromkeys(nm for pair in pairs for nm in pair))
    col = {nm: k for k, nm in enumerate(in_pairs)}
    weights = bootstrap_weights(n, n_boot, random_state)
    boot_scores = [score_of[nm] for nm in in_pairs]
    full = bootstrap_harrell(event, time, boot_scores, np.ones((1, n)))[0] if pairs else np.empty(0)
    boot = bootstrap_harrell(event, time, boot_scores, weights) if pairs else np.empty((0, 0))
    cdiff, recl, nri = [], [], []
    for a, b in pairs:
        ia, ib = col[a], col[b]
        d = paired_c_difference(full[[ia, ib]], boot[:, [ia, ib]], conf_level)
        cdiff.append({"grouping": a, "reference": b, "c": d.c_a, "c_lower": d.c_a_lower, "c_upper": d.c_a_upper,
                      "c_reference": d.c_b, "c_reference_lower": d.c_b_lower, "c_reference_upper": d.c_b_upper,
                      "difference": d.difference, "lower": d.lower, "upper": d.upper, "se": d.se,
                      "n_boot": d.n_boot})
        if a in enc and b in enc:
            cells, row = _reclassify(event, time, y_eval, (a, *enc[a]), (b, *enc[b]), hdays, horizon_months,
                                     conf_level)
            recl += cells
            nri.append(row)
    hr_table = pd.concat(hrs, ignore_index=True)
    hr_table = hr_table[["grouping"] + [c for c in hr_table.columns if c != "grouping"]]
    curve = None if mortality is None else decision_curve(y_eval, mortality, horizon_months, thresholds)
    return GroupComparison(
        discrimination=pd.DataFrame(disc), groups=pd.DataFrame(grp), hazard_ratios=hr_table,
        c_differences=pd.DataFrame(cdiff), reclassification=pd.DataFrame(recl), nri=pd.DataFrame(nri),
        decision_curve=curve, reference=reference, horizon_months=float(horizon_months),
        tau_months=float(tau_months), conf_level=conf_level,
    )
