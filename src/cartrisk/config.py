"""Declarative experiment files: TOML read with :mod:`tomllib` into frozen, typed config objects.

An experiment is a small file of settings over sensible defaults. Unknown keys
are rejected with their name and where they were found, so a typo never falls
silently back to a default.

Example (``experiments/evaluate_all.toml``)::

    name = "evaluate-all"
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
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from cartrisk.exceptions import ConfigError
from cartrisk.tracking import DEFAULT_TRACKING_URI
from cartrisk.units import DEFAULT_HORIZONS_MONTHS

__all__ = ["DataConfig", "EvaluationConfig", "ExperimentConfig", "FeaturesConfig", "ModelConfig", "RolesConfig",
           "TrackingConfig", "load_experiment", "parse_experiment"]


@dataclass(frozen=True)
class RolesConfig:
    """Column roles for a data set outside the registry format (generic path)."""

    time: str
    event: str
    covariates: tuple[str, ...] = ()
    time_unit_days: float = 1.0


@dataclass(frozen=True)
class DataConfig:
    """Where the cohort comes from.

    ``source`` is ``"simulated"`` (the embedded registry: ``n``, ``seed``), ``"file"`` (a CSV or
    Parquet extract at ``path``, with ``columns`` renaming file columns to data-dictionary names),
    or ``"sksurv"`` (a data set bundled with scikit-survival: ``dataset`` = ``"gbsg2"`` or
    ``"whas500"``). With ``roles`` the data are read on the generic path: any columns, no registry
    validation, no reference rules.
    """

    source: str = "simulated"
    n: int = 1500
    seed: int | None = None
    path: str | None = None
    dataset: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    roles: RolesConfig | None = None


@dataclass(frozen=True)
class FeaturesConfig:
    set: str | tuple[str, ...] = "infusion+relapse"
    allow_after_failure: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """One model: an estimator name from the registry and its parameters."""

    estimator: str
    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.estimator


@dataclass(frozen=True)
class EvaluationConfig:
    n_splits: int = 5
    n_repeats: int = 1
    horizons_months: tuple[float, ...] = DEFAULT_HORIZONS_MONTHS
    rules: tuple[str, ...] = ("d0_30", "d0_30_90", "pcpi")


@dataclass(frozen=True)
class TrackingConfig:
    uri: str = DEFAULT_TRACKING_URI
    experiment: str | None = None
    enabled: bool = True


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
    source_text: str = field(default="", repr=False, compare=False)

    @property
    def data_seed(self) -> int:
        return self.seed if self.data.seed is None else self.data.seed


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
        return dict(value)
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
    known = {f.name for f in fields(cls) if f.name != "source_text"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}; "
                          f"known keys: {', '.join(sorted(known))}")
    missing = [f.name for f in fields(cls)
               if f.name not in raw and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}" if where else k) for k, v in raw.items()}
    return cls(**kwargs)


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
    object.__setattr__(cfg, "source_text", text)
    return cfg


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read an experiment file (TOML)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found")
    return parse_experiment(path.read_text(encoding="utf-8"), source=str(path))
