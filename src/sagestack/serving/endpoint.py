"""The real-time endpoint's behaviour, free of any web framework: load the model, warm it up,
predict (by text and by id), observe (data capture, human review), and say whether it is ready.

A web adapter (``serving/service.py``, BentoML) makes one :class:`Endpoint` per worker, maps its
routes onto :meth:`Endpoint.predict`, :meth:`Endpoint.predict_batch` and
:meth:`Endpoint.predict_by_id`, answers :class:`Unavailable` with 503 and :class:`NotFound` with
404, and its readiness probe with :meth:`Endpoint.reason`. Counters of what the observers did are
reported through a callback, so the adapter owns its metrics.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from functools import partial
from typing import Callable

from sagestack.config import Settings
from sagestack.deploy.traffic import check_servable
from sagestack.features.store import OnlineStoreUnavailable, has_features
from sagestack.models import get_kind
from sagestack.monitor.capture import CaptureWriter, new_inference_id
from sagestack.registry import DEFAULT_MODEL_NAME, load_predictor
from sagestack.review.starter import LoopStarter
from sagestack.review.store import review_store
from sagestack.serving.coalesce import Coalescer
from sagestack.serving.readiness import Readiness, WorkerGroup, model_files_check
from sagestack.serving.threads import available_cores, call_on_model_thread, server_workers, share_cores
from sagestack.serving.requests import (
    BatchPrediction,
    HumanReview,
    ModelSummary,
    PredictByIdResponse,
    PredictResponse,
    batch_predictions,
    missing_ids_message,
    model_summary,
    predict_review_batches,
    prediction_response,
)
from sagestack.serving.stored import StoredPredictions

logger = logging.getLogger("sagestack.serving")

DEFAULT_MODEL_REF = f"{DEFAULT_MODEL_NAME}@champion"
# What each worker predicts once before it reports ready.
WARM_UP_REVIEW = "Warm-up: the dress fits well and the fabric is soft."
WARM_UP_RETRY_S = 5
# The most reviews one model call holds (several requests' together): a lone small request never
# waits behind thousands, and a heavy kind's call stays a bounded time. (A heavy kind's /predict and
# /predict_by_id calls share the model thread: a lone request may wait for one call of the other route.)
MAX_BATCH_REVIEWS = 256

# count(observer, outcome, n): ``capture`` (captured, dropped, failed) or ``human_loops`` (started,
# dropped, failed); called from request handlers and from the observers' own threads.
Count = Callable[[str, str, int], None]


class Unavailable(Exception):
    """The endpoint cannot answer now (warming up, online store down): a 503 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(Exception):
    """What the request names is not there (an empty feature store, unknown review ids): a 404."""


def check_deployable(settings: Settings, ref: str) -> None:
    """Refuse, before any worker starts, a model that does not load (a worker that fails to start
    would be respawned forever). A production variant (``settings.endpoint.variant``) serves only an Approved
    version: a pending ``@challenger`` never takes production traffic, wherever the endpoint runs.

    Raises:
        SagestackError: the model does not load, the variant's version is not Approved, or the
            review flow is unknown.
    """
    _, info = load_predictor(settings, ref)
    if settings.endpoint.variant and info is not None:
        check_servable(settings.endpoint.variant, info)
    if settings.review.flow:
        review_store(settings).flow(settings.review.flow)  # an unknown flow stops the server here


