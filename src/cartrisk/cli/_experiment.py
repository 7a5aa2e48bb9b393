"""What ``cartrisk evaluate`` and ``cartrisk tune`` do before any work: read the experiment file, apply the options,
and check the whole experiment against its data (:func:`cartrisk.evaluation.preflight.check_experiment`) and the
tracking URI, so that a mistake ends in exit code 2 before a store, a study or a folder exists."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cartrisk.exceptions import ConfigError

__all__ = ["prepare_experiment"]


def prepare_experiment(path: Path, *, n: int | None, tracking_uri: str | None, no_tracking: bool,
                       tuning: bool = False):
    """``(config, tracking URI or None, dataset)``: the experiment with ``--n`` applied, checked against its data
    (loaded once here, and handed on to the work). ``tuning``: the file must have a ``[tuning]`` table.

    Raises
    ------
    ConfigError
        A bad file, option or URI, or an experiment that cannot run on its data (every problem listed).
    """
    from cartrisk.config import load_experiment
    from cartrisk.data.datasets import load_dataset
    from cartrisk.evaluation.preflight import check_experiment
    from cartrisk.tracking.store import check_tracking_uri

    cfg = load_experiment(path)
    if tuning and cfg.tuning is None:
        raise ConfigError(f"{path}: no tuning table in the file; run it with cartrisk evaluate")
    if n is not None:
        if cfg.data.source != "simulated":
            raise ConfigError(f"--n {n}: sets the size of the simulated registry, but {path} reads "
                              f"data.source = {cfg.data.source!r}; remove --n")
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, n=n))
    uri = None
    if cfg.tracking.enabled and not no_tracking:
        uri = cfg.tracking.uri if tracking_uri is None else tracking_uri
        check_tracking_uri(uri, where="--tracking-uri" if tracking_uri is not None else f"{path}: tracking.uri")
    data = load_dataset(cfg.data, seed=cfg.seed)
    check_experiment(cfg, data)
    return cfg, uri, data
