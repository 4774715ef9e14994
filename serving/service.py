"""The real-time sentiment endpoint: a thin BentoML adapter over ``sagestack.serving``, for any model kind.

Run it with ``bentoml serve sagestack.bento.service:SentimentService``. The model is the settings'
``endpoint_model`` (``SAGESTACK_MODEL``: ``NAME@ALIAS``, ``NAME/VERSION`` or a model file;
default ``reviews-sentiment@champion``) in the registry that ``SAGESTACK_HOME`` /
``SAGESTACK_TRACKING_URI`` point at. Besides the two prediction routes BentoML serves
``/healthz``, ``/livez``, ``/readyz``, ``/metrics`` (Prometheus) and ``/docs.json`` (OpenAPI).
What the endpoint does (warm-up, predictions, data capture, human review, readiness) is
:class:`sagestack.serving.endpoint.Endpoint`; this module maps it onto BentoML's routes, hooks
and metrics, and is the only one that knows BentoML.
"""

from __future__ import annotations

import contextlib
import time
from typing import Annotated, Awaitable

import bentoml
from bentoml.validators import ContentType
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from sagestack.config import load_settings
from sagestack.errors import ConfigError
from sagestack.serving.endpoint import DEFAULT_MODEL_REF, Endpoint, NotFound, Unavailable, check_deployable
from sagestack.serving.readiness import WorkerGroup
from sagestack.serving.threads import endpoint_layout
from sagestack.serving.requests import (MAX_REQUEST_BYTES, BatchPrediction, PredictByIdResponse, PredictResponse,
                                        ReviewIds, Reviews)
from sagestack.bento.access_log import bentoml_logging, configure_worker
from sagestack.bento.guard import RequestGuard

# The command line that marks a BentoML worker process (bentoml serve's children).
BENTOML_WORKER = "_bentoml_impl.worker.service"

