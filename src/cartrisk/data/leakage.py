"""The leakage guard's figures: does a column give the outcome away?

A registry extract can carry a column recorded after the outcome (a vital status at extraction, a cause of
death, a copy of the event flag under another name). Such a column separates the dead from the censored, or
orders OS-2, almost perfectly, far better than any prognostic factor known at the failure date can.
:func:`screen_leakage` measures, for each candidate column:

- ``value_auc``: the AUC of its values for the event indicator (deaths vs censored), among patients with a
  value; categories are scored by their out-of-fold death rate (so that a level per patient gains nothing);
- ``missing_auc``: the AUC of its missingness alone for the event indicator (a cause of death filled in only for
  the dead has ``missing_auc`` = 1);
- ``harrell_c``: the univariable Harrell C of its values for OS-2, among patients with a value;
- ``equals_outcome``: the outcome column it equals under another name, if any.

Each figure is folded to >= 0.5 (a column that orders the outcome backwards leaks as much). A column is a
suspect when ``value_auc`` or ``missing_auc`` >= :data:`SUSPECT_AUC`, ``harrell_c`` >= :data:`SUSPECT_C`, or it
equals an outcome. The thresholds are design choices of cartrisk (no source gives them): the strongest honest
predictors of the simulated registry stay far below them (``benchmarks/bench_leakage.py`` prints where).
The policy (refuse, or let through what ``allow_suspect`` names) is :func:`cartrisk.modelling.check_leakage`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sksurv.metrics import concordance_index_censored

__all__ = ["SCREEN_COLUMNS", "SUSPECT_AUC", "SUSPECT_C", "screen_leakage"]

#: AUC (values or missingness, for the event indicator) at or above which a column is a suspect.
SUSPECT_AUC = 0.95
#: Univariable Harrell C (for OS-2) at or above which a column is a suspect.
SUSPECT_C = 0.90
#: Columns of :func:`screen_leakage`'s table.
SCREEN_COLUMNS = ("column", "n_known", "value_auc", "missing_auc", "harrell_c", "equals_outcome", "suspect", "reason")
_FOLDS = 5
_PRIOR_WEIGHT = 2.0  # pseudo-patients pulling a level's out-of-fold death rate towards the overall rate


def _auc(score: np.ndarray, event: np.ndarray) -> float:
    """Mann-Whitney AUC of ``score`` for ``event`` (ties count half), folded to >= 0.5; NaN without both classes."""
    n1, n0 = int(event.sum()), int((~event).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(score)
    auc = (ranks[event].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return float(max(auc, 1.0 - auc))


def _harrell(score: np.ndarray, event: np.ndarray, time: np.ndarray) -> float:
    if event.sum() == 0 or np.unique(score).size < 2:
        return float("nan")
    c = concordance_index_censored(event, time, score)[0]
    return float(max(c, 1.0 - c))


def _numeric(values: pd.Series) -> pd.Series | None:
    """The values as floats, or None when some known value is not a number (a category)."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    x = pd.to_numeric(values, errors="coerce")
    return x if x[values.notna()].notna().all() else None


def _encoded(values: pd.Series, event: np.ndarray, random_state: int) -> np.ndarray:
    """Each category's out-of-fold death rate (shrunk towards the overall rate): a score for the AUC and C."""
    text = values.astype(str).to_numpy()
    folds = np.random.default_rng(random_state).permutation(len(text)) % _FOLDS
    overall = float(event.mean())
    out = np.empty(len(text))
    for k in range(_FOLDS):
        train = folds != k
        frame = pd.DataFrame({"level": text[train], "event": event[train]})
        stats = frame.groupby("level")["event"].agg(["sum", "count"])
        rate = (stats["sum"] + _PRIOR_WEIGHT * overall) / (stats["count"] + _PRIOR_WEIGHT)
        out[~train] = pd.Series(text[~train]).map(rate).fillna(overall).to_numpy()
    return out


def _equal_outcome(values: pd.Series, outcomes: Mapping[str, np.ndarray]) -> str:
    known = values.notna().to_numpy()
    if known.mean() < 0.5:
        return ""
    x = _numeric(values)
    for name, outcome in outcomes.items():
        target = np.asarray(outcome, dtype=float)
        if x is not None:
            if np.allclose(x.to_numpy()[known], target[known], rtol=0, atol=1e-9):
                return name
        elif (values[known].astype(str).str.strip().to_numpy()
              == pd.Series(target[known]).map(lambda v: f"{v:g}").to_numpy()).all():
            return name
    return ""


def screen_leakage(X: pd.DataFrame, event, time, columns: Iterable[str] | None = None, *,
                   outcomes: Mapping[str, np.ndarray] | None = None, random_state: int = 0) -> pd.DataFrame:
    """The leakage figures of each candidate column (see the module docstring).

    Parameters
    ----------
    X : DataFrame
        The covariates (patients in rows).
    event, time : array-like of shape (n_samples,)
        The OS-2 event indicator and time (days).
    columns : iterable of str, optional
        The candidate columns (default: every column of ``X``); absent ones are skipped.
    outcomes : mapping of name -> array, optional
        Outcome columns to compare each candidate with (default: ``os2_event`` and ``os2_days`` from
        ``event`` and ``time``; give PFS-2 too where the extract has it).
    random_state : int
        Seed of the folds of the out-of-fold category encoding.

    Returns
    -------
    DataFrame
        One row per candidate, columns :data:`SCREEN_COLUMNS`; ``reason`` says which figure makes a suspect.
        Column-level figures only: nothing patient-level.
    """
    event = np.asarray(event, dtype=bool)
    time = np.asarray(time, dtype=float)
    outcomes = dict(outcomes) if outcomes is not None else {"os2_event": event.astype(float), "os2_days": time}
    rows = []
    for name in (list(X.columns) if columns is None else [c for c in columns if c in X.columns]):
        values = X[name]
        known = values.notna().to_numpy()
        missing_auc = _auc((~known).astype(float), event) if 0 < known.sum() < known.size else 0.5
        x = _numeric(values)
        if known.sum() >= 2:
            score = x.to_numpy()[known] if x is not None else _encoded(values[known], event[known], random_state)
            value_auc, harrell_c = _auc(score, event[known]), _harrell(score, event[known], time[known])
        else:
            value_auc = harrell_c = float("nan")
        equals = _equal_outcome(values, outcomes)
        reasons = []
        if value_auc >= SUSPECT_AUC:
            reasons.append(f"AUC {value_auc:.3f} of its values for the event indicator (>= {SUSPECT_AUC:g})")
        if missing_auc >= SUSPECT_AUC:
            reasons.append(f"AUC {missing_auc:.3f} of its missingness for the event indicator (>= {SUSPECT_AUC:g})")
        if harrell_c >= SUSPECT_C:
            reasons.append(f"univariable Harrell C {harrell_c:.3f} for OS-2 (>= {SUSPECT_C:g})")
        if equals:
            reasons.append(f"equal to the outcome column {equals}")
        rows.append((name, int(known.sum()), value_auc, missing_auc, harrell_c, equals, bool(reasons),
                     "; ".join(reasons)))
    return pd.DataFrame(rows, columns=list(SCREEN_COLUMNS))
