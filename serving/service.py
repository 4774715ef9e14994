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
from typing import Annotated

import bentoml
from bentoml.exceptions import ServiceUnavailable
from bentoml.validators import ContentType
from pydantic import BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from sagestack.config import load_settings
from sagestack.errors import ConfigError
from sagestack.features.store import OnlineStoreUnavailable, has_features
from sagestack.deploy.traffic import check_servable
from sagestack.models import get_kind
from sagestack.monitor.capture import CaptureWriter, new_inference_id
from sagestack.registry import DEFAULT_MODEL_NAME, load_predictor
from sagestack.review.starter import LoopStarter
from sagestack.review.store import review_store
from sagestack.serving.requests import (
    MAX_REQUEST_BYTES,
    MAX_REVIEW_CHARS,
    MAX_REVIEWS_PER_REQUEST,
    BatchPrediction,
    HumanReview,
    InvalidRequest,
    ModelSummary,
    PredictByIdResponse,
    PredictResponse,
    batch_predictions,
    missing_ids_message,
    model_summary,
    predict_reviews,
    prediction_response,
    validate_review_ids,
    validate_reviews,
)
from sagestack.serving.readiness import Readiness, WorkerGroup, model_files_check
from sagestack.serving.stored import StoredPredictions
from serving.guard import RequestGuard

logger = logging.getLogger("sagestack.serving")

MODEL_ENV_VAR = "SAGESTACK_MODEL"
DEFAULT_MODEL_REF = f"{DEFAULT_MODEL_NAME}@champion"
# What each worker predicts once before it reports ready.
WARM_UP_REVIEW = "Warm-up: the dress fits well and the fabric is soft."
WARM_UP_RETRY_S = 5