# Per production variant, as the course plots A/B variants: invocations and latency of each route.
# (BentoML's own request metrics carry no variant label.)
INVOCATIONS = bentoml.metrics.Counter(
    name="sagestack_invocations", documentation="Prediction requests by variant, route and outcome",
    labelnames=["variant", "route", "model_version", "outcome"],
)
# What the endpoint's observers did, by Endpoint's count(observer, outcome, n).
OBSERVERS = {
    "capture": bentoml.metrics.Counter(
        name="sagestack_capture_records",
        documentation="Data capture: records queued for writing (captured), dropped on a full queue, lost to a "
                      "write error (failed)",
        labelnames=["variant", "outcome"],
    ),
    "human_loops": bentoml.metrics.Counter(
        name="sagestack_human_loops",
        documentation="Human review: loops started for low-confidence predictions, dropped on a full queue, "
                      "lost to a write error (failed)",
        labelnames=["variant", "outcome"],
    ),
}
# How many requests each model call of /predict and /predict_batch answered (concurrent requests share calls).
BATCH_REQUESTS = bentoml.metrics.Histogram(
    name="sagestack_model_call_requests",
    documentation="Requests answered by one model call of /predict and /predict_batch (adaptive batching)",
    labelnames=["variant"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
LATENCY = bentoml.metrics.Histogram(
    name="sagestack_request_duration_seconds", documentation="Prediction latency by variant and route",
    labelnames=["variant", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def _model_ref() -> str:
    settings = _settings()
    return (settings.endpoint.model if settings else None) or DEFAULT_MODEL_REF


def _settings():
    # Read when BentoML imports the service (in the server process and in each worker alike).
    try:
        return load_settings()
    except ConfigError:
        return None  # check_model reports the bad setting before any worker starts


def _layout() -> tuple[int | str, list[dict]]:
    """The server's worker count and its workers' environment (``sagestack.serving.threads.endpoint_layout``);
    the operator's ``workers`` and environment variables win."""
    settings = _settings()
    if settings is None:
        return "cpu_count", []
    workers, environment = endpoint_layout(settings, _model_ref())
    # BentoML gives each variable the operator's value when set, else this one. Runtime only: `bentoml build`
    # imports this module too, and a Bento's image must not carry the build machine's choice.
    return workers, [{"name": name, "value": value, "stage": "runtime"} for name, value in environment.items()]


def _logging() -> dict:
    settings = _settings()
    return bentoml_logging(settings.endpoint.access_log if settings else "sampled")


_WORKERS, _ENVS = _layout()


@bentoml.service(
    name="sagestack-sentiment",
    workers=_WORKERS,
    envs=_ENVS,
    traffic={"timeout": 30},
    logging=_logging(),  # SAGESTACK_ACCESS_LOG: off, sampled (the default) or on
    # BentoML's OpenTelemetry middleware costs about a third of a prediction request even with
    # sampling off (the default). To trace predictions, override this key in the BentoML config
    # (services.sagestack-sentiment.tracing.excluded_urls).
    tracing={"excluded_urls": ["/predict"]},
)
class SentimentService:
    """Predicts review sentiment (-1, 0, 1) with a registered model of any kind.

    Each worker warms up as it starts (see :class:`~sagestack.serving.endpoint.Endpoint`). Until
    then, and whenever the model files or the online store are gone, ``/readyz`` answers 503 with
    the reason; ``/livez`` answers all along, and prediction routes of a worker still warming
    answer 503 "warming up".
    """

    @bentoml.on_deployment
    def check_model() -> None:
        """Fail ``bentoml serve`` before any worker starts when the model does not load (else a
        worker that fails to start is respawned forever and the server hangs)."""
        check_deployable(load_settings(), _model_ref())

    def __init__(self) -> None:
        settings = load_settings()
        configure_worker(settings.endpoint.access_log)
        self._variant = settings.endpoint.variant or ""
        # BentoML makes the service inside its startup coroutine: the endpoint takes that loop.
        self.endpoint = Endpoint(settings, _model_ref(), group=WorkerGroup.of_parent(BENTOML_WORKER),
                                 count=self._count, batched=BATCH_REQUESTS.labels(variant=self._variant).observe)

    @bentoml.on_startup
    async def _start_warming(self) -> None:
        # BentoML awaits this before the worker accepts connections.
        await self.endpoint.start_warming()

    async def __is_ready__(self) -> bool:
        """BentoML's ``/readyz``: 503 with the reason while warming up or while a dependency is gone."""
        if reason := await self.endpoint.reason():
            raise HTTPException(status_code=503, detail=reason)
        return True

    @bentoml.on_shutdown
    def _stop(self) -> None:
        self.endpoint.stop()

    def _count(self, observer: str, outcome: str, n: int) -> None:
        OBSERVERS[observer].labels(variant=self._variant, outcome=outcome).inc(n)

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
            LATENCY.labels(variant=self._variant, route=route).observe(time.perf_counter() - started)
            INVOCATIONS.labels(variant=self._variant, route=route, model_version=self.endpoint.model_version,
                               outcome=outcome["value"]).inc()

    async def _answer(self, route: str, answer: Awaitable):
        """Await the endpoint's answer, observed; its 503s and 404s are returned as ``{"error": ...}``.

        Returned, not raised: BentoML replaces the message of any 5xx exception with a generic one,
        and answers a raised 4xx exception with a one-item list, [{"error": ...}].
        """
        with self._observed(route) as outcome:
            try:
                return await answer
            except Unavailable as exc:  # a 503 says "retry later", unlike a 500
                outcome["value"] = "unavailable"
                return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)})
            except NotFound as exc:
                outcome["value"] = "error"
                return JSONResponse({"error": str(exc)}, status_code=404)

    @bentoml.api(route="/predict")
    async def predict(self, reviews: Reviews) -> PredictResponse:
        """Label and probability of each class for each review, and the model that answered."""
        return await self._answer("/predict", self.endpoint.predict("/predict", reviews))

    @bentoml.api(route="/predict_by_id")
    async def predict_by_id(self, review_ids: ReviewIds) -> PredictByIdResponse:
        """Predict reviews by id: their text comes from the Feast online store (training/serving parity)."""
        return await self._answer("/predict_by_id", self.endpoint.predict_by_id("/predict_by_id", review_ids))

    # The explicit content type spares BentoML building a JSON schema for every list response.
    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self, reviews: Reviews
    ) -> Annotated[list[BatchPrediction], ContentType("application/json")]:
        """As ``/predict``, one item per review; concurrent requests are predicted together."""
        return await self._answer("/predict_batch", self.endpoint.predict_batch("/predict_batch", reviews))


# BentoML reads whole bodies with no size limit; this answers 413/415 before it does.
SentimentService.add_asgi_middleware(RequestGuard, max_bytes=MAX_REQUEST_BYTES)
