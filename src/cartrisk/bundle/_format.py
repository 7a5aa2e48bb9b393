"""The model bundle's file format: canonical JSON, checksums and version checks (no modelling here).

``MANIFEST.json`` lists the SHA-256 of every other file, and its own digest over that list, so that a
changed byte anywhere is reported with the name of the file that changed. The manifest guards against
corruption and accidental edits, not against someone who rewrites both a file and the manifest: that is
what the signature (``SIGNATURE.json``, :mod:`cartrisk.bundle.signing`) and a pinned fingerprint (the manifest
digest) are for. The pipeline
itself is written by :mod:`cartrisk.bundle.serialise`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cartrisk.exceptions import BundleError

__all__ = ["MANIFEST_FILE", "SIGNATURE_FILE", "check_versions", "installed_version", "read_json", "verify_manifest",
           "write_json", "write_manifest"]

MANIFEST_FILE = "MANIFEST.json"
#: The signature over the manifest (:mod:`cartrisk.bundle.signing`); the one file the manifest cannot list.
SIGNATURE_FILE = "SIGNATURE.json"
_UNLISTED = (MANIFEST_FILE, SIGNATURE_FILE)

# Packages whose major.minor must match between the bundle and the scoring environment.
_COMPATIBLE_PACKAGES = ("scikit-learn", "scikit-survival")


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
    files = {p.name: _sha256(p) for p in sorted(directory.iterdir()) if p.is_file() and p.name not in _UNLISTED}
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
    present = {p.name for p in directory.iterdir() if p.is_file() and p.name not in _UNLISTED}
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
