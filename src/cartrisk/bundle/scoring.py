"""Load a verified bundle and score new patients with it.

:func:`load_bundle` verifies the checksums and package versions before anything is deserialised, and
:meth:`Bundle.score` validates new patients with the same checks as ``cartrisk validate``. The bundle's
files are described in :mod:`cartrisk.bundle.export`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartrisk.bundle import _format
from cartrisk.bundle._info import declared_from_schema
from cartrisk.bundle.aggregates import outside_training
from cartrisk.bundle.serialise import BOOSTER_FILE, PIPELINE_FILE, load_pipeline
from cartrisk.bundle.signing import (
    TRUSTED_KEYS_ENV,
    Signature,
    check_fingerprint,
    load_trusted_keys,
    trusted_keys_setting,
    verify_signature,
)
from cartrisk.data.schema import Problem, ValidationResult, validate
from cartrisk.exceptions import BundleError, SchemaError, StatisticalWarning
from cartrisk.groups import RiskGrouper
from cartrisk.units import months_to_days

__all__ = ["BUNDLE_FORMAT", "Bundle", "ScoreReport", "load_bundle", "summary_line"]

#: Version of the bundle layout. 2: the pipeline's classes live in the package layout (``cartrisk.modelling``...);
#: bundles of format 1 name the flat modules of cartrisk 0.1 and must be exported again.
BUNDLE_FORMAT = 2
# Rows predicted at once. Survival curves are built on the whole training time grid before being read at the
# horizons, and forests average (rows x times) arrays tree by tree: in blocks of 1,000 rows these stay in cache
# (100,000 patients, rsf: 81 s in one block, 19 s in blocks of 1,000; coxph 10.5 s -> 5.5 s; xgb_cox ~unchanged).
_CHUNK_ROWS = 1000


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
    typed : DataFrame or None
        The validated patients that were scored (for aggregates such as
        :func:`cartrisk.bundle.outside_training_counts`, without validating them again).
    """

    scores: pd.DataFrame
    skipped: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    typed: pd.DataFrame | None = field(default=None, repr=False)

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
    signature : Signature or None
        The verified signature (its key's fingerprint, and whether that key was trusted); None when unsigned.
    """

    def __init__(self, path: Path, pipeline, info: dict, schema: dict, risk_groups: dict | None,
                 performance: dict, fingerprint: str, signature: Signature | None = None) -> None:
        self.signature = signature
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

    def validate(self, frame: pd.DataFrame, *, source: str = "frame", require_outcome: bool = False
                 ) -> ValidationResult:
        """Validate patients against the data dictionary (the outcome only when ``require_outcome``, as external
        validation and updating need it) and the model's columns, declared covariates typed as declared.

        Returns :func:`cartrisk.data.schema.validate`'s result, with a problem for each column the model reads
        that the file lacks entirely (cells may be empty: the model imputes them; a missing column is
        usually a misnamed one). A generic-cohort bundle checks the file against its own schema
        (:func:`cartrisk.bundle._generic.validate_generic`).
        """
        if self.schema.get("cohort") == "generic":
            from cartrisk.bundle._generic import validate_generic

            return validate_generic(frame, self.schema, source=source, require_outcome=require_outcome)
        result = validate(frame, source=source, require_outcome=require_outcome,
                          extra=declared_from_schema(self.schema))
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
        return ScoreReport(scores, skipped, list(result.notices), typed)

    def score(self, frame: pd.DataFrame, *, source: str = "frame", skip_invalid: bool = False,
              explain: int = 0) -> pd.DataFrame:
        """Risk score, survival at each horizon and risk group of new patients, in input order.

        Parameters
        ----------
        frame : DataFrame
            Raw extract (as read by :func:`cartrisk.data.schema.read_extract`, or typed). Outcome columns are
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

    @property
    def grouper(self) -> RiskGrouper | None:
        """The fitted risk grouper of the bundle's cut-points (None when it stores no risk groups)."""
        return self._grouper

    def risk_group_of(self, risk: np.ndarray, Xt: pd.DataFrame) -> np.ndarray | None:
        """The risk group of patients whose risk scores are already computed (``Xt``: their transformed features,
        read only for a threshold grouping's survival at its horizon); None when the bundle has no groups."""
        if self._grouper is None:
            return None
        surv_h = None
        if self._grouper.method == "threshold":
            final = self.pipeline.steps[-1][1]
            at = [months_to_days(self._grouper.horizon_months)]
            surv_h = np.clip(np.asarray(final.predict_survival_at(Xt, at), dtype=float)[:, 0], 0.0, 1.0)
        return self._grouper.predict(risk, surv_h).astype(str)

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
        for found in outside_training(self.schema, typed):
            name, outside = found["column"], found["positions"]
            if "levels" in found:
                warnings.warn(f"{source}: column '{name}': {outside.size} patient(s) with level(s) "
                              f"{', '.join(found['levels'])} not seen in training; the model treats them as none of "
                              "the known levels", StatisticalWarning, stacklevel=3)
                continue
            numbers = outside[:5] if positions is None else np.asarray(positions)[outside[:5]]
            rows = ", ".join(str(i + 1) for i in numbers) + (", ..." if outside.size > 5 else "")
            warnings.warn(f"{source}: column '{name}': {outside.size} patient(s) outside the training range "
                          f"[{found['training_min']:g}, {found['training_max']:g}] (rows {rows}); their predictions "
                          "extrapolate beyond the data the model saw", StatisticalWarning, stacklevel=3)


def _derivable(name: str, frame: pd.DataFrame) -> bool:
    """``days_to_failure`` may come from the two dates instead (as ``cartrisk validate`` accepts)."""
    return name == "days_to_failure" and {"infusion_date", "failure_date"} <= set(frame.columns)


def _grouper_from(spec: Mapping[str, Any]) -> RiskGrouper:
    return RiskGrouper.from_cutpoints(spec["cutpoints"], method=spec["method"], labels=list(spec["labels"]),
                                      horizon_months=float(spec["horizon_months"]))


def load_bundle(path: str | Path, *, trust: Sequence[str | Path] | None = None,
                expect_fingerprint: str | None = None) -> Bundle:
    """Verify and load a bundle folder.

    Checks, in order, before anything is deserialised: every file's SHA-256 against ``MANIFEST.json``
    (a changed, missing or added file is named); the pinned fingerprint; the signature over the manifest
    (:mod:`cartrisk.bundle.signing`); then the major.minor versions of scikit-learn, scikit-survival (and
    XGBoost for XGBoost families) against the installed ones; then loads the pipeline from skops with
    cartrisk's type allow-list only (never pickle) and the booster from XGBoost JSON.

    Parameters
    ----------
    path : str or Path
        The bundle folder.
    trust : sequence of paths, optional
        Trusted Ed25519 public keys (``.pub`` files, or folders of them): the bundle must be signed by one of
        them. None: the trusted-keys setting (environment variable ``CARTRISK_TRUSTED_KEYS``) when it is set,
        else no signature is required (an unsigned bundle loads with ``signature = None``; a signed one must
        still match its signature). An empty sequence asks for no trust, whatever the setting.
    expect_fingerprint : str, optional
        The bundle's fingerprint (SHA-256 of its manifest, 64 hex digits): any other bundle is refused.

    Raises
    ------
    BundleError
        Not a bundle, altered file, another fingerprint than the one pinned, unsigned or untrusted (with
        ``trust``), a signature that does not match, incompatible versions, an untrusted type in the pipeline
        file, or a damaged booster file.
    """
    path = Path(path)
    pinned = None if expect_fingerprint is None else check_fingerprint(expect_fingerprint)
    if trust is None and trusted_keys_setting():
        trusted = load_trusted_keys(trusted_keys_setting(), where=TRUSTED_KEYS_ENV)
    else:
        trusted = load_trusted_keys(trust) if trust else None
    if not path.is_dir():
        raise BundleError(f"{path}: no such bundle folder (export one with `cartrisk export`)")
    fingerprint = _format.verify_manifest(path)
    if pinned is not None and fingerprint != pinned:
        raise BundleError(f"{path}: fingerprint {fingerprint} is not the expected {pinned} (--expect-fingerprint): "
                          "this is another bundle, or it was altered; refused")
    signature = verify_signature(path, trusted)
    info = _format.read_json(path / "bundle.json")
    if info.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path / 'bundle.json'}: bundle format {info.get('format')!r}; this cartrisk reads "
                          f"format {BUNDLE_FORMAT}: export the model again with this version (`cartrisk export`)")
    booster = path / BOOSTER_FILE
    _format.check_versions(info["versions"], xgboost=booster.is_file())
    pipeline = load_pipeline(path / PIPELINE_FILE, booster=booster if booster.is_file() else None)
    groups = path / "risk_groups.json"
    return Bundle(path, pipeline, info, _format.read_json(path / "schema.json"),
                  _format.read_json(groups) if groups.is_file() else None,
                  _format.read_json(path / "performance.json"), fingerprint, signature)


def summary_line(bundle: Bundle) -> str:
    """One line for people: name, family, training size, fingerprint."""
    t = bundle.info["training"]
    return (f"{bundle.name}: {bundle.info['model']['family']} trained on {t['n']:,} patients ({t['events']:,} deaths), "
            f"fingerprint {bundle.fingerprint[:16]}")
