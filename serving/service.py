"""The real-time sentiment endpoint: a thin BentoML adapter over ``sagestack.serving``, for any model kind.

Run it with ``bentoml serve serving.service:SentimentService``. The model comes from the
``SAGESTACK_MODEL`` environment variable (``NAME@ALIAS``, ``NAME/VERSION`` or a model file;
default ``reviews-sentiment@champion``) in the registry that ``SAGESTACK_HOME`` /
``SAGESTACK_TRACKING_URI`` point at. Besides the two prediction routes BentoML serves
``/healthz``, ``/livez``, ``/readyz``, ``/metrics`` (Prometheus) and ``/docs.json`` (OpenAPI).
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from typing import Annotated

import bentoml
from bentoml.exceptions import NotFound
from bentoml.validators import ContentType
from pydantic import BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError
from starlette.responses import JSONResponse

from sagestack.config import load_settings
from sagestack.deploy.traffic import check_servable
from sagestack.models import get_kind
from sagestack.registry import DEFAULT_MODEL_NAME, load_predictor
from sagestack.serving.requests import (
    MAX_REQUEST_BYTES,
    MAX_REVIEW_CHARS,
    MAX_REVIEWS_PER_REQUEST,
    BatchPrediction,
    InvalidRequest,
    PredictByIdResponse,
    PredictResponse,
    batch_predictions,
    missing_ids_message,
    model_summary,
    predict_reviews,
    predict_stored_reviews,
    prediction_response,
    validate_review_ids,
    validate_reviews,
)
from serving.guard import RequestGuard

MODEL_ENV_VAR = "SAGESTACK_MODEL"
DEFAULT_MODEL_REF = f"{DEFAULT_MODEL_NAME}@champion"

# Per production variant, as the course plots A/B variants: invocations and latency of each route.
# (BentoML's own request metrics carry no variant label.)
INVOCATIONS = bentoml.metrics.Counter(
    name="sagestack_invocations", documentation="Prediction requests by variant, route and outcome",
    labelnames=["variant", "route", "model_version", "outcome"],
)
LATENCY = bentoml.metrics.Histogram(
    name="sagestack_request_duration_seconds", documentation="Prediction latency by variant and route",
    labelnames=["variant", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def _model_ref() -> str:
    return os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL_REF


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


@bentoml.service(
    name="sagestack-sentiment",
    workers="cpu_count",
    traffic={"timeout": 30},
    # BentoML's OpenTelemetry middleware costs about a third of a prediction request even with
    # sampling off (the default). To trace predictions, override this key in the BentoML config
    # (services.sagestack-sentiment.tracing.excluded_urls).
    tracing={"excluded_urls": ["/predict"]},
)
class SentimentService:
    """Predicts review sentiment (-1, 0, 1) with a registered model of any kind."""

    @bentoml.on_deployment
    def check_model() -> None:
        """Fail ``bentoml serve`` before any worker starts when the model does not load.

        Without this a worker that fails to start is respawned forever and the server hangs. A
        production variant (``SAGESTACK_VARIANT``) serves only an Approved version: a pending
        ``@challenger`` never takes production traffic, wherever the endpoint runs.
        """
        settings = load_settings()
        _, info = load_predictor(settings, _model_ref())
        if settings.variant and info is not None:
            check_servable(settings.variant, info)

    def __init__(self) -> None:
        ref = _model_ref()
        settings = load_settings()
        self.predictor, info = load_predictor(settings, ref)
        self.model = model_summary(ref, info, self.predictor.kind, settings.variant)
        self._labels = {"variant": settings.variant or "", "model_version": self.model.version or ""}
        # The kind says whether a prediction is cheap (run on the event loop) or heavy (run in a
        # worker thread, so a 30 ms AutoGluon or BERT call never blocks other requests).
        self._heavy = get_kind(self.predictor.kind).heavy
        # MLflow leaves a large heap behind; without freezing it, full garbage collections stall
        # the event loop for 100+ ms (p99 of 130 ms at a single client).
        gc.collect()
        gc.freeze()

    @contextlib.contextmanager
    def _observed(self, route: str):
        """Count the request and time it under this endpoint's variant.

        The outcome is ``ok``, ``error`` on an exception, or what a route that answers an error
        without raising sets in the yielded ``outcome["value"]``.
        """
        started, outcome = time.perf_counter(), {"value": "ok"}
        try:
            yield outcome
        except BaseException:
            outcome["value"] = "error"
            raise
        finally:
            LATENCY.labels(variant=self._labels["variant"], route=route).observe(time.perf_counter() - started)
            INVOCATIONS.labels(route=route, outcome=outcome["value"], **self._labels).inc()

    @bentoml.api(route="/predict")
    async def predict(self, reviews: Reviews) -> PredictResponse:
        """Label and probability of each class for each review, and the model that answered."""
        with self._observed("/predict"):
            return prediction_response(self.model, await predict_reviews(self.predictor, reviews, heavy=self._heavy))

    @bentoml.api(route="/predict_by_id")
    def predict_by_id(self, review_ids: ReviewIds) -> PredictByIdResponse:
        """Predict reviews by id: their text comes from the Feast online store (training/serving parity)."""
        from sagestack.features.store import OnlineStoreUnavailable

        with self._observed("/predict_by_id") as outcome:
            try:
                missing, predictions = predict_stored_reviews(self._online_features(), self.predictor, review_ids)
            except OnlineStoreUnavailable as exc:
                # A 503 says "retry later", unlike a 500. Returned, not raised: BentoML replaces the
                # message of any 5xx exception with a generic one, and this one tells what is down.
                outcome["value"] = "unavailable"
                return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "5"})
            if missing:
                raise NotFound(missing_ids_message(missing))
            return PredictByIdResponse(model=self.model, predictions=predictions)

    def _online_features(self):
        # Opened on first use: the store may be filled after the service started.
        if getattr(self, "_reader", None) is None:
            from sagestack.features.store import OnlineReader, read_features

            settings = load_settings()
            if read_features(settings) is None:
                raise NotFound("the feature store is empty; run `sagestack features ingest` for this SAGESTACK_HOME")
            self._reader = OnlineReader(settings)
        return self._reader

    # The explicit content type spares BentoML building a JSON schema for every list response.
    @bentoml.api(route="/predict_batch", batchable=True, max_batch_size=256, max_latency_ms=1000)
    async def predict_batch(
        self, reviews: Reviews
    ) -> Annotated[list[BatchPrediction], ContentType("application/json")]:
        """As ``/predict``, one item per review; concurrent requests are predicted together."""
        with self._observed("/predict_batch"):
            return batch_predictions(self.model, await predict_reviews(self.predictor, reviews, heavy=self._heavy))


# BentoML reads whole bodies with no size limit; this answers 413/415 before it does.
SentimentService.add_asgi_middleware(RequestGuard, max_bytes=MAX_REQUEST_BYTES)
