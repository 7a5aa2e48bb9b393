"""A site's declared covariate ([data.extra]) goes through tune -> export -> score -> explain and the model card."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from cartrisk.bundle import load_bundle
from cartrisk.config import parse_experiment
from cartrisk.data.simulate import simulate
from cartrisk.exceptions import SchemaError
from cartrisk.explain import explain
from cartrisk.tracking.runs import export_from_tracking
from cartrisk.tuning import run_study

# 400 patients and a few trials: the smallest ridge penalties of the search may not converge; expected here.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def site_extract(n: int, seed: int) -> pd.DataFrame:
    """A simulated extract with the site's own column: an LDH doubling time (days) that is shorter in sicker patients
    (a relapse-time measurement, known at failure), missing for some."""
    frame, truth = simulate(n, seed)
    rng = np.random.default_rng(seed)
    days = np.round(np.clip(60.0 * np.exp(-0.8 * truth["true_log_hazard"] + 0.4 * rng.normal(size=n)), 1, 900), 1)
    return frame.assign(ldh_doubling_days=np.where(rng.random(n) < 0.1, np.nan, days))


EXPERIMENT = """name = "site-declared"
seed = 0
[data]
source = "file"
path = "{path}"
[data.extra.ldh_doubling_days]
kind = "float"
role = "relapse"
unit = "days"
min = 0
max = 1000
meaning = "LDH doubling time before failure"
[features]
set = ["relapse", "ldh_doubling_days"]
[[models]]
estimator = "coxph"
[models.search]
alpha = {{ low = 0.1, high = 10.0, log = true }}
[tuning]
n_trials = 2
outer_folds = 2
inner_folds = 2
startup_trials = 2
[tracking]
uri = "sqlite:///{root}/mlruns/mlflow.db"
experiment = "site"
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory, make_tracker):
    root = tmp_path_factory.mktemp("site")
    path = root / "site.csv"
    site_extract(400, 7).to_csv(path, index=False)
    cfg = parse_experiment(EXPERIMENT.format(path=path, root=root), source="site.toml")
    tracker = make_tracker(root, "site")
    result = run_study(cfg, tracker=tracker, storage=f"journal:{root}/studies.log")
    bundle = export_from_tracking(name="site_model", models_dir=root / "models", study=result.study_name,
                                  tracking_uri=tracker.tracking_uri, overwrite=True)
    return result, load_bundle(bundle), root


def test_the_tuned_model_uses_the_declared_column(exported):
    result, _, _ = exported
    fb = result.best_pipeline.named_steps["features"]
    assert "ldh_doubling_days" in fb.columns_ and fb.declared["ldh_doubling_days"]["role"] == "relapse"
    assert any(name.endswith("ldh_doubling_days") for name in fb.get_feature_names_out())


def test_the_bundle_schema_and_model_card_carry_the_declaration(exported):
    _, bundle, _ = exported
    entry = next(c for c in bundle.schema["columns"] if c["name"] == "ldh_doubling_days")
    assert entry["declared"]["unit"] == "days" and entry["declared"]["max"] == 1000.0
    assert entry["measured"].startswith("at failure") and not entry["leakage"]["suspect"]
    card = (bundle.path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "`ldh_doubling_days` (declared)" in card
    assert "Columns declared by the site" in card and "LDH doubling time before failure" in card
    assert "Leakage guard: every predictor was screened" in card


def test_scoring_validates_the_declared_column_and_explains_it(exported):
    _, bundle, _ = exported
    new = site_extract(120, 8).drop(columns=["os2_days", "os2_event", "last_contact_date", "pfs2_days",
                                             "pfs2_event"])
    scored = bundle.score(new, source="new.csv", explain=40)
    assert len(scored) == 120 and scored["risk_score"].notna().all()
    columns = {c for k in range(1, 41) if f"top{k}_column" in scored for c in scored[f"top{k}_column"]}
    assert "ldh_doubling_days" in columns
    values = explain(bundle.pipeline, bundle.validate(new, source="new.csv").frame, aggregate="column",
                     background=bundle.reference_patient()).values
    assert "ldh_doubling_days" in values.columns and values["ldh_doubling_days"].abs().sum() > 0
    bad = new.copy()
    bad.loc[3, "ldh_doubling_days"] = 5000
    with pytest.raises(SchemaError, match=re.escape("new.csv, row 4, column 'ldh_doubling_days': value 5000.0: out of "
                                                    "range: must be a number >= 0 and <= 1000")):
        bundle.score(bad, source="new.csv")
    with pytest.raises(SchemaError, match=re.escape("column 'ldh_doubling_days': declared column missing")):
        bundle.score(new.drop(columns="ldh_doubling_days"), source="new.csv")


def test_a_validation_cohort_types_the_declared_column_once(exported):
    """External validation and updating read the cohort as scoring does: the declared column typed as declared,
    its range checked, in one validation."""
    from cartrisk.bundle.validation import validation_cohort

    _, bundle, _ = exported
    site = site_extract(200, 9)
    typed, y = validation_cohort(bundle, site, source="site.csv")
    assert pd.api.types.is_float_dtype(typed["ldh_doubling_days"]) and len(y) == 200
    bad = site.copy()
    bad.loc[5, "ldh_doubling_days"] = 5000
    with pytest.raises(SchemaError, match=re.escape("site.csv, row 6, column 'ldh_doubling_days': value 5000.0")):
        validation_cohort(bundle, bad, source="site.csv")
    with pytest.raises(SchemaError, match="os2_event"):
        validation_cohort(bundle, site.drop(columns=["os2_event"]), source="site.csv")
