"""Balancing and stratified, seeded train/validation/test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
        return _stratified_cut(data, label, size, random_state)

    rest, test = cut(frame, test_fraction, seed)
    validation_share = validation_fraction / (1 - test_fraction) if validation_fraction else 0.0
    train, validation = cut(rest, validation_share, seed + 1)
    return Splits(*(part.reset_index(drop=True) for part in (train, validation, test)))


def _stratified_cut(data: pd.DataFrame, label: str, size: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rest, ``size`` stratified rows): exactly scikit-learn's ``train_test_split(data, test_size=size,
    stratify=data[label], random_state=seed)``, the same draws from the same ``RandomState``.

    Drawn here because importing scikit-learn costs a pipeline step about 2 s, and the feature
    store's step needs nothing else from it; tests/unit/test_split_draws.py compares the two.

    Raises:
        ValueError: what scikit-learn raises for these inputs (a size out of range, a label with one row,
            fewer rows on either side than labels).
    """
    n_samples = len(data)
    if size <= 0 or size >= n_samples:
        raise ValueError(f"test_size={size} should be either positive and smaller than the number of samples "
                         f"{n_samples} or a float in the (0, 1) range")
    n_test, n_train = size, n_samples - size
    classes, y_indices, class_counts = np.unique(np.asarray(data[label]), return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        raise ValueError("The least populated classes in y have only 1 member, which is too few. The minimum number "
                         "of groups for any class cannot be less than 2. Classes with too few members are: "
                         f"{classes[class_counts < 2].tolist()}")
    for name, count in (("train", n_train), ("test", n_test)):
        if count < len(classes):
            raise ValueError(f"The {name}_size = {count} should be greater or equal to the number of classes = "
                             f"{len(classes)}")
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i in range(len(classes)):
        rows = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(rows[: n_i[i]])
        test.extend(rows[n_i[i] : n_i[i] + t_i[i]])
    return data.iloc[rng.permutation(train)], data.iloc[rng.permutation(test)]


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Rows to draw per class for ``n_draws`` in all (scikit-learn's ``_approximate_mode``: the
    proportional share, the remainder to the largest fractions, ties broken by ``rng``)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)
