"""The real-time sentiment endpoint: a thin BentoML adapter over ``sagestack.serving``, for any model kind.

Run it with ``bentoml serve serving.service:SentimentService``. The model comes from the
``SAGESTACK_MODEL`` environment variable (``NAME@ALIAS``, ``NAME/VERSION`` or a model file;
default ``reviews-sentiment@champion``) in the registry that ``SAGESTACK_HOME`` /
``SAGESTACK_TRACKING_URI`` point at. Besides the two prediction routes BentoML serves
``/healthz``, ``/livez``, ``/readyz``, ``/metrics`` (Prometheus) and ``/docs.json`` (OpenAPI).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
from functools import partial
from pathlib import Path
from typing import Annotated

import bentoml
from bentoml.exceptions import NotFound, ServiceUnavailable
from bentoml.validators import ContentType
from pydantic import BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from sagestack.config import load_settings
from sagestack.errors import ConfigError, SagestackError
from sagestack.features.store import ENDPOINT_FEATURES, OnlineReader, OnlineStoreUnavailable, first_review_id, has_features
from sagestack.deploy.traffic import check_servable
from sagestack.models import get_kind
from sagestack.registry import DEFAULT_MODEL_NAME, load_predictor
from sagestack.serving.requests import (
    MAX_REQUEST_BYTES,
    MAX_REVIEW_CHARS,
    MAX_REVIEWS_PER_REQUEST,
    BatchPrediction,
    InvalidRequest,
    ModelSummary,
    PredictByIdResponse,
    PredictResponse,
    batch_predictions,
    missing_ids_message,
    model_summary,
    predict_reviews,
    predict_stored_batch,
    prediction_response,
    validate_review_ids,
    validate_reviews,
)
from sagestack.serving.coalesce import Coalescer
from sagestack.serving.readiness import Readiness, WorkerGroup
from serving.guard import RequestGuard

logger = logging.getLogger("sagestack.serving")

MODEL_ENV_VAR = "SAGESTACK_MODEL"
DEFAULT_MODEL_REF = f"{DEFAULT_MODEL_NAME}@champion"
# What each worker predicts once before it reports ready.
WARM_UP_REVIEW = "Warm-up: the dress fits well and the fabric is soft."
WARM_UP_RETRY_S = 5
# The most /predict_by_id requests one online-store read and prediction answer together.
BY_ID_BATCH_REQUESTS = 32

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


def _workers() -> int | str:
    # Read when BentoML imports the service (in the server process and in each worker alike).
    try:
        return load_settings().workers or "cpu_count"
    except ConfigError:
        return "cpu_count"  # check_model reports the bad setting before any worker starts


@bentoml.service(
    name="sagestack-sentiment",
    workers=_workers(),
    traffic={"timeout": 30},
    # BentoML's OpenTelemetry middleware costs about a third of a prediction request even with
    # sampling off (the default). To trace predictions, override this key in the BentoML config
    # (services.sagestack-sentiment.tracing.excluded_urls).
    tracing={"excluded_urls": ["/predict"]},
)
class SentimentService:
    """Predicts review sentiment (-1, 0, 1) with a registered model of any kind.

    Each worker warms up in the background as it starts: it loads the model and predicts once,
    opens the online store and reads once, so no request pays a cold start. Until then, and
    whenever the model files or the online store are gone, ``/readyz`` answers 503 with the
    reason; ``/livez`` answers all along, and prediction routes answer 503 "warming up".
    """

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
        import sys; sys.setswitchinterval(float(os.environ.get('SWI','0.005')))
        self._ref = _model_ref()
        self._settings = load_settings()
        self._labels = {"variant": self._settings.variant or "", "model_version": ""}
        self.readiness = Readiness(WorkerGroup.of_this_server())
        self.predictor = None
        self.model: ModelSummary | None = None
        self._heavy = False
        self._by_id: Coalescer | None = None
        self._by_id_lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()  # BentoML makes the service inside its startup coroutine
        # In a thread, so this worker answers /livez and /readyz (503, "warming up: ...") meanwhile.
        threading.Thread(target=self._warm_up, name="sagestack-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        """Load and exercise everything a request can need; retry until it all works."""
        while True:
            try:
                self._load()
                return
            except Exception as exc:  # e.g. the online store is down at start: say so, try again
                logger.error("warm-up failed: %s", exc)
                self.readiness.warming(f"failed ({exc}); trying again in {WARM_UP_RETRY_S} s")
                time.sleep(WARM_UP_RETRY_S)

    def _load(self) -> None:
        self.readiness.warming(f"loading the model {self._ref}")
        predictor, info = load_predictor(self._settings, self._ref)
        predictor.predict([WARM_UP_REVIEW])  # the first prediction pays every lazy initialisation
        # The kind says whether a prediction is cheap (run on the event loop) or heavy (run in a
        # worker thread, so a 30 ms AutoGluon or BERT call never blocks other requests).
        heavy = get_kind(predictor.kind).heavy
        checks = {"model files": partial(_model_files_check, predictor.source_path)}
        by_id = None
        if has_features(self._settings):
            self.readiness.warming("opening the online feature store")
            by_id, probe = _open_stored_predictor(self._settings, predictor, heavy)
            checks["online store"] = partial(_store_check, by_id, probe)
            # One read and prediction by the path requests take, on the event loop (it opens the
            # store's connection there: Redis's asynchronous client belongs to the loop).
            failure = asyncio.run_coroutine_threadsafe(_store_check(by_id, probe), self._loop).result(timeout=60)
            if failure:
                raise SagestackError(failure)
        self.model = model_summary(self._ref, info, predictor.kind, self._settings.variant)
        self._labels["model_version"] = self.model.version or ""
        self.predictor, self._heavy, self._by_id = predictor, heavy, by_id
        # MLflow leaves a large heap behind; without freezing it, full garbage collections stall
        # the event loop for 100+ ms (p99 of 130 ms at a single client).
        gc.collect()
        gc.freeze()
        self.readiness.ready(checks)
        logger.info("warm: %s (%s) ready to serve", self._ref, predictor.kind)

    async def __is_ready__(self) -> bool:
        """BentoML's ``/readyz``: 503 with the reason while warming up or while a dependency is gone."""
        reason = await self.readiness.reason()
        if reason:
            raise HTTPException(status_code=503, detail=reason)
        return True

    @bentoml.on_shutdown
    def _stop(self) -> None:
        self.readiness.stopping()

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

    def _unavailable(self, outcome: dict, message: str, retry_after: int) -> JSONResponse:
        # A 503 says "retry later", unlike a 500. Returned, not raised: BentoML replaces the
        # message of any 5xx exception with a generic one, and this one tells what is wrong.
        outcome["value"] = "unavailable"
        return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": str(retry_after)})

    def _warming_message(self) -> str:
        return f"the endpoint is {self.readiness.status}; retry shortly"

    @bentoml.api(route="/predict")
    async def predict(self, reviews: Reviews) -> PredictResponse:
        """Label and probability of each class for each review, and the model that answered."""
        with self._observed("/predict") as outcome:
            if not self.readiness.warm:
                return self._unavailable(outcome, self._warming_message(), 1)
            return prediction_response(self.model, await predict_reviews(self.predictor, reviews, heavy=self._heavy))

    @bentoml.api(route="/predict_by_id")
    async def predict_by_id(self, review_ids: ReviewIds) -> PredictByIdResponse:
        """Predict reviews by id: their text comes from the Feast online store (training/serving parity).

        Concurrent requests share one online-store read and one prediction (see
        :class:`~sagestack.serving.coalesce.Coalescer`).
        """
        with self._observed("/predict_by_id") as outcome:
            if not self.readiness.warm:
                return self._unavailable(outcome, self._warming_message(), 1)
            by_id = self._by_id or await self._open_by_id()
            try:
                missing, predictions = await by_id.submit(review_ids)
            except OnlineStoreUnavailable as exc:
                return self._unavailable(outcome, str(exc), 5)
            if missing:
                raise NotFound(missing_ids_message(missing))
            return PredictByIdResponse(model=self.model, predictions=predictions)

    async def _open_by_id(self) -> Coalescer:
        # Only when the store was filled after this worker warmed up: the one cold read there is.
        async with self._by_id_lock:
            if self._by_id is None:
                if not has_features(self._settings):
                    raise NotFound("the feature store is empty; run `sagestack features ingest` for this SAGESTACK_HOME")
                self._by_id, _ = await asyncio.to_thread(_open_stored_predictor, self._settings, self.predictor,
                                                         self._heavy)
        return self._by_id

    # The explicit content type spares BentoML building a JSON schema for every list response.
    @bentoml.api(route="/predict_batch", batchable=True, max_batch_size=256, max_latency_ms=1000)
    async def predict_batch(
        self, reviews: Reviews
    ) -> Annotated[list[BatchPrediction], ContentType("application/json")]:
        """As ``/predict``, one item per review; concurrent requests are predicted together."""
        with self._observed("/predict_batch") as outcome:
            if not self.readiness.warm:
                outcome["value"] = "unavailable"
                raise ServiceUnavailable(self._warming_message())
            return batch_predictions(self.model, await predict_reviews(self.predictor, reviews, heavy=self._heavy))


def _open_stored_predictor(settings, predictor, heavy: bool) -> tuple[Coalescer, int | None]:
    """What answers ``/predict_by_id``: the online-store reader and the model behind a coalescer;
    returned with a review id for readiness probes to read (``None`` in an empty table)."""
    reader = OnlineReader(settings, features=ENDPOINT_FEATURES)
    by_id = Coalescer(partial(predict_stored_batch, reader, predictor, heavy=heavy), max_items=BY_ID_BATCH_REQUESTS)
    return by_id, first_review_id(settings)


async def _model_files_check(path: Path | None) -> str | None:
    if path is None or await asyncio.to_thread(path.exists):
        return None
    return f"the model files at {path} are gone; restore them or restart the endpoint on another model"


async def _store_check(by_id: Coalescer, probe: int | None) -> str | None:
    # The same read requests make, through the same thread: what a request would meet now.
    if probe is None:
        return None
    try:
        await by_id.submit([probe])
    except OnlineStoreUnavailable as exc:
        return str(exc)
    return None


# BentoML reads whole bodies with no size limit; this answers 413/415 before it does.
SentimentService.add_asgi_middleware(RequestGuard, max_bytes=MAX_REQUEST_BYTES)
