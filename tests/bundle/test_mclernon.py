"""Real data from outside the project: develop the basic Rotterdam model through cartrisk's generic-cohort path,
export it as a bundle, validate it externally on GBSG, and reproduce McLernon et al.'s external-validation table
(Ann Intern Med 2023; figures and sources in tests/data/external/mclernon2023.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sksurv.datasets import load_gbsg2
from sksurv.util import Surv

from cartrisk.bundle import export_bundle, load_bundle
from cartrisk.bundle.validation import validate_bundle
from cartrisk.evaluation.updating import closed_test
from cartrisk.modelling import make_pipeline

DATA = Path(__file__).resolve().parents[1] / "data" / "external"
PUB = tomllib.loads((DATA / "mclernon2023.toml").read_text())
FEATURES = ["sz2050", "sz50", "nodes2", "nodes3", "grade3"]
YEAR = 365.25


def _rcs(x, knots):
    t1, t2, t3 = knots
    c = lambda v: np.clip(v, 0, None) ** 3  # noqa: E731
    return (c(x - t1) - c(x - t2) * (t3 - t1) / (t3 - t2) + c(x - t3) * (t2 - t1) / (t3 - t2)) / (t3 - t1) ** 2


def _features(size, grade, nodes, pgr):
    """The paper's preprocessing (01_predsurv_minimal.R): caps from the development data, spline with fixed knots."""
    nodes2 = np.minimum(nodes, PUB["development"]["nodes_cap"]).astype(float)
    return pd.DataFrame({"sz2050": (size == "20-50").astype(float), "sz50": (size == ">50").astype(float),
                         "nodes2": nodes2, "nodes3": _rcs(nodes2, (0, 1, 9)), "grade3": (grade == 3).astype(float)})


@pytest.fixture(scope="module")
def rotterdam():
    r = pd.read_csv(DATA / "rotterdam.csv")
    ryear = r["rtime"] / YEAR
    rfs = np.maximum(r["recur"], r["death"])
    fix = (rfs == 1) & (r["recur"] == 0) & (r["death"] == 1) & (r["rtime"] < r["dtime"])
    ryear = np.where(fix, r["dtime"] / YEAR, ryear)
    frame = _features(r["size"], r["grade"], r["nodes"], r["pgr"])
    frame["years"] = np.minimum(ryear, 5.0)  # administrative censoring at 5 years, as the paper
    frame["rfs"] = np.where(ryear > 5.0, 0, rfs)
    return frame


@pytest.fixture(scope="module")
def gbsg():
    X, y = load_gbsg2()
    size = pd.cut(X["tsize"], [-1, 20, 50, 500], labels=["<=20", "20-50", ">50"]).astype(str)
    grade = X["tgrade"].astype(str).map({"I": 1, "II": 2, "III": 3})
    frame = _features(size, grade, X["pnodes"].to_numpy(float), X["progrec"].to_numpy(float))
    return frame.assign(years=y["time"] / YEAR, rfs=y["cens"].astype(int))


@pytest.fixture(scope="module")
def bundle(rotterdam, tmp_path_factory):
    y = Surv.from_arrays(rotterdam["rfs"].astype(bool), rotterdam["years"] * YEAR, name_event="os2_event",
                         name_time="os2_days")
    pipe = make_pipeline(FEATURES, "coxph", alpha=0.0, ties="efron").fit(rotterdam[FEATURES], y)
    path = export_bundle(pipe, tmp_path_factory.mktemp("models"), name="rotterdam-basic", X=rotterdam[FEATURES], y=y,
                         cohort={"time": "years", "event": "rfs", "time_unit_days": YEAR},
                         horizons_months=(60.0,))
    return load_bundle(path)


def test_development_model_matches_the_published_coefficients(bundle, rotterdam):
    assert len(rotterdam) == PUB["development"]["n"] and rotterdam["rfs"].sum() == PUB["development"]["events"]
    final, fb = bundle.pipeline.steps[-1][1], bundle.pipeline.steps[0][1]
    scale = fb.transformer_.named_transformers_["num"].named_steps["scale"].scale_
    coef = dict(zip(fb.feature_names_out_, final.model_.coef_ / scale, strict=True))
    for name, value in PUB["development"]["coef"].items():
        assert coef[name] == pytest.approx(value, abs=6e-6)


