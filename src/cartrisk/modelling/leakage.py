"""The leakage guard, run before any fit: a feature whose values or missingness give the outcome away is refused.

:func:`check_leakage` resolves an experiment's feature set to the data columns it reads, screens each with
:func:`cartrisk.data.leakage.screen_leakage`, and refuses every suspect that ``[features] allow_suspect`` does not
name, with the column and the figure. ``cartrisk evaluate``, ``cartrisk tune`` and the quickstart call it before
fitting anything; :func:`cartrisk.bundle.export_bundle` screens a fitted pipeline's inputs again, and the model
card names the columns let through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from cartrisk.data.leakage import SUSPECT_AUC, SUSPECT_C, screen_leakage
from cartrisk.exceptions import ConfigError
from cartrisk.modelling.features import feature_inputs, resolve_features

__all__ = ["check_leakage", "guard_experiment", "leakage_message", "outcome_columns"]

_AFTER_TIME_ZERO = ("pfs2_days", "pfs2_event")


def outcome_columns(event, time, frame: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """The outcome columns a candidate must not equal: OS-2 (from ``event`` and ``time``) and, when the validated
    frame has them, PFS-2."""
    out = {"os2_event": np.asarray(event, dtype=float), "os2_days": np.asarray(time, dtype=float)}
    if frame is not None:
        for name in _AFTER_TIME_ZERO:
            if name in frame and frame[name].notna().all():
                out[name] = frame[name].to_numpy(dtype=float)
    return out


def leakage_message(screen: pd.DataFrame, allow: Iterable[str] = (), *, where: str = "features.set") -> str | None:
    """The refusal for the suspects of a screen that ``allow`` does not name, or None when there is none."""
    refused = screen[screen["suspect"] & ~screen["column"].isin(list(allow))]
    if refused.empty:
        return None
    lines = [f"{where}: the leakage guard refuses {len(refused)} column(s) whose values or missingness give the "
             "outcome away (a column recorded after death or last contact is no predictor at the failure date):"]
    lines += [f"  - '{row.column}': {row.reason}" for row in refused.itertuples(index=False)]
    names = ", ".join(f'"{c}"' for c in refused["column"])
    lines.append(f"Fix: remove the column(s) from the features (thresholds: AUC >= {SUSPECT_AUC:g} for the event "
                 f"indicator, Harrell C >= {SUSPECT_C:g}, or a copy of an outcome); if a column is truly known at the "
                 f"failure date, let it through with [features] allow_suspect = [{names}] (recorded in the run and "
                 "the model card)")
    return "\n".join(lines)


def check_leakage(X: pd.DataFrame, y: np.ndarray, feature_set, *, declared: Mapping[str, Any] | None = None,
                  allow_suspect: Iterable[str] = (), allow_after_failure: bool = False,
                  frame: pd.DataFrame | None = None, random_state: int = 0) -> pd.DataFrame:
    """Screen the data columns a feature set reads, before any fit; refuse the suspects not allowed.

    Parameters
    ----------
    X : DataFrame
        The covariates.
    y : structured array
        The survival target (event field first, then time in days).
    feature_set : str or list of str
        As :func:`cartrisk.modelling.features.resolve_features` takes it.
    declared : mapping, optional
        The site's declared covariates (``[data.extra]``).
    allow_suspect : iterable of str
        Columns let through although suspect (``[features] allow_suspect``); each must be a column the features
        read.
    allow_after_failure : bool
        As in the experiment's ``[features]``.
    frame : DataFrame, optional
        The validated registry frame, whose PFS-2 columns a candidate must not equal either.
    random_state : int
        Seed of the screen's category encoding.

    Returns
    -------
    DataFrame
        The screen (:func:`cartrisk.data.leakage.screen_leakage`) of the columns read, with a column ``allowed``.

    Raises
    ------
    ConfigError
        A suspect not named in ``allow_suspect`` (the message names each column and its figure), or an
        ``allow_suspect`` entry that is no column the features read.
    """
    features = resolve_features(feature_set, X.columns, declared=declared, allow_after_failure=allow_after_failure)
    columns = [c for c in feature_inputs(features) if c in X.columns]
    allow = list(allow_suspect)
    stray = [c for c in allow if c not in columns]
    if stray:
        raise ConfigError(f"features.allow_suspect: {', '.join(map(repr, stray))} is no column the features read "
                          f"(they read: {', '.join(columns)}); remove it from allow_suspect")
    event_field, time_field = y.dtype.names
    event, time = y[event_field], y[time_field]
    screen = screen_leakage(X, event, time, columns, outcomes=outcome_columns(event, time, frame),
                            random_state=random_state)
    message = leakage_message(screen, allow)
    if message is not None:
        raise ConfigError(message)
    return screen.assign(allowed=screen["column"].isin(allow))


def guard_experiment(cfg, data) -> pd.DataFrame:
    """:func:`check_leakage` for an experiment (:class:`~cartrisk.config.ExperimentConfig`) and its loaded data
    (:class:`~cartrisk.data.datasets.Dataset`): the features, declared columns and ``allow_suspect`` it names."""
    return check_leakage(data.X, data.y, cfg.features.set, declared=data.declared or None,
                         allow_suspect=cfg.features.allow_suspect,
                         allow_after_failure=cfg.features.allow_after_failure, frame=data.frame, random_state=cfg.seed)
