"""Coalescing concurrent calls of a blocking batch function into one call, on a thread of its own.

An async endpoint that reads a feature store and predicts, once per request, pays the store's
per-call overhead and a thread hop per request, and at 32 concurrent clients most of its time
goes there. :class:`Coalescer` lets every request that arrives while a call is in flight join
the next one: one read of all their ids, one prediction of all their texts, one thread hop. A
lone request runs at once (no timer, so no added latency at low load); under load the batches
grow by themselves with the number of requests waiting.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Generic, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Run ``batch_fn(items) -> results`` (one result per item, in order) for concurrent submitters.

    ``batch_fn`` runs on one dedicated thread, never on the event loop, one call at a time. Items
    submitted while a call runs wait for the next call, which takes up to ``max_items`` of them.
    When ``batch_fn`` raises, every item of that call gets the exception; the next call runs as
    usual. A submitter that is cancelled (its client went away) is skipped when results arrive.
    """

    def __init__(self, batch_fn: Callable[[list[Item]], Sequence[Result]], *, max_items: int = 32,
                 name: str = "sagestack-coalescer") -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._batch_fn = batch_fn
        self._max_items = max_items
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: list[tuple[Item, asyncio.Future]] = []
        self._draining = False
        self.calls = 0  # how many batch_fn calls ran (for tests and metrics)

    async def submit(self, item: Item) -> Result:
        """Queue one item and wait for its result (or the exception of its batch)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((item, future))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._pending[: self._max_items]
                del self._pending[: self._max_items]
                self.calls += 1
                try:
                    results = await loop.run_in_executor(self._executor, self._batch_fn, [item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
                except Exception as exc:  # every waiter of this batch gets it; the next batch runs
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._draining = False

    def close(self) -> None:
        """Stop the thread once the call in flight (if any) has finished."""
        self._executor.shutdown(wait=False, cancel_futures=True)
