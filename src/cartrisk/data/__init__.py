"""The cohort: the data dictionary, extract validation and derived columns, the simulated registry and its
report against the literature, and the data sets (files, simulated, public) an experiment reads.

Names are handed on from the modules on first use (:func:`cartrisk.lazy_exports`).
"""

from __future__ import annotations

from cartrisk import lazy_exports

_EXPORTS = {
    "COLUMNS": "dictionary",
    "Column": "dictionary",
    "Dataset": "datasets",
    "OUTCOME_COLUMNS": "schema",
    "Problem": "schema",
    "ROLES": "dictionary",
    "ValidationResult": "schema",
    "cohort_summary": "simreport",
    "cohort_table": "simreport",
    "column_title": "dictionary",
    "columns_by_role": "dictionary",
    "data_dictionary_frame": "dictionary",
    "data_dictionary_markdown": "dictionary",
    "declared_column": "dictionary",
    "declared_columns": "dictionary",
    "derive_features": "derive",
    "followup_median": "survstats",
    "frame_hash": "schema",
    "km_at": "survstats",
    "km_median": "survstats",
    "load_cohort": "schema",
    "load_dataset": "datasets",
    "pcpi_points": "derive",
    "planted_effects": "simulate",
    "read_extract": "schema",
    "screen_leakage": "leakage",
    "simulate": "simulate",
    "simulation_report": "simreport",
    "to_xy": "schema",
    "true_design": "simulate",
    "validate": "schema",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
