"""The BERT kind's prediction: reviews of mixed lengths run in length-ordered chunks, each padded to its own
longest, and every review gets the probabilities it gets alone."""

from __future__ import annotations

import numpy as np
import pytest

from sagestack.models.bert import BertPredictor, length_chunks


def test_length_chunks_order_by_length_and_bound_items_and_padded_tokens():
    lengths = [75, 12, 128, 90, 14, 70, 80]
    chunks = length_chunks(lengths, max_items=4, max_tokens=300)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    flat = [lengths[i] for chunk in chunks for i in chunk]
    assert flat == sorted(lengths)
    assert all(len(chunk) <= 4 and len(chunk) * max(lengths[i] for i in chunk) <= 300 for chunk in chunks if len(chunk) > 1)
    assert chunks == [[1, 4, 5, 0], [6, 3], [2]]  # 128 beside 80 and 90 would pad to 3 x 128 > 300 tokens
    assert length_chunks([200], max_tokens=100) == [[0]]  # longer than the budget: a pass of its own
    assert [len(c) for c in length_chunks([15] * 70, max_items=32, max_tokens=10_000)] == [32, 32, 6]
    assert length_chunks([]) == []


@pytest.fixture(scope="module")
def predictor():
    from sagestack.bert.model import build_model

    model, tokenizer, _ = build_model(tiny=True, seed=0, pooling="mean")
    return BertPredictor(model, tokenizer, max_seq_length=64)


def test_each_review_gets_its_own_probabilities_whatever_it_is_batched_with(predictor):
    reviews = ["ok", "The dress fits well and the fabric is soft, I love it. " * 3, "bad", "Too small.",
               "Returned it: the colour was nothing like the picture and the seams came apart after one wash."] * 7
    together = predictor.predict_proba(reviews)
    alone = np.concatenate([predictor.predict_proba([review]) for review in reviews])
    assert together.shape == (len(reviews), 3)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-5)
    assert predictor.predict_proba([]).shape == (0, 3)
