"""cartrisk.evaluation.figures: the calibration curve at one horizon."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.util import Surv

from cartrisk.evaluation import calibration_at_horizon
from cartrisk.evaluation.figures import horizon_calibration_figure


def test_calibration_curve_draws_each_set_of_predictions_against_the_diagonal():
    rng = np.random.default_rng(0)
    risk = rng.uniform(0.1, 0.9, 600)
    time = rng.exponential(180 / risk)
    y = Surv.from_arrays(event=rng.uniform(size=600) < 0.8, time=time)
    surv = np.exp(-182.6 * risk / 180)
    fitted = calibration_at_horizon(y, surv, 182.6)
    shifted = calibration_at_horizon(y, np.clip(surv * 1.1, 0, 1), 182.6)
    fig = horizon_calibration_figure({"as fitted": fitted, "shifted": shifted})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["ideal", f"as fitted: ICI {fitted.ici:.3f}, slope {fitted.slope:.2f}",
                      f"shifted: ICI {shifted.ici:.3f}, slope {shifted.slope:.2f}"]
    assert "6 months" in ax.get_ylabel()
    with pytest.raises(ValueError, match="share one horizon"):
        horizon_calibration_figure({"a": fitted, "b": calibration_at_horizon(y, surv, 365.25)})
