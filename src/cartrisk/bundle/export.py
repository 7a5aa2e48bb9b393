"""Export a fitted pipeline with what it was trained on and how well it did, as a verified bundle folder.

A bundle is a folder ``models/NAME/``:

==================  =====================================================================================
``pipeline.skops``  the fitted pipeline (skops; types checked against an allow-list, never pickle)
``booster.json``    XGBoost families only: the booster in XGBoost's own JSON format
``bundle.json``     name, model family and parameters, horizons, training cohort summary, data SHA-256,
                    package versions, git commit, free metadata
``schema.json``     the data-dictionary columns the model reads, with training ranges, levels, missingness
``risk_groups.json`` risk-group method, cut-points and labels (learned on training predictions)
``performance.json`` outer cross-validation metrics, calibration at each horizon, comparison with the
                    D0-30 rule, literature concordance (whatever was supplied at export)
``MODEL_CARD.md``   the model card (:mod:`cartrisk.bundle.modelcard`)
``MANIFEST.json``   SHA-256 of every file above, and its own digest (the bundle's fingerprint)
``SIGNATURE.json``  signed bundles only: an Ed25519 signature over the manifest (:mod:`cartrisk.bundle.signing`)
==================  =====================================================================================

Reading and scoring is :mod:`cartrisk.bundle.scoring`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from cartrisk.bundle import _format, modelcard
from cartrisk.bundle._info import (
    evidence_extras,
    input_schema,
    model_description,
    performance_section,
    risk_group_section,
    training_extras,
    training_predictions,
)
from cartrisk.bundle.provenance import provenance
from cartrisk.bundle.scoring import BUNDLE_FORMAT
from cartrisk.bundle.serialise import dump_pipeline
from cartrisk.bundle.signing import load_signing_key, sign_bundle
from cartrisk.data.schema import frame_hash, to_xy
from cartrisk.data.simreport import cohort_summary
from cartrisk.exceptions import BundleError
from cartrisk.units import DEFAULT_HORIZONS_MONTHS

__all__ = ["Evidence", "bundle_name_problem", "export_bundle"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Evidence:
    """What a bundle records about how well its model did (every field optional).

    Attributes
    ----------
    cv_result : CVResult, DataFrame or mapping, optional
        Outer cross-validation of the pipeline: a :class:`~cartrisk.evaluation.CVResult`, its
        ``summary()``, or MLflow metrics named ``<metric>[_<h>m]_<mean|lower|upper>``.
    calibration : mapping of horizon (months) to HorizonCalibration, optional
        Default: computed from the out-of-fold survival of ``cv_result`` when it has them.
    risk_groups : RiskGrouper, array of cut-points, or None
        A fitted :class:`~cartrisk.groups.RiskGrouper`, or risk-score cut-points (low -> high). None fits
        two groups on the training risk scores, the high one as large as the published D0-30 share.
    concordance : DataFrame, optional
        Literature concordance table (:func:`cartrisk.explain.literature`).
    comparison : mapping of label to CVResult, or GroupComparison, optional
        The D0-30 rule (and others) on the same folds, or :func:`cartrisk.groups.compare_groupings`.
    oof_risk : array, optional
        Out-of-fold risk scores of the training patients: cut-points learned at export are learned on them
        (default: ``cv_result.oof_risk`` when it has them), described by ``oof_source``.
    evaluations : tuple of mapping
        Evaluations on cohorts other than the training one (``cohort``, ``n``, ``events``, ``design``, ``what``):
        the model card then no longer says "internal validation only".
    subgroups : DataFrame, optional
        Performance by subgroup (:func:`cartrisk.evaluation.subgroup_performance`): model card items 14 and 23b.
    sample_size : mapping, optional
        Riley's sample-size check (:func:`cartrisk.evaluation.samplesize.sample_size_check`): model card item 10.
    """

    cv_result: Any = None
    calibration: Mapping[float, Any] | None = None
    risk_groups: Any = None
    concordance: pd.DataFrame | None = None
    comparison: Any = None
    oof_risk: np.ndarray | None = None
    oof_source: str = "cross-validation"
    evaluations: tuple[Mapping[str, Any], ...] = ()
    subgroups: pd.DataFrame | None = None
    sample_size: Mapping[str, Any] | None = None


def bundle_name_problem(name) -> str | None:
    """Why ``name`` cannot name a bundle folder (``MODELS_DIR/NAME``), or None when it can."""
    if isinstance(name, str) and _NAME.match(name):
        return None
    return f"{name!r} must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"


def export_bundle(
    pipeline,
    out_dir: str | Path,
    *,
    name: str,
    training_frame: pd.DataFrame | None = None,
    X: pd.DataFrame | None = None,
    y: np.ndarray | None = None,
    evidence: Evidence | None = None,
    metadata: Mapping[str, Any] | None = None,
    horizons_months: tuple[float, ...] = DEFAULT_HORIZONS_MONTHS,
    overwrite: bool = False,
    cohort: Mapping[str, Any] | None = None,
    data_sha256: str | None = None,
    lineage: Mapping[str, Any] | None = None,
    schema: Mapping[str, Any] | None = None,
    sign_with: str | Path | None = None,
) -> Path:
    """Write a fitted pipeline and its evidence as the bundle ``out_dir/name/``.

    Parameters
    ----------
    pipeline : SurvivalPipeline
        Fitted ``features -> estimator`` pipeline (the refit on all training data).
    out_dir : str or Path
        Folder of bundles (``models``); the bundle is its sub-folder ``name``.
    name : str
        Bundle name: letters, digits, ``.``, ``_``, ``-``.
    training_frame : DataFrame, optional
        The validated training cohort (:func:`cartrisk.data.validate`), or give ``X`` and ``y``.
    X, y : DataFrame and structured array, optional
        Training covariates and OS-2 target (:func:`cartrisk.data.to_xy`).
    evidence : Evidence, optional
        Cross-validation, calibration, risk groups, literature concordance and rule comparison.
    metadata : mapping, optional
        Free information kept in ``bundle.json``; keys the card reads: ``description``, ``data_source``,
        ``simulated`` (bool; inferred from ``SIM-`` identifiers when absent), ``validation`` (design in words),
        ``experiment``, ``seed``, ``source_run_id``.
    horizons_months : tuple of float
        Horizons of the survival probabilities that scoring reports.
    overwrite : bool
        Replace an existing bundle of that name.
    cohort : mapping, optional
        A generic cohort (``[data.roles]``): ``time``, ``event`` (column names), ``time_unit_days`` and optionally
        ``id``; the schema is then built from the training columns (:mod:`cartrisk.bundle._generic`).
    data_sha256 : str, optional
        The data's SHA-256 as the training run recorded it (default: computed here from the training data).
    lineage : mapping, optional
        For an updated model (:mod:`cartrisk.bundle.updating`): parent fingerprint, data hash, method and why.
    schema : mapping, optional
        The input schema to keep (an updated model keeps its parent's training ranges); default built here.
    sign_with : str or Path, optional
        An Ed25519 private key file (``cartrisk keygen``): the manifest is signed (``SIGNATURE.json``), so that
        a bundle loaded with trust in the matching public key cannot be altered unnoticed.

    Returns
    -------
    Path
        The bundle folder. Registering it in MLflow is the caller's choice
        (:func:`cartrisk.tracking.register_bundle`).
    """
    evidence = evidence or Evidence()
    signing_key = None if sign_with is None else load_signing_key(sign_with)  # a bad key: refused before any work
    problem = bundle_name_problem(name)
    if problem:
        raise BundleError(f"bundle name {problem}")
    check_is_fitted(pipeline)
    X, y, frame_for_hash, ids = _training_data(training_frame, X, y)
    target = Path(out_dir) / name
    if target.exists() and not overwrite:
        raise BundleError(f"{target}: a bundle of that name exists; choose another name or overwrite it")
    meta = dict(metadata or {})
    if "simulated" not in meta and ids is not None:
        meta["simulated"] = bool(len(ids) and pd.Series(ids, dtype=str).str.startswith("SIM-").all())
        meta["simulated_inferred"] = True
    horizons = tuple(float(h) for h in horizons_months)
    Xt, risk = training_predictions(pipeline, X)  # once, for the training aggregates and the risk groups
    provenance_info = provenance()
    versions = {k.removeprefix("version."): v for k, v in provenance_info.items() if k.startswith("version.")}
    info = {
        "format": BUNDLE_FORMAT,
        "name": name,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model_description(pipeline),
        "horizons_months": horizons,
        "training": {**cohort_summary(y, X, horizons), "data_sha256": data_sha256 or frame_hash(frame_for_hash),
                     **training_extras(Xt, risk, y, training_frame)},
        "versions": versions,
        "provenance": {k: v for k, v in provenance_info.items() if not k.startswith("version.")},
        "metadata": meta,
    }
    if lineage is not None:
        info["lineage"] = dict(lineage)
    schema = dict(schema) if schema is not None else input_schema(pipeline, X, y, cohort)
    oof = evidence.oof_risk
    if oof is None and getattr(evidence.cv_result, "oof_risk", None) is not None:
        oof = evidence.cv_result.oof_risk
    groups = risk_group_section(pipeline, Xt, risk, evidence.risk_groups, y, horizons, oof, evidence.oof_source)
    performance = performance_section(evidence.cv_result, evidence.calibration, evidence.comparison,
                                      evidence.concordance, y, meta, extra=evidence_extras(evidence))

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        dump_pipeline(pipeline, staging)
        _format.write_json(staging / "bundle.json", info)
        _format.write_json(staging / "schema.json", schema)
        _format.write_json(staging / "performance.json", performance)
        if groups is not None:
            _format.write_json(staging / "risk_groups.json", groups)
        card = modelcard.render(_format.read_json(staging / "bundle.json"), _format.read_json(staging / "schema.json"),
                                _format.read_json(staging / "risk_groups.json") if groups is not None else None,
                                _format.read_json(staging / "performance.json"))
        (staging / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        _format.write_manifest(staging)
        if signing_key is not None:
            sign_bundle(staging, signing_key)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def _training_data(training_frame, X, y) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray | None]:
    """(X, y, the frame whose hash identifies the data, patient ids or None)."""
    if training_frame is not None:
        if X is not None or y is not None:
            raise BundleError("give either training_frame or X and y, not both")
        X, y = to_xy(training_frame)
        ids = training_frame["patient_id"].to_numpy() if "patient_id" in training_frame else None
        # Same convention as cartrisk.data.datasets: the validated frame without identifiers.
        return X, y, training_frame.drop(columns=["patient_id"], errors="ignore"), ids
    if X is None or y is None:
        raise BundleError("export needs the training data: training_frame, or X and y")
    event_field, time_field = y.dtype.names
    content = X.assign(**{time_field: y[time_field], event_field: y[event_field].astype(np.int64)})
    return X, y, content, None
