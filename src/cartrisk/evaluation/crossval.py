"""Cross-validation of survival models and rules: event-stratified splits, per-fold metrics, summaries.

Every model and rule sees the same folds when given the same splitter. Metrics per fold are those of
:mod:`cartrisk.evaluation.metrics` and :mod:`cartrisk.evaluation.calibration`; times are days in
arguments, horizons months in results.
"""

from __future__ import annotations

import time as _time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import _safe_indexing
from sksurv.util import check_y_survival

from cartrisk.evaluation.calibration import (
    calibration_at_horizon,
    d_calibration,
    horizon_problems,
    lookup_survival,
)
from cartrisk.evaluation.metrics import (
    IBS_GRID_POINTS,
    brier_at,
    harrell_c,
    integrated_brier,
    time_dependent_auc,
    uno_c,
)
from cartrisk.exceptions import StatisticalWarning
from cartrisk.units import DEFAULT_HORIZONS_MONTHS, months_to_days

__all__ = ["HEADLINE_METRICS", "CVResult", "EventStratifiedKFold", "FixedSplits", "compare", "comparison_table",
           "cross_validate_survival", "derived_seed", "nested_folds", "seed_estimator"]

#: The horizon at which one-number summaries read metrics that have several horizons.
HEADLINE_HORIZON_MONTHS = 6.0


class EventStratifiedKFold:
    """K-fold splits of a survival target, stratified on the event indicator.

    scikit-learn's ``StratifiedKFold`` cannot read a structured survival target;
    this splitter builds strata from the event indicator (and, with
    ``time_bins > 1``, from quantile bins of the observed time within each event
    stratum) and splits each repeat with its own seed.

    Parameters
    ----------
    n_splits : int, default 5
    n_repeats : int, default 1
    shuffle : bool, default True
        Must be True when ``n_repeats > 1`` (repeats would otherwise be identical).
    random_state : int or None
        Seeds the repeats (one seed per repeat, drawn from ``SeedSequence(random_state)``).
    time_bins : int, default 1
        Quantile bins of time within each event stratum (3 = tertiles).
    """

    def __init__(
        self,
        n_splits: int = 5,
        n_repeats: int = 1,
        shuffle: bool = True,
        random_state: int | None = None,
        time_bins: int = 1,
    ) -> None:
        self.n_splits = n_splits
        self.n_repeats = n_repeats
        self.shuffle = shuffle
        self.random_state = random_state
        self.time_bins = time_bins

    def __repr__(self) -> str:
        return (
            f"EventStratifiedKFold(n_splits={self.n_splits}, n_repeats={self.n_repeats}, shuffle={self.shuffle}, "
            f"random_state={self.random_state}, time_bins={self.time_bins})"
        )

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of train/test splits: ``n_splits * n_repeats``."""
        return self.n_splits * self.n_repeats

    def strata(self, y) -> np.ndarray:
        """Stratum label of each sample (``event * time_bins + time bin``); checks every stratum's size."""
        if not (isinstance(self.n_splits, int | np.integer) and self.n_splits >= 2):
            raise ValueError(f"n_splits must be an integer >= 2, got {self.n_splits!r}")
        if not (isinstance(self.n_repeats, int | np.integer) and self.n_repeats >= 1):
            raise ValueError(f"n_repeats must be an integer >= 1, got {self.n_repeats!r}")
        if not (isinstance(self.time_bins, int | np.integer) and self.time_bins >= 1):
            raise ValueError(f"time_bins must be an integer >= 1, got {self.time_bins!r}")
        if self.n_repeats > 1 and not self.shuffle:
            raise ValueError("n_repeats > 1 needs shuffle=True, otherwise every repeat gives the same folds")
        event, time = check_y_survival(y)  # raises "all samples are censored"
        labels = np.zeros(time.shape[0], dtype=int)
        for ev in (False, True):
            m = event == ev
            if self.time_bins > 1 and m.any():
                edges = np.quantile(time[m], np.linspace(0, 1, self.time_bins + 1)[1:-1])
                labels[m] = np.searchsorted(edges, time[m], side="right")
            labels[m] += int(ev) * self.time_bins
        values, counts = np.unique(labels, return_counts=True)
        for value, count in zip(values, counts, strict=True):
            if count < self.n_splits:
                kind = "events" if value >= self.time_bins else "censored"
                where = f", time bin {value % self.time_bins + 1} of {self.time_bins}" if self.time_bins > 1 else ""
                raise ValueError(
                    f"stratum '{kind}{where}' has {count} samples, fewer than n_splits={self.n_splits}; "
                    "use fewer splits or fewer time bins"
                )
        return labels

    def split(self, X, y, groups=None):
        """Yield ``(train_index, test_index)`` for each fold of each repeat (repeat-major order)."""
        labels = self.strata(y)
        seeds = np.random.SeedSequence(self.random_state).generate_state(self.n_repeats)
        dummy = np.zeros((labels.shape[0], 1))
        for seed in seeds:
            skf = StratifiedKFold(self.n_splits, shuffle=self.shuffle, random_state=int(seed) if self.shuffle else None)
            yield from skf.split(dummy, labels)


