"""The endpoint's request limits and response shape, without a server."""

import pytest

from sagestack.errors import SagestackError
from sagestack.registry import ModelVersionInfo
from sagestack.models import Prediction
from sagestack.serving.requests import (
    MAX_REQUEST_BYTES,
    MAX_REVIEW_CHARS,
    MAX_REVIEWS_PER_REQUEST,
    InvalidRequest,
    batch_predictions,
    model_summary,
    prediction_response,
    validate_reviews,
)

INFO = ModelVersionInfo(
    name="sentiment", version="3", run_id="r", status="Approved", aliases=["champion"], tags={}, metrics={},
    source="models:/m-abc",
)
PREDICTIONS = [
    Prediction(label=1, probabilities={"1": 0.8, "0": 0.15, "-1": 0.05}),
    Prediction(label=-1, probabilities={"-1": 0.6, "0": 0.3, "1": 0.1}),
]


def test_valid_reviews_pass_unchanged():
    reviews = ["Love it", "x" * MAX_REVIEW_CHARS]
    assert validate_reviews(reviews) is reviews
    assert validate_reviews(["ok"] * MAX_REVIEWS_PER_REQUEST) == ["ok"] * MAX_REVIEWS_PER_REQUEST


@pytest.mark.parametrize(
    ("reviews", "message"),
    [
        ("great", "reviews must be a list of strings, got str"),
        (None, "reviews must be a list of strings, got null"),
        ({"a": 1}, "reviews must be a list of strings, got dict"),
        ([], "reviews is empty; send at least one review"),
        (["ok", 3], "reviews[1] must be a string, got int"),
        (["ok", None], "reviews[1] must be a string, got null"),
        (["ok", ["nested"]], "reviews[1] must be a string, got list"),
        ([""], "reviews[0] is empty; send the review text"),
        (["ok", " \n\t"], "reviews[1] is empty; send the review text"),
        (["ok", "y" * 5001], "reviews[1] is too long: 5001 characters (at most 5000)"),
        (["ok"] * 65, "too many reviews: 65 (at most 64 per request); split the request"),
    ],
)
def test_invalid_reviews_name_the_problem(reviews, message):
    with pytest.raises(InvalidRequest) as info:
        validate_reviews(reviews)
    assert str(info.value) == message
    assert isinstance(info.value, SagestackError) and isinstance(info.value, ValueError)


def test_limits_are_configurable():
    with pytest.raises(InvalidRequest, match=r"^too many reviews: 3 \(at most 2 per request\); split the request$"):
        validate_reviews(["a", "b", "c"], max_reviews=2)
    with pytest.raises(InvalidRequest, match=r"^reviews\[0\] is too long: 4 characters \(at most 3\)$"):
        validate_reviews(["abcd"], max_chars=3)


def test_every_valid_request_fits_the_body_limit():
    # The worst case: every character JSON-escaped as \uXXXX (6 bytes).
    worst = 2 + len('"reviews": []') + MAX_REVIEWS_PER_REQUEST * (MAX_REVIEW_CHARS * 6 + 3)
    assert worst < MAX_REQUEST_BYTES


def test_model_summary_for_registry_refs_and_local_files():
    assert model_summary("sentiment@champion", INFO, "fasttext").model_dump() == {
        "name": "sentiment", "version": "3", "alias": "champion", "kind": "fasttext", "source": "models:/sentiment/3",
        "variant": None,
    }
    assert model_summary("sentiment/3", INFO, "fasttext", variant="B").model_dump() == {
        "name": "sentiment", "version": "3", "alias": None, "kind": "fasttext", "source": "models:/sentiment/3",
        "variant": "B",
    }
    assert model_summary("/models/model.bin", None, "fasttext").model_dump() == {
        "name": None, "version": None, "alias": None, "kind": "fasttext", "source": "/models/model.bin", "variant": None,
    }


def test_prediction_response_shape():
    model = model_summary("sentiment@champion", INFO, "fasttext")
    assert prediction_response(model, PREDICTIONS, "abc123").model_dump() == {
        "model": {"name": "sentiment", "version": "3", "alias": "champion", "kind": "fasttext", "source": "models:/sentiment/3",
                  "variant": None},
        "predictions": [
            {"label": 1, "probabilities": {"1": 0.8, "0": 0.15, "-1": 0.05}},
            {"label": -1, "probabilities": {"-1": 0.6, "0": 0.3, "1": 0.1}},
        ],
        "inference_id": "abc123",
    }
    assert prediction_response(model, []).model_dump()["predictions"] == []


def test_batch_predictions_name_the_model_on_every_item():
    model = model_summary("sentiment/3", INFO, "fasttext")
    items = [item.model_dump() for item in batch_predictions(model, PREDICTIONS, ["a", "b"])]
    assert items == [
        {"label": 1, "probabilities": {"1": 0.8, "0": 0.15, "-1": 0.05}, "model": model.model_dump(), "inference_id": "a"},
        {"label": -1, "probabilities": {"-1": 0.6, "0": 0.3, "1": 0.1}, "model": model.model_dump(), "inference_id": "b"},
    ]
    assert [item.inference_id for item in batch_predictions(model, PREDICTIONS)] == [None, None]


def test_review_ids_beyond_int64_are_refused():
    from sagestack.serving.requests import MAX_REVIEW_ID, validate_review_ids

    assert validate_review_ids([MAX_REVIEW_ID]) == [MAX_REVIEW_ID]
    with pytest.raises(InvalidRequest, match=r"^review_ids\[0\] is too large: 9223372036854775808 \(at most 9223372036854775807\)$"):
        validate_review_ids([2**63])


def test_heavy_kinds_predict_on_the_one_model_thread_and_cheap_ones_on_the_loop():
    import asyncio
    import threading

    from sagestack.serving.requests import predict_reviews

    class Recorder:
        def predict(self, reviews):
            self.thread = threading.current_thread()
            return [Prediction(label=1, probabilities={"1": 1.0}) for _ in reviews]

    async def call(heavy: bool):
        recorder = Recorder()
        result = await predict_reviews(recorder, ["a", "b"], heavy=heavy)
        return recorder.thread, threading.current_thread(), len(result)

    worker, loop_thread, count = asyncio.run(call(True))
    assert worker is not loop_thread and count == 2
    # Every heavy call on one thread, the process's model thread (its OpenMP team stays the only one).
    again, _, _ = asyncio.run(call(True))
    assert again is worker and worker.name.startswith("sagestack-model")
    same, loop_thread, _ = asyncio.run(call(False))
    assert same is loop_thread