def test_external_validation_on_gbsg_reproduces_the_published_table(bundle, gbsg):
    pub = PUB["validation"]
    assert len(gbsg) == pub["n"] and int((gbsg["rfs"].astype(bool) & (gbsg["years"] <= 5)).sum()) == pub["events"]
    at5 = validate_bundle(bundle, gbsg, horizon_months=60, thresholds=(0.23,), n_boot=200, subgroups=False)
    m = at5.metrics.set_index("metric")
    for name in ("harrell_c", "uno_c"):
        assert m.loc[name, "estimate"] == pytest.approx(pub[name][0], abs=5e-4)  # 3 decimals, as printed
        # bootstrap interval beside the published analytic one
        assert m.loc[name, "lower"] == pytest.approx(pub[name][1], abs=0.015)
        assert m.loc[name, "upper"] == pytest.approx(pub[name][2], abs=0.015)
    # seven-digit outputs: the only difference is the baseline hazard (Breslow here, Efron-adjusted in R)
    assert m.loc["oe_ratio", "estimate"] == pytest.approx(pub["oe_ratio"][0], abs=5e-4)
    assert m.loc["calibration_slope", "estimate"] == pytest.approx(pub["calibration_slope"][0], abs=5e-4)
    for name in ("ici", "e50", "e90", "emax"):
        assert m.loc[name, "estimate"] == pytest.approx(pub[name], abs=1e-3)
    assert m.loc["net_benefit@0.23", "estimate"] == pytest.approx(pub["net_benefit_023"], abs=5e-4)
    assert m.loc["oe_ratio", "lower"] < 1 < m.loc["oe_ratio", "upper"]
    # the paper reads the IPCW metrics at 4.99 years (its follow-up stops at 5)
    at499 = validate_bundle(bundle, gbsg, horizon_months=4.99 * 12, n_boot=0, subgroups=False)
    _print_table(m, at499.metrics.set_index("metric"), pub)
    m = at499.metrics.set_index("metric")
    assert m.loc["auc", "estimate"] == pytest.approx(pub["auc"][0], abs=5e-4)
    assert m.loc["brier", "estimate"] == pytest.approx(pub["brier"][0], abs=5e-4)
    assert m.loc["ipa", "estimate"] == pytest.approx(pub["ipa"], abs=5e-4)


def _print_table(at5: pd.DataFrame, at499: pd.DataFrame, pub: dict) -> None:
    """Ours beside the published figures (shown with ``pytest -s``)."""
    rows = []
    for name, key, table in (("harrell_c", "harrell_c", at5), ("uno_c", "uno_c", at5), ("auc", "auc", at499),
                             ("oe_ratio", "oe_ratio", at5), ("calibration_slope", "calibration_slope", at5),
                             ("ici", "ici", at5), ("e50", "e50", at5), ("e90", "e90", at5), ("emax", "emax", at5),
                             ("brier", "brier", at499), ("ipa", "ipa", at499),
                             ("net_benefit@0.23", "net_benefit_023", at5)):
        published = pub[key] if not isinstance(pub[key], list) else pub[key][0]
        r = table.loc[name]
        rows.append(f"{name:<18} {r['estimate']:.4f} ({r['lower']:.3f}-{r['upper']:.3f})   published {published}")
    print("\n" + "\n".join(rows))


def test_full_likelihood_recalibration_and_closed_test_on_gbsg(bundle, gbsg):
    """Crowson's Poisson calibration-in-the-large and slope (03 table), and the closed test keeps the model."""
    typed = bundle.validate(gbsg).raise_if_invalid()
    final = bundle.pipeline.steps[-1][1]
    Xt = bundle.pipeline.transform_features(typed)
    time, event = np.minimum(gbsg["years"].to_numpy(), 5.0) * YEAR, (gbsg["rfs"].to_numpy() == 1) & (
        gbsg["years"].to_numpy() <= 5.0)
    grid = np.unique(time)
    surv = final.predict_survival_at(Xt, grid)
    expected = -np.log(surv[np.arange(len(time)), np.searchsorted(grid, time)])
    lp = final.predict(Xt)
    tests = closed_test(event, expected, lp - lp.mean(), Xt.to_numpy(float))
    fit = tests.fits["intercept"]
    a, se = fit.coef[0], np.sqrt(fit.cov[0, 0])
    pub = PUB["validation"]
    assert np.exp([a, a - 1.959964 * se, a + 1.959964 * se]) == pytest.approx(pub["poisson_oe"], abs=2e-3)
    b, se_b = 1 + tests.fits["slope"].coef[1], np.sqrt(tests.fits["slope"].cov[1, 1])
    assert [b, b - 1.959964 * se_b, b + 1.959964 * se_b] == pytest.approx(pub["poisson_slope"], abs=2e-3)
    assert tests.chosen == "original"
    assert tests.tests["p_value"].iloc[0] > 0.05
