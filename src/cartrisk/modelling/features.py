"""Feature sets and preprocessing, as one scikit-learn transformer that lives inside the pipeline.

:class:`FeatureBuilder` derives the library's own features (failure window,
LDH / ULN ratios, log scales), selects a named feature set or a custom column
list, and runs a ColumnTransformer (imputation with missing indicators,
one-hot encoding, optional scaling). Everything statistical is fitted in
``fit``, so inside a cross-validated pipeline it sees the training fold only.

Every set includes ``days_to_failure``: OS-2 starts at the failure date, so the
time from infusion to failure is known for every patient, and it is the
quantity the reference D0-30 rule uses. Each set therefore asks what its
covariates add beyond time to failure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from cartrisk.data.derive import derive_features
from cartrisk.data.dictionary import COLUMNS, columns_by_role
from cartrisk.data.literature import feature_codings, literature_features
from cartrisk.exceptions import ConfigError

__all__ = ["FEATURE_SETS", "FeatureBuilder", "derive_features", "feature_set_columns", "known_feature_names",
           "resolve_features"]

_KNOWN = {c.name: c for c in COLUMNS}
_OUTCOME = ("os2_days", "os2_event", "patient_id", "infusion_date", "failure_date", "last_contact_date")

# Derived feature -> the data-dictionary columns it is computed from.
_DERIVED_SOURCES: dict[str, tuple[str, ...]] = {
    "failure_window": ("days_to_failure",),
    "ldh_ratio_infusion": ("ldh_infusion", "ldh_uln"),
    "ldh_ratio_failure": ("ldh_failure", "ldh_uln"),
    "log2_days_to_failure": ("days_to_failure",),
    "log2_ldh_ratio_infusion": ("ldh_infusion", "ldh_uln"),
    "log2_ldh_ratio_failure": ("ldh_failure", "ldh_uln"),
    "log2_crp_infusion": ("crp_infusion",),
    "log2_ferritin_infusion": ("ferritin_infusion",),
}
# Raw columns replaced by their derived form in every named set.
_REPLACED = {"days_to_failure": ("log2_days_to_failure", "failure_window"),
             "ldh_infusion": ("log2_ldh_ratio_infusion",), "ldh_failure": ("log2_ldh_ratio_failure",),
             "crp_infusion": ("log2_crp_infusion",), "ferritin_infusion": ("log2_ferritin_infusion",),
             "ldh_uln": ()}


def _inputs(name: str) -> tuple[str, ...]:
    """The data columns a feature (raw, derived or literature coding) is computed from; the first names it."""
    code = next((k for k in feature_codings() if k["name"] == name), None)
    if code is not None:
        name = code["column"]
    return _DERIVED_SOURCES.get(name, (name,))


def _named(role: str) -> list[str]:
    cols = ["days_to_failure"] + [c.name for c in columns_by_role(role)]
    out: list[str] = []
    for c in cols:
        out += list(_REPLACED.get(c, (c,)))
    return list(dict.fromkeys(out))


FEATURE_SETS: dict[str, list[str]] = {
    "infusion": _named("infusion"),
    "relapse": _named("relapse"),
    "infusion+relapse": list(dict.fromkeys(_named("infusion") + _named("relapse"))),
}


def feature_set_columns(feature_set: str | list[str] | tuple[str, ...]) -> list[str]:
    """The features (after derivation) of a named set, or a custom list as given."""
    if isinstance(feature_set, list | tuple):
        return list(feature_set)
    if feature_set == "literature":
        return literature_features()
    if feature_set not in FEATURE_SETS:
        known = ", ".join([*FEATURE_SETS, "literature"])
        raise ConfigError(f"unknown feature set '{feature_set}'; known sets: {known}, or a list of columns")
    return list(FEATURE_SETS[feature_set])


def known_feature_names() -> list[str]:
    """Every feature name a list may use on registry data: data-dictionary columns, derived features and the
    literature codings (data columns of a generic data set are known too; see :func:`resolve_features`)."""
    codes = [c["name"] for c in feature_codings()]
    return list(dict.fromkeys([c.name for c in COLUMNS] + list(_DERIVED_SOURCES) + codes))


def _closest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    return f" (closest: {', '.join(close)})" if close else ""


def resolve_features(feature_set: str | list[str] | tuple[str, ...], columns, *, allow_after_failure: bool = False,
                     where: str = "features.set", declared: Iterable[str] = ()) -> list[str]:
    """The features of a feature set, checked against the columns of the data they will be computed from.

    Parameters
    ----------
    feature_set : str or list of str
        A named set (:data:`FEATURE_SETS` or ``"literature"``) or a list of feature names.
    columns : iterable of str
        The data's columns (before derivation: ``X`` of :func:`cartrisk.data.to_xy`, or a generic data set's
        covariates).
    allow_after_failure : bool, default False
        As :class:`FeatureBuilder`'s parameter.
    where : str
        The file and key that gave ``feature_set``, for messages.
    declared : iterable of str
        Further names a list may use (covariates an experiment declares beside the data dictionary); like every
        listed name, each must be a column of the data.

    Returns
    -------
    list of str
        The features that will be used: for a named set those whose data columns are present, for a list every
        name (each one checked).

    Raises
    ------
    ConfigError
        An unknown set or feature name (with the closest known names), an outcome or identifier column, an
        after-failure column without ``allow_after_failure``, a listed feature whose data column is not in the
        data, or a named set none of whose features the data hold.
    """
    present = set(map(str, columns))
    if isinstance(feature_set, str):
        if feature_set != "literature" and feature_set not in FEATURE_SETS:
            known = [*FEATURE_SETS, "literature"]
            raise ConfigError(f"{where}: unknown feature set {feature_set!r}{_closest(feature_set, known)}; known "
                              f"sets: {', '.join(known)}, or a list of columns")
        wanted = feature_set_columns(feature_set)
        usable = [f for f in wanted if f in present or all(c in present for c in _inputs(f))]
        if not usable:
            raise ConfigError(f"{where}: none of the features of set {feature_set!r} can be computed from the data "
                              f"(looked for: {', '.join(wanted)}); the data have: {', '.join(sorted(present))}")
        return usable
    if not isinstance(feature_set, list | tuple) or not feature_set:
        raise ConfigError(f"{where}: give a feature set name or a non-empty list of columns, got {feature_set!r}")
    wanted = [str(f) for f in feature_set]
    duplicated = sorted({f for f in wanted if wanted.count(f) > 1})
    if duplicated:
        raise ConfigError(f"{where}: feature(s) {', '.join(duplicated)} listed more than once; list each once")
    _check_leaks(wanted, allow_after_failure, where)
    known = known_feature_names() + list(declared)
    unknown = [f for f in wanted if f not in present and f not in known]
    if unknown:
        candidates = sorted(set(known) | present)
        listed = "; ".join(f"{f!r}{_closest(f, candidates)}" for f in unknown)
        raise ConfigError(f"{where}: unknown feature(s) {listed}. Use data-dictionary columns (`cartrisk columns`), "
                          "derived features or the data's own columns")
    absent = [f for f in wanted if f not in present and not all(c in present for c in _inputs(f))]
    if absent:
        needs = "; ".join(f"{f} needs {', '.join(c for c in _inputs(f) if c not in present)}" for f in absent)
        raise ConfigError(f"{where}: feature(s) {', '.join(absent)} cannot be computed: the data lack their column(s) "
                          f"({needs}); add the column(s) to the data or remove the feature(s)")
    return wanted


def _check_leaks(wanted: list[str], allow_after_failure: bool, where: str) -> None:
    leaks = [c for c in wanted if c in _OUTCOME]
    if leaks:
        raise ConfigError(f"{where}: feature(s) {', '.join(leaks)} are the outcome or identify the patient; "
                          "remove them from the feature list")
    after = [c for c in wanted if c in _KNOWN and _KNOWN[c].role == "after_failure"]
    if after and not allow_after_failure:
        raise ConfigError(
            f"{where}: feature(s) {', '.join(after)} are decided or observed after the failure date (time zero of "
            "OS-2) and are confounded by indication, so they are no prognostic predictor; remove them, or set "
            "allow_after_failure = true to study them as an adjustment")


def _is_categorical(name: str, frame: pd.DataFrame) -> bool:
    if name in _KNOWN:
        return _KNOWN[name].kind in ("category", "string")
    if name == "failure_window":
        return True
    return not pd.api.types.is_numeric_dtype(frame[name])


class FeatureBuilder(TransformerMixin, BaseEstimator):
    """Derive, select and preprocess covariates: the first step of every cartrisk pipeline.

    Parameters
    ----------
    feature_set : str or list of str, default="infusion+relapse"
        ``"infusion"``, ``"relapse"``, ``"infusion+relapse"``, ``"literature"`` or a list of
        columns (data-dictionary or derived names, or any column of a generic data set).
    allow_after_failure : bool, default=False
        Allow after-failure columns (``salvage``, PFS-2). They are decided or observed after
        the failure date, the time zero of OS-2, so they are no prognostic predictor.
    scale : bool, default=True
        Standardise numeric features (needed by Cox models, harmless for trees).
    add_indicator : bool, default=True
        Add a missing indicator for every numeric feature with missing training values.

    Attributes
    ----------
    columns_ : list of str
        Features used (present in the training frame).
    absent_columns_ : list of str
        Features of the set not present in the training frame (skipped).
    input_columns_ : list of str
        The data columns the fitted builder reads (derived features expanded to their inputs).
    categorical_ : list of str
        Features one-hot encoded (decided on the training frame).
    feature_sources_ : dict
        Output feature name -> the data column(s) it comes from, for explanations.
    """

    def __init__(self, feature_set="infusion+relapse", allow_after_failure=False, scale=True, add_indicator=True):
        self.feature_set = feature_set
        self.allow_after_failure = allow_after_failure
        self.scale = scale
        self.add_indicator = add_indicator

    def _check_columns(self, wanted: list[str], X: pd.DataFrame) -> None:
        if isinstance(self.feature_set, list | tuple):  # a named set may skip what the data lack, a list may not
            resolve_features(self.feature_set, X.columns, allow_after_failure=self.allow_after_failure,
                             where="feature_set")
        _check_leaks(wanted, self.allow_after_failure, "feature_set")

    def fit(self, X: pd.DataFrame, y=None):
        """Learn imputation values, levels and scales from ``X`` (``y`` is accepted and ignored)."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError("FeatureBuilder needs a pandas DataFrame with named columns, got "
                            f"{type(X).__name__}")
        wanted = feature_set_columns(self.feature_set)
        self._check_columns(wanted, X)
        frame = derive_features(X)
        self.columns_ = [c for c in wanted if c in frame]
        self.absent_columns_ = [c for c in wanted if c not in frame]
        if not self.columns_:
            raise ConfigError(f"none of the features of set {self.feature_set!r} is in the data "
                              f"(looked for: {', '.join(wanted)})")
        cats = [c for c in self.columns_ if _is_categorical(c, frame)]
        self.categorical_ = cats
        self.input_columns_ = list(dict.fromkeys(c for f in self.columns_ for c in _inputs(f)))
        nums = [c for c in self.columns_ if c not in cats]
        num_steps = [("impute", SimpleImputer(strategy="median", add_indicator=self.add_indicator,
                                              keep_empty_features=True))]
        if self.scale:
            num_steps.append(("scale", StandardScaler()))
        cat_steps = [("impute", SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True)),
                     ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]
        self.transformer_ = ColumnTransformer(
            [("num", Pipeline(num_steps), nums), ("cat", Pipeline(cat_steps), cats)],
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        self.transformer_.fit(self._select(frame))
        self.feature_names_out_ = np.asarray(self.transformer_.get_feature_names_out(), dtype=object)
        self.feature_sources_ = {name: self._source(name, cats) for name in self.feature_names_out_}
        self.n_features_in_ = X.shape[1]
        return self

    def _select(self, frame: pd.DataFrame) -> pd.DataFrame:
        sel = frame.reindex(columns=self.columns_)
        for c in self.categorical_:  # decided at fit: a column's kind must not change between fit and transform
            sel[c] = sel[c].astype(object).where(sel[c].notna(), np.nan)
        return sel

    def _source(self, name: str, cats: list[str]) -> str:
        base = name.removeprefix("missingindicator_")
        if base not in self.columns_:
            base = next(c for c in sorted(cats, key=len, reverse=True) if name.startswith(c + "_"))
        return _inputs(base)[0]

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Derive and preprocess with the statistics learned in ``fit``."""
        check_is_fitted(self, "transformer_")
        return self.transformer_.transform(self._select(derive_features(X)))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_
