"""SHAP explanations of a fitted pipeline for every model family, their figures, and their agreement
with the literature's established risk factors.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "Explanation": "explanation",
    "STATUSES": "literature",
    "concordance": "literature",
    "concordance_markdown": "literature",
    "explain": "shap",
    "factor_exposure": "literature",
    "write_figures": "figures",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
