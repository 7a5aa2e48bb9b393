"""Workflows that compose the packages: an experiment file in, results (and MLflow runs) out. ``evaluate``,
the quickstart (the main job end to end) and the HTML report.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "EvaluationReport": "evaluate",
    "LABELS": "report",
    "QuickstartResult": "quickstart",
    "SECTIONS": "report",
    "Section": "sections",
    "build_report": "report",
    "estimate_text": "sections",
    "evaluate_experiment": "evaluate",
    "header": "report",
    "p_text": "sections",
    "print_pdf": "pdf",
    "quickstart_experiment": "quickstart",
    "read_section": "sections",
    "render_report": "report",
    "outline": "reportcheck",
    "problems": "reportcheck",
    "run_quickstart": "quickstart",
    "summary_table": "evaluate",
    "write_section": "sections",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
