"""The model bundle: export a fitted pipeline with what it was trained on and how well it did; load and score.

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
``MODEL_CARD.md``   the model card (:mod:`cartrisk.modelcard`)
``MANIFEST.json``   SHA-256 of every file above, and its own digest (the bundle's fingerprint)
==================  =====================================================================================

:func:`load_bundle` verifies the checksums and package versions before anything is deserialised, and
:meth:`Bundle.score` validates new patients with the same checks as ``cartrisk validate``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from cartrisk import _bundle
from cartrisk._bundle import BundleError
from cartrisk.exceptions import SchemaError, StatisticalWarning
from cartrisk.schema import Problem, ValidationResult, frame_hash, to_xy, validate
from cartrisk.units import DEFAULT_HORIZONS_MONTHS, months_to_days

__all__ = ["Bundle", "BundleError", "ScoreReport", "export_bundle", "load_bundle", "load_model", "summary_line"]

BUNDLE_FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# Rows predicted at once. Survival curves are built on the whole training time grid before being read at the
# horizons, and forests average (rows x times) arrays tree by tree: in blocks of 1,000 rows these stay in cache
# (100,000 patients, rsf: 81 s in one block, 19 s in blocks of 1,000; coxph 10.5 s -> 5.5 s; xgb_cox ~unchanged).
_CHUNK_ROWS = 1000


# ================================================================================================ loading
@dataclass
class ScoreReport:
    """What :meth:`Bundle.score_report` produced.

    Attributes
    ----------
    scores : DataFrame
        One row per scored patient, in input order: ``patient_id``, ``risk_score`` (higher = worse),
        ``survival_<h>m`` for each horizon, ``risk_group`` (when the bundle has groups).
    skipped : list of Problem
        Validation problems of the rows left out (``skip_invalid=True``).
    notices : list of str
        Validation notices (columns ignored, derived columns recomputed).
    """

    scores: pd.DataFrame
    skipped: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def skipped_rows(self) -> list[int]:
        return sorted({p.row for p in self.skipped if p.row is not None})


class Bundle:
    """A verified, loaded model bundle (use :func:`load_bundle`).

    Attributes
    ----------
    path : Path
    pipeline : SurvivalPipeline
    info : dict
        ``bundle.json``.
    schema : dict
        ``schema.json``: ``columns`` (the model's input columns with training ranges and levels).
    risk_groups : dict or None
        ``risk_groups.json``.
    performance : dict
        ``performance.json``.
    fingerprint : str
        SHA-256 of the manifest: identifies this exact bundle.
    """

    def __init__(self, path: Path, pipeline, info: dict, schema: dict, risk_groups: dict | None,
                 performance: dict, fingerprint: str) -> None:
        self.path = path
        self.pipeline = pipeline
        self.info = info
        self.schema = schema
        self.risk_groups = risk_groups
        self.performance = performance
        self.fingerprint = fingerprint
        self._grouper = _grouper_from(risk_groups) if risk_groups else None

    def __repr__(self) -> str:
        return f"Bundle({self.name!r}, {self.info['model']['family']}, fingerprint={self.fingerprint[:12]})"

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def horizons_months(self) -> tuple[float, ...]:
        return tuple(float(h) for h in self.info["horizons_months"])

    @property
    def input_columns(self) -> list[str]:
        return [c["name"] for c in self.schema["columns"]]

    def validate(self, frame: pd.DataFrame, *, source: str = "frame") -> ValidationResult:
        """Validate new patients against the data dictionary (outcome not needed) and the model's columns.

        Returns :func:`cartrisk.schema.validate`'s result, with a problem for each column the model reads
        that the file lacks entirely (cells may be empty: the model imputes them; a missing column is
        usually a misnamed one).
        """
        result = validate(frame, source=source, require_outcome=False)
        flagged = {p.column for p in result.problems if p.row is None}
        for name in self.input_columns:
            if name not in frame.columns and name not in flagged and not _derivable(name, frame):
                result.problems.append(Problem(
                    source, None, name, None, "required column missing: the model reads it",
                    f"add the column '{name}'; leave cells empty where the value is unknown (the model imputes "
                    "them)"))
        if any(p.row is None for p in result.problems):
            result.frame = None
        return result

    def score_report(self, frame: pd.DataFrame, *, source: str = "frame", skip_invalid: bool = False,
                     explain: int = 0) -> ScoreReport:
        """Validate and score new patients; see :meth:`score`.

        Raises
        ------
        SchemaError
            Any problem when ``skip_invalid`` is False; with it, problems that concern the whole file
            (a missing column, no rows) still raise.

        Warns
        -----
        StatisticalWarning
            Once per column with values outside the training range, or levels not seen in training.
        """
        result = self.validate(frame, source=source)
        skipped: list[Problem] = []
        if not result.ok:
            whole = [p for p in result.problems if p.row is None]
            if not skip_invalid or whole:
                result.raise_if_invalid()
            skipped = result.problems
            bad = {p.row - 1 for p in skipped}
            keep = [i for i in range(len(frame)) if i not in bad]
            if not keep:
                raise SchemaError(f"{source}: every row failed validation; nothing to score", skipped)
            result = self.validate(frame.iloc[keep], source=source)
            typed = result.raise_if_invalid()
        else:
            typed, keep = result.frame, None
        self._warn_outside_training(typed, source, keep)
        scores = self.predict_frame(typed)
        if explain:
            scores = pd.concat([scores, self.top_contributions(typed, explain)], axis=1)
        return ScoreReport(scores, skipped, list(result.notices))

    def score(self, frame: pd.DataFrame, *, source: str = "frame", skip_invalid: bool = False,
              explain: int = 0) -> pd.DataFrame:
        """Risk score, survival at each horizon and risk group of new patients, in input order.

        Parameters
        ----------
        frame : DataFrame
            Raw extract (as read by :func:`cartrisk.schema.read_extract`, or typed). Outcome columns are
            not needed; ``patient_id`` and ``days_to_failure`` (or the two dates) are.
        source : str
            Name used in validation messages (the file path).
        skip_invalid : bool, default False
            Leave out rows that fail validation instead of raising (see :meth:`score_report` for which).
        explain : int, default 0
            Add the ``explain`` data-dictionary columns that contribute most to each patient's risk score
            (:meth:`top_contributions`).

        Returns
        -------
        DataFrame
            ``patient_id``, ``risk_score``, ``survival_<h>m`` per horizon (probability, in [0, 1]),
            ``risk_group`` (when the bundle has groups), then ``top<k>_column`` and ``top<k>_contribution``.
        """
        return self.score_report(frame, source=source, skip_invalid=skip_invalid, explain=explain).scores

    def reference_patient(self) -> pd.DataFrame:
        """One row of the training medians (numbers) and most frequent levels: the explanations' reference."""
        row = {"patient_id": "reference"}
        for col in self.schema["columns"]:
            row[col["name"]] = col.get("train_mode") if col.get("levels") is not None else col.get("train_median")
        return pd.DataFrame([row])

    def top_contributions(self, typed: pd.DataFrame, k: int = 3) -> pd.DataFrame:
        """The ``k`` data-dictionary columns with the largest SHAP values on each patient's risk score.

        SHAP values come from :func:`cartrisk.explain.explain` summed per data-dictionary column, on the risk
        score scale (positive = raises the risk). Tree and XGBoost families are explained against the training
        data the trees hold; Cox models against :meth:`reference_patient` (training medians and most frequent
        levels), since the bundle keeps no patient-level training data.
        """
        from cartrisk.explain import explain

        values = explain(self.pipeline, typed, output="risk", aggregate="column",
                         background=self.reference_patient(), patient_ids=typed["patient_id"]).values
        names, phi = values.columns.to_numpy(dtype=object), values.to_numpy(dtype=float)
        order = np.argsort(-np.abs(phi), axis=1, kind="stable")[:, :k]
        rows = np.arange(phi.shape[0])[:, None]
        out = {}
        for j in range(order.shape[1]):
            out[f"top{j + 1}_column"] = names[order[:, j]]
            out[f"top{j + 1}_contribution"] = phi[rows[:, 0], order[:, j]]
        return pd.DataFrame(out)

    def predict_frame(self, typed: pd.DataFrame) -> pd.DataFrame:
        """Score an already validated frame (no checks; :meth:`score` is the checked entry point)."""
        Xt = self.pipeline.transform_features(typed)
        final = self.pipeline.steps[-1][1]
        horizons = np.asarray(self.horizons_months, dtype=float)
        times = months_to_days(horizons)
        threshold = self._grouper is not None and self._grouper.method == "threshold"
        if threshold and not np.isclose(horizons, self._grouper.horizon_months).any():
            times = np.append(times, months_to_days(self._grouper.horizon_months))
        risk, surv = np.empty(len(Xt)), np.empty((len(Xt), times.size))
        for start in range(0, len(Xt), _CHUNK_ROWS):
            part = Xt.iloc[start:start + _CHUNK_ROWS]
            risk[start:start + len(part)] = final.predict(part)
            surv[start:start + len(part)] = final.predict_survival_at(part, times)
        surv = np.clip(surv, 0.0, 1.0)
        out = pd.DataFrame({"patient_id": typed["patient_id"].to_numpy(), "risk_score": risk})
        for j, h in enumerate(horizons):
            out[f"survival_{h:g}m"] = surv[:, j]
        if self._grouper is not None:
            surv_h = None
            if threshold:
                hit = np.flatnonzero(np.isclose(horizons, self._grouper.horizon_months))
                surv_h = surv[:, hit[0] if hit.size else -1]
            out["risk_group"] = self._grouper.predict(risk, surv_h).astype(str)
        return out

    def _warn_outside_training(self, typed: pd.DataFrame, source: str, positions: list[int] | None = None) -> None:
        """One StatisticalWarning per column with values outside the training range or unseen levels; rows are
        numbered as in the input (``positions``: the input position of each row of ``typed``)."""
        for col in self.schema["columns"]:
            name = col["name"]
            if name not in typed:
                continue
            if col.get("levels") is not None:
                present = typed[name].dropna().unique()
                unseen = sorted(set(map(str, present)) - set(col["levels"]))
                if unseen:
                    n = int(typed[name].isin(unseen).sum())
                    warnings.warn(f"{source}: column '{name}': {n} patient(s) with level(s) {', '.join(unseen)} not "
                                  "seen in training; the model treats them as none of the known levels",
                                  StatisticalWarning, stacklevel=3)
                continue
            lo, hi = col.get("train_min"), col.get("train_max")
            if lo is None or hi is None:
                continue
            x = typed[name].to_numpy(dtype=float, na_value=np.nan)
            outside = np.flatnonzero((x < lo) | (x > hi))
            if outside.size:
                numbers = outside[:5] if positions is None else np.asarray(positions)[outside[:5]]
                rows = ", ".join(str(i + 1) for i in numbers) + (", ..." if outside.size > 5 else "")
                warnings.warn(f"{source}: column '{name}': {outside.size} patient(s) outside the training range "
                              f"[{lo:g}, {hi:g}] (rows {rows}); their predictions extrapolate beyond the data the "
                              "model saw", StatisticalWarning, stacklevel=3)


def _derivable(name: str, frame: pd.DataFrame) -> bool:
    """``days_to_failure`` may come from the two dates instead (as ``cartrisk validate`` accepts)."""
    return name == "days_to_failure" and {"infusion_date", "failure_date"} <= set(frame.columns)


def _grouper_from(spec: Mapping[str, Any]):
    from cartrisk.riskgroups import RiskGrouper

    grouper = RiskGrouper(method=spec["method"], horizon_months=float(spec["horizon_months"]),
                          labels=list(spec["labels"]))
    grouper.cutpoints_ = np.asarray(spec["cutpoints"], dtype=float)
    grouper.n_groups_ = len(spec["labels"])
    grouper.labels_ = list(spec["labels"])
    return grouper


def load_bundle(path: str | Path) -> Bundle:
    """Verify and load a bundle folder.

    Checks, in order, before anything is deserialised: every file's SHA-256 against ``MANIFEST.json``
    (a changed, missing or added file is named), then the major.minor versions of scikit-learn,
    scikit-survival (and XGBoost for XGBoost families) against the installed ones; then loads the pipeline
    from skops with cartrisk's type allow-list (never pickle) and the booster from XGBoost JSON.

    Raises
    ------
    BundleError
        Not a bundle, altered file, incompatible versions, or an untrusted type in the pipeline file.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: no such bundle folder (export one with `cartrisk export`)")
    fingerprint = _bundle.verify_manifest(path)
    info = _bundle.read_json(path / "bundle.json")
    if info.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path / 'bundle.json'}: bundle format {info.get('format')!r}; this cartrisk reads "
                          f"format {BUNDLE_FORMAT}")
    booster = path / _bundle.BOOSTER_FILE
    _bundle.check_versions(info["versions"], xgboost=booster.is_file())
    pipeline = _bundle.load_pipeline(path / _bundle.PIPELINE_FILE, booster=booster if booster.is_file() else None)
    groups = path / "risk_groups.json"
    return Bundle(path, pipeline, info, _bundle.read_json(path / "schema.json"),
                  _bundle.read_json(groups) if groups.is_file() else None,
                  _bundle.read_json(path / "performance.json"), fingerprint)


def load_model(ref: str, *, tracking_uri: str | None = None):
    """The fitted pipeline behind a bundle folder, a skops file, or an MLflow run id.

    Parameters
    ----------
    ref : str
        A bundle folder (verified as :func:`load_bundle` does), a ``.skops`` file, or the id of an MLflow run
        that logged ``model/pipeline.skops`` (:meth:`cartrisk.tracking.Tracker.log_pipeline`).
    tracking_uri : str, optional
        MLflow tracking URI for a run id (default :data:`cartrisk.tracking.DEFAULT_TRACKING_URI`).

    Returns
    -------
    SurvivalPipeline
    """
    candidate = Path(ref)
    if candidate.is_dir():
        return load_bundle(candidate).pipeline
    if candidate.is_file() and candidate.suffix == ".skops":
        return _bundle.load_pipeline(candidate, allowed=_bundle.RUN_TRUSTED_TYPES)
    if _RUN_ID.match(str(ref)):
        from cartrisk._runs import pipeline_from_run

        return pipeline_from_run(str(ref), tracking_uri=tracking_uri)
    raise BundleError(f"{ref}: neither a bundle folder, a .skops file nor an MLflow run id (32 hex characters)")


# ================================================================================================ export
def export_bundle(
    pipeline,
    out_dir: str | Path,
    *,
    name: str,
    training_frame: pd.DataFrame | None = None,
    X: pd.DataFrame | None = None,
    y: np.ndarray | None = None,
    cv_result=None,
    calibration: Mapping[float, Any] | None = None,
    risk_groups=None,
    concordance: pd.DataFrame | None = None,
    comparison=None,
    metadata: Mapping[str, Any] | None = None,
    horizons_months: tuple[float, ...] = DEFAULT_HORIZONS_MONTHS,
    overwrite: bool = False,
    tracker=None,
    register: bool = False,
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
        The validated training cohort (:func:`cartrisk.schema.validate`), or give ``X`` and ``y``.
    X, y : DataFrame and structured array, optional
        Training covariates and OS-2 target (:func:`cartrisk.schema.to_xy`).
    cv_result : CVResult, DataFrame or mapping, optional
        Outer cross-validation of this pipeline: a :class:`~cartrisk.evaluation.CVResult`, its
        ``summary()``, or MLflow metrics named ``<metric>[_<h>m]_<mean|lower|upper>``.
    calibration : mapping of horizon (months) to HorizonCalibration, optional
        Default: computed from the out-of-fold survival of ``cv_result`` when it has them.
    risk_groups : RiskGrouper, array of cut-points, or None
        A fitted :class:`~cartrisk.riskgroups.RiskGrouper`, or risk-score cut-points (low -> high). None fits
        two groups on the training risk scores, the high one as large as the published D0-30 share.
    concordance : DataFrame, optional
        Literature concordance table (``cartrisk.explain``).
    comparison : mapping of label to CVResult, or GroupComparison, optional
        The D0-30 rule (and others) on the same folds, or :func:`cartrisk.riskgroups.compare_groupings`.
    metadata : mapping, optional
        Free information kept in ``bundle.json``; keys the card reads: ``description``, ``data_source``,
        ``simulated`` (bool; inferred from ``SIM-`` identifiers when absent), ``validation`` (design in words),
        ``experiment``, ``seed``, ``source_run_id``.
    horizons_months : tuple of float
        Horizons of the survival probabilities that scoring reports.
    overwrite : bool
        Replace an existing bundle of that name.
    tracker : Tracker, optional
        With ``register=True``: log the bundle to this MLflow store and register it as a pyfunc model.
    register : bool

    Returns
    -------
    Path
        The bundle folder.
    """
    from cartrisk import modelcard
    from cartrisk._bundle_info import (
        input_schema,
        model_description,
        performance_section,
        risk_group_section,
    )
    from cartrisk.simreport import cohort_summary
    from cartrisk.tracking import provenance

    if not isinstance(name, str) or not _NAME.match(name):
        raise BundleError(f"bundle name {name!r} must be 1-100 letters, digits, '.', '_' or '-', starting with a "
                          "letter or digit")
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
    provenance_info = provenance()
    versions = {k.removeprefix("version."): v for k, v in provenance_info.items() if k.startswith("version.")}
    info = {
        "format": BUNDLE_FORMAT,
        "name": name,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model_description(pipeline),
        "horizons_months": horizons,
        "training": {**cohort_summary(y, X, horizons), "data_sha256": frame_hash(frame_for_hash)},
        "versions": versions,
        "provenance": {k: v for k, v in provenance_info.items() if not k.startswith("version.")},
        "metadata": meta,
    }
    schema = input_schema(pipeline, X)
    groups = risk_group_section(pipeline, X, risk_groups, y, horizons)
    performance = performance_section(cv_result, calibration, comparison, concordance, y, meta)

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        _bundle.dump_pipeline(pipeline, staging)
        _bundle.write_json(staging / "bundle.json", info)
        _bundle.write_json(staging / "schema.json", schema)
        _bundle.write_json(staging / "performance.json", performance)
        if groups is not None:
            _bundle.write_json(staging / "risk_groups.json", groups)
        card = modelcard.render(_bundle.read_json(staging / "bundle.json"), _bundle.read_json(staging / "schema.json"),
                                _bundle.read_json(staging / "risk_groups.json") if groups is not None else None,
                                _bundle.read_json(staging / "performance.json"))
        (staging / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        _bundle.write_manifest(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    if register:
        if tracker is None:
            raise BundleError("register=True needs a tracker (the MLflow store to register the model in)")
        tracker.register_bundle(target, name, source_run_id=meta.get("source_run_id"))
    return target


def _training_data(training_frame, X, y) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray | None]:
    """(X, y, the frame whose hash identifies the data, patient ids or None)."""
    if training_frame is not None:
        if X is not None or y is not None:
            raise BundleError("give either training_frame or X and y, not both")
        X, y = to_xy(training_frame)
        ids = training_frame["patient_id"].to_numpy() if "patient_id" in training_frame else None
        # Same convention as cartrisk.datasets: the validated frame without identifiers.
        return X, y, training_frame.drop(columns=["patient_id"], errors="ignore"), ids
    if X is None or y is None:
        raise BundleError("export needs the training data: training_frame, or X and y")
    event_field, time_field = y.dtype.names
    content = X.assign(**{time_field: y[time_field], event_field: y[event_field].astype(np.int64)})
    return X, y, content, None


def summary_line(bundle: Bundle) -> str:
    """One line for people: name, family, training size, fingerprint."""
    t = bundle.info["training"]
    return (f"{bundle.name}: {bundle.info['model']['family']} trained on {t['n']:,} patients ({t['events']:,} deaths), "
            f"fingerprint {bundle.fingerprint[:16]}")
