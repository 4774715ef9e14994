"""BERT inputs: reviews from a CSV (tokenized on the fly) or from the feature store, as tensors.

Labels are the feature store's ``label_id`` (sentiment −1/0/1 → 0/1/2), so a model trained
from either source predicts the same ids. Every split is shuffled with the seed: the course's
``reviews_balanced.csv`` is sorted by label, and unshuffled batches would teach one class at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sagestack.errors import DataError
from sagestack.features.engineering import tokenizer_fingerprint  # noqa: F401 (part of this module's API)

LABEL_IDS = {-1: 0, 0: 1, 1: 2}
LABELS = ["-1", "0", "1"]  # the sentiment of each label id, as the model card names them
SPLITS = ("train", "validation", "test")


@dataclass
class Encoded:
    """One split, tokenized: ``input_ids``/``attention_mask`` (rows × max_seq_length, int64),
    ``labels`` (int64 label ids) and the review texts (for evaluation through the predictor)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray
    texts: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def dataset(self):
        """A ``torch.utils.data.TensorDataset`` of (input_ids, attention_mask, labels)."""
        import torch
        from torch.utils.data import TensorDataset

        return TensorDataset(torch.as_tensor(self.input_ids), torch.as_tensor(self.attention_mask),
                             torch.as_tensor(self.labels))


def encode(frame: pd.DataFrame, tokenizer, max_seq_length: int) -> Encoded:
    """Tokenize ``review_body`` (padded/truncated to ``max_seq_length``) and map ``sentiment`` to label ids."""
    from sagestack.features.engineering import tokenize

    texts = frame["review_body"].astype(str).tolist()
    ids, masks = tokenize(tokenizer, texts, max_seq_length)
    labels = frame["sentiment"].map(LABEL_IDS).to_numpy(dtype=np.int64)
    return Encoded(np.asarray(ids, dtype=np.int64).reshape(len(texts), max_seq_length),
                   np.asarray(masks, dtype=np.int64).reshape(len(texts), max_seq_length), labels, texts)


def csv_splits(path: Path | str, seed: int = 42, validation_fraction: float = 0.05,
               test_fraction: float = 0.05) -> dict[str, pd.DataFrame]:
    """The reviews of a CSV split train/validation/test (stratified, seeded; the course's 90/5/5), each shuffled.

    Raises:
        DataError: the file fails validation or a label has too few reviews to stratify.
    """
    from sagestack.data.reviews import load_reviews
    from sagestack.data.split import stratified_split

    reviews = load_reviews(path).frame
    parts = stratified_split(reviews, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed)
    return {name: getattr(parts, name).sample(frac=1.0, random_state=seed).reset_index(drop=True) for name in SPLITS}


def store_splits(settings, tokenizer, max_seq_length: int, seed: int = 42) -> dict[str, Encoded]:
    """The feature store's training sets (``input_ids``, ``attention_mask``, ``label_id``, ``split_type``), shuffled.

    Raises:
        DataError: the store is empty, its ids came from another tokenizer or sequence length than
            the model's (never train on wrong ids), or it has no training rows.
    """
    from sagestack.features.store import has_features, stored_tokenizer, training_sets

    if not has_features(settings):  # not "does not record its tokenizer": there is nothing in it yet
        raise DataError(f"the feature store of {settings.home} is empty; run `sagestack features ingest` first, "
                        "or train from a CSV with --data")
    recorded = stored_tokenizer(settings)
    expected = tokenizer_fingerprint(tokenizer, max_seq_length)
    if recorded is None:
        raise DataError("the feature store does not record which tokenizer made its input_ids; "
                        "re-ingest with `sagestack features ingest` or train from a CSV with --data")
    if recorded["fingerprint"] != expected:
        raise DataError(
            f"the feature store's input_ids come from another tokenizer ({recorded['tokenizer']}, "
            f"max_seq_length {recorded['max_seq_length']}) than this model's (max_seq_length {max_seq_length}); "
            "train with that tokenizer and length, or from a CSV with --data"
        )
    encoded = {}
    for split, frame in training_sets(settings, SPLITS).items():
        frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        if split == "train" and frame.empty:
            raise DataError("the feature store has no training rows; run `sagestack features ingest` first")
        encoded[split] = Encoded(
            np.asarray(frame["input_ids"].tolist(), dtype=np.int64).reshape(len(frame), max_seq_length),
            np.asarray(frame["attention_mask"].tolist(), dtype=np.int64).reshape(len(frame), max_seq_length),
            frame["label_id"].to_numpy(dtype=np.int64), frame["review_body"].astype(str).tolist(),
        )
    return encoded
