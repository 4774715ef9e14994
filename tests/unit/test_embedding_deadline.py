"""AutoML's --time-limit bounds the sentence embeddings: they stop at the deadline, between chunks."""

from __future__ import annotations

import time

import pytest

from sagestack.models.embeddings import CHUNK, EmbeddingDeadline, embed_texts


def test_a_passed_deadline_stops_before_the_first_chunk():
    texts = ["a review"] * (CHUNK + 3)
    with pytest.raises(EmbeddingDeadline) as stopped:
        embed_texts(texts, deadline=time.monotonic() - 1)
    assert (stopped.value.done, stopped.value.total) == (0, CHUNK + 3)
    assert str(stopped.value) == f"0 of {CHUNK + 3} texts embedded when the deadline passed"
