"""Jobs are rerunnable, and nothing patient-level reaches the logs.

One folder, as a user would use it: ``cartrisk quickstart`` three times, a tune that is refused and then rerun
with the experiment fixed, ``explain --log-to-run``, ``compare-rules --track`` and ``report``. Then every file
under ``mlruns/`` and ``models/`` and the reports are searched for every input patient's identifier and for any
single patient's row of covariate values; none may be there (patient-level outputs go only to the files the user
named with --out).
"""

from __future__ import annotations

import os
import re
import shlex
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cartrisk.cli import app
from cartrisk.data.simulate import simulate
from cartrisk.tracking import Tracker

# A 200-patient cohort and one trial per study: the search's smallest penalties may not converge, and new patients
# fall outside the training ranges; both warnings are expected at this size.
pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.filterwarnings("ignore::cartrisk.exceptions.StatisticalWarning")]

STUDY = """name = "privacy"
seed = 0
[data]
source = "simulated"
n = 200
[features]
set = {features}
[[models]]
estimator = "coxph"
[models.search]
alpha = {{ low = 0.1, high = 10.0, log = true }}
[tuning]
n_trials = 1
outer_folds = 2
inner_folds = 2
"""
#: Covariates with many distinct values: a line holding four of one patient's is that patient's row.
CONTINUOUS = ("age_years", "ldh_infusion", "ldh_uln", "crp_infusion", "ferritin_infusion", "ldh_failure",
              "hemoglobin_failure")
ID = re.compile(rb"SIM-\d{7}")
NUMBER = re.compile(r"-?\d+\.\d+")


def _run(runner: CliRunner, command: str):
    result = runner.invoke(app, shlex.split(command))
    return result, " ".join(result.output.split())


def _use_the_folder(root: Path) -> dict[str, object]:
    """Run the commands a user would run in one folder; return each one's (result, output)."""
    previous = Path.cwd()
    os.chdir(root)
    try:
        runner = CliRunner()
        done: dict[str, object] = {"quickstart": [_run(runner, "quickstart --n 300 --trials 1") for _ in range(3)]}
        new = simulate(300, 7)[0]
        new.to_csv("new.csv", index=False)
        Path("broken.toml").write_text(STUDY.format(features='["age_years", "no_such_col"]'))
        Path("fixed.toml").write_text(STUDY.format(features='"infusion+relapse"'))
        done["broken"] = _run(runner, "tune broken.toml")
        done["fixed"] = _run(runner, "tune fixed.toml")
        done["again"] = _run(runner, "tune fixed.toml")
        tracker = Tracker("sqlite:///mlruns/mlflow.db", "privacy")
        parent = tracker.client.search_runs([tracker.experiment_id], "tags.`cartrisk.kind` = 'tuning'",
                                            order_by=["attributes.start_time DESC"])[0].info.run_id
        done["explain"] = _run(runner, f"explain --model {parent} --data new.csv --horizon 6 --log-to-run "
                                       "--out explain_out --max-horizon-patients 30 --n-background 30")
        done["compare"] = _run(runner, "compare-rules --model models/quickstart --data new.csv --track --n-boot 20 "
                                       "--out compare_out")
        qs = Tracker("sqlite:///mlruns/mlflow.db", "cartrisk-quickstart")
        last = qs.client.search_runs([qs.experiment_id], "tags.`cartrisk.kind` = 'quickstart'",
                                     order_by=["attributes.start_time DESC"])[0].info.run_id
        done["report"] = _run(runner, f"report --run {last} --out reports")
        done["cohorts"] = [simulate(200, 0)[0], simulate(3000, 1)[0], simulate(1000, 2)[0], new]
    finally:
        os.chdir(previous)
    return done


def test_jobs_rerun_and_no_patient_data_reaches_the_logs(tmp_path):
    """One test (the commands take a minute; split across workers they would run twice)."""
    root = tmp_path / "user"
    root.mkdir()
    done = _use_the_folder(root)
    folder = (root, done)
    _quickstart_runs_three_times_in_one_folder(folder)
    _a_fixed_experiment_reruns_after_a_refused_one(folder)
    _the_logging_commands_succeeded(folder)
    _no_patient_identifier_is_logged(folder)
    _no_single_patient_row_of_covariates_is_logged(folder)


def _quickstart_runs_three_times_in_one_folder(folder):
    root, done = folder
    for result, text in done["quickstart"]:
        assert result.exit_code == 0, text[-3000:]
    studies = _run(CliRunner(), f"studies --storage sqlite:///{root}/mlruns/optuna.db")[1]
    assert "quickstart.final" in studies and "quickstart.run2.final" in studies and "quickstart.run3.final" in studies
    assert (root / "quickstart_out" / "report.html").is_file()


