"""MLflow tracking: the only module that imports mlflow.

Runs go to ``sqlite:///mlruns/mlflow.db`` by default, with artefacts in
``mlruns/artifacts/`` beside it (MLflow 3 refuses a bare ``./mlruns`` file
store). Any MLflow tracking URI (a server, another database) works instead.
Everything goes through an explicit :class:`mlflow.MlflowClient`: no global
active run, so nothing leaks between studies, threads or processes.

What is logged: parameters, metrics, the experiment file, a SHA-256 of the data
(never identifiers or rows), package versions, git commit, seed, and the
fitted pipeline (skops format).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.utils.time import get_current_time_millis

from cartrisk.bundle.provenance import provenance
from cartrisk.bundle.serialise import dump_pipeline
from cartrisk.config import DEFAULT_TRACKING_URI
from cartrisk.exceptions import ConfigError
from cartrisk.tracking.store import create_experiment, open_client, sqlite_path, tune_sqlite_engine

__all__ = ["DEFAULT_TRACKING_URI", "Tracker", "flatten"]

_MAX_PARAM = 6000  # MLflow's limit on a parameter value's length


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings to dotted keys (``{"a": {"b": 1}} -> {"a.b": 1}``)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _artifact_root(uri: str) -> Path | None:
    """For a SQLite store, the folder ``artifacts/`` beside the database file."""
    database = sqlite_path(uri)
    return None if database is None else database.resolve().parent / "artifacts"


def _store_engine(client: MlflowClient):
    """The SQLAlchemy engine of a database-backed tracking store (None for a server or a file store)."""
    return getattr(getattr(client, "_tracking_client", None) and client._tracking_client.store, "engine", None)


_TUNED_ENGINES: set[int] = set()


def _tune_sqlite_store(client: MlflowClient) -> None:
    """A SQLite tracking store in WAL mode (:func:`cartrisk.tracking.store.tune_sqlite_engine`), once per engine:
    MLflow opens SQLite in rollback-journal mode."""
    engine = _store_engine(client)
    if engine is None or engine.dialect.name != "sqlite" or id(engine) in _TUNED_ENGINES:
        return
    _TUNED_ENGINES.add(id(engine))
    tune_sqlite_engine(engine)


class Tracker:
    """Log cartrisk runs to one MLflow experiment.

    Parameters
    ----------
    tracking_uri : str
        MLflow tracking URI; a ``sqlite:///`` file is created with its folder.
    experiment : str
        MLflow experiment name (created on first use).
    """

    def __init__(self, tracking_uri: str = DEFAULT_TRACKING_URI, experiment: str = "cartrisk") -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        root = _artifact_root(tracking_uri)
        if root is not None:
            root.parent.mkdir(parents=True, exist_ok=True)
        if tracking_uri.startswith(("http://", "https://")):
            # MLflow prints a link to stdout after each ended run, and fetches the run once more to do so
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.client: MlflowClient = open_client(tracking_uri)  # a SQLite store is created under a file lock
        self._experiment_id: str | None = None

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            _tune_sqlite_store(self.client)
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                self._experiment_id = found.experiment_id
            else:
                root = _artifact_root(self.tracking_uri)
                location = (root / self.experiment).as_uri() if root is not None else None
                self._experiment_id = create_experiment(self.client, self.experiment, location)
        return self._experiment_id

    @contextmanager
    def run(self, name: str, *, parent_run_id: str | None = None, tags: Mapping[str, str] | None = None
            ) -> Iterator[str]:
        """Open a run, yield its id, and close it FINISHED, FAILED (exception) or KILLED (interrupt)."""
        all_tags = dict(tags or {})
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        with self._closing(run.info.run_id) as run_id:
            yield run_id

    @contextmanager
    def _closing(self, run_id: str) -> Iterator[str]:
        """End ``run_id`` FINISHED, FAILED (an exception) or KILLED (an interrupt) when the block ends."""
        try:
            yield run_id
        except KeyboardInterrupt:
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
            raise
        except BaseException:
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
            raise
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log (nested) parameters; values are stringified and cut to MLflow's limit."""
        items = [Param(k, (json.dumps(v) if isinstance(v, list | tuple) else str(v))[:_MAX_PARAM])
                 for k, v in flatten(params).items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start:start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log metrics (non-finite values are skipped: MLflow cannot compare them)."""
        now = get_current_time_millis()
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if v is not None and math.isfinite(float(v))]
        for start in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[start:start + 1000])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_file(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_figure(self, run_id: str, figure, artifact_file: str) -> None:
        self.client.log_figure(run_id, figure, artifact_file)

    def log_pipeline(self, run_id: str, pipeline, artifact_path: str = "model") -> None:
        """Save a fitted pipeline under ``artifact_path`` with the bundles' serialiser
        (:mod:`cartrisk.bundle.serialise`: ``pipeline.skops`` with cartrisk's allow-list, and ``booster.json`` for
        XGBoost families)."""
        with tempfile.TemporaryDirectory() as tmp:
            dump_pipeline(pipeline, Path(tmp))
            self.client.log_artifacts(run_id, tmp, artifact_path)

    def log_provenance(self, run_id: str, *, data_hash: str, seed: int | None) -> None:
        """Tag the run with the data's SHA-256, the seed, package versions and git commit."""
        tags = {"data_sha256": data_hash, "seed": seed, **provenance()}
        self.set_tags(run_id, {k: v for k, v in tags.items() if v is not None})

    def download(self, run_id: str, artifact_path: str, dst: str | Path) -> Path:
        """Fetch an artefact of a run into ``dst``."""
        return Path(self.client.download_artifacts(run_id, artifact_path, str(dst)))

    def get_run(self, run_id: str):
        """The MLflow run; a :class:`~cartrisk.exceptions.ConfigError` naming the store if it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException as err:
            raise ConfigError(f"MLflow run {run_id!r} not found in {self.tracking_uri}: {err.message}") from None

    # ---- added for tuning (cartrisk.tuning): reopen runs, find stale ones, log in one batch

    @contextmanager
    def resume_run(self, run_id: str) -> Iterator[str]:
        """Reopen an existing run (status RUNNING), yield its id, and close it as :meth:`run` does."""
        self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        with self._closing(run_id):
            yield run_id

    def has_run(self, run_id: str | None) -> bool:
        """True when ``run_id`` is a run of this tracker's experiment."""
        from mlflow.exceptions import MlflowException

        if not run_id:
            return False
        try:
            return self.client.get_run(run_id).info.experiment_id == self.experiment_id
        except MlflowException:
            return False

    def running_runs(self, tags: Mapping[str, str]) -> list[Any]:
        """Runs of this experiment still marked RUNNING whose tags include ``tags``."""
        clauses = ["attributes.status = 'RUNNING'"]
        clauses += [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
        return list(self.client.search_runs([self.experiment_id], " and ".join(clauses), max_results=10000))

    def set_status(self, run_id: str, status: str) -> None:
        """End a run with ``status`` (``FINISHED``, ``FAILED`` or ``KILLED``)."""
        self.client.set_terminated(run_id, status)

    def log_batch(self, run_id: str, *, params: Mapping[str, Any] | None = None,
                  metrics: Mapping[str, float] | None = None, step_metrics: list[tuple[str, float, int]] | None = None,
                  tags: Mapping[str, Any] | None = None) -> None:
        """Parameters, metrics (``step_metrics``: ``(key, value, step)``) and tags in one request (at most 100
        parameters and 1,000 metrics; non-finite metrics are skipped)."""
        now = get_current_time_millis()
        metric_items = [(k, v, 0) for k, v in (metrics or {}).items()] + list(step_metrics or [])
        items = [Metric(k, float(v), now, step) for k, v, step in metric_items
                 if v is not None and math.isfinite(float(v))]
        param_items = [Param(k, (json.dumps(v) if isinstance(v, list | tuple) else str(v))[:_MAX_PARAM])
                       for k, v in flatten(params or {}).items()]
        tag_items = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        self.client.log_batch(run_id, metrics=items[:1000], params=param_items[:100], tags=tag_items)

    def record_run(self, name: str, *, parent_run_id: str | None = None, tags: Mapping[str, Any] | None = None,
                   params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
                   step_metrics: list[tuple[str, float, int]] | None = None, status: str = "FINISHED",
                   start_ms: int | None = None, end_ms: int | None = None) -> str:
        """Log a whole run after the fact: created with its tags and start time, one batch of parameters,
        metrics and tags, then ended with ``status`` at ``end_ms`` (three requests, whatever the content)."""
        all_tags = {k: str(v) for k, v in (tags or {}).items()}
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, start_time=start_ms, run_name=name, tags=all_tags)
        run_id = run.info.run_id
        if params or metrics or step_metrics:
            self.log_batch(run_id, params=params, metrics=metrics, step_metrics=step_metrics)
        self.client.set_terminated(run_id, status, end_time=end_ms)
        return run_id

    def release_connections(self) -> None:
        """Close the tracking store's pooled database connections (before a fork: none may cross it)."""
        engine = _store_engine(self.client)
        if engine is not None:
            engine.dispose()

    # ---- finding runs and their artefacts

    def find_runs(self, tags: Mapping[str, str], *, parent_run_id: str | None = None) -> list[Any]:
        """Runs of every experiment of this store whose tags include ``tags`` (newest first)."""
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        if not experiments:
            return []
        items = dict(tags)
        if parent_run_id is not None:
            items["mlflow.parentRunId"] = parent_run_id
        clauses = [f"tags.`{k}` = '{str(v).replace(chr(39), chr(92) + chr(39))}'" for k, v in items.items()]
        return list(self.client.search_runs(experiments, " and ".join(clauses), max_results=10000,
                                            order_by=["attributes.start_time DESC"]))

    def has_artifact(self, run_id: str, artifact_path: str) -> bool:
        """True when the run holds the artefact file ``artifact_path`` (e.g. ``model/pipeline.skops``)."""
        folder, _, name = artifact_path.rpartition("/")
        return any(f.path == artifact_path for f in self.client.list_artifacts(run_id, folder or None)) if name \
            else False
