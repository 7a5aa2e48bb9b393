"""MLflow tracking: the only package that imports mlflow. A client for runs, the pyfunc face of a bundle, and
the lookup of the runs that hold a model.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "DEFAULT_TRACKING_URI": "client",
    "Tracker": "client",
    "bundle_pyfunc_model": "pyfunc",
    "export_from_tracking": "runs",
    "flatten": "client",
    "load_model": "runs",
    "load_registered_model": "pyfunc",
    "pipeline_from_run": "runs",
    "register_bundle": "pyfunc",
    "resolve_run": "runs",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