# ---------------------------------------------------------------- cross-validation


class FixedSplits:
    """A splitter that replays given ``(train_index, test_index)`` folds (e.g. a study's outer folds).

    Parameters
    ----------
    folds : sequence of (ndarray, ndarray)
        Positions of each fold's training and test samples, in order.
    """

    n_repeats = 1

    def __init__(self, folds) -> None:
        self.folds = [(np.asarray(train), np.asarray(test)) for train, test in folds]

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return len(self.folds)

    def split(self, X=None, y=None, groups=None):
        yield from self.folds




@dataclass
class CVResult:
    """Held-out performance of one model or rule across the folds of a cross-validation.

    Attributes
    ----------
    per_fold : DataFrame
        Tidy: ``repeat``, ``fold``, ``metric``, ``horizon_months`` (NaN for metrics
        without a horizon; for ``uno_c`` and ``ibs`` the largest horizon, their
        truncation time), ``value`` (NaN where a horizon was not usable in a fold).
    fit_times : ndarray, shape (n_folds,)
        Seconds spent in ``fit`` per fold.
    horizons_months : tuple of float
    n_splits, n_repeats : int
    oof_risk : ndarray or None
        Out-of-fold risk scores (``predict``), when every sample is tested exactly once
        (``n_repeats == 1``); None otherwise.
    oof_survival : DataFrame or None
        Out-of-fold survival probabilities, one column per horizon in months, same condition.
    """

    per_fold: pd.DataFrame
    fit_times: np.ndarray
    horizons_months: tuple[float, ...]
    n_splits: int
    n_repeats: int
    oof_risk: np.ndarray | None = None
    oof_survival: pd.DataFrame | None = None

    def summary(self, interval: str = "t", confidence: float = 0.95) -> pd.DataFrame:
        """Mean, sd and interval of each metric across folds.

        Parameters
        ----------
        interval : {"t", "percentile"}
            ``"t"``: ``mean +- t(k-1) * sd / sqrt(k)`` over the k folds where the metric
            is defined, an interval for the mean CV estimate. ``"percentile"``: the
            central quantiles of the fold values, describing fold-to-fold spread.
        confidence : float, default 0.95

        Returns
        -------
        DataFrame
            One row per (``metric``, ``horizon_months``): ``n_folds``, ``mean``, ``sd``,
            ``lower``, ``upper``.

        Notes
        -----
        Folds share training data and repeats reuse the same patients, so fold
        values are not independent: the t interval is too narrow, the more so with
        more repeats. Read it as a guide to the noise, not as a formal confidence
        interval; use a bootstrap or nested design for formal inference.
        """
        if interval not in ("t", "percentile"):
            raise ValueError(f"interval must be 't' or 'percentile', got {interval!r}")
        alpha = (1 - confidence) / 2
        rows = []
        for (metric, horizon), grp in self.per_fold.groupby(["metric", "horizon_months"], sort=False, dropna=False):
            v = grp["value"].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            k = v.shape[0]
            mean = float(v.mean()) if k else np.nan
            sd = float(v.std(ddof=1)) if k > 1 else np.nan
            if k < 2:
                lower = upper = np.nan
            elif interval == "t":
                half = stats.t.ppf(1 - alpha, k - 1) * sd / np.sqrt(k)
                lower, upper = mean - half, mean + half
            else:
                lower, upper = (float(q) for q in np.quantile(v, [alpha, 1 - alpha]))
            rows.append(
                {
                    "metric": metric,
                    "horizon_months": horizon,
                    "n_folds": k,
                    "mean": mean,
                    "sd": sd,
                    "lower": lower,
                    "upper": upper,
                }
            )
        return pd.DataFrame(rows)

    def metric_dict(self, prefix: str = "") -> dict[str, float]:
        """The summary as flat metrics: ``<prefix><metric>[_<h>m]_<mean|lower|upper>`` (the names MLflow runs hold)."""
        out = {}
        for r in self.summary().itertuples(index=False):
            name = r.metric if pd.isna(r.horizon_months) else f"{r.metric}_{r.horizon_months:g}m"
            out.update({f"{prefix}{name}_mean": r.mean, f"{prefix}{name}_lower": r.lower,
                        f"{prefix}{name}_upper": r.upper})
        return out

    def headline(self, metric: str, horizon_months: float = HEADLINE_HORIZON_MONTHS) -> pd.Series | None:
        """The summary row of ``metric`` at ``horizon_months`` when it has one, else its first row (Uno's C and the
        integrated Brier score sit at the last horizon); None when the metric is absent."""
        s = self.summary()
        rows = s[s["metric"] == metric]
        if rows.empty:
            return None
        at = rows[rows["horizon_months"] == horizon_months]
        return (at if len(at) else rows).iloc[0]


