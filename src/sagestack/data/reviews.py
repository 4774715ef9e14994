"""Loading and validating review data.

Two layouts are accepted and normalised to the course's columns
``sentiment, review_body, product_category``:

* the course layout (``reviews_balanced.csv`` and friends), used as is;
* the raw Women's E-Commerce Clothing Reviews layout (``Rating``, ``Review Text``,
  ``Class Name``, ...), mapped as the course did: Rating 1–2 → −1, 3 → 0, 4–5 → 1, and
  ``Class Name`` → ``product_category``. Rows without review text are dropped, as the course
  dropped them.

Every problem raises :class:`~sagestack.errors.DataError` with one line that names the file,
the column/row and the fix.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from sagestack.errors import DataError

SENTIMENT, REVIEW_BODY, PRODUCT_CATEGORY = "sentiment", "review_body", "product_category"
COURSE_COLUMNS = (SENTIMENT, REVIEW_BODY, PRODUCT_CATEGORY)
RAW_COLUMNS = ("Rating", "Review Text", "Class Name")
DEFAULT_LABELS = (-1, 0, 1)
# Cell values that mean "no text" (what pandas would read as NaN).
MISSING_TEXT = frozenset({"", "nan", "null", "none", "n/a", "na"})


def rating_to_sentiment(rating: int) -> int:
    """Map a 1–5 star rating to the course's sentiment: 1–2 → −1, 3 → 0, 4–5 → 1."""
    if rating in (1, 2):
        return -1
    if rating == 3:
        return 0
    if rating in (4, 5):
        return 1
    raise ValueError(f"rating must be 1-5, got {rating!r}")


def clean_text(text: str) -> str:
    """Normalise whitespace in a review: newlines/tabs become spaces, runs collapse, ends trimmed."""
    return " ".join(str(text).split())


@dataclass(frozen=True)
class LoadedReviews:
    """Validated reviews in the course layout plus what loading did to them."""

    frame: pd.DataFrame
    layout: str  # "course" or "raw"
    dropped_empty: int


def read_csv_checked(path: Path, *, as_text: bool = True) -> pd.DataFrame:
    """Read a CSV with one-line errors for a missing, empty, non-UTF-8 or malformed file.

    Args:
        path: the file.
        as_text: read every column as text (validation then decides what is a number).

    Raises:
        DataError: the file is missing, a directory, empty, not UTF-8 or not a well-formed CSV.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}; pass an existing CSV file")
    if path.is_dir():
        raise DataError(f"{path} is a directory; pass the path of a CSV file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path} is empty; it needs a header row and at least one review")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}); re-save it as UTF-8"
        ) from None
    try:
        # Everything as text first: validation decides what is a number, with row numbers.
        if as_text:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        return pd.read_csv(path, encoding="utf-8-sig")
    except pd.errors.ParserError as exc:
        raise DataError(f"{path} is not a well-formed CSV ({str(exc).strip()}); check its quoting") from None
    except csv.Error as exc:
        raise DataError(f"{path} is not a well-formed CSV ({exc}); check its quoting") from None


def _bad_rows(mask: pd.Series) -> str:
    rows = [str(i + 1) for i in mask[mask].index[:5]]
    more = "" if mask.sum() <= 5 else ", ..."
    return f"{int(mask.sum())} row(s) (data row {', '.join(rows)}{more})"


def load_reviews(path: Path | str, labels: Sequence[int] = DEFAULT_LABELS) -> LoadedReviews:
    """Load and validate a review CSV in the course or the raw layout.

    Args:
        path: the CSV file (UTF-8, header row; quoted fields may contain commas, quotes and newlines).
        labels: the allowed sentiment values.

    Returns:
        The reviews with columns ``sentiment`` (int), ``review_body`` (whitespace-normalised
        text) and ``product_category`` (text), in file order.

    Raises:
        DataError: the file is missing, empty, not UTF-8, not a CSV, lacks the columns, has
            labels outside ``labels``, or has reviews without text (course layout).
    """
    path = Path(path)
    frame = read_csv_checked(path)
    columns = set(frame.columns)
    if set(COURSE_COLUMNS) <= columns:
        layout, dropped = "course", 0
        out = frame[list(COURSE_COLUMNS)].copy()
    elif set(RAW_COLUMNS) <= columns:
        layout = "raw"
        frame = frame.reset_index(drop=True)
        empty = frame["Review Text"].str.strip().str.lower().isin(MISSING_TEXT)
        dropped = int(empty.sum())
        frame = frame[~empty].reset_index(drop=True)
        ratings = pd.to_numeric(frame["Rating"].str.strip(), errors="coerce")
        bad = ratings.isna() | ~ratings.isin([1, 2, 3, 4, 5])
        if bad.any():
            raise DataError(f"{path}: column 'Rating' must hold 1-5, bad in {_bad_rows(bad)}; fix or remove those rows")
        out = pd.DataFrame(
            {
                SENTIMENT: ratings.astype(int).map(rating_to_sentiment).astype(str),
                REVIEW_BODY: frame["Review Text"],
                PRODUCT_CATEGORY: frame["Class Name"],
            }
        )
    else:
        missing = [c for c in COURSE_COLUMNS if c not in columns]
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; expected the course layout "
            f"({', '.join(COURSE_COLUMNS)}) or the raw layout ({', '.join(RAW_COLUMNS)})"
        )
    if out.empty:
        raise DataError(f"{path} has a header but no reviews; add data rows")

    out = out.reset_index(drop=True)
    empty_text = out[REVIEW_BODY].str.strip().str.lower().isin(MISSING_TEXT)
    if empty_text.any():
        raise DataError(
            f"{path}: column '{REVIEW_BODY}' is empty in {_bad_rows(empty_text)}; fill in or drop those rows"
        )
    sentiment = pd.to_numeric(out[SENTIMENT].str.strip(), errors="coerce")
    allowed = sorted(set(labels))
    bad = sentiment.isna() | ~sentiment.isin(allowed)
    if bad.any():
        examples = sorted(set(out.loc[bad, SENTIMENT].head(5)))
        raise DataError(
            f"{path}: column '{SENTIMENT}' has values outside {allowed} ({', '.join(map(repr, examples))}) "
            f"in {_bad_rows(bad)}; fix those rows or pass the label set with --labels"
        )
    out[SENTIMENT] = sentiment.astype(int)
    out[REVIEW_BODY] = out[REVIEW_BODY].map(clean_text)
    out[PRODUCT_CATEGORY] = out[PRODUCT_CATEGORY].str.strip()
    return LoadedReviews(frame=out, layout=layout, dropped_empty=dropped)
