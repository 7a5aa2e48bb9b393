"""Columns a site declares in [data.extra], and the setting columns (centre, infusion year): validated like the
dictionary's, with the file / row / column / value / fix messages pinned."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest

from cartrisk.config import parse_experiment
from cartrisk.data.datasets import load_dataset
from cartrisk.data.dictionary import column, declared_column, declared_columns
from cartrisk.data.schema import validate
from cartrisk.exceptions import ConfigError, SchemaError

HEADER = "patient_id,days_to_failure,os2_days,os2_event,ldh_doubling_days,mtv_class,infusion_date,centre_id"
ROWS = ["P1,10,100,1,12.5,low,2020-01-01,C01", "P2,45,200,0,40,high,2021-02-01,C02", "P3,120,30,1,,,2019-03-01,C01"]
EXTRA = {"ldh_doubling_days": {"kind": "float", "role": "relapse", "unit": "days", "min": 0, "max": 365},
         "mtv_class": {"kind": "category", "role": "infusion", "levels": ["low", "high"]}}


def raw(rows=ROWS, header=HEADER) -> pd.DataFrame:
    return pd.read_csv(io.StringIO("\n".join([header, *rows]) + "\n"), dtype=str, keep_default_na=False,
                       na_values=[""])


def messages(frame: pd.DataFrame, extra=EXTRA) -> list[str]:
    return [str(p) for p in validate(frame, source="site.csv", extra=declared_columns(extra)).problems]


def test_declared_columns_are_typed_and_no_longer_extra():
    result = validate(raw(), source="site.csv", extra=declared_columns(EXTRA))
    assert result.ok, result.problems
    assert result.frame["ldh_doubling_days"].dtype == "float64"
    assert result.frame["mtv_class"].tolist()[:2] == ["low", "high"]
    assert result.extra_columns == []
    undeclared = validate(raw(), source="site.csv")
    assert undeclared.extra_columns == ["ldh_doubling_days", "mtv_class"]
    assert "neither in the data dictionary nor declared in [data.extra]" in undeclared.notices[0]


@pytest.mark.parametrize(("row", "col", "value", "message"), [
    (2, "ldh_doubling_days", "400", "site.csv, row 2, column 'ldh_doubling_days': value '400': out of range: must be "
     "a number >= 0 and <= 365. Fix: correct the value in days; leave the cell empty if it is unknown."),
    (1, "ldh_doubling_days", "fast", "site.csv, row 1, column 'ldh_doubling_days': value 'fast': not a number. "
     "Fix: write a number in days, or leave the cell empty if unknown."),
    (1, "mtv_class", "medium", "site.csv, row 1, column 'mtv_class': value 'medium': unknown level: must be one of "
     "low, high. Fix: use one of: low, high (spelled exactly so)."),
])
def test_declared_values_are_checked_like_dictionary_values(row, col, value, message):
    frame = raw()
    frame.loc[row - 1, col] = value
    assert message in messages(frame)


def test_a_declared_column_missing_from_the_file_is_a_problem():
    assert messages(raw().drop(columns="mtv_class")) == [
        "site.csv, column 'mtv_class': declared column missing: [data.extra] declares it but the file has no such "
        "column. Fix: add the column 'mtv_class' to the extract, rename the file's column with [data.columns], or "
        "remove it from [data.extra]."]


@pytest.mark.parametrize(("name", "spec", "message"), [
    ("sex", {"kind": "category", "role": "infusion", "levels": ["a", "b"]},
     "[data.extra.sex]: 'sex' is a data-dictionary column (Sex.); remove it from [data.extra]"),
    ("x", {"kind": "text", "role": "infusion"}, "[data.extra.x].kind: 'text' is not a declarable kind; use one of "
     "integer, float, binary, category"),
    ("x", {"kind": "float", "role": "after_failure"}, "[data.extra.x].role: 'after_failure' is not a declarable role"),
    ("x", {"kind": "category", "role": "relapse", "levels": ["a"]}, "[data.extra.x].levels: a category needs at "
     "least two distinct levels"),
    ("x", {"kind": "float", "role": "relapse", "min": 5, "max": 1}, "[data.extra.x]: min must be below max"),
    ("2x", {"kind": "float", "role": "relapse"}, "[data.extra.2x]: the name must start with a letter"),
    ("x", {"kind": "float", "role": "relapse", "levels": ["a", "b"]}, "[data.extra.x].levels: only a category has "
     "levels"),
])
def test_bad_declarations_are_refused_by_name(name, spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        declared_column(name, spec)


def test_infusion_year_is_derived_from_the_date_or_checked_against_it():
    typed = validate(raw(), source="site.csv", extra=declared_columns(EXTRA)).frame
    assert typed["infusion_year"].tolist() == [2020.0, 2021.0, 2019.0]
    assert column("infusion_year").role == "setting" and column("centre_id").kind == "string"
    frame = raw().assign(infusion_year=["2020", "2020", "2019"])
    assert messages(frame) == ["site.csv, row 2, column 'infusion_year': value '2020': disagrees with infusion_date, "
                               "which gives 2021. Fix: correct infusion_year or infusion_date so that they agree, or "
                               "give only one."]


def test_crs_and_icans_are_after_infusion_before_failure():
    assert column("crs_grade").role == "post_infusion" and column("icans_grade").role == "post_infusion"


def test_an_experiment_declares_and_loads_a_site_column(tmp_path):
    path = tmp_path / "site.csv"
    raw().to_csv(path, index=False)
    text = (f'name = "site"\n[data]\nsource = "file"\npath = "{path}"\n'
            '[data.extra.ldh_doubling_days]\nkind = "float"\nrole = "relapse"\nunit = "days"\nmin = 0\nmax = 365\n'
            '[data.extra.mtv_class]\nkind = "category"\nrole = "infusion"\nlevels = ["low", "high"]\n')
    cfg = parse_experiment(text, source="site.toml")
    data = load_dataset(cfg.data)
    assert set(data.declared) == {"ldh_doubling_days", "mtv_class"} and "ldh_doubling_days" in data.X
    bad = raw()
    bad.loc[0, "ldh_doubling_days"] = "-1"
    bad.to_csv(path, index=False)
    with pytest.raises(SchemaError, match=re.escape("row 1, column 'ldh_doubling_days': value '-1': out of range")):
        load_dataset(cfg.data)
    with pytest.raises(ConfigError, match=re.escape("[data.extra] declares covariates of a registry extract")):
        load_dataset(parse_experiment(text.replace('source = "file"', 'source = "simulated"'), source="s.toml").data)


def test_cartrisk_validate_reads_the_declarations_of_an_experiment(tmp_path):
    from typer.testing import CliRunner

    from cartrisk.cli import app

    frame = raw()
    frame.loc[1, "ldh_doubling_days"] = "400"
    frame.to_csv(tmp_path / "site.csv", index=False)
    (tmp_path / "site.toml").write_text('name = "site"\n[data]\nsource = "file"\npath = "site.csv"\n'
                                        '[data.extra.ldh_doubling_days]\nkind = "float"\nrole = "relapse"\nmin = 0\n'
                                        'max = 365\nunit = "days"\n[data.extra.mtv_class]\nkind = "category"\n'
                                        'role = "infusion"\nlevels = ["low", "high"]\n', encoding="utf-8")
    done = CliRunner().invoke(app, ["validate", str(tmp_path / "site.csv"), "--experiment",
                                    str(tmp_path / "site.toml")])
    assert done.exit_code == 2
    assert "row 2, column 'ldh_doubling_days': value '400': out of range: must be a number >= 0 and <= 365" in \
        " ".join(done.output.split())
