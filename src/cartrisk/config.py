"""Declarative experiment files: TOML read with :mod:`tomllib` into frozen, typed config objects.

An experiment is a small file of settings over sensible defaults. Unknown keys
are rejected with their name and where they were found, so a typo never falls
silently back to a default.

Example (in the style of ``experiments/evaluate_families.toml``)::

    name = "evaluate-families"
    seed = 0

    [data]
    source = "simulated"
    n = 1500

    [features]
    set = "infusion+relapse"

    [[models]]
    estimator = "coxph"

    [[models]]
    estimator = "rsf"
    params = { n_estimators = 200, min_samples_leaf = 15 }

    [evaluation]
    n_splits = 5
    rules = ["d0_30", "pcpi"]

A tuning experiment adds a ``[tuning]`` table and gives each model a search space as data
(see :class:`SearchParam` and :class:`TuningConfig`; ``experiments/tune_*.toml``)::

    [[models]]
    estimator = "xgb_cox"
    [models.search]
    n_estimators = { low = 50, high = 400, log = true, type = "int" }
    max_depth = { choices = [2, 3, 4] }

    [tuning]
    n_trials = 50
    outer_folds = 3
    inner_folds = 3
    objective = "uno_c"
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from cartrisk.exceptions import ConfigError
from cartrisk.units import DEFAULT_HORIZONS_MONTHS

__all__ = [
    "DEFAULT_TRACKING_URI",
    "OBJECTIVE_METRICS",
    "DataConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "ExtraColumn",
    "FeaturesConfig",
    "ModelConfig",
    "RolesConfig",
    "SearchParam",
    "TrackingConfig",
    "TuningConfig",
    "load_experiment",
    "parse_experiment",
]

#: Where runs are tracked unless an experiment or option says otherwise (MLflow 3 refuses a bare ``./mlruns``).
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"

#: Metrics a tuning objective may use, and whether higher values are better.
OBJECTIVE_METRICS: dict[str, bool] = {"uno_c": True, "harrell_c": True, "ibs": False}
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "none")


@dataclass(frozen=True)
class RolesConfig:
    """Column roles for a data set outside the registry format (generic path)."""

    time: str
    event: str
    covariates: tuple[str, ...] = ()
    time_unit_days: float = 1.0
    id: str | None = None


@dataclass(frozen=True)
class ExtraColumn:
    """A covariate of the site's own, declared in ``[data.extra.NAME]`` (checked by
    :func:`cartrisk.data.dictionary.declared_column`).

    ``kind`` is ``integer``, ``float``, ``binary`` or ``category``; ``role`` is ``infusion`` (at or before
    infusion), ``post_infusion`` (after infusion, before failure) or ``relapse`` (at failure); ``unit``,
    ``min`` / ``max`` (numbers) or ``levels`` (a category's values) and ``meaning`` describe it. A declared
    column is validated like a dictionary column and may be named in ``features.set``.
    """

    kind: str
    role: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    levels: tuple[str, ...] = ()
    meaning: str = ""

    def as_spec(self) -> dict[str, Any]:
        """The declaration as plain data."""
        return {"kind": self.kind, "role": self.role, "unit": self.unit, "min": self.min, "max": self.max,
                "levels": list(self.levels), "meaning": self.meaning}


@dataclass(frozen=True)
class DataConfig:
    """Where the cohort comes from.

    ``source`` is ``"simulated"`` (the embedded registry: ``n``, ``seed``), ``"file"`` (a CSV or
    Parquet extract at ``path``, with ``columns`` renaming file columns to data-dictionary names),
    or ``"sksurv"`` (a data set bundled with scikit-survival: ``dataset`` = ``"gbsg2"`` or
    ``"whas500"``). With ``roles`` the data are read on the generic path: any columns, no registry
    validation, no reference rules. ``extra`` declares the site's own covariates (:class:`ExtraColumn`).
    """

    source: str = "simulated"
    n: int = 1500
    seed: int | None = None
    path: str | None = None
    dataset: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    roles: RolesConfig | None = None
    extra: dict[str, ExtraColumn] = field(default_factory=dict)

    @property
    def extra_specs(self) -> dict[str, dict[str, Any]]:
        """``extra`` as plain data: name -> declaration."""
        return {name: col.as_spec() for name, col in self.extra.items()}


@dataclass(frozen=True)
class FeaturesConfig:
    """``[features]``: the feature set (a named set or a list of names, which may include set names), whether
    after-failure columns are allowed, and the columns the leakage guard may let through (``allow_suspect``:
    recorded in the run and the model card)."""

    set: str | tuple[str, ...] = "infusion+relapse"
    allow_after_failure: bool = False
    allow_suspect: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchParam:
    """The search range of one hyper-parameter: a numeric range or a list of choices.

    ``{ low = 50, high = 400, log = true, type = "int" }`` is an integer range on a log scale;
    ``{ low = 0.5, high = 1.0 }`` a float range (``type`` is inferred: int when both ends are integers);
    ``{ choices = [2, 3, 4] }`` a categorical choice; ``step`` makes a numeric range discrete.
    """

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    type: str | None = None
    choices: tuple[str | int | float | bool, ...] | None = None

    @property
    def kind(self) -> str:
        """``"categorical"``, ``"int"`` or ``"float"``."""
        if self.choices is not None:
            return "categorical"
        if self.type is not None:
            return self.type
        return "int" if isinstance(self.low, int) and isinstance(self.high, int) else "float"

    def _validate(self, where: str) -> None:
        if self.choices is not None:
            if any(v is not None for v in (self.low, self.high, self.step, self.type)) or self.log:
                raise ConfigError(f"{where}: give either choices or a range (low, high), not both")
            if not self.choices:
                raise ConfigError(f"{where}: choices must not be empty")
            return
        if self.low is None or self.high is None:
            raise ConfigError(f"{where}: a search range needs low and high (or choices = [...])")
        if self.type not in (None, "int", "float"):
            raise ConfigError(f"{where}.type must be 'int' or 'float', got {self.type!r}")
        if self.kind == "int" and not all(float(v).is_integer() for v in (self.low, self.high)):
            raise ConfigError(f"{where}: an int range needs integer low and high, got {self.low} and {self.high}")
        if not self.low < self.high:
            raise ConfigError(f"{where}: low must be below high, got low = {self.low}, high = {self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: a log-scale range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ConfigError(f"{where}: step and log = true cannot be combined")
        if self.step is not None and self.step <= 0:
            raise ConfigError(f"{where}: step must be positive, got {self.step}")


@dataclass(frozen=True)
class ModelConfig:
    """One model: an estimator name from the registry, its fixed parameters and (when tuned) its search space."""

    estimator: str
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    search: dict[str, SearchParam] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.estimator


@dataclass(frozen=True)
class EvaluationConfig:
    """How models are evaluated (``[evaluation]``).

    ``cluster`` names a column (``"centre_id"``, ``"infusion_year"``) for internal-external validation: each
    centre held out in turn, or development on earlier periods and validation on the next
    (``cluster_design = "auto"`` picks periods for a numeric column); clusters with fewer than
    ``cluster_min_events`` deaths are grouped; metrics at ``cluster_horizon_months``. ``subgroups`` adds C, O/E and
    slope by subgroup on the out-of-fold predictions.
    """

    n_splits: int = 5
    n_repeats: int = 1
    horizons_months: tuple[float, ...] = DEFAULT_HORIZONS_MONTHS
    rules: tuple[str, ...] = ("d0_30", "d0_30_90", "pcpi")
    cluster: str | None = None
    cluster_design: str = "auto"
    cluster_min_events: int = 10
    cluster_horizon_months: float = 6.0
    subgroups: bool = True

    def _validate(self, where: str) -> None:
        if self.cluster_design not in ("auto", "leave-one-out", "temporal"):
            raise ConfigError(f"{where}.cluster_design must be 'auto', 'leave-one-out' or 'temporal', got "
                              f"{self.cluster_design!r}")
        if self.cluster_min_events < 1 or self.cluster_horizon_months <= 0:
            raise ConfigError(f"{where}: cluster_min_events must be at least 1 and cluster_horizon_months positive, "
                              f"got {self.cluster_min_events} and {self.cluster_horizon_months}")


@dataclass(frozen=True)
class TrackingConfig:
    uri: str = DEFAULT_TRACKING_URI
    experiment: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class TuningConfig:
    """How an experiment is tuned (``[tuning]``): nested cross-validation with Optuna.

    Attributes
    ----------
    n_trials : int, default 50
        Finished trials (complete or pruned) per study; a nested run has ``outer_folds + 1`` studies.
    timeout_seconds : float or None
        Time budget of the whole run, shared equally between its studies (a study stops asking for
        new trials when its share is spent; time a study leaves unused goes to the next ones).
    outer_folds, inner_folds : int, default 3
        Outer folds give the reported estimate; each outer study tunes on ``inner_folds`` of its training part.
    objective : str or table, default "uno_c"
        ``"uno_c"``, ``"harrell_c"`` or ``"ibs"`` (integrated Brier, minimised), or a weighted mix such as
        ``{ uno_c = 1.0, ibs = 1.0 }``, maximised as the sum of weight * metric, with ``ibs`` counted negative.
    sampler : {"tpe", "random", "cmaes"}, default "tpe"
        Seeded from the experiment's seed. CMA-ES needs the optional ``cmaes`` package.
    startup_trials : int, default 10
        Random trials before TPE models the search space, and trials before the pruner acts.
    pruner : {"median", "none"}, default "median"
        Median pruning on inner-fold values: a trial whose fold value is below the median of earlier
        trials' values on the same fold stops there.
    prune_warmup_folds : int, default 1
        Folds always run before a trial may be pruned.
    storage : str or None
        Optuna storage: an RDB URL, or ``journal:PATH`` for a journal file. Default: ``optuna.db`` beside a
        SQLite tracking store, else ``sqlite:///mlruns/optuna.db``.
    study_name : str or None
        Base name of the studies (default: the experiment's name).
    workers : int or None, default None
        Local worker processes on each study; None: as many as the cores this process may use (1 runs the
        trials in the tuning process itself).
    """

    n_trials: int = 50
    timeout_seconds: float | None = None
    outer_folds: int = 3
    inner_folds: int = 3
    objective: str | dict[str, float] = "uno_c"
    sampler: str = "tpe"
    startup_trials: int = 10
    pruner: str = "median"
    prune_warmup_folds: int = 1
    storage: str | None = None
    study_name: str | None = None
    workers: int | None = None

    @property
    def objective_weights(self) -> dict[str, float]:
        """The objective as ``{metric: weight}`` (a single metric has weight 1)."""
        return {self.objective: 1.0} if isinstance(self.objective, str) else dict(self.objective)

    def _validate(self, where: str) -> None:
        weights = self.objective_weights
        unknown = sorted(set(weights) - set(OBJECTIVE_METRICS))
        if unknown or not weights:
            raise ConfigError(f"{where}.objective: unknown metric(s) {', '.join(map(repr, unknown)) or '(none)'}; "
                              f"known: {', '.join(OBJECTIVE_METRICS)}")
        if any(w <= 0 for w in weights.values()):
            raise ConfigError(f"{where}.objective: weights must be positive (ibs counts negative by itself)")
        for key in ("n_trials", "workers", "startup_trials"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key} must be at least 1, got {getattr(self, key)}")
        for key in ("outer_folds", "inner_folds"):
            if getattr(self, key) < 2:
                raise ConfigError(f"{where}.{key} must be at least 2, got {getattr(self, key)}")
        if self.prune_warmup_folds < 0:
            raise ConfigError(f"{where}.prune_warmup_folds must be at least 0, got {self.prune_warmup_folds}")
        if self.timeout_seconds is not None and self.timeout_seconds <= 0:
            raise ConfigError(f"{where}.timeout_seconds must be positive, got {self.timeout_seconds}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"{where}.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"{where}.pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    seed: int = 0
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    models: tuple[ModelConfig, ...] = ()
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    tuning: TuningConfig | None = None
    source_text: str = field(default="", repr=False, compare=False)
    #: The file (or ``<string>``) the experiment was read from, for messages.
    source_file: str = field(default="", repr=False, compare=False)

    @property
    def data_seed(self) -> int:
        return self.seed if self.data.seed is None else self.data.seed


#: Fields of the config objects that are not keys of the file.
_NOT_KEYS = ("source_text", "source_file")
#: Seeds go to numpy's SeedSequence and to XGBoost (an unsigned 32-bit integer).
_MAX_SEED = 2**32 - 1


def _check_seed(value: int | None, where: str) -> None:
    if value is not None and not 0 <= value <= _MAX_SEED:
        raise ConfigError(f"{where} must be an integer from 0 to {_MAX_SEED}, got {value}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(tp)):
            return None
        errors = []
        for option in options:
            try:
                return _convert(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[-1] if len(options) == 1 else
                          f"{where}: {value!r} is none of {', '.join(_type_name(o) for o in options)}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(tp)[0]
        return tuple(_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        inner = typing.get_args(tp)[1]
        return {k: _convert(v, inner, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
        return _build(tp, value, where)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is Any or (isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.name not in _NOT_KEYS}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}; "
                          f"known keys: {', '.join(sorted(known))}")
    missing = [f.name for f in fields(cls)
               if f.name not in raw and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}" if where else k) for k, v in raw.items()}
    built = cls(**kwargs)
    check = getattr(built, "_validate", None)
    if check is not None:
        check(where)
    return built


def parse_experiment(text: str, *, source: str = "<string>") -> ExperimentConfig:
    """Parse experiment TOML text into an :class:`ExperimentConfig`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML ({err})") from err
    raw.setdefault("name", Path(source).stem)
    cfg = _build(ExperimentConfig, raw, source)
    if cfg.data.source not in ("simulated", "file", "sksurv"):
        raise ConfigError(f"{source}: data.source must be 'simulated', 'file' or 'sksurv', got {cfg.data.source!r}")
    if cfg.data.source == "file" and not cfg.data.path:
        raise ConfigError(f"{source}: data.source = 'file' needs data.path")
    if cfg.data.source == "sksurv" and cfg.data.roles is None:
        raise ConfigError(f"{source}: data.source = 'sksurv' needs a [data.roles] table (time, event, covariates)")
    if cfg.evaluation.n_splits < 2:
        raise ConfigError(f"{source}: evaluation.n_splits must be at least 2, got {cfg.evaluation.n_splits}")
    _check_values(cfg, source)
    _check_tuning(cfg, source)
    object.__setattr__(cfg, "source_text", text)
    object.__setattr__(cfg, "source_file", source)
    return cfg


def _check_values(cfg: ExperimentConfig, source: str) -> None:
    """Types are checked while building; here the values that no type can express (ranges, non-empty names)."""
    if not cfg.name.strip():
        raise ConfigError(f"{source}: name must not be empty; give the experiment a name (name = \"my-study\")")
    _check_seed(cfg.seed, f"{source}: seed")
    _check_seed(cfg.data.seed, f"{source}: data.seed")
    if cfg.data.source == "simulated" and cfg.data.n < 1:
        raise ConfigError(f"{source}: data.n must be a positive number of patients, got {cfg.data.n}")
    if cfg.data.roles is not None and not (cfg.data.roles.time_unit_days > 0):
        raise ConfigError(f"{source}: data.roles.time_unit_days must be positive (days per unit of the time "
                          f"column), got {cfg.data.roles.time_unit_days}")
    ev = cfg.evaluation
    if ev.n_repeats < 1:
        raise ConfigError(f"{source}: evaluation.n_repeats must be at least 1, got {ev.n_repeats}")
    if not ev.horizons_months:
        raise ConfigError(f"{source}: evaluation.horizons_months is empty; give at least one horizon in months")
    bad = [h for h in ev.horizons_months if not (math.isfinite(h) and h > 0)]
    if bad:
        raise ConfigError(f"{source}: evaluation.horizons_months: {', '.join(f'{h:g}' for h in bad)}: a horizon must "
                          "be a positive number of months, e.g. [3.0, 6.0, 12.0]")
    for i, model in enumerate(cfg.models):
        if not model.estimator.strip():
            raise ConfigError(f"{source}.models[{i}].estimator must not be empty")


def _check_tuning(cfg: ExperimentConfig, source: str) -> None:
    searched = [i for i, m in enumerate(cfg.models) if m.search]
    if cfg.tuning is None:
        if searched:
            raise ConfigError(f"{source}.models[{searched[0]}].search: a search space needs a [tuning] table")
        return
    if not cfg.models:
        raise ConfigError(f"{source}: [tuning] needs at least one [[models]] entry")
    labels = [m.label for m in cfg.models]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"{source}: models tuned together need distinct names, got {', '.join(labels)}")
    for i, model in enumerate(cfg.models):
        both = sorted(set(model.params) & set(model.search))
        if both:
            raise ConfigError(f"{source}.models[{i}]: {', '.join(map(repr, both))} both fixed (params) and searched")


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read an experiment file (TOML)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the experiment file (TOML), e.g. experiments/tune_coxnet.toml")
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save the experiment file as "
                          "UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror}); check its permissions") from None
    return parse_experiment(text, source=str(path))
