"""Data-quality insights of a CSV, as Data Wrangler shows them before any processing.

Rows and columns, each column's inferred type, missing values and distinct values, the label
distribution and the text-length distribution of text columns. Also the short value lists
(with counts) that fill a bias job's dropdowns: label values, facet values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sagestack.errors import DataError

# A column with at most this many distinct values lists them (dropdowns, distributions).
MAX_LISTED_VALUES = 50
# Text: a column of strings whose values average more than this many words, or mostly distinct.
TEXT_MIN_MEAN_WORDS = 4
HISTOGRAM_BINS = 10


def _infer_type(values: pd.Series) -> str:
    """``integer``, ``float``, ``categorical`` or ``text`` for a column of non-missing strings."""
    if values.empty:
        return "empty"
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return "integer" if np.all(np.mod(numbers, 1) == 0) else "float"
    distinct = values.nunique()
    if values.str.split().str.len().mean() > TEXT_MIN_MEAN_WORDS or (distinct > MAX_LISTED_VALUES and distinct > 0.5 * len(values)):
        return "text"
    return "categorical"


def _histogram(lengths: np.ndarray) -> list[dict]:
    counts, edges = np.histogram(lengths, bins=HISTOGRAM_BINS)
    return [{"from": int(np.floor(lo)), "to": int(np.ceil(hi)), "count": int(n)} for lo, hi, n in zip(edges, edges[1:], counts)]


def text_lengths(values: pd.Series) -> dict:
    """Word counts of a text column: quantiles and a histogram (Data Wrangler's text-length insight)."""
    words = values.str.split().str.len().to_numpy(dtype=float)
    quantiles = np.quantile(words, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {
        "unit": "words",
        "mean": round(float(words.mean()), 2),
        **{name: int(q) for name, q in zip(("min", "p25", "median", "p75", "max"), quantiles)},
        "histogram": _histogram(words),
    }


def profile_frame(frame: pd.DataFrame, *, label: str | None = None) -> dict:
    """Profile a frame read as text (every cell a string, empty string = missing).

    Args:
        frame: the data, as :func:`sagestack.data.reviews.read_csv_checked` reads it.
        label: the label column whose distribution to report (None: none).

    Returns:
        ``{"rows", "columns": [{"name", "type", "missing", "distinct", "value_counts"?}], "duplicate_rows",
        "label": {"column", "distribution": [{"value", "count", "share"}]} | None,
        "text_lengths": {column: {...}}}``; ``value_counts`` (value -> count, most frequent first) is
        there for columns with at most :data:`MAX_LISTED_VALUES` distinct values.

    Raises:
        DataError: ``label`` is not a column.
    """
    if label is not None and label not in frame.columns:
        raise DataError(f"label column '{label}' is not in the data; columns are: {', '.join(map(str, frame.columns))}")
    columns, lengths = [], {}
    for name in frame.columns:
        raw = frame[name].astype(str)
        missing = raw.str.strip() == ""
        present = raw[~missing]
        kind = _infer_type(present)
        distinct = int(present.nunique())
        column = {"name": str(name), "type": kind, "missing": int(missing.sum()), "distinct": distinct}
        if distinct <= MAX_LISTED_VALUES:
            column["value_counts"] = {str(k): int(v) for k, v in present.value_counts().items()}
        columns.append(column)
        if kind == "text":
            lengths[str(name)] = text_lengths(present)
    distribution = None
    if label is not None:
        counts = frame[label].astype(str).value_counts()
        distribution = {
            "column": label,
            "distribution": [{"value": str(k), "count": int(v), "share": round(float(v) / len(frame), 4)}
                             for k, v in counts.items()],
        }
    return {
        "rows": int(len(frame)),
        "columns": columns,
        "duplicate_rows": int(frame.duplicated().sum()),
        "label": distribution,
        "text_lengths": lengths,
    }


def profile_csv(path: Path, *, label: str | None = None) -> dict:
    """Read a CSV (one-line errors for a bad file) and :func:`profile_frame` it.

    Raises:
        DataError: the file is missing, empty, not UTF-8, malformed, or has no such label column.
    """
    from sagestack.data.reviews import read_csv_checked

    frame = read_csv_checked(Path(path))
    if frame.empty:
        raise DataError(f"{path} has a header but no rows; it needs at least one row of data")
    return {"file": Path(path).name, **profile_frame(frame, label=label)}
