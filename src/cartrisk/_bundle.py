"""The model bundle's file format: safe serialisation, checksums and version checks (no modelling here).

A bundle never goes through unrestricted pickle:

- the fitted pipeline is a skops file (``pipeline.skops``). Before saving and before loading, every type
  skops does not trust by default is checked against :data:`TRUSTED_TYPES`, an explicit allow-list of the
  cartrisk, scikit-learn, scikit-survival and numpy types that cartrisk's pipelines hold; a pipeline holding
  anything else is refused, naming the type;
- an XGBoost booster is taken out of its estimator before the skops file is written and saved in XGBoost's
  own JSON model format (``booster.json``); loading reads it with ``Booster.load_model`` and puts it back in
  the estimator's ``model_``. The skops file of a bundle therefore holds no booster at all;
- ``MANIFEST.json`` lists the SHA-256 of every other file, and its own digest over that list, so that a
  changed byte anywhere is reported with the name of the file that changed. The manifest guards against
  corruption and accidental edits, not against someone who rewrites both a file and the manifest (that
  needs a signature); pin the bundle's fingerprint (the manifest digest) where that matters.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cartrisk.exceptions import ConfigError

__all__ = [
    "BOOSTER_FILE",
    "BundleError",
    "MANIFEST_FILE",
    "PIPELINE_FILE",
    "RUN_TRUSTED_TYPES",
    "TRUSTED_TYPES",
    "check_versions",
    "dump_pipeline",
    "load_pipeline",
    "read_json",
    "verify_manifest",
    "write_json",
    "write_manifest",
]

PIPELINE_FILE = "pipeline.skops"
BOOSTER_FILE = "booster.json"
MANIFEST_FILE = "MANIFEST.json"

#: Types a bundle's skops file may hold beyond those skops trusts by default (scikit-learn's own estimators,
#: builtins, numpy arrays). Every entry is a data holder whose loading runs no code of the file's choosing.
TRUSTED_TYPES: tuple[str, ...] = (
    # cartrisk
    "cartrisk.pipeline.SurvivalPipeline",
    "cartrisk.features.FeatureBuilder",
    "cartrisk.estimators.linear.CoxPH",
    "cartrisk.estimators.linear.Coxnet",
    "cartrisk.estimators.forest.RSF",
    "cartrisk.estimators.forest.ExtraTrees",
    "cartrisk.estimators.boosting.GBSA",
    "cartrisk.estimators.xgb.XGBCox",
    "cartrisk.estimators.xgb.XGBAFT",
    # scikit-survival
    "sksurv.functions.StepFunction",
    "sksurv.linear_model.coxph.BreslowEstimator",
    "sksurv.linear_model.coxph.CoxPHSurvivalAnalysis",
    "sksurv.linear_model.coxnet.CoxnetSurvivalAnalysis",
    "sksurv.ensemble.forest.RandomSurvivalForest",
    "sksurv.ensemble.forest.ExtraSurvivalTrees",
    "sksurv.ensemble.boosting.GradientBoostingSurvivalAnalysis",
    "sksurv.ensemble.survival_loss.CoxPH",
    "sksurv.tree.tree.SurvivalTree",
    "sksurv.tree.tree.ExtraSurvivalTree",
    # scikit-learn and numpy
    "sklearn.tree._tree.Tree",
    "numpy.dtype",
)

#: Pipelines logged to MLflow by :meth:`cartrisk.tracking.Tracker.log_pipeline` keep their XGBoost booster
#: inside the skops file (skops restores it through ``Booster.__setstate__``, XGBoost's own deserialiser).
RUN_TRUSTED_TYPES: tuple[str, ...] = (*TRUSTED_TYPES, "xgboost.core.Booster")

# Packages whose major.minor must match between the bundle and the scoring environment.
_COMPATIBLE_PACKAGES = ("scikit-learn", "scikit-survival")


class BundleError(ConfigError):
    """A bundle cannot be written or loaded: altered file, untrusted type, incompatible versions."""


# ----------------------------------------------------------------------------------------------- JSON files
def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars and arrays to Python, NaN and infinities to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _canonical(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as canonical JSON (sorted keys, two-space indent, NaN as null)."""
    path.write_bytes(_canonical(_plain(obj)))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path}: cannot be read as JSON ({err})") from err


# ----------------------------------------------------------------------------------------------- checksums
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: Path) -> str:
    """Write ``MANIFEST.json`` over every other file of ``directory``; return the manifest digest."""
    files = {p.name: _sha256(p) for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST_FILE}
    body = {"algorithm": "sha256", "files": files}
    digest = hashlib.sha256(_canonical(body)).hexdigest()
    (directory / MANIFEST_FILE).write_bytes(_canonical({**body, "manifest_sha256": digest}))
    return digest