def _a_fixed_experiment_reruns_after_a_refused_one(folder):
    root, done = folder
    result, text = done["broken"]
    assert result.exit_code == 2 and "unknown feature(s) 'no_such_col'" in text
    for key in ("fixed", "again"):
        result, text = done[key]
        assert result.exit_code == 0, text[-3000:]
    studies = _run(CliRunner(), f"studies --storage sqlite:///{root}/mlruns/optuna.db")[1]
    assert "privacy.final" in studies and "privacy.run2.final" in studies


def _the_logging_commands_succeeded(folder):
    _, done = folder
    for key in ("explain", "compare", "report"):
        result, text = done[key]
        assert result.exit_code == 0, f"{key}: {text[-3000:]}"


def _logged_files(root: Path) -> list[Path]:
    files = [p for p in (root / "mlruns").rglob("*") if p.is_file()]
    files += [p for p in (root / "models").rglob("*") if p.is_file()]
    return files + [root / "quickstart_out" / "report.html", root / "reports" / "report.html"]


def _no_patient_identifier_is_logged(folder):
    root, done = folder
    ids = {pid.encode() for cohort in done["cohorts"] for pid in cohort["patient_id"]}
    found = []
    for path in _logged_files(root):
        data = path.read_bytes()
        hits = set(ID.findall(data)) | {pid for pid in ids if pid in data}
        if hits:
            found.append(f"{path.relative_to(root)}: {sorted(hits)[:3]}")
        assert not ID.search(path.name.encode()), path
    assert not found, "\n".join(found)
    # ... while the files the user named do hold them (the check would see them)
    assert ID.search((root / "explain_out" / "shap_values.csv").read_bytes())
    assert ID.search((root / "quickstart_out" / "scored.csv").read_bytes())


def _rows(cohorts: list[pd.DataFrame]) -> tuple[dict[str, set[int]], list[dict[str, str]]]:
    """Each patient's continuous covariates as the CSV writes them, and an index token -> patients."""
    index: dict[str, set[int]] = {}
    patients = []
    for cohort in cohorts:
        text = pd.read_csv(pd.io.common.StringIO(cohort.to_csv(index=False)), dtype=str)
        for _, row in text.iterrows():
            values = {c: row[c] for c in CONTINUOUS if isinstance(row[c], str)}
            for token in set(values.values()):
                index.setdefault(token, set()).add(len(patients))
            patients.append(values)
    return index, patients


def _leaks(text: str, index: dict[str, set[int]], patients: list[dict[str, str]]) -> list[str]:
    out = []
    for line in text.splitlines():
        tokens = set(NUMBER.findall(line))
        counts = Counter(p for t in tokens for p in index.get(t, ()))
        for p, n in counts.items():
            shared = {c for c, v in patients[p].items() if v in tokens}
            if n >= 4 and len(shared) >= 4:
                out.append(f"patient {p}: {sorted(shared)} in {line[:160]!r}")
    return out


def _no_single_patient_row_of_covariates_is_logged(folder):
    root, done = folder
    index, patients = _rows(done["cohorts"])
    found = []
    for path in _logged_files(root):
        text = path.read_bytes().decode("latin-1")
        text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", text)  # embedded figures
        found += [f"{path.relative_to(root)}: {leak}" for leak in _leaks(text, index, patients)]
        if path.suffix == ".csv":
            found += [f"{path.relative_to(root)}: {leak}" for leak in _table_leaks(path, done["cohorts"])]
    assert not found, "\n".join(found[:20])
    # ... while the files the user named do hold them (the check would see them)
    user = (root / "explain_out" / "shap_values.csv").read_text()
    assert not _leaks(user, index, patients)  # SHAP values are not covariates ...
    scored = pd.read_csv(root / "new.csv").head(3).to_csv(index=False)
    assert _leaks(scored, index, patients)  # ... but a row of the extract is found


def _table_leaks(path: Path, cohorts: list[pd.DataFrame]) -> list[str]:
    """A logged table whose row matches one patient on three or more covariate columns."""
    try:
        table = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError):
        return []
    shared = [c for c in CONTINUOUS if c in table.columns]
    if len(shared) < 3:
        return []
    out = []
    for cohort in cohorts:
        known = cohort[shared].to_numpy(dtype=float)
        for values in table[shared].to_numpy(dtype=float):
            same = np.isclose(known, values[None, :], rtol=0, atol=1e-9).sum(axis=1)
            if (same >= 3).any():
                out.append(f"a row equal to a patient's on {shared}")
    return out
