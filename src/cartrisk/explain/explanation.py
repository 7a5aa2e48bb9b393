"""What an explanation holds: SHAP values of a set of patients and what they explain.

:class:`Explanation` is produced by :func:`cartrisk.explain.explain` and read by the literature
concordance (:mod:`cartrisk.explain.literature`) and the figures (:mod:`cartrisk.explain.figures`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from cartrisk.data.dictionary import COLUMNS

__all__ = ["Explanation", "encode_column"]

_LEVELS = {c.name: c.levels for c in COLUMNS if c.kind == "category"}


@dataclass(frozen=True)
class Explanation:
    """SHAP values of a set of patients, with what they explain.

    Attributes
    ----------
    values : DataFrame
        SHAP values, patients (index: patient id) x features.
    base_value : float
        The expected output: ``values.sum(axis=1) + base_value == predictions``.
    predictions : Series
        The explained output of each patient (the model's own, not rebuilt from the values).
    data : DataFrame
        The feature values explained (the model's input; for a column-level explanation the
        data-dictionary column, categories coded 0, 1, ... in the order of ``levels``).
    raw : DataFrame or None
        The patients' input rows (data-dictionary columns), for the literature concordance.
    feature_sources : dict
        Feature -> data-dictionary column.
    scale : str
        What the values are on, e.g. ``"survival probability at 6 months"``.
    output : {"risk", "survival"}
        Risk score (higher = worse) or survival probability (higher = better).
    horizon_months : float or None
        The horizon of a survival explanation.
    method : str
        ``"linear"``, ``"tree_path_dependent"``, ``"tree_interventional"``, ``"xgboost_tree_path_dependent"``,
        ``"brute_force"`` (exact Shapley over every coalition) or ``"permutation"`` (sampled).
    exact : bool
        False for sampled (approximate) values.
    model : str
        The family (``"coxph"``, ``"rsf"``, ...) or the estimator's class name.
    additivity_error : float
        max |values.sum(1) + base_value - predictions|.
    level : {"feature", "column"}
    levels : dict
        Column -> its category levels, for columns coded as integers in ``data``.
    """

    values: pd.DataFrame
    base_value: float
    predictions: pd.Series
    data: pd.DataFrame
    raw: pd.DataFrame | None
    feature_sources: dict[str, str]
    scale: str
    output: str
    horizon_months: float | None
    method: str
    exact: bool
    model: str
    additivity_error: float
    level: str = "feature"
    levels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def higher_is_worse(self) -> bool:
        """True for a risk score, False for a survival probability."""
        return self.output == "risk"

    def by_column(self) -> Explanation:
        """The explanation summed per data-dictionary column (one-hot levels, missing indicators, derived forms)."""
        if self.level == "column":
            return self
        sources = pd.Series(self.feature_sources).reindex(self.values.columns)
        columns = list(dict.fromkeys(sources))
        values = self.values.T.groupby(sources.to_numpy(), sort=False).sum().T.reindex(columns=columns)
        data, levels = {}, {}
        for name in columns:
            if self.raw is not None and name in self.raw:
                data[name], found = encode_column(self.raw[name], name)
                if found:
                    levels[name] = found
            else:
                data[name] = np.full(len(values), np.nan)
        frame = pd.DataFrame(data, index=values.index)
        return replace(self, values=values, data=frame, feature_sources={c: c for c in columns}, level="column",
                       levels=levels)

    def importance(self) -> pd.DataFrame:
        """Mean |SHAP| per feature (or column), with its rank (1 = most important) and share of the largest."""
        mean_abs = self.values.abs().mean().sort_values(ascending=False)
        return pd.DataFrame({
            "feature": mean_abs.index,
            "column": [self.feature_sources.get(f, f) for f in mean_abs.index],
            "mean_abs_shap": mean_abs.to_numpy(),
            "relative_importance": (mean_abs / mean_abs.max() if mean_abs.max() > 0 else mean_abs * 0).to_numpy(),
            "rank": np.arange(1, len(mean_abs) + 1),
        })

    def to_frame(self, wide: bool = False) -> pd.DataFrame:
        """A tidy table: one row per patient and feature (``wide=False``) or one row per patient.

        Long columns: ``patient_id, feature, column, feature_value, shap_value``. Wide: ``patient_id,
        prediction, base_value`` then one column of SHAP values per feature.
        """
        ids = self.values.index.astype(str)
        if wide:
            head = pd.DataFrame({"patient_id": ids, "prediction": self.predictions.to_numpy(),
                                 "base_value": self.base_value})
            return pd.concat([head, self.values.reset_index(drop=True)], axis=1)
        n, m = self.values.shape
        features = np.tile(self.values.columns.to_numpy(dtype=object), n)
        return pd.DataFrame({
            "patient_id": np.repeat(ids.to_numpy(dtype=object), m),
            "feature": features,
            "column": [self.feature_sources.get(f, f) for f in features],
            "feature_value": self.data.reindex(columns=self.values.columns).to_numpy(dtype=float).ravel(),
            "shap_value": self.values.to_numpy(dtype=float).ravel(),
        })


def encode_column(series: pd.Series, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """A column as floats; categories as codes 0, 1, ... (data-dictionary order, else sorted), NaN kept."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan), ()
    present = sorted(str(v) for v in series.dropna().unique())
    levels = tuple(_LEVELS.get(name, ())) + tuple(v for v in present if v not in _LEVELS.get(name, ()))
    codes = pd.Categorical(series.astype(object).where(series.notna(), None), categories=list(levels)).codes
    return np.where(codes < 0, np.nan, codes.astype(float)), levels
