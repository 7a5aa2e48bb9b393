"""Workflows that compose the packages: an experiment file in, results (and MLflow runs) out. ``evaluate``,
the quickstart (the main job end to end) and the HTML report.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "DescribeResult": "describe",
    "EvaluationReport": "evaluate",
    "QuickstartResult": "quickstart",
    "SECTIONS": "report",
    "build_report": "report",
    "describe_generic": "describe",
    "describe_registry": "describe",
    "evaluate_experiment": "evaluate",
    "quickstart_experiment": "quickstart",
    "render_report": "report",
    "run_quickstart": "quickstart",
    "summary_table": "evaluate",
    "write_describe": "describe",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
