"""A corpus of malformed inputs across every command: each one ends in exit code 2 with a message that names the
file, option or key and the problem, no traceback, and nothing written (no MLflow store, no study, no folder).

Each case runs in a fresh folder holding a valid extract and valid experiment files; a snapshot of that folder
(every path, size and modification time), and of the shared store the read-only cases point at, must be the same
afterwards.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cartrisk.cli import app
from cartrisk.data.simulate import simulate

UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"


# ------------------------------------------------------------------------------------------------ experiment files
def experiment(*, top: str = "seed = 0", data: str = 'source = "simulated"\nn = 300',
               features: str = 'set = "infusion+relapse"', models: str = '[[models]]\nestimator = "coxph"',
               evaluation: str = "n_splits = 3", extra: str = "") -> str:
    """An evaluate experiment (valid as it is), with one part replaced."""
    return "\n\n".join([f'name = "bad"\n{top}', f"[data]\n{data}", f"[features]\n{features}", models,
                        f"[evaluation]\n{evaluation}", extra]) + "\n"


TUNED_MODEL = '[[models]]\nestimator = "coxph"\n[models.search]\nalpha = { low = 0.1, high = 10.0, log = true }'
TUNING = "[tuning]\nn_trials = 1\nouter_folds = 2\ninner_folds = 2"


def tuned(*, models: str = TUNED_MODEL, tuning: str = TUNING, extra: str = "", **parts: str) -> str:
    """A tuning experiment (valid as it is), with one part replaced."""
    return experiment(models=models, extra=f"{tuning}\n\n{extra}", **parts)


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    expect: str  # a regular expression the message must match (it names the file, option or key)
    files: dict[str, str | bytes] = field(default_factory=dict)


CASES: list[Case] = []


def case(id: str, command: str, expect: str, **files: str | bytes) -> None:
    CASES.append(Case(id, command, expect, {k.replace("__", "."): v for k, v in files.items()}))


def toml_case(id: str, text: str | bytes, expect: str, *, commands: tuple[str, ...] = ("evaluate",)) -> None:
    for command in commands:
        case(f"{command}-{id}", f"{command} bad.toml", expect, bad__toml=text)


# ------------------------------------------------------------------------------------------------ experiment file
for command in ("evaluate", "tune"):
    make = experiment if command == "evaluate" else tuned
    both = (command,)
    toml_case("seed-negative", make(top="seed = -1"), r"bad\.toml: seed must be an integer from 0", commands=both)
    toml_case("seed-huge", make(top="seed = 99999999999"), r"bad\.toml: seed must be an integer from 0", commands=both)
    toml_case("seed-text", make(top='seed = "a"'), r"bad\.toml\.seed: expected int", commands=both)
    toml_case("seed-float", make(top="seed = 1.5"), r"bad\.toml\.seed: expected int", commands=both)
    toml_case("name-empty", make().replace('name = "bad"', 'name = ""'), r"bad\.toml: name must not be empty",
              commands=both)
    toml_case("unknown-key", make(top="seed = 0\nfoo = 1"), r"bad\.toml: unknown key\(s\) 'foo'", commands=both)
    toml_case("not-toml", make() + "[data\n", r"bad\.toml: not valid TOML", commands=both)
    toml_case("not-utf8", make().encode("utf-8") + b"# caf\xe9\n", r"bad\.toml: not UTF-8 text", commands=both)
    toml_case("data-source", make(data='source = "bogus"'), r"bad\.toml: data\.source must be", commands=both)
    toml_case("file-no-path", make(data='source = "file"'), r"data\.source = 'file' needs data\.path",
              commands=both)
    toml_case("file-missing", make(data='source = "file"\npath = "nope.csv"'), r"nope\.csv.*file not found",
              commands=both)
    toml_case("sksurv-no-roles", make(data='source = "sksurv"\ndataset = "gbsg2"'),
              r"data\.source = 'sksurv' needs a \[data\.roles\] table", commands=both)
    toml_case("n-zero", make(data='source = "simulated"\nn = 0'), r"bad\.toml: data\.n must be a positive",
              commands=both)
    toml_case("n-negative", make(data='source = "simulated"\nn = -5'), r"bad\.toml: data\.n must be a positive",
              commands=both)
    toml_case("n-text", make(data='source = "simulated"\nn = "many"'), r"bad\.toml\.data\.n: expected int",
              commands=both)
    toml_case("data-seed", make(data='source = "simulated"\nn = 300\nseed = -3'), r"data\.seed must be an integer",
              commands=both)
    toml_case("data-unknown-key", make(data='source = "simulated"\nsize = 3'), r"unknown key\(s\) 'size'",
              commands=both)
    toml_case("rename-absent", make(data='source = "file"\npath = "extract.csv"\n[data.columns]\nage = "age_years"'),
              r"data\.columns: extract\.csv has no column 'age' to rename", commands=both)
    toml_case("features-set-bogus", make(features='set = "bogus"'), r"features\.set: unknown feature set 'bogus'",
              commands=both)
    toml_case("features-unknown-column", make(features='set = ["age_years", "no_such_col"]'),
              r"features\.set: unknown feature\(s\) 'no_such_col'", commands=both)
    toml_case("features-typo", make(features='set = ["age_year"]'),
              r"features\.set: unknown feature\(s\) 'age_year' \(closest: age_years", commands=both)
    toml_case("features-outcome", make(features='set = ["age_years", "os2_days"]'),
              r"features\.set: feature\(s\) os2_days are the outcome", commands=both)
    toml_case("features-after-failure", make(features='set = ["age_years", "salvage"]'),
              r"features\.set: feature\(s\) salvage are decided or observed after", commands=both)
    toml_case("features-empty", make(features="set = []"), r"features\.set: give a feature set name or a non-empty",
              commands=both)
    toml_case("features-twice", make(features='set = ["age_years", "age_years"]'),
              r"features\.set: feature\(s\) age_years listed more than once", commands=both)
    toml_case("features-number", make(features="set = 5"), r"features\.set: 5 is none of", commands=both)
    toml_case("features-flag", make(features='allow_after_failure = "yes"'),
              r"features\.allow_after_failure: expected bool", commands=both)
    toml_case("evaluation-horizon-negative", make(evaluation="horizons_months = [-3.0]"),
              r"evaluation\.horizons_months: -3: a horizon must be a positive", commands=both)
    toml_case("evaluation-horizon-empty", make(evaluation="horizons_months = []"),
              r"evaluation\.horizons_months is empty", commands=both)
    toml_case("evaluation-horizon-beyond", make(evaluation="horizons_months = [6.0, 1e9]"),
              r"evaluation\.horizons_months = 1e\+09: horizon .* is beyond the follow-up", commands=both)
    toml_case("evaluation-horizon-text", make(evaluation='horizons_months = ["six"]'),
              r"evaluation\.horizons_months\[0\]: expected float", commands=both)
    toml_case("evaluation-rule-unknown", make(evaluation='rules = ["d0_31"]'),
              r"evaluation\.rules: unknown rule 'd0_31' \(closest: d0_30\)", commands=both)
    toml_case("evaluation-rules-string", make(evaluation='rules = "d0_30"'),
              r"evaluation\.rules: expected a list", commands=both)
    toml_case("tracking-uri-scheme", make(extra='[tracking]\nuri = "foo://bar"'),
              r"bad\.toml: tracking\.uri: 'foo://bar' is not a tracking URI", commands=both)
    toml_case("tracking-uri-proc", make(extra='[tracking]\nuri = "sqlite:////proc/nope/mlflow.db"'),
              r"tracking\.uri: cannot create /proc/nope/mlflow\.db", commands=both)
    toml_case("tracking-enabled", make(extra='[tracking]\nenabled = "no"'), r"tracking\.enabled: expected bool",
              commands=both)
    toml_case("tracking-unknown", make(extra='[tracking]\nserver = "x"'), r"unknown key\(s\) 'server'",
              commands=both)
    toml_case("description", make(top='seed = 0\ndescription = 3'), r"description: expected str", commands=both)
    toml_case("features-absent-column",
              make(data='source = "file"\npath = "lean.csv"', features='set = ["ldh_ratio_infusion"]'),
              r"features\.set: feature\(s\) ldh_ratio_infusion cannot be computed.*needs ldh_infusion",
              commands=both)

# models, evaluated
for id, models, expect in [
    ("estimator-unknown", '[[models]]\nestimator = "bogus"', r"models\[0\]\.estimator: unknown estimator 'bogus'"),
    ("estimator-empty", '[[models]]\nestimator = ""', r"models\[0\]\.estimator must not be empty"),
    ("estimator-missing", '[[models]]\nname = "x"', r"models\[0\]: missing key\(s\) 'estimator'"),
    ("model-unknown-key", '[[models]]\nestimator = "coxph"\nfamily = "x"', r"unknown key\(s\) 'family'"),
    ("param-text", '[[models]]\nestimator = "coxph"\nparams = { alpha = "high" }',
     r"models\[0\]\.params\.alpha = 'high': The 'alpha' parameter of CoxPH must be"),
    ("param-negative", '[[models]]\nestimator = "coxph"\nparams = { alpha = -1.0 }',
     r"models\[0\]\.params\.alpha = -1\.0: The 'alpha' parameter"),
    ("param-unknown", '[[models]]\nestimator = "coxph"\nparams = { no_such = 1 }',
     r"models\[0\]\.params: coxph has no parameter\(s\) 'no_such'"),
    ("rsf-trees", '[[models]]\nestimator = "rsf"\nparams = { n_estimators = 0 }',
     r"models\[0\]\.params\.n_estimators = 0: The 'n_estimators' parameter"),
    ("rsf-max-features", '[[models]]\nestimator = "rsf"\nparams = { max_features = "bogus" }',
     r"models\[0\]\.params\.max_features = 'bogus'"),
    ("xgb-rate", '[[models]]\nestimator = "xgb_cox"\nparams = { learning_rate = 0 }',
     r"models\[0\]\.params\.learning_rate = 0: The 'learning_rate' parameter"),
    ("coxnet-l1", '[[models]]\nestimator = "coxnet"\nparams = { l1_ratio = 2.0 }',
     r"models\[0\]\.params\.l1_ratio = 2\.0"),
    ("params-not-table", '[[models]]\nestimator = "coxph"\nparams = 3', r"models\[0\]\.params: expected a table"),
    ("search-without-tuning", TUNED_MODEL, r"models\[0\]\.search: a search space needs a \[tuning\] table"),
    ("second-model-bad", '[[models]]\nestimator = "coxph"\n[[models]]\nestimator = "rsf"\n'
                         'params = { min_samples_leaf = 0 }', r"models\[1\]\.params\.min_samples_leaf = 0"),
]:
    toml_case(id, experiment(models=models), expect)

for id, evaluation, expect in [
    ("splits-one", "n_splits = 1", r"evaluation\.n_splits must be at least 2"),
    ("splits-1000", "n_splits = 1000", r"evaluation\.n_splits = 1000 on 300 patients.*fewer than n_splits"),
    ("splits-text", 'n_splits = "five"', r"evaluation\.n_splits: expected int"),
    ("repeats-zero", "n_repeats = 0", r"evaluation\.n_repeats must be at least 1"),
    ("evaluation-unknown", "folds = 3", r"unknown key\(s\) 'folds'"),
]:
    toml_case(id, experiment(evaluation=evaluation), expect)

toml_case("generic-roles-missing", experiment(data='source = "sksurv"\ndataset = "gbsg2"\n[data.roles]\ntime = '
                                                   '"time"\nevent = "cens"\ncovariates = ["nope"]'),
          r"column\(s\) named in \[data\.roles\] not in the data: nope")
toml_case("generic-unit", experiment(data='source = "sksurv"\ndataset = "gbsg2"\n[data.roles]\ntime = "time"\n'
                                          'event = "cens"\ntime_unit_days = 0'), r"data\.roles\.time_unit_days must be")
toml_case("generic-dataset", experiment(data='source = "sksurv"\ndataset = "nope"\n[data.roles]\ntime = "time"\n'
                                             'event = "cens"'), r"data\.dataset must be one of")

# tuning tables and search spaces
for id, text, expect in [
    ("no-tuning-table", experiment(), r"bad\.toml: no tuning table in the file"),
    ("trials-zero", tuned(tuning=TUNING + "\nn_trials = 0").replace("n_trials = 1\n", ""),
     r"tuning\.n_trials must be at least 1"),
    ("outer-5000", tuned(tuning="[tuning]\nouter_folds = 5000"), r"tuning\.outer_folds = 5000 on 300 patients"),
    ("outer-one", tuned(tuning="[tuning]\nouter_folds = 1"), r"tuning\.outer_folds must be at least 2"),
    ("inner-1000", tuned(tuning="[tuning]\nouter_folds = 2\ninner_folds = 1000"),
     r"tuning\.inner_folds = 1000 on all data"),
    ("objective-unknown", tuned(tuning=TUNING + '\nobjective = "auc"'),
     r"tuning\.objective: unknown metric\(s\) 'auc'"),
    ("objective-weight", tuned(tuning=TUNING + "\nobjective = { uno_c = -1.0 }"),
     r"tuning\.objective: weights must be positive"),
    ("sampler", tuned(tuning=TUNING + '\nsampler = "grid"'), r"tuning\.sampler must be one of"),
    ("pruner", tuned(tuning=TUNING + '\npruner = "hyperband"'), r"tuning\.pruner must be one of"),
    ("timeout", tuned(tuning=TUNING + "\ntimeout_seconds = -1"), r"tuning\.timeout_seconds must be positive"),
    ("workers", tuned(tuning=TUNING + "\nworkers = 0"), r"tuning\.workers must be at least 1"),
    ("warmup", tuned(tuning=TUNING + "\nprune_warmup_folds = -1"), r"tuning\.prune_warmup_folds must be at least 0"),
    ("startup", tuned(tuning=TUNING + "\nstartup_trials = 0"), r"tuning\.startup_trials must be at least 1"),
    ("study-name", tuned(tuning=TUNING + "\nstudy_name = 5"), r"tuning\.study_name: expected str"),
    ("tuning-unknown", tuned(tuning=TUNING + "\ntrials = 5"), r"unknown key\(s\) 'trials'"),
    ("storage-scheme", tuned(tuning=TUNING + '\nstorage = "foo://bar"'),
     r"bad\.toml: tuning\.storage: 'foo://bar' is not a database URL"),
    ("storage-proc", tuned(tuning=TUNING + '\nstorage = "sqlite:////proc/nope/optuna.db"'),
     r"tuning\.storage: cannot create /proc/nope/optuna\.db"),
    ("no-models", tuned(models=""), r"\[tuning\] needs at least one \[\[models\]\] entry"),
    ("alpha-negative-range", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\n'
                                          'alpha = { low = -1.0, high = 1.0 }'),
     r"models\[0\]\.search\.alpha: low -1\.0 is not a valid value: The 'alpha' parameter"),
    ("alpha-text-choices", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\n'
                                        'alpha = { choices = ["a", "b"] }'),
     r"models\[0\]\.search\.alpha: choice 'a' is not a valid value"),
    ("range-reversed", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\n'
                                    'alpha = { low = 1, high = 0.5 }'),
     r"search\.alpha: low must be below high"),
    ("log-zero", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\n'
                              'alpha = { low = 0.0, high = 1.0, log = true }'), r"a log-scale range needs low > 0"),
    ("choices-empty", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\nalpha = { choices = [] }'),
     r"search\.alpha: choices must not be empty"),
    ("range-half", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\nalpha = { low = 0.1 }'),
     r"search\.alpha: a search range needs low and high"),
    ("range-type", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\n'
                                'alpha = { low = 0.1, high = 1.0, type = "str" }'), r"search\.alpha\.type must be"),
    ("int-range-floats", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\n'
                                      'alpha = { low = 0.5, high = 2.5, type = "int" }'),
     r"search\.alpha: an int range needs integer low and high"),
    ("step-log", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\n'
                              'alpha = { low = 0.1, high = 1.0, log = true, step = 0.1 }'),
     r"step and log = true cannot be combined"),
    ("step-zero", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\n'
                               'alpha = { low = 0.1, high = 1.0, step = 0 }'), r"search\.alpha: step must be positive"),
    ("search-unknown-param", tuned(models='[[models]]\nestimator = "coxph"\n[models.search]\n'
                                          'nope = { low = 1, high = 2 }'),
     r"models\[0\]\.search: coxph has no parameter\(s\) 'nope'"),
    ("search-float-for-int", tuned(models='[[models]]\nestimator = "xgb_cox"\n[models.search]\n'
                                          'n_estimators = { low = 10.0, high = 100.0 }'),
     r"search\.n_estimators: .* this parameter takes integers: add type = \"int\""),
    ("search-and-fixed", tuned(models='[[models]]\nestimator = "coxph"\nparams = { alpha = 1.0 }\n[models.search]\n'
                                      'alpha = { low = 0.1, high = 1.0 }'),
     r"'alpha' both fixed \(params\) and searched"),
    ("tuned-unknown-fixed", tuned(models='[[models]]\nestimator = "coxph"\nparams = { bogus = 1 }\n[models.search]\n'
                                         'alpha = { low = 0.1, high = 1.0 }'),
     r"models\[0\]\.params: coxph has no parameter\(s\) 'bogus'"),
    ("tuned-unknown-estimator", tuned(models='[[models]]\nestimator = "cox"\n[models.search]\n'
                                             'alpha = { low = 0.1, high = 1.0 }'),
     r"models\[0\]\.estimator: unknown estimator 'cox'"),
    ("same-labels", tuned(models=TUNED_MODEL + "\n" + TUNED_MODEL), r"models tuned together need distinct names"),
    ("rsf-depth-range", tuned(models='[[models]]\nestimator = "rsf"\n[models.search]\n'
                                     'max_depth = { low = 0, high = 3 }'),
     r"search\.max_depth: low 0 is not a valid value"),
]:
    toml_case(id, text, expect, commands=("tune",))

# ------------------------------------------------------------------------------------------------ options
case("experiment-missing", "evaluate nope.toml", r"nope\.toml: experiment file not found")
case("experiment-folder", "evaluate folder", r"folder: is a folder; give the experiment file", folder__keep="")
case("evaluate-option-n-negative", "evaluate ok.toml --n -5", r"Invalid value for '--n'")
case("evaluate-option-n-zero", "evaluate ok.toml --n 0", r"Invalid value for '--n'")
case("evaluate-option-n-text", "evaluate ok.toml --n abc", r"Invalid value for '--n'")
case("evaluate-n-file", "evaluate file.toml --n 300", r"--n 300: sets the size of the simulated registry, but "
     r"file\.toml reads data\.source = 'file'")
case("evaluate-n-file-negative", "evaluate file.toml --n -5", r"Invalid value for '--n'")
case("evaluate-uri-scheme", "evaluate ok.toml --tracking-uri foo://bar", r"--tracking-uri: 'foo://bar' is not a")
case("evaluate-uri-empty", "evaluate ok.toml --tracking-uri ''", r"--tracking-uri: empty tracking URI")
case("evaluate-uri-proc", "evaluate ok.toml --tracking-uri sqlite:////proc/nope/m.db",
     r"--tracking-uri: cannot create /proc/nope/m\.db")
case("evaluate-uri-memory", "evaluate ok.toml --tracking-uri sqlite:///", r"--tracking-uri: 'sqlite:///': a SQLite "
     r"store needs a file path")
case("evaluate-uri-no-driver", "evaluate ok.toml --tracking-uri mysql://u@h/db",
     r"--tracking-uri: 'mysql://u@h/db' needs a database driver")
case("evaluate-missing-argument", "evaluate", r"(?i)Missing argument 'experiment'")
case("evaluate-unknown-option", "evaluate ok.toml --bogus", r"No such option: --bogus")

case("tune-option-trials-zero", "tune tune.toml --trials 0", r"Invalid value for '--trials'")
case("tune-trials-negative", "tune tune.toml --trials -1", r"Invalid value for '--trials'")
case("tune-workers-zero", "tune tune.toml --workers 0", r"Invalid value for '--workers'")
case("tune-timeout-zero", "tune tune.toml --timeout 0", r"--timeout must be a positive number of seconds")
case("tune-timeout-negative", "tune tune.toml --timeout -5", r"--timeout must be a positive number of seconds")
case("tune-timeout-text", "tune tune.toml --timeout soon", r"Invalid value for '--timeout'")
case("tune-option-storage-scheme", "tune tune.toml --storage foo://bar",
     r"--storage: 'foo://bar' is not a database URL")
case("tune-storage-plain", "tune tune.toml --storage optuna.db", r"--storage: 'optuna\.db' is neither a database URL")
case("tune-storage-journal-empty", "tune tune.toml --storage journal:", r"--storage: 'journal:': a journal storage "
     r"needs a file path")
case("tune-option-storage-proc", "tune tune.toml --storage sqlite:////proc/nope/o.db", r"--storage: cannot create")
case("tune-storage-journal-proc", "tune tune.toml --storage journal:/proc/nope/j.log", r"--storage: cannot create")
case("tune-storage-driver", "tune tune.toml --storage mssql://u@localhost/db",  # no SQL Server driver installed
     r"--storage: 'mssql://u@localhost/db' needs a database driver")
case("tune-resume-missing", "tune tune.toml --resume", r"--resume: there is no study 'bad' in "
     r"sqlite:///mlruns/optuna\.db to continue")
case("tune-resume-missing-journal", "tune tune.toml --resume --storage journal:j.log",
     r"--resume: there is no study 'bad' in journal:j\.log")
case("tune-option-n-negative", "tune tune.toml --n -5", r"Invalid value for '--n'")
case("tune-n-file", "tune tunefile.toml --n 300", r"--n 300: sets the size of the simulated registry")
case("tune-uri", "tune tune.toml --tracking-uri foo://bar", r"--tracking-uri: 'foo://bar' is not a tracking URI")
case("tune-missing-file", "tune nope.toml", r"nope\.toml: experiment file not found")

case("studies-scheme", "studies --storage foo://bar", r"--storage: 'foo://bar' is not a database URL")
case("studies-no-db", "studies --storage sqlite:///nope.db", r"no study storage at sqlite:///nope\.db")
case("studies-no-journal", "studies --storage journal:nope.log", r"no study storage at journal:nope\.log")

case("simulate-n-zero", "simulate --n 0", r"Invalid value for '--n'")
case("simulate-n-negative", "simulate --n -5", r"Invalid value for '--n'")
case("simulate-n-text", "simulate --n abc", r"Invalid value for '--n'")
case("simulate-seed-negative", "simulate --seed -1 --out s.csv", r"Invalid value for '--seed'")
case("simulate-seed-huge", "simulate --seed 99999999999 --out s.csv", r"Invalid value for '--seed'")
case("simulate-out-proc", "simulate --n 50 --out /proc/s.csv", r"--out: cannot write /proc/s\.csv")
case("simulate-out-suffix", "simulate --n 50 --out s.txt", r"--out: s\.txt: the file name must end in \.csv")
case("simulate-out-folder", "simulate --n 50 --out folder", r"--out: folder is a folder", folder__keep="")
case("simulate-out-under-file", "simulate --n 50 --out extract.csv/s.csv", r"--out: cannot write extract\.csv/s\.csv")
case("simulate-truth-proc", "simulate --n 50 --out s.csv --truth /proc/t.csv", r"--truth: cannot write /proc/t\.csv")
case("simulate-truth-suffix", "simulate --n 50 --out s.csv --truth t.json", r"--truth: t\.json: the file name")
case("simulate-same-file", "simulate --n 50 --out s.csv --truth s.csv", r"--out and --truth are the same file")
case("simulate-unknown-option", "simulate --patients 5", r"No such option: --patients")

case("validate-missing", "validate nope.csv", r"nope\.csv: file not found")
case("validate-suffix", "validate notes.txt", r"notes\.txt: not a CSV or Parquet file", notes__txt="a,b\n1,2\n")
case("validate-empty", "validate empty.csv", r"empty\.csv: the file is empty", empty__csv="")
case("validate-bad-value", "validate badage.csv", r"badage\.csv, row 1, column 'age_years'")
case("validate-no-column", "validate nodays.csv", r"nodays\.csv: 1 problem.*days_to_failure")
case("validate-parquet", "validate garbage.parquet", r"garbage\.parquet: cannot be read as Parquet",
     garbage__parquet=b"not parquet at all")
case("validate-folder", "validate folder", r"folder: file not found", folder__keep="")
case("validate-header-only", "validate header.csv", r"header\.csv: 1 problem.*no patients",
     header__csv="patient_id,days_to_failure,os2_days,os2_event\n")
case("validate-rename-absent", "validate extract.csv --experiment renames.toml",
     r"data\.columns: extract\.csv has no column 'age' to rename to 'age_years'",
     renames__toml='name = "r"\n[data]\nsource = "file"\npath = "extract.csv"\n[data.columns]\nage = "age_years"\n')

case("score-no-bundle", "score nobundle extract.csv --out s.csv", r"nobundle: no such bundle folder")
case("score-not-bundle", "score folder extract.csv --out s.csv", r"folder: no MANIFEST\.json; this is not a cartrisk "
     r"bundle", folder__keep="")
case("score-out-suffix", "score {bundle} extract.csv --out s.txt", r"--out: s\.txt: the file name must end")
case("score-out-proc", "score {bundle} extract.csv --out /proc/s.csv", r"--out: cannot write /proc/s\.csv")
case("score-out-folder", "score {bundle} extract.csv --out folder", r"--out: folder is a folder", folder__keep="")
case("score-input-missing", "score {bundle} nope.csv --out s.csv", r"nope\.csv: file not found")
case("score-top-zero", "score {bundle} extract.csv --out s.csv --explain --top 0", r"Invalid value for '--top'")
case("score-trust-missing", "score {bundle} extract.csv --out s.csv --trust nope.pub",
     r"--trust: nope\.pub: no such public key file")
case("score-trust-private", "score {bundle} extract.csv --out s.csv --trust {key}", r"--trust: .*lab\.key: not a PEM "
     r"public key \(that is a private key")
case("score-trust-garbage", "score {bundle} extract.csv --out s.csv --trust notes.txt",
     r"--trust: notes\.txt: not a PEM public key", notes__txt="hello")
case("score-trust-empty-folder", "score {bundle} extract.csv --out s.csv --trust folder",
     r"--trust: no public key found in folder", folder__keep="")
case("score-fingerprint-short", "score {bundle} extract.csv --out s.csv --expect-fingerprint abc",
     r"--expect-fingerprint: 'abc' is not a SHA-256 fingerprint")
case("score-fingerprint-other", "score {bundle} extract.csv --out s.csv --expect-fingerprint " + "0" * 64,
     r"fingerprint [0-9a-f]{64} is not the expected 0{64} \(--expect-fingerprint\)")
case("score-unsigned-trusted", "score {bundle} extract.csv --out s.csv --trust {pub}",
     r"the bundle is unsigned, and --trust .* asks for a signature")
case("score-missing-out", "score {bundle} extract.csv", r"Missing option '--out'")
case("score-bad-rows", "score {bundle} badage.csv --out s.csv", r"badage\.csv: 1 problem\(s\); nothing written")
case("score-no-days", "score {bundle} nodays.csv --out s.csv", r"nodays\.csv.*days_to_failure")

case("export-no-store", "export --run " + UNKNOWN_RUN + " --name m", r"--tracking-uri: no MLflow store at "
     r"sqlite:///mlruns/mlflow\.db")
case("export-bad-name", "export --run " + UNKNOWN_RUN + " --name 'bad name!'", r"--name: 'bad name!' must be")
case("export-sign-missing", "export --run " + UNKNOWN_RUN + " --name m --sign nope.key",
     r"--sign: nope\.key: no such key file")
case("export-sign-public", "export --run " + UNKNOWN_RUN + " --name m --sign {pub}",
     r"--sign: .*lab\.pub: not an unencrypted PEM private key \(that is the public key")
case("export-uri", "export --run " + UNKNOWN_RUN + " --name m --tracking-uri foo://bar",
     r"--tracking-uri: 'foo://bar' is not a tracking URI")
case("export-trial-negative", "export --study s --trial -1 --name m", r"Invalid value for '--trial'")
case("export-models-dir-proc", "export --run " + UNKNOWN_RUN + " --name m --models-dir /proc/models",
     r"--models-dir: cannot write into /proc/models")
case("export-models-dir-file", "export --run " + UNKNOWN_RUN + " --name m --models-dir extract.csv",
     r"--models-dir: extract\.csv is a file")
case("export-exists", "export --run " + UNKNOWN_RUN + " --name cox --models-dir {bundle_parent}",
     r"--name: .*cox exists; choose another name or pass --overwrite")
case("export-missing-name", "export --run " + UNKNOWN_RUN, r"Missing option '--name'")
case("export-unknown-run", "export --run " + UNKNOWN_RUN + " --name m --tracking-uri {store}",
     r"MLflow run 0123456789abcdef0123456789abcdef not found in sqlite:///")
case("export-run-and-study", "export --run " + UNKNOWN_RUN + " --study s --name m --tracking-uri {store}",
     r"exactly one of a run id \(--run\) or a study name \(--study\)")
case("export-neither", "export --name m --tracking-uri {store}", r"exactly one of a run id \(--run\)")
case("export-unknown-study", "export --study nope --name m --tracking-uri {store}",
     r"no MLflow run tagged cartrisk\.study = 'nope'")
case("export-trial-without-study", "export --run " + UNKNOWN_RUN + " --trial 1 --name m --tracking-uri {store}",
     r"exactly one of|--trial N selects a trial of a study")
case("export-data-missing", "export --study s --name m --tracking-uri {store} --data nope.csv",
     r"no MLflow run tagged cartrisk\.study = 's'|nope\.csv: file not found")

case("report-bad-run", "report --run notanid", r"--run: 'notanid' is not an MLflow run id")
case("report-no-store", "report --run " + UNKNOWN_RUN, r"--tracking-uri: no MLflow store at sqlite:///mlruns/mlflow\.db")
case("report-unknown-run", "report --run " + UNKNOWN_RUN + " --tracking-uri {store}",
     r"MLflow run '0123456789abcdef0123456789abcdef' not found in sqlite:///")
case("report-out-proc", "report --run " + UNKNOWN_RUN + " --out /proc/r", r"--out: cannot write into /proc/r")
case("report-out-file", "report --run " + UNKNOWN_RUN + " --out extract.csv", r"--out: extract\.csv is a file")
case("report-uri", "report --run " + UNKNOWN_RUN + " --tracking-uri foo://bar", r"--tracking-uri: 'foo://bar' is not")
case("report-missing-run", "report", r"Missing option '--run'")

case("compare-no-model", "compare-rules --model nomodel --data extract.csv",
     r"nomodel: neither a bundle folder, a \.skops file nor an MLflow run id")
case("compare-rule-unknown", "compare-rules --model {bundle} --data extract.csv --rules d0_31",
     r"--rules: unknown rule 'd0_31'")
case("compare-rules-empty", "compare-rules --model {bundle} --data extract.csv --rules ,", r"--rules: unknown rule")
case("compare-groups-bogus", "compare-rules --model {bundle} --data extract.csv --groups bogus", r"groups 'bogus'")
case("compare-groups-one", "compare-rules --model {bundle} --data extract.csv --groups 1",
     r"groups '1': at least 2 groups are needed")
case("compare-groups-threshold", "compare-rules --model {bundle} --data extract.csv --groups threshold:x@6",
     r"groups 'threshold:x@6': thresholds and horizon must be numbers")
case("compare-n-boot", "compare-rules --model {bundle} --data extract.csv --n-boot 0", r"Invalid value for '--n-boot'")
case("compare-out-file", "compare-rules --model {bundle} --data extract.csv --out extract.csv",
     r"--out: extract\.csv is a file")
case("compare-out-proc", "compare-rules --model {bundle} --data extract.csv --out /proc/c",
     r"--out: cannot write into /proc/c")
case("compare-data-missing", "compare-rules --model {bundle} --data nope.csv", r"nope\.csv: file not found")
case("compare-data-invalid", "compare-rules --model {bundle} --data badage.csv", r"badage\.csv.*row 1.*age_years")
case("compare-train-missing", "compare-rules --model {bundle} --data extract.csv --groups 3 --train nope.csv",
     r"nope\.csv: file not found")
case("compare-trust-missing", "compare-rules --model {bundle} --data extract.csv --trust nope.pub",
     r"--trust: nope\.pub: no such public key file")
case("compare-trust-run", "compare-rules --model " + UNKNOWN_RUN + " --data extract.csv --trust {pub}",
     r"--trust checks a bundle folder, but --model 0123456789abcdef0123456789abcdef is not one")
case("compare-fingerprint-run", "compare-rules --model " + UNKNOWN_RUN + " --data extract.csv --expect-fingerprint "
     + "a" * 64, r"--expect-fingerprint checks a bundle folder")
case("compare-unsigned-trusted", "compare-rules --model {bundle} --data extract.csv --trust {pub}",
     r"the bundle is unsigned, and --trust")
case("compare-seed", "compare-rules --model {bundle} --data extract.csv --seed -1", r"Invalid value for '--seed'")
case("compare-new-groups-no-train", "compare-rules --model {bundle} --data extract.csv --groups 3",
     r"--groups asks for new cut-points: give the training cohort with --train PATH")
case("compare-track-uri", "compare-rules --model {bundle} --data extract.csv --track --tracking-uri foo://bar",
     r"--tracking-uri: 'foo://bar' is not a tracking URI")
case("compare-run-no-store", "compare-rules --model " + UNKNOWN_RUN + " --data extract.csv",
     r"--tracking-uri: no MLflow store at sqlite:///mlruns/mlflow\.db")
case("compare-missing-data", "compare-rules --model {bundle}", r"Missing option '--data'")

case("explain-horizon-huge", "explain --model {bundle} --data extract.csv --horizon 1e9",
     r"--horizon 1e\+09 months is beyond the model's training follow-up")
case("explain-horizon-zero", "explain --model {bundle} --data extract.csv --horizon 0", r"--horizon must be a positive")
case("explain-horizon-negative", "explain --model {bundle} --data extract.csv --horizon -3",
     r"--horizon must be a positive")
case("explain-horizon-nan", "explain --model {bundle} --data extract.csv --horizon nan",
     r"--horizon must be a positive")
case("explain-out-file", "explain --model {bundle} --data extract.csv --out extract.csv",
     r"--out: extract\.csv is a file")
case("explain-out-proc", "explain --model {bundle} --data extract.csv --out /proc/e", r"--out: cannot write into")
case("explain-patients", "explain --model {bundle} --data extract.csv --patients NOPE-1",
     r"--patients: NOPE-1 not in the data")
case("explain-log-bundle", "explain --model {bundle} --data extract.csv --log-to-run",
     r"--log-to-run needs an MLflow run id as --model")
case("explain-background", "explain --model {bundle} --data extract.csv --n-background 0",
     r"Invalid value for '--n-background'")
case("explain-max-patients", "explain --model {bundle} --data extract.csv --max-horizon-patients 0",
     r"Invalid value for '--max-horizon-patients'")
case("explain-data-missing", "explain --model {bundle} --data nope.csv", r"nope\.csv: file not found")
case("explain-trust-garbage", "explain --model {bundle} --data extract.csv --trust notes.txt",
     r"--trust: notes\.txt: not a PEM public key", notes__txt="x")
case("explain-fingerprint", "explain --model {bundle} --data extract.csv --expect-fingerprint " + "f" * 64,
     r"is not the expected f{64} \(--expect-fingerprint\)")
case("explain-unsigned-trusted", "explain --model {bundle} --data extract.csv --trust {pub}",
     r"the bundle is unsigned, and --trust")
case("explain-run-no-store", "explain --model " + UNKNOWN_RUN + " --data extract.csv",
     r"--tracking-uri: no MLflow store at sqlite:///mlruns/mlflow\.db")
case("explain-run-unknown", "explain --model " + UNKNOWN_RUN + " --data extract.csv --tracking-uri {store}",
     r"MLflow run 0123456789abcdef0123456789abcdef not found")
case("explain-model-nothing", "explain --model nomodel --data extract.csv",
     r"nomodel: neither a bundle folder, a \.skops file nor an MLflow run id")
case("explain-seed", "explain --model {bundle} --data extract.csv --seed -1", r"Invalid value for '--seed'")
case("explain-trust-run", "explain --model " + UNKNOWN_RUN + " --data extract.csv --trust {pub}",
     r"--trust checks a bundle folder")

case("quickstart-out-file", "quickstart --out extract.csv --n 200 --trials 1", r"--out: extract\.csv is a file")
case("quickstart-out-proc", "quickstart --out /proc/q --n 200 --trials 1", r"--out: cannot write into /proc/q")
case("quickstart-n-small", "quickstart --n 100", r"Invalid value for '--n'")
case("quickstart-trials-zero", "quickstart --trials 0", r"Invalid value for '--trials'")
case("quickstart-uri", "quickstart --n 200 --trials 1 --tracking-uri foo://bar",
     r"--tracking-uri: 'foo://bar' is not a tracking URI")
case("quickstart-models-file", "quickstart --n 200 --trials 1 --models-dir extract.csv",
     r"--models-dir: extract\.csv is a file")
case("quickstart-seed", "quickstart --seed -1", r"Invalid value for '--seed'")

case("keygen-proc", "keygen --out /proc/k/lab", r"--out: cannot write into /proc/k")
case("keygen-exists", "keygen --out lab", r"--out: lab\.key exist\(s\); choose another name, or pass --overwrite",
     lab__key="existing")
case("keygen-missing-out", "keygen", r"Missing option '--out'")
case("keygen-folder-file", "keygen --out extract.csv/lab", r"--out: extract\.csv is a file")

# the commands of the seed analysis, external validation, updating, sample size and workers
case("describe-missing", "describe nope.csv", r"nope\.csv: file not found")
case("describe-suffix", "describe notes.txt", r"notes\.txt: not a CSV or Parquet file", notes__txt="a,b\n1,2\n")
case("describe-bad-value", "describe badage.csv", r"badage\.csv.*row 1, column 'age_years'")
case("describe-no-outcome", "describe nooutcome.csv", r"nooutcome\.csv.*column 'os2_days': required column missing")
case("describe-out-proc", "describe extract.csv --out /proc/d", r"--out: cannot write into /proc/d")
case("describe-out-file", "describe extract.csv --out extract.csv", r"--out: extract\.csv is a file")
case("describe-by-unknown", "describe extract.csv --by nope", r"--by 'nope': no such column in extract\.csv")
case("describe-strata-unknown", "describe extract.csv --strata nope", r"--strata 'nope': no such column")
case("describe-by-registry", "describe extract.csv --by sex", r"--by applies to the generic path")
case("describe-experiment-missing", "describe extract.csv --experiment nope.toml", r"nope\.toml: experiment file not "
     r"found")
case("describe-experiment-not-toml", "describe extract.csv --experiment notes.txt", r"notes\.txt: not valid TOML",
     notes__txt="hello world\n")

case("validate-model-no-bundle", "validate-model nobundle --data extract.csv --horizon 6",
     r"nobundle: no such bundle folder")
case("validate-model-not-bundle", "validate-model folder --data extract.csv --horizon 6",
     r"folder: no MANIFEST\.json", folder__keep="")
case("validate-model-horizon-zero", "validate-model {bundle} --data extract.csv --horizon 0",
     r"extract\.csv: horizon 0 months \(0 days\) is before the first observed time")
case("validate-model-horizon-negative", "validate-model {bundle} --data extract.csv --horizon -3",
     r"Invalid value for '--horizon'")
case("validate-model-horizon-far", "validate-model {bundle} --data extract.csv --horizon 1000",
     r"horizon 1000 months .* is beyond the follow-up of the validation cohort")
case("validate-model-no-horizon", "validate-model {bundle} --data extract.csv", r"Missing option '--horizon'")
case("validate-model-thresholds-text", "validate-model {bundle} --data extract.csv --horizon 6 --thresholds x",
     r"--thresholds 'x': give risks between 0 and 1")
case("validate-model-thresholds-range", "validate-model {bundle} --data extract.csv --horizon 6 --thresholds 1.5",
     r"--thresholds '1\.5': 1\.5 is not strictly between 0 and 1")
case("validate-model-thresholds-twice", "validate-model {bundle} --data extract.csv --horizon 6 --thresholds 0.2,0.2",
     r"--thresholds '0\.2,0\.2': 0\.2 is given twice")
case("validate-model-n-boot", "validate-model {bundle} --data extract.csv --horizon 6 --n-boot -1",
     r"Invalid value for '--n-boot'")
case("validate-model-seed", "validate-model {bundle} --data extract.csv --horizon 6 --seed -1",
     r"Invalid value for '--seed'")
case("validate-model-out-file", "validate-model {bundle} --data extract.csv --horizon 6 --out extract.csv",
     r"--out: extract\.csv is a file")
case("validate-model-out-proc", "validate-model {bundle} --data extract.csv --horizon 6 --out /proc/v",
     r"--out: cannot write into /proc/v")
case("validate-model-data-missing", "validate-model {bundle} --data nope.csv --horizon 6", r"nope\.csv: file not found")
case("validate-model-no-outcome", "validate-model {bundle} --data nooutcome.csv --horizon 6",
     r"nooutcome\.csv.*os2_days")
case("validate-model-bad-rows", "validate-model {bundle} --data badage.csv --horizon 6", r"badage\.csv.*age_years")
case("validate-model-trust-missing", "validate-model {bundle} --data extract.csv --horizon 6 --trust nope.pub",
     r"--trust: nope\.pub: no such public key file")
case("validate-model-unsigned-trusted", "validate-model {bundle} --data extract.csv --horizon 6 --trust {pub}",
     r"the bundle is unsigned, and --trust")
case("validate-model-fingerprint", "validate-model {bundle} --data extract.csv --horizon 6 --expect-fingerprint abc",
     r"--expect-fingerprint: 'abc' is not a SHA-256 fingerprint")

case("update-model-method", "update-model {bundle} --data extract.csv --method bogus --name x",
     r"--method 'bogus': use one of intercept, slope, refit or auto")
case("update-model-no-method", "update-model {bundle} --data extract.csv --name x", r"Missing option '--method'")
case("update-model-bad-name", "update-model {bundle} --data extract.csv --method intercept --name 'bad name'",
     r"--name: 'bad name' must be")
case("update-model-exists", "update-model {bundle} --data extract.csv --method intercept --name cox --models-dir "
     "{bundle_parent}", r"cox: a bundle of that name exists")
case("update-model-models-dir-proc", "update-model {bundle} --data extract.csv --method intercept --name x "
     "--models-dir /proc/m", r"--models-dir: cannot write into /proc/m")
case("update-model-models-dir-file", "update-model {bundle} --data extract.csv --method intercept --name x "
     "--models-dir extract.csv", r"--models-dir: extract\.csv is a file")
case("update-model-horizon-zero", "update-model {bundle} --data extract.csv --method intercept --name x --horizon 0",
     r"--horizon: 0 months; the recalibration horizon must be a positive number")
case("update-model-no-outcome", "update-model {bundle} --data nooutcome.csv --method intercept --name x",
     r"nooutcome\.csv.*os2_days")
case("update-model-bad-rows", "update-model {bundle} --data badage.csv --method slope --name x",
     r"badage\.csv.*age_years")
case("update-model-data-missing", "update-model {bundle} --data nope.csv --method intercept --name x",
     r"nope\.csv: file not found")
case("update-model-trust", "update-model {bundle} --data extract.csv --method intercept --name x --trust {pub}",
     r"the bundle is unsigned, and --trust")

SAMPLESIZE = "samplesize --parameters 10 --rate 0.1 --horizon 2 --mean-followup 2 --r2cs 0.05"
case("samplesize-parameters", SAMPLESIZE.replace("--parameters 10", "--parameters 0"),
     r"Invalid value for '--parameters'")
case("samplesize-rate", SAMPLESIZE.replace("--rate 0.1", "--rate -0.1"), r"--rate: -0\.1; give a positive number")
case("samplesize-horizon", SAMPLESIZE.replace("--horizon 2", "--horizon 0"), r"--horizon: 0; give a positive number")
case("samplesize-followup", SAMPLESIZE.replace("--mean-followup 2", "--mean-followup 0"),
     r"--mean-followup: 0; give a positive number")
case("samplesize-r2cs-high", SAMPLESIZE.replace("--r2cs 0.05", "--r2cs 1.5"),
     r"--r2cs: 1\.5; the anticipated Cox-Snell")
case("samplesize-r2cs-zero", SAMPLESIZE.replace("--r2cs 0.05", "--r2cs 0"), r"--r2cs: 0; the anticipated Cox-Snell")
case("samplesize-shrinkage", SAMPLESIZE + " --shrinkage 1.5", r"--shrinkage: 1\.5; the target expected shrinkage")
case("samplesize-missing", SAMPLESIZE.replace(" --r2cs 0.05", ""), r"Missing option '--r2cs'")
case("samplesize-text", SAMPLESIZE.replace("--rate 0.1", "--rate abc"), r"Invalid value for '--rate'")

case("worker-missing-file", "worker nope.toml --storage sqlite:///o.db", r"nope\.toml: experiment file not found")
case("worker-no-tuning", "worker ok.toml --storage sqlite:///o.db", r"ok\.toml: no tuning table in the file")
case("worker-no-storage-option", "worker tune.toml", r"Missing option '--storage'")
case("worker-storage-scheme", "worker tune.toml --storage foo://bar", r"--storage: 'foo://bar'|storage foo://bar")
case("worker-no-study-sqlite", "worker tune.toml --storage sqlite:///o.db", r"--storage: no study storage at "
     r"sqlite:///o\.db")
case("worker-no-study-journal", "worker tune.toml --storage journal:nope.log", r"--storage: no study storage at "
     r"journal:nope\.log")
case("worker-n-trials", "worker tune.toml --storage sqlite:///o.db --n-trials 0", r"Invalid value for '--n-trials'")
case("worker-n-on-a-file", "worker tunefile.toml --storage sqlite:///o.db --n 50",
     r"--n 50: sets the size of the simulated registry, but tunefile\.toml reads data\.source = 'file'")
case("worker-tracking-uri", "worker tune.toml --storage sqlite:///o.db --tracking-uri foo://bar", r"--tracking-uri")

case("columns-extra", "columns extra", r"Got unexpected extra argument")
case("unknown-command", "forecast", r"No such command 'forecast'")
case("no-such-option-top", "--bogus", r"No such option: --bogus")


# ------------------------------------------------------------------------------------------------ the run
@pytest.fixture(scope="module")
def inputs(tmp_path_factory, small_bundle) -> dict[str, object]:
    """Files every case folder holds, and the absolute paths the cases name ({bundle}, {pub}, {key}, {store})."""
    from cartrisk.bundle.signing import generate_keypair
    from cartrisk.tracking import Tracker

    root = tmp_path_factory.mktemp("corpus-inputs")
    frame = simulate(300, 1)[0]
    files: dict[str, str | bytes] = {"extract.csv": frame.to_csv(index=False),
                                     "badage.csv": frame.head(3).assign(age_years=["500"] + ["60"] * 2).to_csv(
                                         index=False),
                                     "nodays.csv": frame.head(3).drop(columns=["days_to_failure", "infusion_date"])
                                     .to_csv(index=False),
                                     "lean.csv": frame.drop(columns=["ldh_infusion"]).to_csv(index=False),
                                     "nooutcome.csv": frame.drop(columns=["os2_days", "os2_event", "last_contact_date"])
                                     .to_csv(index=False),
                                     "ok.toml": experiment(), "tune.toml": tuned(),
                                     "file.toml": experiment(data='source = "file"\npath = "extract.csv"'),
                                     "tunefile.toml": tuned(data='source = "file"\npath = "extract.csv"')}
    keys = root / "keys"
    _, public, _ = generate_keypair(keys / "lab")
    store = root / "store"
    tracker = Tracker(f"sqlite:///{store}/mlflow.db", "corpus")
    with tracker.run("a run") as run_id:
        tracker.log_metrics(run_id, {"x": 1.0})
    return {"files": files, "bundle": small_bundle[0], "bundle_parent": small_bundle[0].parent, "pub": public,
            "key": keys / "lab.key", "store": f"sqlite:///{store}/mlflow.db", "store_dir": store}


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.name != "mlflow.db.lock"}


def _clean(output: str) -> str:
    """The output on one line: rich's boxes and line breaks taken out."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", output))