# Per production variant, as the course plots A/B variants: invocations and latency of each route.
# (BentoML's own request metrics carry no variant label.)
INVOCATIONS = bentoml.metrics.Counter(
    name="sagestack_invocations", documentation="Prediction requests by variant, route and outcome",
    labelnames=["variant", "route", "model_version", "outcome"],
)
CAPTURE = bentoml.metrics.Counter(
    name="sagestack_capture_records",
    documentation="Data capture: records queued for writing (captured), dropped on a full queue, lost to a write error (failed)",
    labelnames=["variant", "outcome"],
)
HUMAN_LOOPS = bentoml.metrics.Counter(
    name="sagestack_human_loops",
    documentation="Human review: loops started for low-confidence predictions, dropped on a full queue, "
                  "lost to a write error (failed)",
    labelnames=["variant", "outcome"],
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

    Each worker warms up as it starts: it loads the model and predicts once, opens the online
    store and answers one ``/predict_by_id``, so no request pays a cold start (see
    :meth:`_start_warming`). Until then, and whenever the model files or the online store are
    gone, ``/readyz`` answers 503 with the reason; ``/livez`` answers all along, and prediction
    routes of a worker still warming answer 503 "warming up".
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
        if settings.review_flow:
            review_store(settings).flow(settings.review_flow)  # an unknown flow stops the server here

    def __init__(self) -> None:
        self._ref = _model_ref()
        self._settings = load_settings()
        self._labels = {"variant": self._settings.variant or "", "model_version": ""}
        self.readiness = Readiness(WorkerGroup.of_this_server())
        self.predictor = None
        self.model: ModelSummary | None = None
        self._heavy = False
        self._stored: StoredPredictions | None = None
        self._stored_lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()  # BentoML makes the service inside its startup coroutine
        self._last_reason: str | None = "starting"  # so the first "ready" is logged too
        self._retry_steps = True
        # Data capture for monitoring (SAGESTACK_CAPTURE percent of requests): queued here,
        # written by the writer's own thread, so a request never waits for a disk.
        self._capture = (CaptureWriter(self._settings.capture_location, self._settings.capture,
                                       on_flush=self._capture_flushed)
                         if self._settings.capture else None)
        self._capture_model: dict | None = None  # the served model as capture records name it
        # Human review (SAGESTACK_REVIEW_FLOW): low-confidence predictions start loops, written by
        # the starter's own thread; the response names the loop without waiting for it.
        self._review = None
        if self._settings.review_flow:
            store = review_store(self._settings)
            self._review = LoopStarter(store, store.flow(self._settings.review_flow), on_flush=self._loops_flushed)

    @bentoml.on_startup
    async def _start_warming(self) -> None:
        """Warm this worker up; how depends on whether it joins workers that already serve.

        The first workers of a server warm up in the background: meanwhile they answer ``/livez``,
        and ``/readyz`` 503 with the step. A worker that starts while others already serve (one the
        server restarted) warms up before it takes any connection, so the kernel hands new
        connections to the warm ones and its restart costs no request.
        """
        if await asyncio.to_thread(self.readiness.joins_warm_workers):
            try:
                # BentoML awaits this before the worker accepts. One try: a worker stuck here could
                # not even be stopped (uvicorn waits for its start-up to end).
                await asyncio.to_thread(self._warm_up, retry=False)
                return
            except Exception as exc:
                logger.error("warm-up failed: %s; going on in the background", exc)
        threading.Thread(target=self._warm_up, name="sagestack-warm-up", daemon=True).start()

    def _warm_up(self, retry: bool = True) -> None:
        """Load and exercise everything a request can need, each step retried until it works
        (``retry=False``: the first failure raises)."""
        self._retry_steps = retry
        self.readiness.warming(f"loading the model {self._ref}")
        predictor, info = self._retry(lambda: load_predictor(self._settings, self._ref))
        self._retry(lambda: predictor.predict([WARM_UP_REVIEW]))  # the first prediction pays every lazy start-up
        # The kind says whether a prediction is cheap (run on the event loop) or heavy (run in a
        # worker thread, so a 30 ms AutoGluon or BERT call never blocks other requests).
        heavy = get_kind(predictor.kind).heavy
        checks = {"model files": partial(model_files_check, predictor.source_path)}
        stored = None
        if has_features(self._settings):
            self.readiness.warming("opening the online feature store")
            stored = self._retry(lambda: StoredPredictions.open(self._settings, predictor, heavy))
            # One request's whole path, on the event loop (Redis's asynchronous client belongs to it).
            self._retry(lambda: asyncio.run_coroutine_threadsafe(stored.warm_up(), self._loop).result(timeout=60))
            checks["online store"] = stored.check
        self.model = model_summary(self._ref, info, predictor.kind, self._settings.variant)
        self._labels["model_version"] = self.model.version or ""
        self.predictor, self._heavy, self._stored = predictor, heavy, stored
        # MLflow leaves a large heap behind; without freezing it, full garbage collections stall
        # the event loop for 100+ ms (p99 of 130 ms at a single client).
        gc.collect()
        gc.freeze()
        self._retry(lambda: self.readiness.ready(checks))
        logger.info("warm: %s (%s) ready to serve", self._ref, predictor.kind)

    def _retry(self, step):
        """Run one warm-up step until it succeeds; meanwhile /readyz says why it failed."""
        while True:
            try:
                return step()
            except Exception as exc:  # e.g. the online store is down at start: say so, try again
                if not self._retry_steps:
                    raise
                logger.error("warm-up failed: %s", exc)
                self.readiness.warming(f"failed ({exc}); trying again in {WARM_UP_RETRY_S} s")
                time.sleep(WARM_UP_RETRY_S)

    async def __is_ready__(self) -> bool:
        """BentoML's ``/readyz``: 503 with the reason while warming up or while a dependency is gone."""
        reason = await self.readiness.reason()
        if reason != self._last_reason:  # each change once in the log, for whoever asks why a pod left the Service
            warming = reason is not None and reason.startswith("warming up")
            (logger.warning if reason and not warming else logger.info)("readiness: %s", reason or "ready")
            self._last_reason = reason
        if reason:
            raise HTTPException(status_code=503, detail=reason)
        return True

    @bentoml.on_shutdown
    def _stop(self) -> None:
        self.readiness.stopping()
        if self._capture is not None:
            self._capture.close()  # what is still queued is written before the worker goes
        if self._review is not None:
            self._review.close()

    def _captured(self, route: str, inference_ids: list[str], reviews: list[str], predictions) -> None:
        """Offer what a call answered to the capture writer (it samples); never blocks, never fails the request."""
        if self._capture is None:
            return
        try:
            self._capture_model = self._capture_model or self.model.model_dump()
            queued, dropped = self._capture.capture(route, inference_ids, reviews, predictions, self._capture_model)
            CAPTURE.labels(variant=self._labels["variant"], outcome="captured").inc(queued)
            if dropped:
                CAPTURE.labels(variant=self._labels["variant"], outcome="dropped").inc(dropped)
        except Exception:  # capture is an observer: a fault there must never cost a prediction
            logger.exception("data capture failed for a request on %s", route)

    def _human_loops(self, reviews: list[str], predictions, inference_ids: list[str],
                     items: list[int] | None = None) -> list[str | None] | None:
        """The human loop each prediction starts (None where confident enough), or None with no flow attached."""
        if self._review is None:
            return None
        try:
            self._capture_model = self._capture_model or self.model.model_dump()
            dropped = self._review.dropped
            loops = self._review.consider(reviews, predictions, inference_ids, self._capture_model, items)
            if self._review.dropped > dropped:
                HUMAN_LOOPS.labels(variant=self._labels["variant"], outcome="dropped").inc(self._review.dropped - dropped)
            return loops
        except Exception:  # review is an observer: a fault there must never cost a prediction
            logger.exception("human review failed for a request")
            return None

    def _loops_flushed(self, started: int, failed: int) -> None:
        """From the starter's thread: loops written, and loops a write error lost."""
        if started:
            HUMAN_LOOPS.labels(variant=self._labels["variant"], outcome="started").inc(started)
        if failed:
            HUMAN_LOOPS.labels(variant=self._labels["variant"], outcome="failed").inc(failed)

    def _capture_flushed(self, written: int, failed: int) -> None:
        """From the capture writer's thread: records it wrote, and records a write error lost."""
        if failed:
            CAPTURE.labels(variant=self._labels["variant"], outcome="failed").inc(failed)

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

    def _not_found(self, outcome: dict, message: str) -> JSONResponse:
        # Returned, not raised: BentoML answers a raised 4xx exception with a one-item list,
        # [{"error": ...}], unlike every other error of this endpoint ({"error": ...}).
        outcome["value"] = "error"
        return JSONResponse({"error": message}, status_code=404)

    def _not_warm(self) -> str | None:
        """The 503 message while this worker warms up, else ``None`` (read once: the warm-up runs meanwhile)."""
        status = self.readiness.status
        return None if status == "warm" else f"the endpoint is {status}; retry shortly"

    @bentoml.api(route="/predict")
    async def predict(self, reviews: Reviews) -> PredictResponse:
        """Label and probability of each class for each review, and the model that answered."""
        with self._observed("/predict") as outcome:
            if cold := self._not_warm():
                return self._unavailable(outcome, cold, 1)
            predictions = await predict_reviews(self.predictor, reviews, heavy=self._heavy)
            inference_id = new_inference_id()
            self._captured("/predict", [inference_id], reviews, predictions)
            loops = self._human_loops(reviews, predictions, [inference_id] * len(predictions))
            return prediction_response(self.model, predictions, inference_id, loops)

    @bentoml.api(route="/predict_by_id")
    async def predict_by_id(self, review_ids: ReviewIds) -> PredictByIdResponse:
        """Predict reviews by id: their text comes from the Feast online store (training/serving parity).

        Concurrent requests share one online-store read and one prediction (see
        :class:`~sagestack.serving.coalesce.Coalescer`).
        """
        with self._observed("/predict_by_id") as outcome:
            if cold := self._not_warm():
                return self._unavailable(outcome, cold, 1)
            stored = self._stored or await self._open_stored()
            if stored is None:
                return self._not_found(outcome, "the feature store is empty; run `sagestack features ingest` for "
                                                "this SAGESTACK_HOME")
            try:
                missing, predictions = await stored.by_id.submit(review_ids)
            except OnlineStoreUnavailable as exc:
                return self._unavailable(outcome, str(exc), 5)
            if missing:
                return self._not_found(outcome, missing_ids_message(missing))
            inference_id = new_inference_id()
            self._captured("/predict_by_id", [inference_id], [p.review for p in predictions], predictions)
            loops = self._human_loops([p.review for p in predictions], predictions, [inference_id] * len(predictions))
            if loops:  # copies: a prediction object is never changed under another request that shares it
                predictions = [p.model_copy(update={"human_review": HumanReview(loop=loop)}) if loop else p
                               for p, loop in zip(predictions, loops)]
            return PredictByIdResponse(model=self.model, predictions=predictions, inference_id=inference_id)

    async def _open_stored(self) -> StoredPredictions | None:
        # Only when the store was filled after this worker warmed up: the one cold read there is.
        async with self._stored_lock:
            if self._stored is None:
                if not has_features(self._settings):
                    return None
                stored = await asyncio.to_thread(StoredPredictions.open, self._settings, self.predictor, self._heavy)
                self.readiness.add_check("online store", stored.check)
                self._stored = stored
        return self._stored

    # The explicit content type spares BentoML building a JSON schema for every list response.
    @bentoml.api(route="/predict_batch", batchable=True, max_batch_size=256, max_latency_ms=1000)
    async def predict_batch(
        self, reviews: Reviews
    ) -> Annotated[list[BatchPrediction], ContentType("application/json")]:
        """As ``/predict``, one item per review; concurrent requests are predicted together."""
        with self._observed("/predict_batch") as outcome:
            if cold := self._not_warm():
                outcome["value"] = "unavailable"
                raise ServiceUnavailable(cold)  # BentoML answers any 5xx of a batchable api with its own words
            predictions = await predict_reviews(self.predictor, reviews, heavy=self._heavy)
            inference_ids = [new_inference_id() for _ in predictions]
            self._captured("/predict_batch", inference_ids, reviews, predictions)
            loops = self._human_loops(reviews, predictions, inference_ids, items=[0] * len(predictions))
            return batch_predictions(self.model, predictions, inference_ids, loops)


# BentoML reads whole bodies with no size limit; this answers 413/415 before it does.
SentimentService.add_asgi_middleware(RequestGuard, max_bytes=MAX_REQUEST_BYTES)
