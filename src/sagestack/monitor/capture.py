"""Data capture: what an endpoint predicted, one row per review, in hourly Parquet files.

The layout of SageMaker's capture records, flattened: ``inference_id`` (one per request, also
returned in the response) and ``item`` (the review's place in the request), ``time`` (UTC), the
route, the review, the predicted ``label`` and its ``probabilities`` (JSON), the model's name,
version and kind, and the production variant. Files land in
``<location>/<YYYY>/<MM>/<DD>/<HH>/<nanoseconds>-<pid>.parquet``, each written whole or not at all;
the location is a local folder or an S3-compatible bucket (:class:`CaptureStore`).

:class:`CaptureWriter` never slows a request: :meth:`~CaptureWriter.offer` puts the records on a
bounded in-memory queue and returns; a background thread writes what has queued at least once a
second, so a crash loses at most the last second. A full queue drops records and counts them.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

from sagestack.errors import DataError
from sagestack.background import BackgroundWriter

COLUMNS = ("inference_id", "item", "time", "route", "review", "label", "probabilities", "model_name",
           "model_version", "model_kind", "variant")
FLUSH_SECONDS = 1.0
QUEUE_RECORDS = 100_000
QUEUE_BYTES = 64 << 20  # the characters of reviews a worker may hold before it drops records
logger = logging.getLogger("sagestack.monitor.capture")


def _schema():
    """One explicit schema for every file, so a folder reads as one dataset (pyarrow, DuckDB, Spark)
    even where a batch had, say, no variant at all (inferred, that column would be of type null)."""
    import pyarrow as pa

    text = pa.string()
    return pa.schema([("inference_id", text), ("item", pa.int32()), ("time", pa.timestamp("us", tz="UTC")),
                      ("route", text), ("review", text), ("label", text), ("probabilities", text),
                      ("model_name", text), ("model_version", text), ("model_kind", text), ("variant", text)])


def new_inference_id() -> str:
    """A fresh inference id (a UUID4 in hex)."""
    return uuid.uuid4().hex


class CaptureStore:
    """Where capture files live: a local folder, or ``s3://BUCKET/PREFIX`` on any S3-compatible store.

    An S3 location takes its endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (MinIO,
    Ceph, SeaweedFS…; unset: AWS itself) and its credentials from the usual ``AWS_*`` variables, as
    boto3 does. Files are whole on both: a local file is written under a hidden name and renamed, an
    S3 object appears only when its upload completes.

    Raises:
        DataError: a URI of a scheme other than ``s3`` (or a local path).
    """

    def __init__(self, location: str | Path):
        self.location = str(location)
        self.remote = "://" in self.location
        if self.remote:
            from pyarrow import fs

            if not self.location.startswith("s3://") or len(self.location.rstrip("/")) <= len("s3://"):
                raise DataError(f"capture location {self.location!r} is not supported; "
                                "give a folder or an S3 URI, s3://BUCKET/PREFIX")
            try:
                self._fs, self._base = fs.FileSystem.from_uri(self.location.rstrip("/"))
            except (OSError, ValueError) as exc:  # a malformed URI, a bucket whose region cannot be found
                raise DataError(f"capture location {self.location}: {str(exc).splitlines()[0][:300]}") from exc
        else:
            self._base = str(Path(self.location).resolve())

    def __str__(self) -> str:
        return self.location

    def write(self, hour: str, table) -> str:
        """Write ``table`` as a new file in the partition ``hour`` (``YYYY/MM/DD/HH``); returns its name."""
        import pyarrow.parquet as pq

        from sagestack.data.atomic import atomic_file

        # Time, process and a random part: replicas in containers often share a pid, and an S3 upload
        # under an existing name would silently replace that file.
        key = f"{hour}/{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        if self.remote:
            pq.write_table(table, f"{self._base}/{key}", filesystem=self._fs)
        else:
            target = Path(self._base) / key
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(target) as tmp:  # a hidden ".….tmp" name: readers never see half a file
                pq.write_table(table, tmp)
        return key

    def keys(self, since: datetime | None = None, until: datetime | None = None) -> list[str]:
        """Capture files' names relative to the location, sorted (hour first, then time of writing).

        In a bucket with a window (``since``, UTC) only the window's hour partitions are listed, so a
        run's cost does not grow with every file ever captured; otherwise, and in a folder, all are.

        Raises:
            DataError: the folder or bucket does not exist (or cannot be listed).
        """
        if not self.remote:
            base = Path(self._base)
            if not base.is_dir():
                raise DataError(f"no capture folder at {base}; turn capture on (SAGESTACK_CAPTURE) or pass --capture")
            return sorted(path.relative_to(base).as_posix() for path in base.rglob("*.parquet"))
        hours = _hours(since, until)
        prefixes = [f"{self._base}/{hour}" for hour in hours] if hours is not None else [self._base]
        return sorted(key for prefix in prefixes for key in self._list(prefix))

    def _list(self, prefix: str) -> list[str]:
        from pyarrow import fs

        try:
            infos = self._fs.get_file_info(fs.FileSelector(prefix, recursive=True))
        except FileNotFoundError:  # a prefix nothing was written under (yet): no files, not an error
            return []
        except OSError as exc:  # no such bucket, no access, no endpoint answering
            raise DataError(f"cannot list capture files at {self.location}: {str(exc).splitlines()[0][:300]}") from exc
        base = self._base.rstrip("/") + "/"
        return [info.path[len(base):] for info in infos
                if info.type == fs.FileType.File and info.path.endswith(".parquet")]

    def read(self, key: str):
        """One capture file as an Arrow table."""
        import pyarrow.parquet as pq

        if self.remote:
            return pq.read_table(f"{self._base}/{key}", filesystem=self._fs)
        return pq.read_table(Path(self._base) / key)


@dataclass
class CaptureStats:
    """Counts since the writer started: records captured (queued), written, dropped on a full queue,
    and failed (lost to a write error)."""

    captured: int = 0
    written: int = 0
    dropped: int = 0
    failed: int = 0  # queued, then lost to a write error (a full disk, a folder it may not write)
    files: int = 0


class CaptureWriter(BackgroundWriter):
    """Capture a sample of an endpoint's predictions into ``location``.

    Args:
        location: where the hourly partitions go: a folder or ``s3://BUCKET/PREFIX`` (:class:`CaptureStore`).
        percent: the share of requests captured, 0–100 (SageMaker's default is 20).
        max_records / max_bytes: the queue's bounds (records, characters of reviews); beyond them
            records are dropped (and counted).
        flush_seconds: the longest a record waits in memory.
        on_flush: called from the writer thread after each flush with (written, failed) counts
            (the endpoint turns them into metrics).
    """

    def __init__(self, location: str | Path, percent: float, *, max_records: int = QUEUE_RECORDS,
                 max_bytes: int = QUEUE_BYTES, flush_seconds: float = FLUSH_SECONDS, seed: int | None = None,
                 on_flush: Callable[[int, int], None] | None = None):
        if not 0 <= percent <= 100:
            raise DataError(f"the capture percentage must be between 0 and 100, got {percent:g}")
        self.store = CaptureStore(location)
        self.percent = float(percent)
        self.stats = CaptureStats()
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._bytes = 0
        self._bytes_lock = threading.Lock()
        self._random = random.Random(seed)
        super().__init__("data capture", flush_seconds=flush_seconds, on_flush=on_flush)

    def sampled(self) -> bool:
        """Whether this request is captured (each request on its own, with the configured chance)."""
        return self.percent >= 100 or (self.percent > 0 and self._random.random() * 100 < self.percent)

    def offer(self, inference_id: str, route: str, reviews: Sequence[str], predictions: Sequence, model: dict) -> int:
        """Queue one request's records (call only for a sampled request); returns how many were queued.

        ``predictions`` are objects with ``label`` and ``probabilities``; ``model`` has ``name``,
        ``version``, ``kind`` and ``variant``. Never blocks: what does not fit is dropped.
        """
        now = datetime.now(timezone.utc)
        offered = min(len(predictions), len(reviews))
        room = max(0, self.max_records - len(self._queue))
        queued, size = 0, 0
        try:
            for item in range(min(room, offered)):
                length = len(reviews[item])
                if self._bytes + size + length > self.max_bytes:
                    break
                # Just references here; the writer thread turns them into columns (and JSON) later.
                self._queue.append((inference_id, item, now, route, reviews[item], predictions[item], model))
                queued, size = queued + 1, size + length
        finally:  # what was queued is accounted for, even if an odd review stopped the loop
            with self._bytes_lock:
                self._bytes += size
        self.stats.dropped += offered - queued
        self.stats.captured += queued
        return queued

    def capture(self, route: str, inference_ids: Sequence[str], reviews: Sequence[str], predictions: Sequence,
                model: dict) -> tuple[int, int]:
        """Sample and queue what one endpoint call answered; returns (queued, dropped).

        One inference id: one request, sampled as a whole. Several (a merged batch): each review is
        its own inference, sampled on its own, so one client's requests are not all in or all out.
        """
        dropped_before = self.stats.dropped
        if len(inference_ids) == 1:
            queued = self.offer(inference_ids[0], route, reviews, predictions, model) if self.sampled() else 0
        else:
            queued = sum(self.offer(i, route, [r], [p], model)
                         for i, r, p in zip(inference_ids, reviews, predictions) if self.sampled())
        return queued, self.stats.dropped - dropped_before

    def _write(self, records: list) -> tuple[int, int]:
        """Write drained records, one file per hour they fall in (the :class:`BackgroundWriter`'s flush).

        A write error is logged and its records counted as failed; the writer goes on (the next
        flush may well succeed: the disk freed, the folder fixed).
        """
        with self._bytes_lock:
            self._bytes -= sum(len(r[4]) for r in records)
        by_hour: dict[str, list] = {}
        written = failed = 0
        for inference_id, item, now, route, review, prediction, model in records:
            try:
                row = (inference_id, item, now, route, str(review), str(prediction.label),
                       json.dumps(prediction.probabilities), model.get("name"), model.get("version"),
                       model.get("kind"), model.get("variant"))
            except Exception:  # noqa: BLE001 - an odd record is lost, counted, and the rest written
                failed += 1
                continue
            by_hour.setdefault(now.strftime("%Y/%m/%d/%H"), []).append(row)
        for hour, rows in by_hour.items():
            try:
                self.store.write(hour, _to_table(rows))
                self.stats.files += 1
                written += len(rows)
            except Exception as exc:  # noqa: BLE001 - capture must outlive any write error
                failed += len(rows)
                logger.error("data capture could not write %d records to %s: %s", len(rows), f"{self.store}/{hour}", exc)
        self.stats.written += written
        self.stats.failed += failed
        return written, failed


# Rows turned into Arrow at a time: each conversion holds the GIL, and the endpoint's event loop
# waits for it; small batches keep that wait well under a millisecond.
BATCH_ROWS = 256


def _to_table(rows: list):
    import pyarrow as pa

    schema = _schema()
    batches = []
    for start in range(0, len(rows), BATCH_ROWS):
        chunk = rows[start:start + BATCH_ROWS]
        batches.append(pa.RecordBatch.from_pydict({name: [row[i] for row in chunk] for i, name in enumerate(COLUMNS)},
                                                  schema=schema))
        time.sleep(0)  # let the event loop run between batches
    return pa.Table.from_batches(batches, schema=schema)


def read_capture(location: str | Path, *, since: datetime | None = None, until: datetime | None = None):
    """The captured records between ``since`` and ``until`` (UTC), and the files that could not be read.

    Returns:
        ``(frame, skipped)``: one row per captured review (columns :data:`COLUMNS`), sorted by
        time; ``skipped`` lists ``"<file>: <why>"`` for each corrupt file, which is left out.

    Raises:
        DataError: the folder (or bucket) does not exist.
    """
    import pandas as pd

    store = CaptureStore(location)
    since, until = _utc(since), _utc(until)
    frames, skipped = [], []
    for key in store.keys(since, until):
        if since is not None or until is not None:
            hour = _hour_of(key)
            if hour is not None and ((since and hour + timedelta(hours=1) <= since) or (until and hour >= until)):
                continue  # the whole hour is outside the window: not even opened
        try:
            frames.append(store.read(key).to_pandas())
        except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped and reported, never fatal
            skipped.append(f"{store.location.rstrip('/')}/{key}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS)), skipped
    frame = pd.concat(frames, ignore_index=True)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    if since is not None:
        frame = frame[frame["time"] >= pd.Timestamp(since)]
    if until is not None:
        frame = frame[frame["time"] < pd.Timestamp(until)]
    return frame.sort_values("time", kind="stable").reset_index(drop=True), skipped


def _utc(moment: datetime | None) -> datetime | None:
    """A moment as an aware UTC datetime (a naive one is taken to be UTC already)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


# A window longer than this is listed whole rather than hour by hour.
MAX_LISTED_HOURS = 24 * 31


def _hours(since: datetime | None, until: datetime | None) -> list[str] | None:
    """The ``YYYY/MM/DD/HH`` partitions a window touches (``until`` None: up to now), or None when
    the window has no start or spans more than :data:`MAX_LISTED_HOURS`."""
    if since is None:
        return None
    since = _utc(since).replace(minute=0, second=0, microsecond=0)
    until = _utc(until) if until is not None else datetime.now(timezone.utc) + timedelta(hours=1)
    count = int((until - since).total_seconds() // 3600) + 1
    if count > MAX_LISTED_HOURS:
        return None
    return [(since + timedelta(hours=i)).strftime("%Y/%m/%d/%H") for i in range(max(count, 0))
            if since + timedelta(hours=i) < until]


def _hour_of(key: str) -> datetime | None:
    try:
        year, month, day, hour = key.split("/")[:4]
        return datetime(int(year), int(month), int(day), int(hour), tzinfo=timezone.utc)
    except (ValueError, TypeError):
        return None