def test_the_corpus_is_large_and_covers_every_command():
    commands = {shlex.split(c.command)[0] for c in CASES}
    assert len(CASES) >= 150, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)
    registered = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    assert registered <= commands, sorted(registered - commands)  # every command of the CLI has malformed inputs


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("item", CASES, ids=[c.id for c in CASES])
def test_a_malformed_input_is_refused_cleanly_and_writes_nothing(item, inputs, tmp_path, monkeypatch):
    for name, content in {**inputs["files"], **item.files}.items():
        target = tmp_path / name
        if name.endswith(".keep"):  # an empty folder
            (tmp_path / name.removesuffix(".keep")).mkdir()
            continue
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    before, store_before = _snapshot(tmp_path), _snapshot(inputs["store_dir"])
    args = shlex.split(item.command.format(**{k: v for k, v in inputs.items() if k != "files"}))
    result = CliRunner().invoke(app, args)
    output = _clean(result.output)
    assert result.exit_code == 2, f"exit code {result.exit_code}: {output}\n{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert re.search(item.expect, output), f"expected /{item.expect}/ in: {output}"
    assert _snapshot(tmp_path) == before, "the refused command wrote into its folder"
    assert _snapshot(inputs["store_dir"]) == store_before, "the refused command wrote into the store"
