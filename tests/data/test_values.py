"""The small-frame route of validation (one pass over each column's values) gives what the column-by-column pandas
route gives: the same typed frame, bit for bit and dtype for dtype, and the same problems, notices and extra columns,
on frames as CSV, Parquet, JSON and the simulator make them, valid or not."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from cartrisk.data import schema
from cartrisk.data._values import typed_if_valid
from cartrisk.data.dictionary import declared_columns
from cartrisk.data.schema import validate
from cartrisk.data.simulate import simulate

OUTCOME = ["os2_days", "os2_event", "last_contact_date", "pfs2_days", "pfs2_event"]


def both(frame: pd.DataFrame, monkeypatch, **kw):
    """``validate`` by the small-frame route and by the pandas route (the small route switched off); the small
    route's typed frames are kept in ``both.typed`` (None where it doubted a value)."""
    both.typed = []
    with monkeypatch.context() as m:
        m.setattr(schema, "typed_if_valid", lambda *a: both.typed.append(typed_if_valid(*a)) or both.typed[-1])
        quick = validate(frame, **kw)
    with monkeypatch.context() as m:
        m.setattr(schema, "SMALL_ROWS", -1)
        full = validate(frame, **kw)
    return quick, full


def assert_same(quick, full) -> None:
    assert [str(p) for p in quick.problems] == [str(p) for p in full.problems]
    assert quick.notices == full.notices and quick.extra_columns == full.extra_columns
    if full.frame is None:
        assert quick.frame is None
        return
    pd.testing.assert_frame_equal(quick.frame, full.frame, check_exact=True, check_dtype=True,
                                  check_column_type=True, check_index_type=True)
    assert list(quick.frame.dtypes) == list(full.frame.dtypes)


def as_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as read_extract reads a CSV file (every cell text, empty = missing)."""
    text = frame.to_csv(index=False)
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=schema._MISSING_TOKENS)


def with_gaps(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Some optional cells emptied, some as blanks or padded text (CSV-like frames)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for col in ("age_years", "ldh_infusion", "crp_infusion", "sex", "bridging", "cd19_failure", "stage_failure"):
        if col in out:
            hit = rng.random(len(out)) < 0.3
            out.loc[hit, col] = np.nan
    return out


@pytest.mark.parametrize("n", [1, 2, 7, 60])
@pytest.mark.parametrize("form", ["native", "csv", "object", "gaps", "gaps-csv"])
@pytest.mark.parametrize("outcome", [True, False])
def test_valid_frames_are_typed_alike(monkeypatch, n, form, outcome):
    frame = simulate(n, n + 3)[0]
    frame.loc[0, "os2_event"] = 1  # a death, so that the outcome can be modelled
    if not outcome:
        frame = frame.drop(columns=OUTCOME)
    if form.startswith("gaps"):
        frame = with_gaps(frame, n)
    if form.endswith("csv"):
        frame = as_csv(frame)
    elif form == "object":  # JSON records: numbers and text in object columns
        frame = pd.DataFrame(frame.astype(object).to_dict("records"))
    quick, full = both(frame, monkeypatch, require_outcome=outcome)
    assert full.ok, full.problems
    assert both.typed and both.typed[0] is not None  # the small route typed it
    assert_same(quick, full)


def csv_rows(**cells) -> pd.DataFrame:
    frame = as_csv(simulate(3, 5)[0])
    for key, value in cells.items():
        col, row = key.rsplit("_r", 1)
        frame.loc[int(row), col] = value
    return frame


@pytest.mark.parametrize("cells", [
    {"days_to_failure_r1": "-3"}, {"os2_days_r0": "abc"}, {"os2_event_r2": "2"}, {"sex_r0": "male"},
    {"sex_r1": "  F "}, {"patient_id_r1": "   "}, {"patient_id_r2": None}, {"age_years_r0": " 61 "},
    {"age_years_r0": "1e2"}, {"prior_lines_r1": "2.5"}, {"infusion_date_r0": "2020-13-01"},
    {"infusion_date_r1": "2021-02-03"}, {"failure_date_r0": " "}, {"histology_r2": "\u00a0"}, {"salvage_r0": "\t"},
    {"infusion_year_r1": "1999"}, {"days_to_failure_r0": ""}, {"ecog_infusion_r2": "inf"},
])
def test_invalid_and_odd_cells_agree(monkeypatch, cells):
    quick, full = both(csv_rows(**cells), monkeypatch)
    assert_same(quick, full)


def test_duplicate_ids_extra_and_derived_columns_agree(monkeypatch):
    frame = simulate(4, 2)[0]
    frame.loc[3, "patient_id"] = frame.loc[0, "patient_id"]
    quick, full = both(frame, monkeypatch)
    assert not full.ok
    assert_same(quick, full)
    frame = simulate(4, 2)[0].assign(my_note=["a", " ", "", None], failure_window="D0-30", flag=[True, False] * 2)
    quick, full = both(frame, monkeypatch)
    assert full.ok and full.notices
    assert_same(quick, full)


def test_other_dtypes_take_the_pandas_rules(monkeypatch):
    frame = simulate(5, 4)[0].drop(columns=OUTCOME)
    frame["prior_lines"] = frame["prior_lines"].astype("Int64")
    frame["sex"] = frame["sex"].astype("category")
    frame["prior_asct"] = frame["prior_asct"].astype(bool)
    for col in ("infusion_date", "failure_date"):
        frame[col] = frame[col].dt.tz_localize("UTC")
    frame["ecog_failure"] = frame["ecog_failure"].astype(np.float32)
    quick, full = both(frame, monkeypatch, require_outcome=False)
    assert_same(quick, full)


def test_declared_columns_agree(monkeypatch):
    extra = declared_columns({"ldh_doubling_days": {"kind": "float", "role": "relapse", "unit": "days", "min": 0,
                                                    "max": 1000},
                              "site_grade": {"kind": "category", "role": "relapse", "levels": ["a", "b"]}})
    frame = simulate(6, 1)[0].assign(ldh_doubling_days=[5.0, np.nan, 20, 3, 1000, 0],
                                     site_grade=["a", "b", None, "a", " b", "a"])
    quick, full = both(frame, monkeypatch, extra=extra)
    assert full.ok, full.problems
    assert_same(quick, full)
    quick, full = both(frame.assign(site_grade="c"), monkeypatch, extra=extra)
    assert not full.ok
    assert_same(quick, full)
