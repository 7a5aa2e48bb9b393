"""The estimator registry: every model family by name, built with ``make_estimator(name, **params)``."""

from __future__ import annotations

from ._base import SurvivalEstimator
from .boosting import GBSA
from .forest import RSF, ExtraTrees
from .linear import Coxnet, CoxPH
from .xgb import XGBAFT, XGBCox

__all__ = ["ESTIMATORS", "make_estimator"]

_CLASSES: dict[str, type[SurvivalEstimator]] = {
    "coxph": CoxPH,
    "coxnet": Coxnet,
    "rsf": RSF,
    "extra_trees": ExtraTrees,
    "gbsa": GBSA,
    "xgb_cox": XGBCox,
    "xgb_aft": XGBAFT,
}

#: The registered family names, in a stable order (linear, forests, boosting).
ESTIMATORS: tuple[str, ...] = tuple(_CLASSES)


def make_estimator(name: str, **params) -> SurvivalEstimator:
    """A new, unfitted estimator of family ``name``.

    Parameters
    ----------
    name : str
        One of :data:`ESTIMATORS`.
    **params
        Hyper-parameters of that family (see its class); an unknown one raises scikit-learn's ValueError
        naming the valid ones.

    Returns
    -------
    SurvivalEstimator

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the known names.
    """
    try:
        cls = _CLASSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown estimator {name!r}; known estimators: {', '.join(ESTIMATORS)}") from None
    return cls().set_params(**params)
