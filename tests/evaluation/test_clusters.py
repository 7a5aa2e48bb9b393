"""Internal-external validation across clusters on synthetic clustered cohorts with planted cluster effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.util import Surv

from cartrisk.evaluation.clusters import cluster_splits, internal_external_validation
from cartrisk.exceptions import ConfigError
from cartrisk.modelling import make_pipeline

SHAPE, SCALE, HORIZON_DAYS = 1.2, 400.0, 6 * 30.4375


def clustered_cohort(n_clusters=16, per_cluster=250, sd=0.45, seed=0, period_effect=0.0):
    """Weibull PH cohort; cluster k multiplies the hazard by exp(u_k), u_k ~ N(0, sd^2); with ``period_effect``,
    clusters are years and the log hazard also moves by ``period_effect`` per year. Returns X, y, labels and the
    true log O/E of each cluster for a model that ignores clusters (truth: mean true risk / mean risk at u = 0)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, sd, n_clusters)
    rows, truth = [], {}
    for k in range(n_clusters):
        x1, x2 = rng.normal(size=per_cluster), rng.binomial(1, 0.4, per_cluster)
        lp = 0.6 * x1 + 0.5 * x2
        shift = u[k] + period_effect * k
        t = SCALE * (rng.exponential(size=per_cluster) / np.exp(lp + shift)) ** (1 / SHAPE)
        c = rng.uniform(100, 900, per_cluster)
        base = (HORIZON_DAYS / SCALE) ** SHAPE
        truth[k] = (np.mean(1 - np.exp(-base * np.exp(lp + shift))), np.mean(1 - np.exp(-base * np.exp(lp))))
        rows.append(pd.DataFrame({"x1": x1, "x2": x2.astype(float), "cluster": k, "time": np.minimum(t, c),
                                  "event": t <= c}))
    frame = pd.concat(rows, ignore_index=True)
    y = Surv.from_arrays(frame["event"], frame["time"], name_event="os2_event", name_time="os2_days")
    return frame[["x1", "x2"]], y, frame["cluster"], truth


def test_leave_one_centre_out_recovers_planted_heterogeneity():
    X, y, labels, truth = clustered_cohort()
    res = internal_external_validation(make_pipeline(["x1", "x2"], "coxph", alpha=0.0), X, y,
                                       labels.astype(str), horizon_months=6, n_boot=50)
    assert res.design == "leave-one-out" and len(res.per_cluster) == 16
    pooled = res.pooled.set_index("metric")
    # the planted between-centre variance of log O/E (truth: centre risk vs the risk without its effect)
    planted = np.var([np.log(a / b) for a, b in truth.values()], ddof=1)
    oe = pooled.loc["oe_ratio"]
    assert oe["tau2_lower"] <= planted <= oe["tau2_upper"]
    assert oe["tau2"] > 0.01 and oe["i2"] > 50
    assert oe["pi_lower"] < 0.8 and oe["pi_upper"] > 1.2  # heterogeneous calibration shows in the PI
    c = pooled.loc["harrell_c"]
    assert 0.6 < c["lower"] < c["estimate"] < c["upper"] < 0.8
    assert c["pi_lower"] <= c["lower"] and c["pi_upper"] >= c["upper"]


def test_homogeneous_centres_show_no_heterogeneity_in_calibration():
    X, y, labels, _ = clustered_cohort(sd=0.0, seed=1)
    res = internal_external_validation(make_pipeline(["x1", "x2"], "coxph", alpha=0.0), X, y, labels.astype(str),
                                       n_boot=50)
    oe = res.pooled.set_index("metric").loc["oe_ratio"]
    assert oe["lower"] < 1 < oe["upper"]
    assert oe["tau2_lower"] == 0.0


def test_temporal_design_develops_on_earlier_periods_only():
    X, y, labels, _ = clustered_cohort(n_clusters=6, per_cluster=200, sd=0.0, period_effect=0.15, seed=2)
    years = labels + 2018
    folds, design = cluster_splits(years, y["os2_event"], min_events=20)
    assert design == "temporal"
    for fold in folds:
        assert years[fold.train].max() < years[fold.test].min()
    res = internal_external_validation(make_pipeline(["x1", "x2"], "coxph", alpha=0.0), X, y, years, n_boot=30,
                                       min_events=20)
    per = res.per_cluster
    # the hazard rises year on year: later years have more deaths than predicted from earlier ones
    assert (per["oe_ratio"] > 1).all()


def test_small_centres_are_grouped_and_bad_columns_refused():
    labels = np.array(["A"] * 50 + ["B"] * 5 + ["C"] * 5 + ["D"] * 50)
    event = np.ones(labels.size, bool)
    folds, _ = cluster_splits(labels, event, min_events=8)
    assert sorted(f.name for f in folds) == ["A", "B+C", "D"]
    with pytest.raises(ConfigError, match="at least two clusters"):
        cluster_splits(np.array(["A"] * 10), np.ones(10, bool))
    with pytest.raises(ConfigError, match="cluster_design"):
        cluster_splits(labels, event, design="random")
