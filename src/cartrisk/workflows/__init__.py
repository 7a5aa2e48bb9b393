"""Workflows that compose the packages: an experiment file in, results (and MLflow runs) out. ``evaluate``,
the quickstart (the main job end to end) and the HTML report.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "build_report": "report",
    "cluster_validations": "heterogeneity",
    "describe_generic": "describe",
    "describe_registry": "describe",
    "DescribeResult": "describe",
    "estimate_text": "sections",
    "evaluate_experiment": "evaluate",
    "EvaluationReport": "evaluate",
    "header": "report",
    "LABELS": "report",
    "outline": "reportcheck",
    "p_text": "sections",
    "print_pdf": "pdf",
    "problems": "reportcheck",
    "quickstart_experiment": "quickstart",
    "QuickstartResult": "quickstart",
    "read_section": "sections",
    "render_folders": "report",
    "render_report": "report",
    "run_quickstart": "quickstart",
    "Section": "sections",
    "SECTIONS": "report",
    "summary_table": "evaluate",
    "tune_heterogeneity": "heterogeneity",
    "write_describe": "describe",
    "write_section": "sections",
    "write_subgroups": "heterogeneity",
    "write_validation": "validation",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