def compare(results: dict[str, CVResult], interval: str = "t") -> pd.DataFrame:
    """Models and rules side by side.

    Returns
    -------
    DataFrame
        Index (``metric``, ``horizon_months``); columns a MultiIndex (name, ``mean`` /
        ``lower`` / ``upper``) in the order of ``results``.
    """
    if not results:
        raise ValueError("compare needs at least one CVResult")
    frames = []
    for res in results.values():
        s = res.summary(interval=interval)
        s["horizon_months"] = s["horizon_months"].fillna(-1.0)  # NaN does not align as an index label
        frames.append(s.set_index(["metric", "horizon_months"])[["mean", "lower", "upper"]])
    out = pd.concat(frames, axis=1, keys=list(results), sort=False)
    out.index = out.index.set_levels(out.index.levels[1].where(out.index.levels[1] >= 0, np.nan), level=1)
    out.columns.names = ["model", "stat"]
    return out


def derived_seed(seed: int, *path: int) -> int:
    """A seed derived from ``seed`` and a path of integers (``numpy.random.SeedSequence``), e.g. one per study."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0])


def nested_folds(y, outer_folds: int, inner_folds: int, seed: int
                 ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[list[tuple[np.ndarray, np.ndarray]]]]:
    """The folds of a nested cross-validation: the outer splits, and each study's inner splits.

    Study ``k`` (``k < outer_folds``) tunes on the training part of outer fold ``k`` with inner folds seeded by
    ``derived_seed(seed, k + 1)``; the last study tunes on all data with ``derived_seed(seed, 0)``. Inner split
    positions index into the study's own data (the outer training part, or all data).
    """
    outer = list(EventStratifiedKFold(n_splits=outer_folds, shuffle=True, random_state=seed)
                 .split(np.zeros((len(y), 1)), y))
    parts = [(train, k + 1) for k, (train, _) in enumerate(outer)] + [(np.arange(len(y)), 0)]
    inner = [list(EventStratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=derived_seed(seed, key))
                  .split(np.zeros((len(part), 1)), y[part])) for part, key in parts]
    return outer, inner


#: Metrics of the one-row-per-model comparison tables, and the horizon they are read at.
HEADLINE_METRICS = ("harrell_c", "uno_c", "auc", "brier", "ibs", "ici")


def comparison_table(results: dict[str, CVResult], kinds: dict[str, str], metrics=HEADLINE_METRICS,
                     horizon_months: float = HEADLINE_HORIZON_MONTHS) -> pd.DataFrame:
    """One row per model or rule: ``model``, ``kind``, then ``mean [lower, upper]`` of each metric.

    A metric with horizons is read at ``horizon_months`` when it has that horizon, else at its only one; its
    column is named ``<metric>@<h>m``.
    """
    rows = []
    for label, result in results.items():
        row = {"model": label, "kind": kinds[label]}
        for metric in metrics:
            r = result.headline(metric, horizon_months)
            if r is None:
                continue
            suffix = "" if pd.isna(r["horizon_months"]) else f"@{r['horizon_months']:g}m"
            row[f"{metric}{suffix}"] = f"{r['mean']:.3f} [{r['lower']:.3f}, {r['upper']:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def seed_estimator(estimator, seed: int):
    """Give every unset ``random_state`` parameter of ``estimator`` (nested ones too) the seed."""
    params = {
        k: seed
        for k, v in estimator.get_params(deep=True).items()
        if (k == "random_state" or k.endswith("__random_state")) and v is None
    }
    return estimator.set_params(**params) if params else estimator


def _fold_metrics(est, X_test, y_train, y_test, horizons_days: np.ndarray, calibration: bool, where: str):
    """Every metric on one held-out fold; returns ``(rows, risk, surv_at_horizons)``."""
    event, time = check_y_survival(y_test)
    problems = horizon_problems(horizons_days, y_test, y_train, require_events=True)
    for p in problems:
        if p is not None:
            warnings.warn(f"{p} ({where}: its metrics at this horizon are NaN)", StatisticalWarning, stacklevel=3)
    ok = np.array([p is None for p in problems])
    usable = horizons_days[ok]
    last_ok = bool(ok[-1])
    ibs_grid = np.linspace(time.min(), horizons_days[-1], IBS_GRID_POINTS) if last_ok else np.empty(0)
    grid = np.unique(np.concatenate([horizons_days, ibs_grid, time]))
    risk = np.asarray(est.predict(X_test), dtype=float)
    surv = np.asarray(est.predict_survival_at(X_test, grid), dtype=float)
    surv_h = surv[:, np.searchsorted(grid, horizons_days)]

    nan_h = np.full(horizons_days.shape[0], np.nan)
    auc, brier = nan_h.copy(), nan_h.copy()
    if usable.size:
        auc[ok] = time_dependent_auc(y_train, y_test, risk, usable)
        brier[ok] = brier_at(y_train, y_test, surv_h[:, ok], usable)
    hmax = horizons_days[-1]
    rows = [("harrell_c", np.nan, harrell_c(y_train, y_test, risk))]
    rows.append(("uno_c", hmax, uno_c(y_train, y_test, risk, [hmax]) if last_ok else np.nan))
    rows += [("auc", h, a) for h, a in zip(horizons_days, auc, strict=True)]
    rows += [("brier", h, b) for h, b in zip(horizons_days, brier, strict=True)]
    ibs = np.nan
    if last_ok:
        ibs = integrated_brier(y_train, y_test, surv[:, np.searchsorted(grid, ibs_grid)], ibs_grid)
    rows.append(("ibs", hmax, ibs))
    if calibration:
        for j, h in enumerate(horizons_days):
            cal = calibration_at_horizon(y_test, surv_h[:, j], h).as_dict() if ok[j] else {}
            for name in ("ici", "e50", "e90", "calibration_slope", "calibration_in_the_large"):
                rows.append((name, h, cal.get(name, np.nan)))
        dcal = d_calibration(y_test, np.clip(lookup_survival(surv, grid, time), 0.0, 1.0))
        rows += [("d_calibration_chi2", np.nan, dcal.chi2), ("d_calibration_p", np.nan, dcal.p_value)]
    return rows, risk, surv_h


def cross_validate_survival(
    estimator,
    X,
    y,
    *,
    cv: int | EventStratifiedKFold,
    horizons_months: Sequence[float] = DEFAULT_HORIZONS_MONTHS,
    calibration: bool = True,
    random_state: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CVResult:
    """Fit a clone of ``estimator`` on each training fold and score it on the held-out fold.

    Parameters
    ----------
    estimator : model, pipeline or reference rule
        ``fit(X, y)``, ``predict(X)`` (risk, higher = worse) and
        ``predict_survival_at(X, times_days)``.
    X : array-like or DataFrame, shape (n_samples, n_features)
    y : structured array, shape (n_samples,)
    cv : int or splitter
        An int makes ``EventStratifiedKFold(cv, random_state=random_state)``; any
        object with ``split(X, y)`` works (repeats are read from ``n_repeats``).
    horizons_months : sequence of float, default (3, 6, 12)
    calibration : bool, default True
        Add ICI, E50, E90, calibration slope and -in-the-large per horizon, and D-calibration.
    random_state : int or None
        Seeds an int ``cv`` and every unset ``random_state`` of the estimator
        (a different seed per fold), so that a run is repeatable.
    progress : callable(fold_index, n_folds), optional
        Called after each fold, ``fold_index`` counting from 1.

    Returns
    -------
    CVResult

    Warns
    -----
    StatisticalWarning
        When a horizon lies outside a fold's follow-up (or has no event by then):
        the metrics at that horizon are NaN in that fold rather than stopping the
        whole run; the direct metric functions raise ``ValueError`` instead.
    """
    horizons = np.asarray(horizons_months, dtype=float)
    if horizons.ndim != 1 or horizons.size == 0 or np.any(np.diff(horizons) <= 0) or horizons[0] <= 0:
        raise ValueError(f"horizons_months must be positive and strictly increasing, got {tuple(horizons_months)}")
    horizons_days = months_to_days(horizons)
    if isinstance(cv, int | np.integer):
        cv = EventStratifiedKFold(n_splits=int(cv), random_state=random_state)
    n = len(y)
    splits = list(cv.split(X, y))
    n_folds = len(splits)
    n_repeats = int(getattr(cv, "n_repeats", 1))
    n_splits = n_folds // n_repeats
    seeds = np.random.SeedSequence(random_state).generate_state(n_folds) if random_state is not None else None
    tested = np.zeros(n, dtype=int)
    oof_risk = np.full(n, np.nan)
    oof_surv = np.full((n, horizons.size), np.nan)
    records, fit_times = [], np.zeros(n_folds)
    for i, (train, test) in enumerate(splits):
        repeat, fold = divmod(i, n_splits)
        est = clone(estimator)
        if seeds is not None:
            seed_estimator(est, int(seeds[i]))
        y_train, y_test = y[train], y[test]
        start = _time.perf_counter()
        est.fit(_safe_indexing(X, train), y_train)
        fit_times[i] = _time.perf_counter() - start
        rows, risk, surv_h = _fold_metrics(
            est, _safe_indexing(X, test), y_train, y_test, horizons_days, calibration, f"repeat {repeat}, fold {fold}"
        )
        records += [(repeat, fold, m, h, v) for m, h, v in rows]
        tested[test] += 1
        oof_risk[test], oof_surv[test] = risk, surv_h
        if progress is not None:
            progress(i + 1, n_folds)
    per_fold = pd.DataFrame(records, columns=["repeat", "fold", "metric", "horizon_days", "value"])
    per_fold.insert(3, "horizon_months", per_fold.pop("horizon_days") / months_to_days(1.0))
    once = n_repeats == 1 and bool(np.all(tested == 1))
    index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(n)
    return CVResult(
        per_fold=per_fold,
        fit_times=fit_times,
        horizons_months=tuple(float(h) for h in horizons),
        n_splits=n_splits,
        n_repeats=n_repeats,
        oof_risk=oof_risk if once else None,
        oof_survival=pd.DataFrame(oof_surv, index=index, columns=list(horizons)) if once else None,
    )
