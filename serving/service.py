"""The real-time sentiment endpoint: a thin BentoML adapter over ``sagestack.serving``."""

from __future__ import annotations

import os
from typing import Annotated

import bentoml
from pydantic import BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from sagestack.config import load_settings
from sagestack.registry import DEFAULT_MODEL_NAME, load_predictor
from sagestack.serving.requests import (
    MAX_REQUEST_BYTES,
    MAX_REVIEW_CHARS,
    MAX_REVIEWS_PER_REQUEST,
    model_summary,
    prediction_response,
    InvalidRequest,
    validate_reviews,
)
from serving.guard import RequestGuard

DEFAULT_MODEL_REF = f"{DEFAULT_MODEL_NAME}@champion"



def _model_ref() -> str:
    return os.environ.get("SAGESTACK_MODEL", DEFAULT_MODEL_REF)


def _checked_reviews(value: object) -> list[str]:
    # A custom error keeps the library's message as is (a ValueError would gain "Value error, ").
    try:
        return validate_reviews(value)
    except InvalidRequest as exc:
        raise PydanticCustomError("invalid_reviews", str(exc)) from None


Reviews = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_REVIEW_CHARS)]],
    Field(min_length=1, max_length=MAX_REVIEWS_PER_REQUEST, description="review texts as written"),
    BeforeValidator(_checked_reviews),
]


@bentoml.service(name="sagestack-sentiment", workers=int(os.environ.get("W", "1")))
class SentimentService:
    """Predicts review sentiment (-1, 0, 1) with the registered fastText model."""

    @bentoml.on_deployment
    def check_model() -> None:
        """Fail ``bentoml serve`` before any worker starts when the model does not load."""
        load_predictor(load_settings(), _model_ref())

    def __init__(self) -> None:
        ref = _model_ref()
        self.predictor, info = load_predictor(load_settings(), ref)
        self.model = model_summary(ref, info)

    @bentoml.api(route="/predict")
    def predict(self, reviews: Reviews) -> dict:
        """Label and class probabilities for each review, with the model version."""
        return prediction_response(self.model, self.predictor.predict(reviews))

    @bentoml.api(route="/predict_batch", batchable=True, max_batch_size=256, max_latency_ms=1000)
    def predict_batch(self, reviews: Reviews) -> list[dict]:
        """As ``/predict``, one prediction per review, batched across concurrent requests."""
        return [p.to_dict() for p in self.predictor.predict(reviews)]


SentimentService.add_asgi_middleware(RequestGuard, max_bytes=MAX_REQUEST_BYTES)
