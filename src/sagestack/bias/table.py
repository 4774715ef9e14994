"""The contingency table every Clarify metric is a function of.

One pass over the data counts rows per (facet value, group, observed label, predicted label);
every pre- and post-training metric for every facet value is then arithmetic on that small
table. The table is built by an engine (pandas in-process, or Spark for data that outgrows
one machine); metrics, confidence intervals and reports never see the rows again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from sagestack.errors import DataError

MISSING = "(missing)"
# Joins the values of an intersection facet (``a&b`` -> "x|y"). Both engines use it, so it lives
# here, below them: the pandas analysis and the Spark engine import it without importing each other.
INTERSECTION_SEPARATOR = "|"


@dataclass(frozen=True)
class LabelSpec:
    """Which observed/predicted label values count as positive: a value list or a threshold (value > t)."""

    values: tuple | None = None
    threshold: float | None = None

    def describe(self) -> list | float:
        """What Clarify writes as ``label_value_or_threshold``."""
        return list(self.values) if self.values is not None else self.threshold

    def positive(self, column: pd.Series) -> np.ndarray:
        """Boolean array: is each value positive?"""
        if self.threshold is not None:
            return (pd.to_numeric(column, errors="coerce") > self.threshold).to_numpy()
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            numeric = [float(v) for v in self.values if _is_number(v)]
            # Compare numbers as numbers: far faster than casting millions of rows to str.
            return np.isin(column.to_numpy(), numeric)
        wanted = {str(v) for v in self.values}
        return column.astype(str).isin(wanted).to_numpy()


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class ContingencyTable:
    """Row counts with shape ``(facet values, groups, 2 observed labels, 2 predicted labels)``.

    Index 1 on a label axis means positive. Without predictions the predicted axis holds all
    rows at index 0 and ``has_predictions`` is False; without a group column there is one group.
    """

    facet: str
    facet_values: list[str]
    groups: list[str]
    counts: np.ndarray
    has_predictions: bool

    @property
    def total(self) -> int:
        """Number of rows counted."""
        return int(self.counts.sum())

    def merge_facet_values(self, values: Sequence[str], name: str) -> "ContingencyTable":
        """A two-value table: ``name`` (the given values together) versus everything else."""
        chosen = np.isin(np.array(self.facet_values, dtype=object), list(values))
        counts = np.stack([self.counts[chosen].sum(axis=0), self.counts[~chosen].sum(axis=0)])
        return ContingencyTable(self.facet, [name, "(rest)"], self.groups, counts, self.has_predictions)


def _codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes and their (string) values; missing values become their own value."""
    codes, uniques = pd.factorize(column, sort=True, use_na_sentinel=True)
    values = [str(u) for u in uniques]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(values), codes)
        values.append(MISSING)
    return codes.astype(np.int64), values


def require_columns(available, **roles: object) -> None:
    """Raise a one-line DataError for the first named column (by role) that the data lacks.

    ``roles`` maps a role ("facet", "label", ...) to a column name; ``None`` and non-string
    values (e.g. a facet given as a Series) are skipped.
    """
    available = [str(c) for c in available]
    for role, column in roles.items():
        if isinstance(column, str) and column not in available:
            raise DataError(
                f"{role.replace('_', ' ')} column '{column}' is not in the data; columns are: {', '.join(available)}"
            )


def build_table_pandas(
    frame: pd.DataFrame,
    *,
    facet: str | pd.Series,
    label: str,
    positive: LabelSpec,
    predicted: str | None = None,
    group: str | None = None,
    facet_threshold: float | None = None,
) -> ContingencyTable:
    """Count rows per (facet value, group, observed positive, predicted positive) in one pass.

    Args:
        frame: the data.
        facet: the sensitive column's name, or the facet values themselves (a Series aligned
            with ``frame``, e.g. an intersection of two columns).
        label: the observed label column.
        positive: which label values are positive (also applied to ``predicted``).
        predicted: a column of predicted labels, for post-training metrics.
        group: a column for conditional demographic disparity (CDDL/CDDPL).
        facet_threshold: for a numeric facet, split it into ``> threshold`` and the rest.

    Raises:
        DataError: a named column is missing, or the facet is not numeric with a threshold.
    """
    facet_name = facet if isinstance(facet, str) else str(facet.name)
    require_columns(frame.columns, facet=facet, label=label, predicted_label=predicted, group=group)
    facet_column = frame[facet] if isinstance(facet, str) else facet
    if facet_threshold is not None:
        numeric = pd.to_numeric(facet_column, errors="coerce")
        if numeric.isna().all():
            raise DataError(f"facet column '{facet_name}' is not numeric; use COLUMN=VALUE or pick a numeric facet")
        # Missing values are their own facet value, never silently "<= threshold".
        facet_codes = np.where(numeric.isna(), 2, np.where(numeric > facet_threshold, 0, 1)).astype(np.int64)
        facet_values = [f">{facet_threshold:g}", f"<={facet_threshold:g}", MISSING]
    else:
        facet_codes, facet_values = _codes(facet_column)
    if group is not None:
        group_codes, groups = _codes(frame[group])
    else:
        group_codes, groups = np.zeros(len(frame), dtype=np.int64), ["(all)"]
    observed = positive.positive(frame[label]).astype(np.int64)
    predicted_codes = positive.positive(frame[predicted]).astype(np.int64) if predicted else np.zeros(len(frame), np.int64)

    shape = (len(facet_values), len(groups), 2, 2)
    flat = ((facet_codes * shape[1] + group_codes) * 2 + observed) * 2 + predicted_codes
    counts = np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)
    return ContingencyTable(facet_name, facet_values, groups, counts, has_predictions=predicted is not None)


def table_from_counts(
    rows: pd.DataFrame, *, facet: str, has_predictions: bool, facet_values: list[str] | None = None
) -> ContingencyTable:
    """Build a table from aggregated counts (columns ``facet, group, observed, predicted, count``),
    as a distributed engine returns them."""
    rows = rows.copy()
    rows["facet"] = rows["facet"].where(rows["facet"].notna(), MISSING).astype(str)
    rows["group"] = rows["group"].where(rows["group"].notna(), MISSING).astype(str)
    values = facet_values or sorted(v for v in rows["facet"].unique() if v != MISSING) + (
        [MISSING] if (rows["facet"] == MISSING).any() else []
    )
    groups = sorted(v for v in rows["group"].unique() if v != MISSING) + ([MISSING] if (rows["group"] == MISSING).any() else [])
    counts = np.zeros((len(values), len(groups), 2, 2), dtype=np.int64)
    fi = {v: i for i, v in enumerate(values)}
    gi = {v: i for i, v in enumerate(groups)}
    for f, g, o, p, c in rows[["facet", "group", "observed", "predicted", "count"]].itertuples(index=False):
        counts[fi[f], gi[g], int(o), int(p)] += int(c)
    return ContingencyTable(facet, values, groups, counts, has_predictions)
