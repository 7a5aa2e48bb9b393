"""Validation of registry extracts: every rule with its message pinned."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from cartrisk.data.dictionary import COLUMNS, data_dictionary_markdown
from cartrisk.data.schema import frame_hash, load_cohort, read_extract, to_xy, validate
from cartrisk.exceptions import SchemaError

HEADER = ("patient_id,days_to_failure,os2_days,os2_event,sex,ecog_infusion,ldh_infusion,ldh_uln,stage_failure,"
          "crs_grade,histology,infusion_date,failure_date,last_contact_date")
ROWS = [
    "P1,10,100,1,M,1,300,250,3,2,DLBCL,2020-01-01,2020-01-11,2020-04-20",
    "P2,45,200,0,F,0,,250,,0,tFL,2020-02-01,2020-03-17,2020-10-03",
    "P3,120,30,1,F,2,600,250,4,,DLBCL,2020-03-01,2020-06-29,2020-07-29",
]


def raw(rows=ROWS, header=HEADER) -> pd.DataFrame:
    text = "\n".join([header, *rows]) + "\n"
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])


def with_cell(row: int, col: str, value: str) -> pd.DataFrame:
    frame = raw()
    frame.loc[row - 1, col] = value
    return frame


def messages(frame: pd.DataFrame, **kw) -> list[str]:
    return [str(p) for p in validate(frame, source="extract.csv", **kw).problems]


def test_valid_extract_is_typed():
    result = validate(raw(), source="extract.csv")
    assert result.ok, result.problems
    frame = result.frame
    assert frame["days_to_failure"].dtype == np.int64 and frame["os2_event"].dtype == np.int64
    assert frame["ldh_infusion"].dtype == np.float64 and np.isnan(frame.loc[1, "ldh_infusion"])
    assert frame["sex"].tolist() == ["M", "F", "F"]
    assert pd.api.types.is_datetime64_any_dtype(frame["failure_date"])


@pytest.mark.parametrize(
    ("row", "col", "value", "message"),
    [
        (2, "days_to_failure", "-3", "extract.csv, row 2, column 'days_to_failure': value '-3': out of range: must be "
         "an integer >= 0 and <= 3653. Fix: correct the value in days."),
        (1, "os2_days", "abc", "extract.csv, row 1, column 'os2_days': value 'abc': not a number. "
         "Fix: write a number in days."),
        (1, "os2_days", "0", "row 1, column 'os2_days': value '0': out of range: must be an integer > 0"),
        (3, "os2_event", "2", "extract.csv, row 3, column 'os2_event': value '2': must be 0 or 1. Fix: write 1 or 0."),
        (1, "sex", "male", "row 1, column 'sex': value 'male': unknown level: must be one of M, F. "
         "Fix: use one of: M, F (spelled exactly so)."),
        (2, "histology", "burkitt", "unknown level: must be one of DLBCL, PMBL, HGBCL, tFL, other"),
        (1, "ecog_infusion", "5", "row 1, column 'ecog_infusion': value '5': out of range: must be an integer >= 0 "
         "and <= 4. Fix: correct the value; leave the cell empty if it is unknown."),
        (1, "ecog_infusion", "1.5", "column 'ecog_infusion': value '1.5': not a whole number"),
        (1, "ldh_infusion", "-4", "column 'ldh_infusion': value '-4': out of range: must be a number >= 20 and "
         "<= 20000. Fix: correct the value in U/L"),
        (3, "stage_failure", "5", "row 3, column 'stage_failure': value '5': out of range: must be an integer >= 1 "
         "and <= 4"),
        (2, "crs_grade", "6", "column 'crs_grade': value '6': out of range: must be an integer >= 0 and <= 5"),
        (1, "ldh_infusion", "high", "column 'ldh_infusion': value 'high': not a number. Fix: write a number in U/L, "
         "or leave the cell empty if unknown."),
        (2, "failure_date", "2020-13-45", "row 2, column 'failure_date': value '2020-13-45': not a date. "
         "Fix: write the date as YYYY-MM-DD."),
        (2, "patient_id", "P1", "extract.csv, row 2, column 'patient_id': value 'P1': duplicate patient_id. "
         "Fix: give each patient one row and a unique patient_id."),
        (1, "os2_event", "", "row 1, column 'os2_event': value (empty): missing value in a required column. "
         "Fix: fill in the value: it is required for every patient."),
    ],
)
def test_cell_rules_are_reported_with_file_row_column_value_and_fix(row, col, value, message):
    found = messages(with_cell(row, col, value))
    assert any(message in m for m in found), found


def test_dates_that_disagree_with_durations():
    found = messages(with_cell(1, "days_to_failure", "11"))
    assert found == ["extract.csv, row 1, column 'days_to_failure': value '11': disagrees with the dates, which give "
                     "10 days. Fix: correct the dates or the duration so that they agree, or give only one."]


def test_failure_before_infusion():
    found = messages(with_cell(2, "failure_date", "2020-01-15"))
    assert "extract.csv, row 2, column 'failure_date': value '2020-01-15': failure before infusion: failure_date is " \
           "earlier than infusion_date. Fix: check both dates; failure is counted from the day of infusion (day 0)." \
           in found


def test_death_before_failure():
    found = messages(with_cell(3, "last_contact_date", "2020-06-01"))
    assert any("row 3, column 'last_contact_date': value '2020-06-01': death or last contact before failure" in m
               for m in found), found


def test_every_problem_is_reported_at_once():
    frame = raw()
    frame.loc[0, "sex"] = "X"
    frame.loc[1, "ecog_infusion"] = "9"
    frame.loc[2, "os2_event"] = "7"
    found = messages(frame)
    assert len(found) == 3
    assert [re.search(r"row (\d)", m).group(1) for m in found] == ["1", "2", "3"]


def test_missing_required_column_names_the_alternative():
    found = messages(raw().drop(columns=["os2_days", "last_contact_date"]))
    assert found == ["extract.csv, column 'os2_days': required column missing. Fix: add the column 'os2_days' (OS-2: "
                     "days from failure to death or last contact.), or give the dates failure_date and "
                     "last_contact_date to derive it."]


def test_all_censored():
    frame = raw()
    frame["os2_event"] = "0"
    assert messages(frame) == ["extract.csv, column 'os2_event': all patients are censored (no os2_event = 1): OS-2 "
                               "cannot be modelled. Fix: check the coding of os2_event (1 = died, 0 = alive at last "
                               "contact)."]


def test_header_only_extract():
    assert messages(raw(rows=[])) == ["extract.csv: no patients: the extract has no data rows. "
                                      "Fix: export at least one patient below the header line."]


def test_dates_alone_give_the_same_durations():
    durations = validate(raw().drop(columns=["infusion_date", "failure_date", "last_contact_date"])).frame
    dates = validate(raw().drop(columns=["days_to_failure", "os2_days"])).frame
    for col in ("days_to_failure", "os2_days"):
        assert dates[col].tolist() == durations[col].tolist()
        assert dates[col].dtype == np.int64


def test_extra_columns_are_kept_and_reported():
    result = validate(raw().assign(site="Lyon"))
    assert result.ok and result.extra_columns == ["site"]
    assert "site" in result.frame and "site" in result.notices[0]


def test_derived_columns_in_a_file_are_ignored():
    result = validate(raw().assign(failure_window="D0-30"))
    assert result.ok and "failure_window" not in result.frame
    assert "failure_window" in result.notices[0]


def test_scoring_does_not_need_the_outcome():
    frame = raw().drop(columns=["os2_days", "os2_event", "last_contact_date"])
    assert validate(frame, require_outcome=False).ok
    assert not validate(frame).ok


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("cohort.xlsx", b"x", "cohort.xlsx: not a CSV or Parquet file (suffix '.xlsx'). Fix: save the extract as .csv "
         "(comma-separated, header row) or .parquet."),
        ("empty.csv", b"", "empty.csv: the file is empty. Fix: export the extract again with a header row and one row "
         "per patient."),
        ("broken.parquet", b"not parquet", "broken.parquet: cannot be read as Parquet"),
    ],
)
def test_unreadable_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SchemaError, match=re.escape(message)):
        read_extract(path)


def test_load_cohort_raises_with_every_problem(tmp_path):
    path = tmp_path / "bad.csv"
    with_cell(1, "sex", "X").to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"bad.csv: 1 problem found\n  - .*bad.csv, row 1, column 'sex'"):
        load_cohort(path)


def test_csv_and_parquet_read_the_same(tmp_path):
    typed = validate(raw()).frame
    typed.to_parquet(tmp_path / "c.parquet", index=False)
    raw().to_csv(tmp_path / "c.csv", index=False)
    a, b = load_cohort(tmp_path / "c.csv"), load_cohort(tmp_path / "c.parquet")
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_to_xy_and_hash():
    frame = validate(raw()).frame
    X, y = to_xy(frame)
    assert "os2_days" not in X and "patient_id" not in X and "days_to_failure" in X
    assert y.dtype.names == ("os2_event", "os2_days") and y["os2_event"].tolist() == [True, False, True]
    assert frame_hash(frame) == frame_hash(frame.copy())
    assert frame_hash(frame) != frame_hash(frame.assign(os2_days=frame["os2_days"] + 1))


def test_dictionary_names_unique_and_documented():
    names = [c.name for c in COLUMNS]
    assert len(names) == len(set(names))
    table = data_dictionary_markdown()
    assert all(f"`{n}`" in table for n in names)
