"""Human loops started from the endpoint, without delaying a response.

:meth:`LoopStarter.consider` decides on the request's path (a comparison per prediction), names
a loop for each prediction below the flow's threshold and puts it on a bounded in-memory queue;
a background thread writes what has queued twice a second, 256 loops per transaction. The response
names the loop at once (``human_review: {"loop": …}``); the loop is in the store within a flush
(a crash loses at most that half second). A full queue drops loops and counts them.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from sagestack.review.store import Flow, LoopInput, ReviewStore, new_loop_name
from sagestack.background import BackgroundWriter

FLUSH_SECONDS = 0.5
QUEUE_ITEMS = 10_000
# Loops written per transaction: building a batch's rows holds the GIL, and the endpoint's event loop
# waits for it; batches of this size keep each wait short.
BATCH_LOOPS = 256
logger = logging.getLogger("sagestack.review.starter")


def confidence_of(prediction) -> float | None:
    """A prediction's confidence: the probability of its top label (None without probabilities)."""
    probabilities = getattr(prediction, "probabilities", None) or {}
    return max(probabilities.values()) if probabilities else None


class LoopStarter(BackgroundWriter):
    """Start human loops in ``flow`` for the endpoint's low-confidence predictions.

    Args:
        store: the review store.
        flow: the flow definition (its threshold and labels).
        on_flush: called from the writer thread after each flush with (started, failed) counts.
    """

    def __init__(self, store: ReviewStore, flow: Flow, *, max_items: int = QUEUE_ITEMS,
                 flush_seconds: float = FLUSH_SECONDS, on_flush: Callable[[int, int], None] | None = None):
        self.store, self.flow = store, flow
        self.max_items = max_items
        self.started = self.dropped = self.failed = 0
        super().__init__("human review", flush_seconds=flush_seconds, on_flush=on_flush)

    def consider(self, reviews: Sequence[str], predictions: Sequence, inference_ids: Sequence[str | None],
                 model: dict, items: Sequence[int] | None = None) -> list[str | None]:
        """One loop name per prediction below the threshold (None for the others); never blocks.

        ``items`` are the reviews' places in their requests (default: their positions here), so a
        loop's answer joins the capture record it came from (``inference_id``, ``item``).

        A prediction whose loop would not fit in the queue gets None (and is counted as dropped).
        """
        names: list[str | None] = []
        for position, (review, prediction, inference_id) in enumerate(zip(reviews, predictions, inference_ids)):
            confidence = confidence_of(prediction)
            if confidence is None or not self.flow.needs_review(confidence):
                names.append(None)
                continue
            if len(self._queue) >= self.max_items:
                self.dropped += 1
                names.append(None)
                continue
            name = new_loop_name()
            # A plain tuple on the request's path; the writer thread makes the LoopInput.
            self._queue.append((review, prediction.label, confidence, prediction.probabilities, model, inference_id,
                                items[position] if items else position, name))
            names.append(name)
        return names

    def _write(self, items: list) -> tuple[int, int]:
        """Write drained loops, 256 per transaction (the :class:`BackgroundWriter`'s flush); returns
        (started, failed). A write error (the database locked past its timeout, a full disk) loses
        that batch's loops, counted as failed; the starter goes on."""
        started = failed = 0
        for start in range(0, len(items), BATCH_LOOPS):
            batch = [item if isinstance(item, LoopInput) else self._loop_input(*item)
                     for item in items[start:start + BATCH_LOOPS]]
            started_now, failed_now = self._write_batch(batch)
            started, failed = started + started_now, failed + failed_now
            time.sleep(0)  # let the event loop run between batches
        self.started += started
        self.failed += failed
        return started, failed

    def _loop_input(self, review, label, confidence, probabilities, model, inference_id, item, name) -> LoopInput:
        label = str(label)
        return LoopInput(review=review, initial_value=label if label in self.flow.labels else None,
                         confidence=confidence, probabilities=dict(probabilities), source="endpoint", model=model,
                         inference_id=inference_id, item=item, name=name)

    def _write_batch(self, batch: list[LoopInput]) -> tuple[int, int]:
        """One transaction for the batch; should the store refuse an item (bad data), each loop on its own,
        so one odd item does not lose the loops other responses already named. Any other failure (the
        database down or locked) loses the batch at once, counted: retrying each loop would hold the
        writer for minutes while the queue fills. Returns (started, failed)."""
        from sagestack.errors import SagestackError

        try:
            self.store.start_loops(self.flow.name, batch)
            return len(batch), 0
        except SagestackError as exc:
            logger.error("human review could not start %d loop(s) at once (%s); trying one by one", len(batch), exc)
        except Exception as exc:  # noqa: BLE001 - an observer: never takes the endpoint down
            logger.error("human review lost %d loop(s): %s", len(batch), exc)
            return 0, len(batch)
        started = failed = 0
        for item in batch:
            try:
                self.store.start_loops(self.flow.name, [item])
                started += 1
            except Exception as one:  # noqa: BLE001
                failed += 1
                logger.error("human review could not start loop %s: %s", item.name, one)
        return started, failed
