"""Balancing and stratified, seeded train/validation/test splits."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sagestack.errors import DataError


def balance_by_label(frame: pd.DataFrame, label: str = "sentiment", seed: int = 42) -> pd.DataFrame:
    """Down-sample every label to the size of the rarest one, as the course's "balanced" data.

    Args:
        frame: the data.
        label: the label column.
        seed: random seed for the sampling.

    Returns:
        A new frame with equally many rows per label, shuffled, index reset.
    """
    smallest = int(frame[label].value_counts().min())
    parts = [group.sample(n=smallest, random_state=seed) for _, group in frame.groupby(label, sort=True)]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


@dataclass(frozen=True)
class Splits:
    """The three parts of a split."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def stratified_split(
    frame: pd.DataFrame,
    *,
    label: str = "sentiment",
    validation_fraction: float = 0.05,
    test_fraction: float = 0.05,
    seed: int = 42,
) -> Splits:
    """Split into train/validation/test keeping the label proportions in every part.

    The defaults (90/5/5) are the course's processing-job split.

    Args:
        frame: the data.
        label: the column to stratify on.
        validation_fraction: share of rows for validation (0 <= f < 1).
        test_fraction: share of rows for test (0 <= f < 1).
        seed: random seed; the same seed and data give the same split.

    Returns:
        The splits, each with a fresh index.

    Raises:
        DataError: the fractions are out of range or a label has too few rows to stratify.
    """
    from sklearn.model_selection import train_test_split

    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise DataError(
            f"validation ({validation_fraction}) and test ({test_fraction}) fractions must each be in [0, 1) "
            "and sum to less than 1"
        )
    counts = frame[label].value_counts()
    parts_needed = 1 + (validation_fraction > 0) + (test_fraction > 0)
    if (counts < parts_needed).any():
        rare = counts[counts < parts_needed].index.tolist()
        raise DataError(
            f"label(s) {rare} have fewer than {parts_needed} rows, too few to stratify; add data or set fractions to 0"
        )

    def cut(data: pd.DataFrame, fraction: float, random_state: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        if fraction == 0:
            return data, data.iloc[0:0]
        n_labels = data[label].nunique()
        size = max(int(round(len(data) * fraction)), n_labels)  # stratify needs one row per label
        return train_test_split(data, test_size=size, stratify=data[label], random_state=random_state)

    rest, test = cut(frame, test_fraction, seed)
    validation_share = validation_fraction / (1 - test_fraction) if validation_fraction else 0.0
    train, validation = cut(rest, validation_share, seed + 1)
    return Splits(*(part.reset_index(drop=True) for part in (train, validation, test)))
