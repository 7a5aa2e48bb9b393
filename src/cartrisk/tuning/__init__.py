"""Optuna tuning by nested cross-validation: search spaces as data, the inner-CV objective, studies and their
storage, worker processes.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "FAMILY_PARAM": "search",
    "Objective": "search",
    "ObjectiveSpec": "search",
    "SearchSpace": "search",
    "StudyJob": "studies",
    "StudyResult": "nested",
    "Terminated": "studies",
    "TrackedObjective": "tracked",
    "default_storage": "studies",
    "fingerprint": "search",
    "join_experiment": "nested",
    "list_studies": "studies",
    "make_pruner": "search",
    "make_sampler": "search",
    "open_storage": "studies",
    "outer_splits": "nested",
    "prepare_studies": "studies",
    "run_study": "nested",
    "run_trials": "studies",
    "run_workers": "workers",
    "sigterm_as_interrupt": "studies",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
