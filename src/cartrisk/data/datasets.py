"""Load the cohort an experiment names: the simulated registry, a registry extract, or a generic data set.

The registry path validates against the data dictionary; the generic path
(``[data.roles]`` in an experiment file) takes any columns, so the same
features -> estimator -> evaluation code runs on data no one here wrote
(scikit-survival's bundled GBSG2 and WHAS500, or a user's non-registry file).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sksurv.util import Surv

from cartrisk.config import DataConfig
from cartrisk.data.dictionary import declared_columns
from cartrisk.data.schema import frame_hash, read_extract, to_xy, validate
from cartrisk.exceptions import ConfigError, SchemaError

__all__ = ["Dataset", "load_dataset", "read_renamed"]

_SKSURV = {"gbsg2": "load_gbsg2", "whas500": "load_whas500", "veterans": "load_veterans_lung_cancer",
           "aids": "load_aids", "flchain": "load_flchain"}


@dataclass
class Dataset:
    """A cohort ready for modelling.

    Attributes
    ----------
    X : DataFrame
        Covariates (registry: every covariate column; generic: the named covariates).
    y : ndarray
        Structured survival target (``os2_event``, ``os2_days``; generic data keep the same field names).
    name : str
        Where it came from, for tables and run names.
    data_hash : str
        SHA-256 of the modelled content (covariates and outcome), logged instead of the data.
    registry : bool
        True when the frame follows the data dictionary (reference rules apply).
    frame : DataFrame or None
        The validated registry frame (with ``patient_id``), when ``registry``.
    truth : DataFrame or None
        The simulated registry's true risk, when simulated.
    extra : DataFrame or None
        Generic data: the file's columns that are not covariates (outcome, cluster, identifiers), in memory only.
    roles : RolesConfig or None
        Generic data: the ``[data.roles]`` they were read with.
    declared : dict
        The site's declared covariates (``[data.extra]``: name -> declaration), validated with the extract.
    """

    X: pd.DataFrame
    y: np.ndarray
    name: str
    data_hash: str
    registry: bool
    frame: pd.DataFrame | None = None
    truth: pd.DataFrame | None = None
    extra: pd.DataFrame | None = None
    roles: object | None = None

    def column(self, name: str) -> pd.Series | None:
        """A column of the cohort by name (covariates, the registry frame, or a generic file's other columns)."""
        for source in (self.X, self.frame, self.extra):
            if source is not None and name in source:
                return source[name].reset_index(drop=True)
        return None
    declared: dict = field(default_factory=dict)


def _registry(frame: pd.DataFrame, name: str, source: str, truth=None, extra=None) -> Dataset:
    declared = declared_columns(extra)
    typed = validate(frame, source=source, extra=declared).raise_if_invalid()
    X, y = to_xy(typed)
    return Dataset(X=X, y=y, name=name, data_hash=frame_hash(typed.drop(columns=["patient_id"])), registry=True,
                   frame=typed, truth=truth, declared=dict(extra or {}))


def _generic(frame: pd.DataFrame, cfg: DataConfig, name: str) -> Dataset:
    roles = cfg.roles
    if roles is None:
        raise ConfigError(f"{name}: the generic path needs a [data.roles] table (time, event, covariates)")
    covariates = list(roles.covariates) or [c for c in frame.columns if c not in (roles.time, roles.event)]
    missing = [c for c in (roles.time, roles.event, *covariates) if c not in frame]
    if missing:
        raise ConfigError(f"{name}: column(s) named in [data.roles] not in the data: {', '.join(missing)}; "
                          f"columns are: {', '.join(map(str, frame.columns))}")
    time = pd.to_numeric(frame[roles.time], errors="coerce").to_numpy(float) * roles.time_unit_days
    event_raw = frame[roles.event]
    event = event_raw.to_numpy().astype(bool) if event_raw.dtype == bool else pd.to_numeric(event_raw).to_numpy()
    if np.isnan(time).any() or (time <= 0).any():
        raise SchemaError(f"{name}: column '{roles.time}' must hold positive numbers for every row")
    if not np.isin(event, [0, 1]).all():
        raise SchemaError(f"{name}: column '{roles.event}' must be 0/1 or boolean")
    y = Surv.from_arrays(event=event.astype(bool), time=time, name_event="os2_event", name_time="os2_days")
    X = frame[covariates].copy()
    for c in X.columns:  # pandas categoricals become plain labels so one-hot encoding sees strings
        if isinstance(X[c].dtype, pd.CategoricalDtype):
            X[c] = X[c].astype(object)
        elif not pd.api.types.is_numeric_dtype(X[c]):  # a CSV is read as text: numbers become numbers again
            numbers = pd.to_numeric(X[c], errors="coerce")
            if numbers[X[c].notna()].notna().all() and X[c].notna().any():
                X[c] = numbers.astype(float)
    content = X.assign(_time=time, _event=event)
    extra = frame.drop(columns=[c for c in frame.columns if c in X.columns])
    return Dataset(X=X, y=y, name=name, data_hash=frame_hash(content), registry=False, extra=extra, roles=roles)


def read_renamed(path, renames: Mapping[str, str] | None = None) -> pd.DataFrame:
    """An extract (CSV or Parquet) with its columns renamed by an experiment's ``[data.columns]``: each rename must
    name a column of the file and may not collide with another of its columns."""
    import difflib

    raw = read_extract(path)
    renames = dict(renames or {})
    columns = [str(c) for c in raw.columns]
    for old, new in renames.items():
        if old not in columns:
            close = difflib.get_close_matches(old, columns, n=3)
            hint = f" (closest: {', '.join(close)})" if close else ""
            raise ConfigError(f"data.columns: {path} has no column {old!r} to rename to {new!r}{hint}; its columns "
                              f"are: {', '.join(columns)}")
        if new in columns and new != old and new not in renames:
            raise ConfigError(f"data.columns: renaming {old!r} to {new!r} in {path}, which already has a column "
                              f"{new!r}; rename only one of them")
    return raw.rename(columns=renames)


def load_dataset(cfg: DataConfig, *, seed: int = 0) -> Dataset:
    """Load the data an experiment's ``[data]`` table describes (``seed`` when it gives none)."""
    seed = seed if cfg.seed is None else cfg.seed
    if cfg.extra and (cfg.roles is not None or cfg.source != "file"):
        raise ConfigError("[data.extra] declares covariates of a registry extract (data.source = 'file' without "
                          "[data.roles]); on the generic path every column of the data is usable: remove [data.extra]")
    if cfg.source == "simulated":
        from cartrisk.data.simulate import simulate

        frame, truth = simulate(cfg.n, seed)
        return _registry(frame, f"simulated(n={cfg.n}, seed={seed})", "simulated registry", truth)
    if cfg.source == "file":
        if not cfg.path:
            raise ConfigError("data.source = 'file' needs data.path (the extract's path)")
        raw = read_renamed(cfg.path, cfg.columns)
        if cfg.roles is not None:
            return _generic(raw, cfg, cfg.path)
        return _registry(raw, cfg.path, cfg.path, extra=cfg.extra_specs)
    if cfg.source == "sksurv":
        if cfg.dataset not in _SKSURV:
            raise ConfigError(f"data.dataset must be one of {', '.join(_SKSURV)}, got {cfg.dataset!r}")
        import sksurv.datasets

        X, y = getattr(sksurv.datasets, _SKSURV[cfg.dataset])()
        event_field, time_field = y.dtype.names
        frame = X.assign(**{time_field: y[time_field], event_field: y[event_field]})
        return _generic(frame, cfg, cfg.dataset)
    raise ConfigError(f"unknown data.source {cfg.source!r}")
