"""Model bundles: export a fitted pipeline with its evidence as a verified folder, load it, score new patients.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "ALLOWED_TYPES": "serialise",
    "BUNDLE_FORMAT": "scoring",
    "Bundle": "scoring",
    "BundleValidation": "validation",
    "Evidence": "export",
    "ScoreReport": "scoring",
    "Signature": "signing",
    "TRUSTED_KEYS_ENV": "signing",
    "TRIPOD_AI_ITEMS": "modelcard",
    "TRUSTED_TYPES": "serialise",
    "UpdateResult": "updating",
    "dump_pipeline": "serialise",
    "export_bundle": "export",
    "generate_keypair": "signing",
    "load_bundle": "scoring",
    "load_pipeline": "serialise",
    "outside_training_counts": "aggregates",
    "provenance": "provenance",
    "score_distribution": "aggregates",
    "sign_bundle": "signing",
    "summary_line": "scoring",
    "update_bundle": "updating",
    "validate_bundle": "validation",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