class Endpoint:
    """One worker of the sentiment endpoint. Make it on the event loop that serves its requests.

    Each worker warms up as it starts: it loads the model and predicts once, opens the online
    store and answers one request by id, so no request pays a cold start (see
    :meth:`start_warming`). Until then, and whenever the model files or the online store are gone,
    :meth:`reason` says why it is not ready; predictions of a worker still warming raise
    :class:`Unavailable` ("warming up").

    Args:
        settings: the endpoint's settings.
        ref: the model to serve (``NAME@ALIAS``, ``NAME/VERSION`` or a model file).
        group: the server's workers, which must all be warm before any says it is ready.
        count: called with what the observers did (see :data:`Count`).
        batched: called with the number of requests each ``/predict``/``/predict_batch`` model call answers.
        max_batch_reviews: the most reviews one model call holds (concurrent requests share calls).
    """

    def __init__(self, settings: Settings, ref: str, *, group: WorkerGroup | None = None,
                 count: Count = lambda observer, outcome, n: None, batched: Callable[[int], None] = lambda n: None,
                 max_batch_reviews: int = MAX_BATCH_REVIEWS) -> None:
        self.ref = ref
        self.settings = settings
        self.readiness = Readiness(group)
        self.predictor = None
        self.model: ModelSummary | None = None
        self._count = count
        self._batched = batched
        self._heavy = False
        # A torch-based kind's intra-op threads: (a call answering one request, a call answering several).
        self._threads: tuple[int | None, int | None] = (None, None)
        self._max_batch_reviews = max_batch_reviews
        # Every /predict and /predict_batch request's reviews go through it (see predict_review_batches).
        self._texts: Coalescer[list[str], list] | None = None
        self._stored: StoredPredictions | None = None
        self._stored_lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()
        self._last_reason: str | None = "starting"  # so the first "ready" is logged too
        self._retry_steps = True
        # Data capture for monitoring (SAGESTACK_CAPTURE percent of requests): queued here,
        # written by the writer's own thread, so a request never waits for a disk.
        self._capture = (CaptureWriter(settings.capture_location, settings.endpoint.capture,
                                       on_flush=self._capture_flushed) if settings.endpoint.capture else None)
        self._capture_model: dict | None = None  # the served model as capture records name it
        # Human review (SAGESTACK_REVIEW_FLOW): low-confidence predictions start loops, written by
        # the starter's own thread; the response names the loop without waiting for it.
        self._review = None
        if settings.review.flow:
            store = review_store(settings)
            self._review = LoopStarter(store, store.flow(settings.review.flow), on_flush=self._loops_flushed)

    @property
    def model_version(self) -> str:
        """The served version ("" until warm, or for a model file)."""
        return (self.model.version or "") if self.model is not None else ""

    # -- warming up ------------------------------------------------------------------------------

    async def start_warming(self) -> None:
        """Warm this worker up; how depends on whether it joins workers that already serve.

        The first workers of a server warm up in the background: meanwhile they answer liveness
        probes, and :meth:`reason` gives the step. A worker that starts while others already serve
        (one the server restarted) warms up before it returns (the adapter awaits this before the
        worker accepts connections), so the kernel hands new connections to the warm ones and its
        restart costs no request.
        """
        if await asyncio.to_thread(self.readiness.joins_warm_workers):
            try:
                # One try: a worker stuck here could not even be stopped (its server waits for its start-up to end).
                await asyncio.to_thread(self.warm_up, retry=False)
                return
            except Exception as exc:
                logger.error("warm-up failed: %s; going on in the background", exc)
        threading.Thread(target=self.warm_up, name="sagestack-warm-up", daemon=True).start()

    def warm_up(self, retry: bool = True) -> None:
        """Load and exercise everything a request can need, each step retried until it works
        (``retry=False``: the first failure raises)."""
        self._retry_steps = retry
        self.readiness.warming(f"loading the model {self.ref}")
        # Loaded, given its threads and exercised on the model thread that runs heavy predictions: whatever
        # OpenMP work the model does starts from that one thread (sagestack.serving.threads.model_thread).
        predictor, info = self._retry(lambda: call_on_model_thread(load_predictor, self.settings, self.ref))
        # A torch-based kind's threads: this worker's share of the cores under load, every core for a lone request
        # (the same when the server runs one worker, as it does for such a kind unless the operator chose).
        shared = call_on_model_thread(share_cores, server_workers(predictor.kind, self.settings.endpoint.workers))
        self._threads = (available_cores() if shared else None, shared)
        # The first prediction pays every lazy start-up.
        self._retry(lambda: call_on_model_thread(predictor.predict, [WARM_UP_REVIEW]))
        # The kind says whether a prediction is cheap (run on the event loop) or heavy (run on the model
        # thread, so a 30 ms AutoGluon or BERT call never blocks other requests).
        heavy = get_kind(predictor.kind).heavy
        checks = {"model files": partial(model_files_check, predictor.source_path)}
        stored = None
        if has_features(self.settings):
            self.readiness.warming("opening the online feature store")
            stored = self._retry(lambda: StoredPredictions.open(self.settings, predictor, heavy,
                                                                self._max_batch_reviews))
            # One request's whole path, on the event loop (Redis's asynchronous client belongs to it).
            self._retry(lambda: asyncio.run_coroutine_threadsafe(stored.warm_up(), self._loop).result(timeout=60))
            checks["online store"] = stored.check
        self.model = model_summary(self.ref, info, predictor.kind, self.settings.endpoint.variant)
        self._texts = Coalescer(partial(self._predict_requests, predictor, heavy),
                                max_weight=self._max_batch_reviews, weight=len)
        self.predictor, self._heavy, self._stored = predictor, heavy, stored
        # MLflow leaves a large heap behind; without freezing it, full garbage collections stall
        # the event loop for 100+ ms (p99 of 130 ms at a single client).
        gc.collect()
        gc.freeze()
        self._retry(lambda: self.readiness.ready(checks))
        logger.info("warm: %s (%s) ready to serve", self.ref, predictor.kind)

    def _retry(self, step):
        """Run one warm-up step until it succeeds; meanwhile the readiness reason says why it failed."""
        while True:
            try:
                return step()
            except Exception as exc:  # e.g. the online store is down at start: say so, try again
                if not self._retry_steps:
                    raise
                logger.error("warm-up failed: %s", exc)
                self.readiness.warming(f"failed ({exc}); trying again in {WARM_UP_RETRY_S} s")
                time.sleep(WARM_UP_RETRY_S)

    async def reason(self) -> str | None:
        """``None`` when ready, else why not (warming up, a dependency gone, sibling workers cold);
        each change is logged once, for whoever asks why a pod left the Service."""
        reason = await self.readiness.reason()
        if reason != self._last_reason:
            warming = reason is not None and reason.startswith("warming up")
            (logger.warning if reason and not warming else logger.info)("readiness: %s", reason or "ready")
            self._last_reason = reason
        return reason

    def stop(self) -> None:
        """The worker shuts down: the others stop waiting for it; what the observers queued is written first."""
        self.readiness.stopping()
        if self._capture is not None:
            self._capture.close()
        if self._review is not None:
            self._review.close()

    def _check_warm(self) -> None:
        """Raise :class:`Unavailable` while this worker warms up (read once: the warm-up runs meanwhile)."""
        status = self.readiness.status
        if status != "warm":
            raise Unavailable(f"the endpoint is {status}; retry shortly", 1)

    # -- predictions -----------------------------------------------------------------------------

    @property
    def model_calls(self) -> int:
        """How many model calls this worker's ``/predict`` and ``/predict_batch`` requests have made
        (concurrent requests share one)."""
        return self._texts.calls if self._texts is not None else 0

    async def predict(self, route: str, reviews: list[str]) -> PredictResponse:
        """Label and probability of each class for each review, and the model that answered.

        Concurrent requests share one model call, of at most ``max_batch_reviews`` reviews; a lone
        request is predicted at once (no batching window). A review the model fails on fails only
        the request that sent it.

        Raises:
            Unavailable: the worker is still warming up.
        """
        self._check_warm()
        predictions = await self._texts.submit(reviews)
        inference_id = new_inference_id()
        self._captured(route, [inference_id], reviews, predictions)
        loops = self._human_loops(reviews, predictions, [inference_id] * len(predictions))
        return prediction_response(self.model, predictions, inference_id, loops)

    async def predict_batch(self, route: str, reviews: list[str]) -> list[BatchPrediction]:
        """As :meth:`predict` (sharing its model calls), one item (with its own inference id) per review.

        Raises:
            Unavailable: the worker is still warming up.
        """
        self._check_warm()
        predictions = await self._texts.submit(reviews)
        inference_ids = [new_inference_id() for _ in predictions]
        self._captured(route, inference_ids, reviews, predictions)
        loops = self._human_loops(reviews, predictions, inference_ids, items=[0] * len(predictions))
        return batch_predictions(self.model, predictions, inference_ids, loops)

    async def predict_by_id(self, route: str, review_ids: list[int]) -> PredictByIdResponse:
        """Predict reviews by id: their text comes from the online store (training/serving parity).

        Concurrent requests share one online-store read and one prediction (see
        :class:`~sagestack.serving.coalesce.Coalescer`).

        Raises:
            Unavailable: the worker is still warming up, or the online store does not answer.
            NotFound: the feature store is empty, or some ids are not in it.
        """
        self._check_warm()
        stored = self._stored or await self._open_stored()
        if stored is None:
            raise NotFound("the feature store is empty; run `sagestack features ingest` for this SAGESTACK_HOME")
        try:
            missing, predictions = await stored.by_id.submit(review_ids)
        except OnlineStoreUnavailable as exc:
            raise Unavailable(str(exc), 5) from None
        if missing:
            raise NotFound(missing_ids_message(missing))
        inference_id = new_inference_id()
        self._captured(route, [inference_id], [p.review for p in predictions], predictions)
        loops = self._human_loops([p.review for p in predictions], predictions, [inference_id] * len(predictions))
        if loops:  # copies: a prediction object is never changed under another request that shares it
            predictions = [p.model_copy(update={"human_review": HumanReview(loop=loop)}) if loop else p
                           for p, loop in zip(predictions, loops)]
        return PredictByIdResponse(model=self.model, predictions=predictions, inference_id=inference_id)

    async def _predict_requests(self, predictor, heavy: bool, requests: list[list[str]]) -> list:
        """The batch function of ``/predict`` and ``/predict_batch``: one model call for these requests."""
        self._batched(len(requests))
        threads = self._threads[0] if len(requests) == 1 else self._threads[1]
        return await predict_review_batches(predictor, requests, heavy=heavy, threads=threads)

    async def _open_stored(self) -> StoredPredictions | None:
        # Only when the store was filled after this worker warmed up: the one cold read there is.
        async with self._stored_lock:
            if self._stored is None:
                if not has_features(self.settings):
                    return None
                stored = await asyncio.to_thread(StoredPredictions.open, self.settings, self.predictor, self._heavy,
                                                 self._max_batch_reviews)
                self.readiness.add_check("online store", stored.check)
                self._stored = stored
        return self._stored

    # -- observers -------------------------------------------------------------------------------

    def _captured(self, route: str, inference_ids: list[str], reviews: list[str], predictions) -> None:
        """Offer what a call answered to the capture writer (it samples); never blocks, never fails the request."""
        if self._capture is None:
            return
        try:
            self._capture_model = self._capture_model or self.model.model_dump()
            queued, dropped = self._capture.capture(route, inference_ids, reviews, predictions, self._capture_model)
            self._count("capture", "captured", queued)
            if dropped:
                self._count("capture", "dropped", dropped)
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
                self._count("human_loops", "dropped", self._review.dropped - dropped)
            return loops
        except Exception:  # review is an observer: a fault there must never cost a prediction
            logger.exception("human review failed for a request")
            return None

    def _loops_flushed(self, started: int, failed: int) -> None:
        """From the starter's thread: loops written, and loops a write error lost."""
        if started:
            self._count("human_loops", "started", started)
        if failed:
            self._count("human_loops", "failed", failed)

    def _capture_flushed(self, written: int, failed: int) -> None:
        """From the capture writer's thread: records it wrote, and records a write error lost."""
        if failed:
            self._count("capture", "failed", failed)
