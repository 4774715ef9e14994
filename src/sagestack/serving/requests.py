"""What the prediction endpoint accepts and what it answers, with no web framework here.

The HTTP service (``serving/service.py``) validates every request body with
:func:`validate_reviews` and shapes every answer with :func:`prediction_response` or
:func:`batch_predictions`, so the limits and the response format are plain functions tested
on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Sequence

from pydantic import BaseModel, BeforeValidator, Field, StringConstraints, model_serializer
from pydantic_core import PydanticCustomError

from sagestack.errors import SagestackError
from sagestack.serving.threads import on_model_thread, use_threads

if TYPE_CHECKING:
    from sagestack.registry import ModelVersionInfo
    from sagestack.models import Prediction

MAX_REVIEWS_PER_REQUEST = 64
MAX_REVIEW_CHARS = 5_000
# Every valid request fits: 64 reviews x 5,000 characters x 6 bytes (a JSON "\uXXXX" escape)
# is 1.92 MB, leaving room for the JSON syntax around them.
MAX_REQUEST_BYTES = 2 * 1024 * 1024
# Review ids are int64 in the feature store.
MAX_REVIEW_ID = 2**63 - 1


class InvalidRequest(SagestackError, ValueError):
    """A prediction request the service refuses; ``str(error)`` says what to fix."""


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def validate_reviews(
    reviews: object,
    *,
    max_reviews: int = MAX_REVIEWS_PER_REQUEST,
    max_chars: int = MAX_REVIEW_CHARS,
) -> list[str]:
    """Check the ``reviews`` of a prediction request.

    Args:
        reviews: the decoded ``reviews`` value of the request body.
        max_reviews: the most reviews one request may hold.
        max_chars: the most characters one review may have.

    Returns:
        The reviews, unchanged, as a list.

    Raises:
        InvalidRequest: ``reviews`` is not a list, is empty or too long, or an item is not a
            string, is blank or is too long. The message names the first offending item.
    """
    if not isinstance(reviews, list):
        raise InvalidRequest(f"reviews must be a list of strings, got {_type_name(reviews)}")
    if not reviews:
        raise InvalidRequest("reviews is empty; send at least one review")
    if len(reviews) > max_reviews:
        raise InvalidRequest(f"too many reviews: {len(reviews)} (at most {max_reviews} per request); split the request")
    for i, text in enumerate(reviews):
        if not isinstance(text, str):
            raise InvalidRequest(f"reviews[{i}] must be a string, got {_type_name(text)}")
        if not text.strip():
            raise InvalidRequest(f"reviews[{i}] is empty; send the review text")
        if len(text) > max_chars:
            raise InvalidRequest(f"reviews[{i}] is too long: {len(text)} characters (at most {max_chars})")
    return reviews


def validate_review_ids(review_ids: object, *, max_ids: int = MAX_REVIEWS_PER_REQUEST) -> list[int]:
    """Check the ``review_ids`` of a ``/predict_by_id`` request: 1 to ``max_ids`` integers in 0..2**63-1.

    Raises:
        InvalidRequest: not a list, empty, too long, or an item that is not such an integer.
    """
    if not isinstance(review_ids, list):
        raise InvalidRequest(f"review_ids must be a list of integers, got {_type_name(review_ids)}")
    if not review_ids:
        raise InvalidRequest("review_ids is empty; send at least one id")
    if len(review_ids) > max_ids:
        raise InvalidRequest(f"too many review_ids: {len(review_ids)} (at most {max_ids} per request); split the request")
    for i, value in enumerate(review_ids):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest(f"review_ids[{i}] must be a non-negative integer, got {value!r}")
        if value > MAX_REVIEW_ID:
            raise InvalidRequest(f"review_ids[{i}] is too large: {value} (at most {MAX_REVIEW_ID})")
    return review_ids


async def predict_reviews(predictor, reviews: list[str], *, heavy: bool) -> list[Prediction]:
    """Predict on behalf of an async endpoint without blocking its event loop.

    Args:
        predictor: the model.
        reviews: the texts.
        heavy: the kind's ``heavy`` flag: a heavy prediction runs on the process's model thread
            (:func:`sagestack.serving.threads.model_thread`), so other requests keep being served; a cheap
            one (fastText: well under a millisecond) runs right here, as a thread hop would cost more than
            it saves and hold the GIL all the same.
    """
    if heavy:
        return await on_model_thread(predictor.predict, reviews)
    return predictor.predict(reviews)


async def predict_review_batches(predictor, requests: Sequence[list[str]], *, heavy: bool, threads: int | None = None
                                 ) -> list[list[Prediction] | Exception]:
    """Answer several requests' reviews with one prediction, each request getting its own answer.

    Args:
        predictor: the model.
        requests: the reviews of each request.
        heavy: the kind's ``heavy`` flag (see :func:`predict_reviews`): the whole call, fallback
            included, runs on the model thread.
        threads: the intra-op threads a torch-based model runs this call with (``None``: as they are; see
            :func:`sagestack.serving.threads.use_threads`).

    Returns:
        Per request, in order, its predictions, or the exception its own reviews raised: when the
        shared call raises, each request is predicted on its own, so a review the model cannot
        take fails only the request that sent it.
    """
    def predict() -> list[list[Prediction] | Exception]:
        use_threads(threads)
        texts = [text for reviews in requests for text in reviews]
        try:
            predictions = predictor.predict(texts)
        except Exception as exc:
            if len(requests) == 1:
                return [exc]
            return [_own_predictions(predictor, reviews) for reviews in requests]
        answers, start = [], 0
        for reviews in requests:
            answers.append(predictions[start:start + len(reviews)])
            start += len(reviews)
        return answers

    return await on_model_thread(predict) if heavy else predict()


def _own_predictions(predictor, reviews: list[str]) -> list[Prediction] | Exception:
    try:
        return predictor.predict(reviews)
    except Exception as exc:  # this request's own failure: its answer, not its neighbours'
        return exc


async def predict_stored_batch(reader, predictor, requests: Sequence[list[int]], *, heavy: bool
                               ) -> list[tuple[list[int], list[IdPrediction]]]:
    """Answer several ``/predict_by_id`` requests with one online-store read and one prediction.

    Args:
        reader: an online-store reader (``await get_async(ids) -> [{"review_id", "found", "review_body", ...}]``).
        predictor: the model.
        requests: the ids of each request.
        heavy: the kind's ``heavy`` flag (see :func:`predict_reviews`).

    Returns:
        ``(missing ids, predictions)`` per request, in order; a request with a missing id gets
        its missing ids and no predictions, and the others are answered all the same.

    Raises:
        Whatever the read raises (e.g. the online store is unreachable): every request of the
        batch fails alike.
    """
    rows = await reader.get_async([review_id for ids in requests for review_id in ids])
    per_request, start = [], 0
    for ids in requests:
        per_request.append(rows[start:start + len(ids)])
        start += len(ids)
    complete = [own for own in per_request if all(row["found"] for row in own)]
    texts = [row["review_body"] for own in complete for row in own]
    predictions = iter(await predict_reviews(predictor, texts, heavy=heavy) if texts else [])
    answers = []
    for own in per_request:
        missing = [row["review_id"] for row in own if not row["found"]]
        if missing:
            answers.append((missing, []))
            continue
        answered = []
        for row in own:
            p = next(predictions)
            answered.append(IdPrediction(review_id=row["review_id"], label=p.label, probabilities=p.probabilities,
                                         review=row["review_body"]))
        answers.append(([], answered))
    return answers


def _checked_reviews(value: object) -> list[str]:
    # A custom error keeps the library's message as is (a ValueError would gain "Value error, ").
    try:
        return validate_reviews(value)
    except InvalidRequest as exc:
        raise PydanticCustomError("invalid_reviews", str(exc)) from None


def _checked_ids(value: object) -> list[int]:
    try:
        return validate_review_ids(value)
    except InvalidRequest as exc:
        raise PydanticCustomError("invalid_review_ids", str(exc)) from None


# The request bodies' fields, for a web framework that validates with pydantic (as BentoML does).
ReviewIds = Annotated[
    list[int],
    Field(min_length=1, max_length=MAX_REVIEWS_PER_REQUEST, description="ids of reviews in the feature store"),
    BeforeValidator(_checked_ids),
]


# The constraints only document the limits in /docs.json; _checked_reviews enforces them first.
Reviews = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_REVIEW_CHARS)]],
    Field(min_length=1, max_length=MAX_REVIEWS_PER_REQUEST, description="review texts as written"),
    BeforeValidator(_checked_reviews),
]


def missing_ids_message(missing: Sequence[int]) -> str:
    """The 404 message for ids the feature store does not know."""
    shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
    return f"review id(s) {shown} not found in the feature store; ingest them with `sagestack features ingest`"


class ModelSummary(BaseModel):
    """The served model: its kind, and a registered version (``name``, ``version``, ``alias``) or a local path."""

    name: str | None
    version: str | None
    alias: str | None
    kind: str
    source: str
    variant: str | None = None


class HumanReview(BaseModel):
    """The human loop a low-confidence prediction started (``sagestack review describe LOOP``)."""

    loop: str


class LabelPrediction(BaseModel):
    """One review's top label and the probability of every label; ``human_review`` names the human
    loop it started, when a review flow is attached and it was not confident enough (else absent)."""

    label: int | str
    probabilities: dict[str, float]
    human_review: HumanReview | None = None

    @model_serializer(mode="wrap")
    def _without_empty_review(self, handler):
        data = handler(self)
        if isinstance(data, dict) and data.get("human_review", 0) is None:
            del data["human_review"]
        return data


class PredictResponse(BaseModel):
    """The body of a ``/predict`` answer; ``inference_id`` names the request (and its captured records)."""

    model: ModelSummary
    predictions: list[LabelPrediction]
    inference_id: str | None = None


class IdPrediction(LabelPrediction):
    """One ``/predict_by_id`` prediction, for the review with this id (and, for data capture only,
    the text the store held: never part of the answer)."""

    review_id: int
    review: str | None = Field(default=None, exclude=True)


class PredictByIdResponse(BaseModel):
    """The body of a ``/predict_by_id`` answer; ``inference_id`` names the request (and its captured records)."""

    model: ModelSummary
    predictions: list[IdPrediction]
    inference_id: str | None = None


class BatchPrediction(LabelPrediction):
    """One item of a ``/predict_batch`` answer: a prediction, the model that made it, its inference id."""

    model: ModelSummary
    inference_id: str | None = None


def model_summary(ref: str, info: ModelVersionInfo | None, kind: str, variant: str | None = None) -> ModelSummary:
    """Describe the served model as every response reports it.

    Args:
        ref: the reference the model was loaded from (``NAME@ALIAS``, ``NAME/VERSION``, ``NAME``
            or a local path).
        info: the registry version it resolved to, or ``None`` for a local model.
        kind: the model kind (the predictor's ``kind``).
        variant: the production variant the endpoint serves (``SAGESTACK_VARIANT``), if any.

    Returns:
        For a registered model its name, version, the alias the reference named (else ``None``),
        its kind and its ``models:/`` URI as ``source``; for a local model its kind and
        ``source``, the reference.
    """
    if info is None:
        return ModelSummary(name=None, version=None, alias=None, kind=kind, source=ref, variant=variant)
    alias = ref.split("@", 1)[1] if "@" in ref else None
    return ModelSummary(name=info.name, version=info.version, alias=alias, kind=kind, source=info.uri, variant=variant)


def _review(loop: str | None) -> HumanReview | None:
    return HumanReview(loop=loop) if loop else None


def prediction_response(model: ModelSummary, predictions: Sequence[Prediction],
                        inference_id: str | None = None, loops: Sequence[str | None] | None = None) -> PredictResponse:
    """Shape the answer to one ``/predict`` request.

    Args:
        model: the served model, as :func:`model_summary` describes it.
        predictions: one prediction per review, in request order.
        inference_id: the request's inference id (its captured records carry it).
        loops: per prediction, the human loop it started (or None), when a review flow is attached.

    Returns:
        ``{"model": {...}, "predictions": [{"label", "probabilities"[, "human_review"]}, ...],
        "inference_id"}`` as a model.
    """
    loops = loops or [None] * len(predictions)
    return PredictResponse(
        model=model,
        predictions=[LabelPrediction(label=p.label, probabilities=p.probabilities, human_review=_review(loop))
                     for p, loop in zip(predictions, loops)],
        inference_id=inference_id,
    )


def batch_predictions(model: ModelSummary, predictions: Sequence[Prediction],
                      inference_ids: Sequence[str] | None = None,
                      loops: Sequence[str | None] | None = None) -> list[BatchPrediction]:
    """Shape the answers to a batch of reviews: one item per review, each naming the model.

    Args:
        model: the served model, as :func:`model_summary` describes it.
        predictions: one prediction per review, in order.
        inference_ids: one inference id per review (batched requests are merged, so each review
            is its own inference), or None.
        loops: per prediction, the human loop it started (or None).

    Returns:
        ``[{"label", "probabilities", "model", "inference_id"[, "human_review"]}, ...]`` as models.
    """
    ids = inference_ids or [None] * len(predictions)
    loops = loops or [None] * len(predictions)
    return [BatchPrediction(label=p.label, probabilities=p.probabilities, model=model, inference_id=i,
                            human_review=_review(loop))
            for p, i, loop in zip(predictions, ids, loops)]
