"""REML random-effects meta-analysis against metafor's published worked example (dat.bcg, log risk ratios).

Reference values: metafor 5.1 documentation, ``rma(yi, vi, data = dat)`` (docs/reference/rma.uni.html),
``confint(res)`` (confint.rma.html) and ``predict(res)`` (predict.rma.html), with ``escalc(measure = "RR",
ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from cartrisk.evaluation.meta import random_effects

# trial: tpos, tneg, cpos, cneg (metadat::dat.bcg)
BCG = np.array([[4, 119, 11, 128], [6, 300, 29, 274], [3, 228, 11, 209], [62, 13536, 248, 12619],
                [33, 5036, 47, 5761], [180, 1361, 372, 1079], [8, 2537, 10, 619], [505, 87886, 499, 87892],
                [29, 7470, 45, 7232], [17, 1699, 65, 1600], [186, 50448, 141, 27197], [5, 2493, 3, 2338],
                [27, 16886, 29, 17825]], dtype=float)


def _log_rr():
    a, b, c, d = BCG.T
    return np.log((a / (a + b)) / (c / (c + d))), 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)


def test_reml_matches_metafor_dat_bcg():
    res = random_effects(*_log_rr())
    assert res.k == 13
    assert res.tau2 == pytest.approx(0.3132433, abs=5e-6)
    assert res.estimate == pytest.approx(-0.714532, abs=5e-6)
    assert res.se == pytest.approx(0.1798, abs=5e-5)
    assert (res.lower, res.upper) == pytest.approx((-1.0669, -0.3622), abs=5e-5)
    assert res.i2 == pytest.approx(92.2214, abs=5e-4)
    assert res.h2 == pytest.approx(12.8558, abs=5e-4)
    assert res.q == pytest.approx(152.2330, abs=5e-4)
    # Q-profile interval of tau^2 (confint.rma)
    assert (res.tau2_lower, res.tau2_upper) == pytest.approx((0.1197, 1.1115), abs=5e-5)
    # metafor's default prediction interval uses the normal quantile: (-1.87, 0.44); exp: (0.15, 1.55)
    assert (res.pi_normal_lower, res.pi_normal_upper) == pytest.approx((-1.87, 0.44), abs=5e-3)
    # Riley et al. (BMJ 2011): t with k - 2 degrees of freedom, metafor's predtype = "Riley"
    t = 2.200985160082949  # qt(0.975, 11)
    half = t * np.sqrt(res.se ** 2 + res.tau2)
    assert (res.pi_lower, res.pi_upper) == pytest.approx((res.estimate - half, res.estimate + half))


def test_homogeneous_clusters_give_zero_tau2_and_no_prediction_widening():
    res = random_effects([0.1, 0.1, 0.1, 0.1], [0.01, 0.02, 0.01, 0.03])
    assert res.tau2 == 0.0 and res.i2 == 0.0
    assert res.tau2_lower == 0.0


@pytest.mark.parametrize(("y", "v", "match"), [([0.1], [0.01], "at least two clusters"),
                                               ([0.1, np.nan], [0.1, 0.1], "finite"),
                                               ([0.1, 0.2], [0.1, 0.0], "positive")])
def test_bad_input_is_refused(y, v, match):
    with pytest.raises(ValueError, match=match):
        random_effects(y, v)