def verify_manifest(directory: Path) -> str:
    """Check every file of a bundle against its manifest; return the manifest digest (the bundle fingerprint).

    Raises
    ------
    BundleError
        Naming the file that is missing, unlisted or whose checksum does not match.
    """
    where = directory / MANIFEST_FILE
    if not where.is_file():
        raise BundleError(f"{directory}: no {MANIFEST_FILE}; this is not a cartrisk bundle (export one with "
                          "`cartrisk export`)")
    raw = where.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"))
        body = {"algorithm": manifest["algorithm"], "files": dict(manifest["files"])}
        claimed = manifest["manifest_sha256"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise BundleError(f"{where}: {MANIFEST_FILE} is corrupt (not the manifest cartrisk writes); the bundle "
                          "was altered, export it again") from None
    digest = hashlib.sha256(_canonical(body)).hexdigest()
    if digest != claimed or raw != _canonical({**body, "manifest_sha256": claimed}):
        raise BundleError(f"{where}: {MANIFEST_FILE} was altered (its checksum does not match); the bundle cannot "
                          "be trusted, export it again")
    present = {p.name for p in directory.iterdir() if p.is_file() and p.name != MANIFEST_FILE}
    for name in sorted(set(body["files"]) - present):
        raise BundleError(f"{directory / name}: file listed in {MANIFEST_FILE} is missing; export the bundle again")
    for name in sorted(present - set(body["files"])):
        raise BundleError(f"{directory / name}: file not listed in {MANIFEST_FILE} (added after export); remove it")
    for name, expected in sorted(body["files"].items()):
        if _sha256(directory / name) != expected:
            raise BundleError(f"{directory / name}: checksum does not match {MANIFEST_FILE}: the file was altered "
                              "after export; the bundle cannot be trusted, export it again")
    return digest


# ----------------------------------------------------------------------------------------------- versions
def _major_minor(version: str) -> tuple[int, ...] | None:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            return None
        parts.append(int(digits))
    return tuple(parts)


def installed_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def check_versions(recorded: Mapping[str, str], *, xgboost: bool) -> None:
    """Refuse a bundle made with another major.minor of scikit-learn, scikit-survival (or XGBoost, if it holds
    a booster) than the one installed; the message names each package and both versions."""
    packages = (*_COMPATIBLE_PACKAGES, "xgboost") if xgboost else _COMPATIBLE_PACKAGES
    bad = []
    for package in packages:
        then, now = recorded.get(package), installed_version(package)
        if then is None or _major_minor(then) != _major_minor(now):
            bad.append(f"{package} {then or 'unknown'} (bundle) vs {now} (installed)")
    if bad:
        raise BundleError("bundle was exported with incompatible package versions: " + "; ".join(bad)
                          + ". Score it in an environment with the bundle's major.minor versions, or export the "
                          "model again with the installed ones")


# ----------------------------------------------------------------------------------------------- pipeline
def _booster_holder(pipeline) -> Any | None:
    """The last step when it keeps an XGBoost booster in ``model_``, else None."""
    final = pipeline.steps[-1][1]
    model = getattr(final, "model_", None)
    if model is not None and type(model).__module__.startswith("xgboost") and type(model).__name__ == "Booster":
        return final
    return None


def _check_types(untrusted: list[str], allowed: tuple[str, ...], what: str) -> None:
    refused = sorted(set(untrusted) - set(allowed))
    if refused:
        raise BundleError(f"{what} holds type(s) not on cartrisk's allow-list: {', '.join(refused)}. Bundles "
                          "store only cartrisk, scikit-learn, scikit-survival and numpy objects (see "
                          "cartrisk._bundle.TRUSTED_TYPES); build the pipeline with cartrisk.pipeline.make_pipeline")


def dump_pipeline(pipeline, directory: Path) -> list[str]:
    """Write the fitted pipeline (skops) and, for XGBoost families, its booster (XGBoost JSON).

    Returns the names of the files written. The caller's pipeline is not modified.
    """
    import skops.io as sio

    holder = _booster_holder(pipeline)
    to_save, written = pipeline, [PIPELINE_FILE]
    if holder is not None:
        holder.model_.save_model(str(directory / BOOSTER_FILE))
        detached = copy.copy(holder)
        del detached.model_
        to_save = copy.copy(pipeline)
        to_save.steps = [*pipeline.steps[:-1], (pipeline.steps[-1][0], detached)]
        written.append(BOOSTER_FILE)
    target = directory / PIPELINE_FILE
    sio.dump(to_save, target)
    try:
        _check_types(sio.get_untrusted_types(file=target), TRUSTED_TYPES, "the pipeline")
    except BundleError:
        for name in written:
            (directory / name).unlink(missing_ok=True)
        raise
    return written


def load_pipeline(path: Path, *, allowed: tuple[str, ...] = TRUSTED_TYPES, booster: Path | None = None):
    """Load a skops pipeline after checking its types against ``allowed``; re-attach a booster from JSON."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:  # skops raises assorted errors on a file that is not its format
        raise BundleError(f"{path}: not a skops file ({type(err).__name__}: {err})") from err
    _check_types(untrusted, allowed, str(path))
    pipeline = sio.load(path, trusted=untrusted)
    if booster is not None:
        import xgboost

        final = pipeline.steps[-1][1]
        model = xgboost.Booster()
        model.load_model(str(booster))
        n_jobs = getattr(final, "n_jobs", None)
        model.set_param({"nthread": 1 if n_jobs is None else max(int(n_jobs), 0)})
        final.model_ = model
    return pipeline
