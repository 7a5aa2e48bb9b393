"""What may be logged about a scored cohort: aggregates, never a patient's row, identifier or own values.

The scored patients themselves (:meth:`cartrisk.bundle.Bundle.score`) go only to a file the user names. For
MLflow and the HTML report these functions summarise them: the distribution of the scores by risk group, and
per column the number of patients outside the training range. A group smaller than :data:`MIN_CELL` patients
is counted but not described (its mean would come close to one patient's own value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MIN_CELL", "outside_training", "outside_training_counts", "score_distribution"]

#: The fewest patients whose scores are described together (a smaller group is counted only).
MIN_CELL = 5


def score_distribution(scores: pd.DataFrame) -> pd.DataFrame:
    """The risk scores and survival probabilities of a scored cohort, summarised per risk group and overall.

    Parameters
    ----------
    scores : DataFrame
        :meth:`Bundle.score`'s output (``risk_score``, ``survival_<h>m``, optionally ``risk_group``).

    Returns
    -------
    DataFrame
        One row per risk group and one for ``all``: ``group``, ``n_patients``, ``share``, the 10th, 50th and 90th
        percentiles of ``risk_score``, and the mean of each ``survival_<h>m``; the statistics are empty for a
        group of fewer than :data:`MIN_CELL` patients.
    """
    survival = [c for c in scores.columns if c.startswith("survival_")]
    groups: list[tuple[str, pd.DataFrame]] = []
    if "risk_group" in scores:
        groups += [(str(g), part) for g, part in scores.groupby("risk_group", sort=True)]
    groups.append(("all", scores))
    rows = []
    for label, part in groups:
        row: dict[str, Any] = {"group": label, "n_patients": len(part), "share": len(part) / max(len(scores), 1)}
        described = len(part) >= MIN_CELL
        risk = part["risk_score"].to_numpy(dtype=float)
        for q in (10, 50, 90):
            row[f"risk_score_p{q}"] = float(np.percentile(risk, q)) if described else np.nan
        for column in survival:
            row[f"{column}_mean"] = float(part[column].mean()) if described else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def outside_training(schema: Mapping[str, Any], typed: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Per column of a bundle's schema, the patients outside its training range or with a level unseen in
    training: ``column``, ``problem``, ``positions`` (rows of ``typed``), and ``training_min``/``training_max``
    or the unseen ``levels``. The one check behind the scoring warnings and :func:`outside_training_counts`."""
    found: list[dict[str, Any]] = []
    for col in schema.get("columns", []) if typed is not None else []:
        name = col["name"]
        if name not in typed:
            continue
        values = typed[name]
        if col.get("levels") is not None:  # the distinct values first: a large batch is read once
            unseen = sorted(set(map(str, values.dropna().unique())) - set(col["levels"]))
            if unseen:
                where = np.flatnonzero((values.notna() & values.astype(str).isin(unseen)).to_numpy())
                found.append({"column": name, "problem": "level not seen in training", "positions": where,
                              "levels": unseen})
            continue
        lo, hi = col.get("train_min"), col.get("train_max")
        if lo is None or hi is None:
            continue
        x = values.to_numpy(dtype=float, na_value=np.nan)
        where = np.flatnonzero((x < lo) | (x > hi))
        if where.size:
            found.append({"column": name, "problem": "outside training range", "positions": where,
                          "training_min": lo, "training_max": hi})
    return found


def outside_training_counts(schema: Mapping[str, Any], typed: pd.DataFrame | None) -> pd.DataFrame:
    """Per column, how many patients lie outside the training range or hold a level unseen in training.

    The warnings :meth:`Bundle.score` prints name row numbers for the user at the terminal; this is their
    loggable form: counts only, with the training range (already part of the bundle), no rows, no values.

    Parameters
    ----------
    schema : mapping
        The bundle's ``schema.json`` (``columns`` with ``train_min``, ``train_max``, ``levels``).
    typed : DataFrame or None
        The validated cohort (:meth:`Bundle.validate`'s ``frame``); None gives an empty table.

    Returns
    -------
    DataFrame
        ``column``, ``problem`` (``outside training range`` or ``level not seen in training``), ``n_patients``,
        ``training_min``, ``training_max``: one row per column with at least one such patient.
    """
    rows = [{"column": f["column"], "problem": f["problem"], "n_patients": int(f["positions"].size),
             "training_min": f.get("training_min", np.nan), "training_max": f.get("training_max", np.nan)}
            for f in outside_training(schema, typed)]
    return pd.DataFrame(rows, columns=["column", "problem", "n_patients", "training_min", "training_max"])
