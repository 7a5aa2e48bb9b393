"""Scoring a few patients through a bundle takes the small-frame routes (validation in one pass, preprocessing with
numpy); the scores are those of the pandas and scikit-learn routes, bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from cartrisk.bundle import load_bundle
from cartrisk.data import schema
from cartrisk.data.simulate import simulate
from cartrisk.exceptions import StatisticalWarning
from cartrisk.modelling import features

OUTCOME = ["os2_days", "os2_event", "last_contact_date", "pfs2_days", "pfs2_event"]


@pytest.mark.parametrize("rows", [1, 3, 40])
def test_a_few_patients_score_as_by_the_library_routes(small_bundle, monkeypatch, rows):
    bundle = load_bundle(small_bundle[0])
    new = simulate(rows, 21)[0].drop(columns=OUTCOME)
    new.loc[0, "ldh_infusion"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        quick = bundle.score(new, explain=2)
        with monkeypatch.context() as m:
            m.setattr(schema, "SMALL_ROWS", -1)
            m.setattr(features, "DIRECT_ROWS", -1)
            full = bundle.score(new, explain=2)
    pd.testing.assert_frame_equal(quick, full, check_exact=True)
    numbers = quick.select_dtypes("number").to_numpy()
    assert (numbers.view(np.int64) == full.select_dtypes("number").to_numpy().view(np.int64)).all()
