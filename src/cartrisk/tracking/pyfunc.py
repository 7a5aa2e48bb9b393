"""MLflow's pyfunc face of a cartrisk bundle: register a bundle as a model version, load it, score with it.

The pyfunc model is "models from code": a three-line script builds :func:`bundle_pyfunc_model` with the
bundle folder as its artefact, so MLflow stores no pickled Python object, and loading it verifies the
bundle as :func:`cartrisk.bundle.load_bundle` does.
"""

from __future__ import annotations

import functools
import json
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from cartrisk.tracking.client import Tracker

__all__ = ["bundle_pyfunc_model", "load_registered_model", "register_bundle"]


def register_bundle(tracker: Tracker, bundle_dir: str | Path, name: str, *, source_run_id: str | None = None
                    ) -> tuple[str, str]:
    """Log a model bundle as an MLflow pyfunc model in a new run and register it as a version of ``name``.

    The pyfunc model is "models from code" (no pickled Python object): a three-line script that builds
    :func:`bundle_pyfunc_model`, with the bundle folder as its artefact, so that loading it verifies the
    bundle's checksums and loads it through skops as :func:`cartrisk.bundle.load_bundle` does. Its
    ``predict`` returns the scores of :meth:`cartrisk.bundle.Bundle.score`.

    Returns
    -------
    (run_id, version)
    """
    pyfunc = _import_pyfunc()
    bundle_dir = Path(bundle_dir)
    manifest = json.loads((bundle_dir / "MANIFEST.json").read_text(encoding="utf-8"))
    tags = {"cartrisk.kind": "export", "cartrisk.bundle": name,
            "cartrisk.bundle_fingerprint": manifest["manifest_sha256"]}
    if source_run_id:
        tags["cartrisk.source_run"] = source_run_id
    with tracker.run(f"export:{name}", tags=tags) as run_id, tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "cartrisk_bundle_model.py"
        code.write_text(_PYFUNC_CODE, encoding="utf-8")
        model_dir = Path(tmp) / "pyfunc"
        pyfunc.save_model(str(model_dir), python_model=str(code), artifacts={"bundle": str(bundle_dir)},
                          pip_requirements=[f"cartrisk=={metadata.version('cartrisk')}"])
        tracker.client.log_artifacts(run_id, str(model_dir), "pyfunc")
        source = f"{tracker.client.get_run(run_id).info.artifact_uri}/pyfunc"
    if not tracker.client.search_registered_models(filter_string=f"name = '{name}'"):
        tracker.client.create_registered_model(name, description="cartrisk OS-2 model bundle (see MODEL_CARD.md)")
    version = tracker.client.create_model_version(name, source=source, run_id=run_id, tags=tags)
    return run_id, str(version.version)


def load_registered_model(tracker: Tracker, name: str, version: str | int):
    """Load a registered bundle version as an MLflow pyfunc model (``predict(frame)`` -> scores)."""
    pyfunc = _import_pyfunc()
    return pyfunc.load_model(tracker.client.get_model_version_download_uri(name, str(version)))


_PYFUNC_CODE = '''"""MLflow model-from-code entry point of a cartrisk model bundle (written by cartrisk.tracking)."""
import mlflow

from cartrisk.tracking.pyfunc import bundle_pyfunc_model

mlflow.models.set_model(bundle_pyfunc_model())
'''


def _import_pyfunc():
    import warnings

    with warnings.catch_warnings():
        # Importing mlflow.pyfunc infers schemas of MLflow's own agent types and warns (UserWarning) that an
        # `Any` hint is not validated; it concerns MLflow's chat-agent classes, not cartrisk's model.
        warnings.filterwarnings("ignore", message=".*type hint is inferred as AnyType.*", category=UserWarning)
        import mlflow.pyfunc
    return mlflow.pyfunc


@functools.cache
def _bundle_model_class() -> type:
    pyfunc = _import_pyfunc()

    class BundleModel(pyfunc.PythonModel):
        """MLflow pyfunc face of a cartrisk bundle: risk score, survival at the horizons, risk group."""

        def load_context(self, context) -> None:
            from cartrisk.bundle import load_bundle

            self.bundle = load_bundle(context.artifacts["bundle"])

        def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
            return self.bundle.score(model_input, source="model input")

    return BundleModel


def bundle_pyfunc_model():
    """A new MLflow ``PythonModel`` that scores with a cartrisk bundle (its artefact ``bundle``)."""
    return _bundle_model_class()()
