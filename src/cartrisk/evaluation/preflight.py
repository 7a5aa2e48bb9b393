"""The experiment pre-flight: a parsed experiment checked against its data before any work starts.

``cartrisk evaluate``, ``cartrisk tune`` and the quickstart call :func:`check_experiment` after reading the
data and before they create a store, a study or a folder, so that a mistake in an experiment file ends in one
message that lists every problem (file, key, value, what is wrong, the fix) instead of a traceback after three
failed trials, or a model silently fitted on less than was asked. What parsing cannot know is checked here:

- feature names against the data's columns (:func:`cartrisk.modelling.features.resolve_features`: unknown names
  with the closest known ones, outcome columns, after-failure columns, columns the data lack);
- each model's estimator name, and each fixed parameter and each end of each search range (and every choice)
  against the estimator's ``_parameter_constraints``, the constraints ``fit`` would check;
- the reference rules: known names, and the columns they read;
- the horizons against the data's follow-up (an IPCW metric needs patients still followed at the horizon and
  an event before it);
- the folds against the cohort: each event-stratified stratum (events, censored) must hold at least one
  patient per fold, for the evaluation folds, the outer folds and every outer-training part's inner folds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from cartrisk.config import EvaluationConfig, ExperimentConfig, SearchParam
from cartrisk.data.datasets import Dataset
from cartrisk.estimators import ESTIMATORS, make_estimator
from cartrisk.evaluation.calibration import horizon_problems
from cartrisk.evaluation.crossval import EventStratifiedKFold, nested_folds
from cartrisk.exceptions import ConfigError
from cartrisk.modelling.features import resolve_features
from cartrisk.modelling.rules import RULES, make_rule
from cartrisk.units import months_to_days

__all__ = ["check_experiment", "experiment_problems"]

_DEFAULT_SPLITS = EvaluationConfig().n_splits


def _where(cfg: ExperimentConfig) -> str:
    return getattr(cfg, "source_file", "") or f"experiment '{cfg.name}'"


def check_experiment(cfg: ExperimentConfig, data: Dataset) -> None:
    """Check an experiment against the data it will run on; raise one error listing every problem.

    Parameters
    ----------
    cfg : ExperimentConfig
        As parsed (:func:`cartrisk.config.load_experiment`), with any command-line overrides applied.
    data : Dataset
        The cohort it runs on (:func:`cartrisk.data.datasets.load_dataset`).

    Raises
    ------
    ConfigError
        Naming the file, the key, the value, the problem and the fix, one line per problem.
    """
    problems = experiment_problems(cfg, data)
    if problems:
        head = problems[0] if len(problems) == 1 else f"{_where(cfg)}: {len(problems)} problems"
        lines = [] if len(problems) == 1 else [f"  - {p}" for p in problems]
        raise ConfigError("\n".join([head, *lines]))


def experiment_problems(cfg: ExperimentConfig, data: Dataset) -> list[str]:
    """Every problem :func:`check_experiment` reports, as messages (empty when the experiment can run)."""
    src = _where(cfg)
    problems: list[str] = []
    try:
        resolve_features(cfg.features.set, data.X.columns, allow_after_failure=cfg.features.allow_after_failure,
                         declared=cfg.data.extra_specs or None, registry=data.registry, where=f"{src}: features.set")
    except ConfigError as err:
        problems.append(str(err))
    for i, model in enumerate(cfg.models):
        problems += _model_problems(f"{src}: models[{i}]", model.estimator, model.params, model.search)
    if not cfg.models and (cfg.tuning is not None or not data.registry):
        problems.append(f"{src}: no [[models]] entry; add at least one (estimator = \"coxph\", ...)")
    problems += _rule_problems(src, cfg, data)
    problems += _horizon_problems(src, cfg, data)
    problems += _fold_problems(src, cfg, data)
    return problems


# ----------------------------------------------------------------------------------------------- models
def _model_problems(where: str, estimator: str, params: dict[str, Any], search: dict[str, SearchParam]) -> list[str]:
    if estimator not in ESTIMATORS:
        return [f"{where}.estimator: unknown estimator {estimator!r}; known estimators: {', '.join(ESTIMATORS)}"]
    known = sorted(make_estimator(estimator).get_params())
    problems = []
    for kind, names in (("params", params), ("search", search)):
        unknown = sorted(set(names) - set(known))
        if unknown:
            problems.append(f"{where}.{kind}: {estimator} has no parameter(s) {', '.join(map(repr, unknown))}; its "
                            f"parameters: {', '.join(known)}")
    for name, value in params.items():
        message = _invalid(estimator, name, value) if name in known else None
        if message:
            problems.append(f"{where}.params.{name} = {value!r}: {message}")
    for name, spec in search.items():
        if name not in known:
            continue
        for label, value in _probes(spec):
            message = _invalid(estimator, name, value)
            if message:
                hint = ""
                if spec.kind == "float" and isinstance(value, float) and _invalid(estimator, name, int(value)) is None:
                    hint = '; this parameter takes integers: add type = "int"'
                problems.append(f"{where}.search.{name}: {label} {value!r} is not a valid value: {message}{hint}")
                break
    return problems


def _probes(spec: SearchParam) -> Iterator[tuple[str, Any]]:
    """The values of a search range that stand for it: each choice, or both ends (and a float range's middle)."""
    if spec.kind == "categorical":
        for value in spec.choices or ():
            yield "choice", value
        return
    low, high = spec.low, spec.high
    if spec.kind == "int":
        yield "low", int(low)
        yield "high", int(high)
        return
    yield "low", float(low)
    yield "high", float(high)
    middle = math.sqrt(low * high) if spec.log else (low + high) / 2
    yield "a value inside the range,", float(middle) if float(middle) != int(middle) else float(middle) + 0.5


def _invalid(estimator: str, name: str, value: Any) -> str | None:
    """The estimator's own message when ``name = value`` breaks its ``_parameter_constraints`` (the check ``fit``
    runs first), else None."""
    try:
        make_estimator(estimator, **{name: value})._validate_params()
    except (TypeError, ValueError) as err:
        return str(err)
    return None


# ----------------------------------------------------------------------------------------------- rules
def _rule_problems(src: str, cfg: ExperimentConfig, data: Dataset) -> list[str]:
    problems = []
    for rule in cfg.evaluation.rules:
        if rule not in RULES:
            import difflib

            close = difflib.get_close_matches(rule, list(RULES), n=1)
            problems.append(f"{src}: evaluation.rules: unknown rule {rule!r}"
                            + (f" (closest: {close[0]})" if close else "") + f"; known rules: {', '.join(RULES)}")
        elif data.registry:
            lacking = [c for c in make_rule(rule).needs if c not in data.X]
            if lacking:
                problems.append(f"{src}: evaluation.rules: rule {rule!r} reads column(s) {', '.join(lacking)}, which "
                                f"the data ({data.name}) lack; add them or leave the rule out of evaluation.rules")
    return problems


# ----------------------------------------------------------------------------------------------- horizons
def _horizon_problems(src: str, cfg: ExperimentConfig, data: Dataset) -> list[str]:
    horizons = cfg.evaluation.horizons_months
    if not horizons:
        return [f"{src}: evaluation.horizons_months is empty; give at least one horizon in months, e.g. [6.0]"]
    bad = [h for h in horizons if not (math.isfinite(h) and h > 0)]
    if bad:
        return [f"{src}: evaluation.horizons_months: {', '.join(f'{h:g}' for h in bad)} months: a horizon must be a "
                "positive number of months"]
    found = horizon_problems(months_to_days(np.asarray(horizons, dtype=float)), data.y, require_events=True)
    return [f"{src}: evaluation.horizons_months = {h:g}: {p} (data: {data.name})"
            for h, p in zip(horizons, found, strict=True) if p is not None]


# ----------------------------------------------------------------------------------------------- folds
def _strata_problem(n_splits: int, y: np.ndarray, what: str) -> str | None:
    try:
        EventStratifiedKFold(n_splits=n_splits).strata(y)
    except ValueError as err:
        return f"{what}: {err}"
    return None


def _fold_problems(src: str, cfg: ExperimentConfig, data: Dataset) -> list[str]:
    y = data.y
    size = f"{len(y)} patients, {int(y['os2_event'].sum())} deaths"
    problems = []
    ev = cfg.evaluation
    if cfg.tuning is None or ev.n_splits != _DEFAULT_SPLITS:  # tuning uses its own folds unless n_splits is set
        found = _strata_problem(ev.n_splits, y, f"{src}: evaluation.n_splits = {ev.n_splits} on {size}")
        if found:
            problems.append(found + "; lower evaluation.n_splits or use more data")
    t = cfg.tuning
    if t is None:
        return problems
    outer = _strata_problem(t.outer_folds, y, f"{src}: tuning.outer_folds = {t.outer_folds} on {size}")
    if outer:
        return [*problems, outer + "; lower tuning.outer_folds or use more data"]
    splits = [(np.arange(len(y)), None)]
    splits += list(EventStratifiedKFold(n_splits=t.outer_folds, shuffle=True, random_state=cfg.seed)
                   .split(np.zeros((len(y), 1)), y))
    for k, (train, _) in enumerate(splits):
        part = "all data" if k == 0 else f"the training part of outer fold {k}"
        inner = _strata_problem(t.inner_folds, y[train], f"{src}: tuning.inner_folds = {t.inner_folds} on {part} "
                                f"({len(train)} patients)")
        if inner:
            return [*problems, inner + "; lower tuning.inner_folds (or tuning.outer_folds) or use more data"]
    return problems + _inner_horizon_problems(src, cfg, y)


def _inner_horizon_problems(src: str, cfg: ExperimentConfig, y: np.ndarray) -> list[str]:
    """The tuning objective reads Uno's C (and the integrated Brier score) at the largest horizon in every inner
    fold: a fold whose follow-up stops before it would fail every trial, so say so before any study starts."""
    t = cfg.tuning
    horizon_months = max(cfg.evaluation.horizons_months)
    horizon = months_to_days(horizon_months)
    outer, inner = nested_folds(y, t.outer_folds, t.inner_folds, cfg.seed)
    parts = [train for train, _ in outer] + [np.arange(len(y))]
    for k, (part, splits) in enumerate(zip(parts, inner, strict=True)):
        for j, (train, test) in enumerate(splits):
            found = horizon_problems(np.array([horizon]), y[part][test], y[part][train])[0]
            if found is not None:
                study = "the final study (all data)" if k == len(outer) else f"outer fold {k + 1}"
                return [f"{src}: evaluation.horizons_months: the tuning objective reads {horizon_months:g} months, "
                        f"but inner fold {j + 1} of {study}: {found}; use fewer tuning.inner_folds or "
                        "tuning.outer_folds, a shorter largest horizon, or more data"]
    return []
