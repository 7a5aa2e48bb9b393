"""Feature sets and preprocessing, as one scikit-learn transformer that lives inside the pipeline.

:class:`FeatureBuilder` derives the library's own features (failure window,
LDH / ULN ratios, log scales), selects a named feature set or a custom list
(resolved by :func:`resolve_features`), and runs a ColumnTransformer (imputation
with missing indicators, one-hot or reference-level coding, optional scaling).
Everything statistical is fitted in ``fit``, so inside a cross-validated pipeline
it sees the training fold only.

Every named set includes the time from infusion to failure: OS-2 starts at the
failure date, so it is known for every patient, and it is the quantity the
reference D0-30 rule uses. The ``infusion``, ``relapse`` and ``infusion+relapse``
sets carry it as ``log2_days_to_failure`` and ``failure_window``, the
``literature`` set as its published D0-30 coding (``failure_d0_30``). Each set
therefore asks what its covariates add beyond time to failure.

The feature-name rules (:func:`resolve_features`): a name is a data-dictionary
column, a feature cartrisk derives (``failure_window``, ``log2_*``, LDH ratios), a
literature coding (``ldh_gt_uln_infusion``...), a named set (expanded in place), a
column the site declared in ``[data.extra]``, or, on the generic path (data that
are not a registry extract), any column of the data. Anything else is a
:class:`~cartrisk.exceptions.ConfigError` naming it and the closest known names.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from typing import Any

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
from cartrisk.modelling._direct import DIRECT_ROWS, direct_transform

__all__ = ["CODINGS", "FEATURE_SETS", "FeatureBuilder", "derive_features", "feature_inputs", "feature_set_columns",
           "known_feature_names", "resolve_features"]

_KNOWN = {c.name: c for c in COLUMNS}
_OUTCOME = ("os2_days", "os2_event", "patient_id", "infusion_date", "failure_date", "last_contact_date")
#: Outcomes observed after time zero: never predictors, whatever the settings.
_LATER_OUTCOMES = ("pfs2_days", "pfs2_event")
#: Categorical coding: full one-hot (trees), or one level dropped as the named reference (linear models).
CODINGS = ("auto", "onehot", "reference")
_MISSING_LEVEL = "missing"

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


@functools.cache
def _coding_columns() -> dict[str, str]:
    """Literature coding -> the column it codes (read once: the literature file does not change in a process)."""
    return {k["name"]: k["column"] for k in feature_codings()}


def _inputs(name: str) -> tuple[str, ...]:
    """The data columns a feature (raw, derived or literature coding) is computed from; the first names it."""
    name = _coding_columns().get(name, name)
    return _DERIVED_SOURCES.get(name, (name,))


def feature_inputs(features: Iterable[str]) -> list[str]:
    """The data columns a list of features reads (derived features and codings expanded to their inputs)."""
    return list(dict.fromkeys(c for f in features for c in _inputs(f)))


def _named(*roles: str) -> list[str]:
    cols = ["days_to_failure"] + [c.name for c in columns_by_role(*roles)]
    out: list[str] = []
    for c in cols:
        out += list(_REPLACED.get(c, (c,)))
    return list(dict.fromkeys(out))


#: The named sets. CRS and ICANS (``post_infusion``: after infusion, before failure) are known at failure, so the
#: relapse-time sets use them and the ``infusion`` set does not.
FEATURE_SETS: dict[str, list[str]] = {
    "infusion": _named("infusion"),
    "relapse": _named("post_infusion", "relapse"),
    "infusion+relapse": _named("infusion", "post_infusion", "relapse"),
}
_SET_NAMES = (*FEATURE_SETS, "literature")


def feature_set_columns(feature_set: str | list[str] | tuple[str, ...]) -> list[str]:
    """The features (after derivation) of a named set, or a custom list as given (set names expanded)."""
    if isinstance(feature_set, list | tuple):
        out: list[str] = []
        for name in feature_set:
            out += feature_set_columns(name) if name in _SET_NAMES else [name]
        return list(dict.fromkeys(out))
    if feature_set == "literature":
        return literature_features()
    if feature_set not in FEATURE_SETS:
        known = ", ".join(_SET_NAMES)
        raise ConfigError(f"unknown feature set '{feature_set}'; known sets: {known}, or a list of columns")
    return list(FEATURE_SETS[feature_set])


def known_feature_names() -> list[str]:
    """Every feature name cartrisk itself knows: dictionary covariates, derived features, literature codings."""
    return list(dict.fromkeys([c.name for c in COLUMNS if c.role not in ("id", "date") and c.name not in _OUTCOME]
                              + list(_DERIVED_SOURCES) + [k["name"] for k in feature_codings()]
                              + literature_features()))


def _closest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    return f" (closest: {', '.join(close)})" if close else ""


def _check_leaks(wanted: list[str], allow_after_failure: bool, where: str) -> None:
    leaks = [c for c in wanted if c in _OUTCOME]
    if leaks:
        raise ConfigError(f"{where}: feature(s) {', '.join(leaks)} are the outcome or identify the patient; "
                          "remove them from the feature list")
    later = [c for c in wanted if c in _LATER_OUTCOMES]
    if later:
        raise ConfigError(f"{where}: {', '.join(later)} are PFS-2, an outcome observed after the failure date (time "
                          "zero of OS-2): never a predictor, even with allow_after_failure; remove them")
    after = [c for c in wanted if c in _KNOWN and _KNOWN[c].role == "after_failure"]
    if after and not allow_after_failure:
        raise ConfigError(
            f"{where}: feature(s) {', '.join(after)} are decided or observed after the failure date (time zero of "
            "OS-2) and are confounded by indication, so they are no prognostic predictor; remove them, or set "
            "allow_after_failure = true to study them as an adjustment")


def resolve_features(feature_set: str | list[str] | tuple[str, ...], columns: Iterable[str] | None = None, *,
                     declared: Mapping[str, Any] | Iterable[str] | None = None, allow_after_failure: bool = False,
                     registry: bool | None = None, where: str = "features.set") -> list[str]:
    """The features of a feature set, every name checked: the one place that decides which names are valid.

    Parameters
    ----------
    feature_set : str or list of str
        A named set (``infusion``, ``relapse``, ``infusion+relapse``, ``literature``) or a list of names; a
        list may hold set names, which are expanded in place.
    columns : iterable of str, optional
        The columns of the data the features will be computed from (a registry extract's validated columns,
        or a generic data set's covariates). When given, a named set must be computable in part and every
        name listed on its own must be computable.
    declared : mapping or iterable of str, optional
        The site's declared covariates (``[data.extra]``: names, or name -> declaration).
    allow_after_failure : bool, default False
        Whether after-failure columns (``salvage``) may be used, as an adjustment.
    registry : bool, optional
        Whether the data are a registry extract. On a registry extract a column that the dictionary does not
        know must be declared; on the generic path any column of the data is a feature. Default: a registry
        extract when ``columns`` is None or holds ``days_to_failure``.
    where : str
        The file and key named in messages.

    Returns
    -------
    list of str
        The features in order, without repeats (those of a named set may be absent from ``columns``:
        :class:`FeatureBuilder` skips what the data lack).

    Raises
    ------
    ConfigError
        An unknown set or feature name (every one, with the closest known names), a list that is empty or names
        a feature twice, an outcome or the identifier, an outcome observed after time zero (PFS-2), an
        after-failure column without ``allow_after_failure``, a column of a registry extract that is neither in
        the dictionary nor declared, a listed feature whose data column the data lack, or a named set none of
        whose features the data hold.
    """
    cols = [str(c) for c in columns] if columns is not None else []
    present = set(cols)
    if registry is None:
        registry = columns is None or "days_to_failure" in present
    if isinstance(feature_set, str):
        if feature_set not in _SET_NAMES:
            raise ConfigError(f"{where}: unknown feature set '{feature_set}'; known sets: {', '.join(_SET_NAMES)}, or "
                              f"a list of columns{_closest(feature_set, _SET_NAMES)}")
        wanted = feature_set_columns(feature_set)
        if columns is not None and not any(f in present or all(c in present for c in _inputs(f)) for f in wanted):
            raise ConfigError(f"{where}: none of the features of set {feature_set!r} can be computed from the data "
                              f"(looked for: {', '.join(wanted)}); the data have: {', '.join(sorted(present))}")
        _check_leaks(wanted, allow_after_failure, where)
        return wanted
    if not isinstance(feature_set, list | tuple) or not feature_set:
        raise ConfigError(f"{where}: give a feature set name or a non-empty list of columns, got {feature_set!r}")
    listed = [str(f) for f in feature_set]
    duplicated = sorted({f for f in listed if listed.count(f) > 1})
    if duplicated:
        raise ConfigError(f"{where}: feature(s) {', '.join(duplicated)} listed more than once; list each once")
    wanted = feature_set_columns(listed)
    _check_leaks(wanted, allow_after_failure, where)
    known = set(known_feature_names()) | set(declared or ()) | (set() if registry else present)
    undeclared = [f for f in wanted if f not in known and registry and f in present]
    if undeclared:
        name = undeclared[0]
        raise ConfigError(f"{where}: '{name}' is a column of the extract but neither in the data dictionary nor "
                          f"declared; declare it in [data.extra.{name}] (kind, role, unit, range or levels) to "
                          "use it as a feature")
    unknown = [f for f in wanted if f not in known]
    if unknown:
        pool = known | set(_SET_NAMES) | present
        names = ", ".join(f"'{f}'{_closest(f, pool)}" for f in unknown)
        raise ConfigError(f"{where}: unknown feature(s) {names}: not a data-dictionary column, a feature cartrisk "
                          f"derives, a literature coding, a feature set"
                          + (", a declared column ([data.extra])" if registry else ", or a column of the data")
                          + ". Fix: correct the name"
                          + (", or declare the site's own column in [data.extra]" if registry else ""))
    if columns is not None:
        alone = [f for f in listed if f not in _SET_NAMES]
        absent = [f for f in alone if f not in present and not all(c in present for c in _inputs(f))]
        if absent:
            needs = "; ".join(f"{f} needs {', '.join(c for c in _inputs(f) if c not in present)}" for f in absent)
            raise ConfigError(f"{where}: feature(s) {', '.join(absent)} cannot be computed: the data lack their "
                              f"column(s) ({needs}); add the column(s) to the data or remove the feature(s)")
    return wanted


def _is_categorical(name: str, frame: pd.DataFrame, declared: Mapping[str, Any]) -> bool:
    if name in declared:
        return _kind(declared[name]) == "category"
    if name in _KNOWN:
        return _KNOWN[name].kind in ("category", "string")
    if name == "failure_window":
        return True
    return not pd.api.types.is_numeric_dtype(frame[name])


def _kind(spec: Any) -> str:
    return spec.get("kind", "") if isinstance(spec, Mapping) else getattr(spec, "kind", "")


class FeatureBuilder(TransformerMixin, BaseEstimator):
    """Derive, select and preprocess covariates: the first step of every cartrisk pipeline.

    Parameters
    ----------
    feature_set : str or list of str, default="infusion+relapse"
        ``"infusion"``, ``"relapse"``, ``"infusion+relapse"``, ``"literature"`` or a list of
        names (see :func:`resolve_features`: dictionary, derived, literature codings, set names,
        declared columns, or any column of a generic data set).
    allow_after_failure : bool, default=False
        Allow after-failure columns (``salvage``). They are decided after the failure date, the
        time zero of OS-2, so they are no prognostic predictor. PFS-2 is never allowed.
    scale : bool, default=True
        Standardise numeric features (needed by Cox models, harmless for trees).
    add_indicator : bool, default=True
        Add a missing indicator for every numeric feature with missing training values.
    declared : dict or None, default=None
        The site's declared covariates, name -> declaration (``kind``, ``role``, ``unit``, ``min``,
        ``max``, ``levels``, ``meaning``: ``[data.extra]`` of an experiment). Declared names may be
        used in ``feature_set``; the declarations travel with the pipeline into a bundle.
    coding : {"auto", "onehot", "reference"}, default="auto"
        Coding of categorical features: ``onehot`` keeps every level (trees); ``reference`` drops
        one level per feature, the most frequent training level, named in ``reference_levels_``
        (linear models: an unpenalised Cox model then has no collinear columns). ``auto`` is
        ``onehot`` here; :func:`cartrisk.modelling.make_pipeline` sets it from the estimator.
    allow_suspect : tuple of str, default=()
        Columns the leakage guard lets through (``[features] allow_suspect``); recorded with the
        pipeline so that a bundle's model card names them.

    Attributes
    ----------
    columns_ : list of str
        Features used (present in the training frame).
    absent_columns_ : list of str
        Features of the set not present in the training frame (skipped).
    input_columns_ : list of str
        The data columns the fitted builder reads (derived features expanded to their inputs).
    categorical_ : list of str
        Features coded as categories (decided on the training frame).
    reference_levels_ : dict
        Categorical feature -> its reference level (``reference`` coding only; empty otherwise).
    feature_sources_ : dict
        Output feature name -> the data column(s) it comes from, for explanations.
    """

    def __init__(self, feature_set="infusion+relapse", allow_after_failure=False, scale=True, add_indicator=True,
                 declared=None, coding="auto", allow_suspect=()):
        self.feature_set = feature_set
        self.allow_after_failure = allow_after_failure
        self.scale = scale
        self.add_indicator = add_indicator
        self.declared = declared
        self.coding = coding
        self.allow_suspect = allow_suspect

    def fit(self, X: pd.DataFrame, y=None):
        """Learn imputation values, levels and scales from ``X`` (``y`` is accepted and ignored)."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError("FeatureBuilder needs a pandas DataFrame with named columns, got "
                            f"{type(X).__name__}")
        if self.coding not in CODINGS:
            raise ConfigError(f"FeatureBuilder coding must be one of {', '.join(CODINGS)}, got {self.coding!r}")
        declared = dict(self.declared or {})
        wanted = resolve_features(self.feature_set, X.columns, declared=declared,
                                  allow_after_failure=self.allow_after_failure)
        frame = derive_features(X)
        self.columns_ = [c for c in wanted if c in frame]
        self.absent_columns_ = [c for c in wanted if c not in frame]
        if not self.columns_:
            raise ConfigError(f"none of the features of set {self.feature_set!r} is in the data "
                              f"(looked for: {', '.join(wanted)})")
        cats = [c for c in self.columns_ if _is_categorical(c, frame, declared)]
        self.categorical_ = cats
        self.input_columns_ = feature_inputs(self.columns_)
        self.levels_seen_ = {c: sorted(set(map(str, frame[c].dropna()))) for c in cats}
        self.reference_levels_ = {}
        if self.coding == "reference":
            for c in cats:
                counts = frame[c].dropna().astype(str).value_counts()
                levels = sorted(counts.index, key=lambda lev: (-counts[lev], lev))
                self.reference_levels_[c] = levels[0] if levels else _MISSING_LEVEL
        nums = [c for c in self.columns_ if c not in cats]
        num_steps = [("impute", SimpleImputer(strategy="median", add_indicator=self.add_indicator,
                                              keep_empty_features=True))]
        if self.scale:
            num_steps.append(("scale", StandardScaler()))
        drop = [self.reference_levels_[c] for c in cats] if self.coding == "reference" and cats else None
        cat_steps = [("impute", SimpleImputer(strategy="constant", fill_value=_MISSING_LEVEL,
                                              keep_empty_features=True)),
                     ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False, drop=drop))]
        self.transformer_ = ColumnTransformer(
            [("num", Pipeline(num_steps), nums), ("cat", Pipeline(cat_steps), cats)],
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        self.transformer_.fit(self._select(frame, fitting=True))
        self.feature_names_out_ = np.asarray(self.transformer_.get_feature_names_out(), dtype=object)
        self.feature_sources_ = {name: self._source(name, cats) for name in self.feature_names_out_}
        self.n_features_in_ = X.shape[1]
        return self

    def _select(self, frame: pd.DataFrame, fitting: bool = False) -> pd.DataFrame:
        sel = frame.reindex(columns=self.columns_)
        for c in self.categorical_:  # decided at fit: a column's kind must not change between fit and transform
            values = sel[c].astype(object).where(sel[c].notna(), np.nan)
            if getattr(self, "reference_levels_", None):  # absent from builders fitted before reference coding
                values = values.where(values.isna(), values.astype(str))
                if not fitting:
                    # A level unseen in training (or a missing value when none was missing in training) is coded
                    # as the reference (all zeros), as one-hot coding codes it as none of the known levels; said
                    # here so that the encoder never meets an unknown level.
                    seen = self.levels_seen_[c]
                    had_missing = len(seen) < len(self._fitted_levels(c))
                    unseen = (values.notna() & ~values.isin(seen)) | (values.isna() & (not had_missing))
                    values = values.where(~unseen, self.reference_levels_[c])
            sel[c] = values
        return sel

    def _fitted_levels(self, column: str) -> list[str]:
        encoder = self.transformer_.named_transformers_["cat"].named_steps["onehot"]
        return [str(v) for v in encoder.categories_[self.categorical_.index(column)]]

    def _source(self, name: str, cats: list[str]) -> str:
        base = name.removeprefix("missingindicator_")
        if base not in self.columns_:
            base = next(c for c in sorted(cats, key=len, reverse=True) if name.startswith(c + "_"))
        return _inputs(base)[0]

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Derive and preprocess with the statistics learned in ``fit``.

        A few patients (scoring) take a direct numpy route from the fitted statistics, with the same result
        (:func:`cartrisk.modelling._direct.direct_transform`); larger frames scikit-learn's ColumnTransformer.
        """
        check_is_fitted(self, "transformer_")
        if isinstance(X, pd.DataFrame) and len(X) <= DIRECT_ROWS:
            out = direct_transform(self, X)
            if out is not None:
                return out
        return self.transformer_.transform(self._select(derive_features(X)))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_
