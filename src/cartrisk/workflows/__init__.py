"""Workflows that compose the packages: an experiment file in, results (and MLflow runs) out. ``evaluate``,
the quickstart (the main job end to end) and the HTML report.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "EvaluationReport": "evaluate",
    "QuickstartResult": "quickstart",
    "SECTIONS": "report",
    "build_report": "report",
    "cluster_validations": "heterogeneity",
    "evaluate_experiment": "evaluate",
    "quickstart_experiment": "quickstart",
    "render_folders": "report",
    "render_report": "report",
    "run_quickstart": "quickstart",
    "summary_table": "evaluate",
    "tune_heterogeneity": "heterogeneity",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
