"""What answers ``/predict_by_id``: the online-store reader and the model behind a coalescer,
with the readiness check of the store and the warm-up read."""

from __future__ import annotations

from functools import partial

from sagestack.config import Settings
from sagestack.features.store import ENDPOINT_FEATURES, OnlineReader, OnlineStoreUnavailable, first_review_id
from sagestack.serving.coalesce import Coalescer
from sagestack.serving.requests import predict_stored_batch

class StoredPredictions:
    """What answers ``/predict_by_id``: the online-store reader and the model behind a coalescer,
    and the review id the readiness check reads (``None`` in an empty table); one read and
    prediction holds at most ``max_reviews`` reviews."""

    def __init__(self, reader: OnlineReader, predictor, heavy: bool, probe_id: int | None,
                 max_reviews: int) -> None:
        self.reader, self.probe_id = reader, probe_id
        self.by_id = Coalescer(partial(predict_stored_batch, reader, predictor, heavy=heavy),
                               max_weight=max_reviews, weight=len)

    @classmethod
    def open(cls, settings: Settings, predictor, heavy: bool, max_reviews: int) -> "StoredPredictions":
        """Open the reader (configured for a long-lived endpoint) for this home's store."""
        reader = OnlineReader(settings, features=ENDPOINT_FEATURES, endpoint=True)
        return cls(reader, predictor, heavy, first_review_id(settings), max_reviews)

    async def warm_up(self) -> None:
        """One request's whole path: read, predict, answer (it opens the store's connection)."""
        if self.probe_id is not None:
            await self.by_id.submit([self.probe_id])

    async def check(self) -> str | None:
        """The readiness check: read the probe review directly (not behind a queue of requests)."""
        if self.probe_id is None:
            return None
        try:
            [row] = await self.reader.get_async([self.probe_id])
        except OnlineStoreUnavailable as exc:
            return str(exc)
        if not row["found"]:
            return (f"the online feature store at {self.reader.location} has lost review {self.probe_id}; "
                    "run `sagestack features ingest` again")
        return None
