"""The endpoint's observers write in the background: a request only appends to a queue.

:class:`BackgroundWriter` is what data capture (:class:`sagestack.monitor.capture.CaptureWriter`)
and human review (:class:`sagestack.review.starter.LoopStarter`) share: a lock-free deque that
requests append to, a daemon thread that drains it every ``flush_seconds`` and hands the items to
the subclass's :meth:`~BackgroundWriter._write`, an ``on_flush(written, failed)`` hook for metrics,
and a :meth:`~BackgroundWriter.close` that writes what is left. Nothing a flush raises stops the
thread, and nothing the hook raises either.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Callable

logger = logging.getLogger("sagestack.background")


class BackgroundWriter:
    """A queue drained by a thread of its own (see the module docstring).

    Subclasses set their own state, then call ``super().__init__`` (it starts the thread), and
    implement :meth:`_write`.

    Args:
        what: the writer's name in log lines (``"data capture"``).
        flush_seconds: the longest an item waits in memory.
        on_flush: called from the writer thread after each flush with (written, failed) counts.
    """

    def __init__(self, what: str, *, flush_seconds: float, on_flush: Callable[[int, int], None] | None = None):
        self.what = what
        self.flush_seconds = flush_seconds
        self.on_flush = on_flush
        # A deque: appending and popping are atomic under the GIL, so a request takes no lock and
        # never waits on the writer thread.
        self._queue: collections.deque = collections.deque()
        self._flush_lock = threading.Lock()  # close() and the writer thread never flush at once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=what.replace(" ", "-"), daemon=True)
        self._thread.start()

    def _write(self, items: list) -> tuple[int, int]:
        """Write the drained items; returns (written, failed). Runs under the flush lock."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.flush_seconds)
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - whatever went wrong, the next flush still runs
                logger.exception("%s: a flush failed", self.what)

    def flush(self) -> int:
        """Write every queued item now; returns how many were written."""
        with self._flush_lock:
            items = []
            while True:
                try:
                    items.append(self._queue.popleft())
                except IndexError:
                    break
            if not items:
                return 0
            written, failed = self._write(items)
        if self.on_flush is not None:
            try:
                self.on_flush(written, failed)
            except Exception:  # noqa: BLE001 - a metrics hook must not stop the writer
                logger.exception("%s: the flush hook failed", self.what)
        return written

    def close(self) -> None:
        """Stop the background thread and write what is still queued."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
