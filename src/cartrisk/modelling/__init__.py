"""Feature sets and preprocessing inside the pipeline, the survival pipeline, and the reference rules
(D0-30, its three-window form, the PC-PI) as estimators with the models' contract.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "build_features": "pipeline",
    "build_pipeline": "pipeline",
    "check_leakage": "leakage",
    "D0_30Rule": "rules",
    "feature_inputs": "features",
    "feature_set_columns": "features",
    "FEATURE_SETS": "features",
    "FeatureBuilder": "features",
    "known_feature_names": "features",
    "make_pipeline": "pipeline",
    "make_rule": "rules",
    "PCPI": "rules",
    "resolve_features": "features",
    "RULES": "rules",
    "SurvivalPipeline": "pipeline",
    "ThreeWindowRule": "rules",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
