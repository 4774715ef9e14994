"""Athena's query executions of a home: :class:`QueryRunner` (held on the server's
:class:`~sagestack.aws.backends.Backends`) records each execution in ``home/aws/athena.db`` and runs it on a thread
of its own, as Athena runs it asynchronously, with :mod:`sagestack.aws.athena_sql` on a DuckDB connection with its
share of the server's memory and threads; it knows the queries running now, so a stop interrupts one, at most
``max_queries`` run at once, and one running past the timeout fails. Athena's API over it is
:mod:`sagestack.aws.athena`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sagestack.aws.protocol import AwsError
from sagestack.aws.records import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, query TEXT NOT NULL, context TEXT NOT NULL, output TEXT NOT NULL, workgroup TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT, submitted REAL NOT NULL, completed REAL, pid INTEGER NOT NULL,
    result TEXT);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, id TEXT NOT NULL, request TEXT NOT NULL);
"""
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
MEMORY_SHARE = 0.5  # of the machine's memory, shared by the queries that may run at once
MIN_QUERY_MEMORY = 256 * 2**20
SERVER_STOPPED = "INTERNAL_ERROR_QUERY_ENGINE: the server stopped before the query finished; run it again"


def invalid_request(message: str) -> AwsError:
    """Athena's ``InvalidRequestException``."""
    return AwsError("InvalidRequestException", message)


class QueryStopped(Exception):
    """Raised in a query's thread at its next statement once the query was stopped (its record says how)."""


@dataclass
class _Running:
    """A query running now: its connection once made, and whether it was stopped."""

    thread: threading.Thread | None = None
    connection: object | None = None
    stopped: threading.Event = field(default_factory=threading.Event)


class _Guarded:
    """A DuckDB connection whose next statement raises :class:`QueryStopped` once the query is stopped (an
    interrupt ends the statement running, not the ones the query runs after it)."""

    def __init__(self, connection, stopped: threading.Event) -> None:
        self._connection, self._stopped = connection, stopped

    def execute(self, *args, **kwargs):
        if self._stopped.is_set():
            raise QueryStopped
        return self._connection.execute(*args, **kwargs)

    def sql(self, *args, **kwargs):
        if self._stopped.is_set():
            raise QueryStopped
        return self._connection.sql(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._connection, name)


def memory_bytes() -> int:
    """The machine's physical memory in bytes (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


class QueryRunner:
    """The query executions of one home: their records (``ROOT/athena.db``) and the queries running now.

    Args:
        root: ``home/aws``; spill files go under ``ROOT/athena-tmp/ID``.
        max_queries: how many queries run at once; one more is refused (``TooManyRequestsException``).
        timeout: seconds a query may run before it fails (Athena's DML timeout is 30 minutes).
    """

    def __init__(self, root: Path, max_queries: int, timeout: float) -> None:
        self.path, self.temp = Path(root) / "athena.db", Path(root) / "athena-tmp"
        self.max_queries, self.timeout = max_queries, timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with transaction(self.path) as db:
            db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        # Opened by the server that owns the home: no other runs these queries any more.
        self._fail_unfinished()
        shutil.rmtree(self.temp, ignore_errors=True)

    def limits(self, folder: Path) -> dict:
        """A query connection's DuckDB settings: its share of memory and threads, spilling under ``folder``."""
        memory = max(MIN_QUERY_MEMORY, int(memory_bytes() * MEMORY_SHARE / self.max_queries))
        threads = max(1, (os.cpu_count() or 1) // self.max_queries)
        return {"memory_limit": f"{memory // 2**20}MB", "threads": threads, "temp_directory": str(folder)}

    def _fail_unfinished(self, reason: str = SERVER_STOPPED) -> None:
        with transaction(self.path) as db:
            db.execute("UPDATE executions SET state = 'FAILED', reason = ?, completed = ? WHERE state IN "
                       "('QUEUED', 'RUNNING')", (reason, time.time()))

    def start(self, request: dict, token: str | None, work: Callable[[str, object], dict]) -> tuple[str, bool]:
        """Record a query (``request``: its query, context, output and workgroup) and start ``work(id, connection)``
        on a thread of its own; its id and whether it was started now (False: ``token`` named an earlier one).

        Raises:
            AwsError: ``max_queries`` are running (``TooManyRequestsException``), or ``token`` was used for
                another request (``InvalidRequestException``).
        """
        signature = json.dumps(request, sort_keys=True)
        with self._lock, transaction(self.path) as db:
            if token:
                known = db.execute("SELECT id, request FROM tokens WHERE token = ?", (token,)).fetchone()
                if known:
                    if known[1] != signature:
                        raise invalid_request("Idempotent parameters do not match: ClientRequestToken was used for "
                                       "another query")
                    return known[0], False
            if len(self._running) >= self.max_queries:
                raise AwsError("TooManyRequestsException", f"{len(self._running)} queries are running; at most "
                               f"{self.max_queries} run at once here (sagestack serve-aws --max-queries): wait "
                               "for one to finish")
            query_id = str(uuid.uuid4())
            db.execute("INSERT INTO executions VALUES (?, ?, ?, ?, ?, 'RUNNING', NULL, ?, NULL, ?, NULL)",
                       (query_id, request["query"], json.dumps(request["context"]), request["output"],
                        request["workgroup"], time.time(), os.getpid()))
            if token:
                db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (token, query_id, signature))
            running = self._running[query_id] = _Running()
            running.thread = threading.Thread(target=self._work, args=(query_id, running, work),
                                              name=f"athena-{query_id}", daemon=True)
        running.thread.start()
        return query_id, True

    def wait(self, query_id: str, seconds: float) -> None:
        """Wait up to ``seconds`` for ``query_id`` to end (at once when it is not running)."""
        with self._lock:
            running = self._running.get(query_id)
        if running is not None and running.thread is not None:
            running.thread.join(seconds)

    def _work(self, query_id: str, running: _Running, work: Callable[[str, object], dict]) -> None:
        import duckdb

        from sagestack.aws.athena_tables import QueryFailed

        folder = self.temp / query_id
        timer = threading.Timer(self.timeout, self.stop, (query_id, "FAILED", f"EXCEEDED_TIME_LIMIT: Query "
                                f"exceeded the maximum execution time of {self.timeout / 60:.2f}m (sagestack "
                                "serve-aws --query-timeout)"))
        timer.daemon = True
        timer.start()
        state, reason, result = "SUCCEEDED", None, None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            connection = duckdb.connect(config=self.limits(folder))
            try:
                with self._lock:
                    running.connection = connection
                result = work(query_id, _Guarded(connection, running.stopped))
            finally:
                with self._lock:
                    running.connection = None
                connection.close()
        except QueryFailed as failure:
            state, reason = "FAILED", failure.reason
        except (QueryStopped, duckdb.InterruptException):
            # stop() recorded the real outcome; an interrupt nobody asked for is the process being signalled
            state, reason = ("CANCELLED", None) if running.stopped.is_set() else ("FAILED", SERVER_STOPPED)
        except Exception as error:  # a bug here: the query fails with it, the traceback goes to the log
            if running.stopped.is_set():
                state, reason = "CANCELLED", None
            else:
                traceback.print_exc(file=sys.stderr)
                state = "FAILED"
                reason = f"GENERIC_INTERNAL_ERROR: sagestack serve-aws failed on this query ({error!r})"
        finally:
            timer.cancel()
            with self._lock:
                self._running.pop(query_id, None)
            shutil.rmtree(folder, ignore_errors=True)
        with transaction(self.path) as db:  # a query stopped meanwhile keeps the state stop() gave it
            db.execute("UPDATE executions SET state = ?, reason = ?, completed = ?, result = ? WHERE id = ? AND "
                       "state = 'RUNNING'", (state, reason, time.time(), json.dumps(result), query_id))

    def stop(self, query_id: str, state: str = "CANCELLED", reason: str | None = None) -> None:
        """End ``query_id`` as ``state`` (with ``reason``) if it is running, interrupting its statement."""
        with self._lock:
            with transaction(self.path) as db:
                db.execute("UPDATE executions SET state = ?, reason = ?, completed = ? WHERE id = ? AND "
                           "state = 'RUNNING'", (state, reason, time.time(), query_id))
            running = self._running.get(query_id)
            if running is not None:
                running.stopped.set()
                if running.connection is not None:
                    running.connection.interrupt()

    def record(self, query_id: object) -> dict:
        """The record of ``query_id`` (its ``context`` and ``result`` parsed).

        Raises:
            AwsError: no such execution (``InvalidRequestException``).
        """
        if not isinstance(query_id, str) or not query_id:
            raise invalid_request("QueryExecutionId is required")
        with transaction(self.path) as db:
            db.row_factory = lambda cursor, row: {column[0]: value for column, value in zip(cursor.description, row)}
            row = db.execute("SELECT * FROM executions WHERE id = ?", (query_id,)).fetchone()
        if row is None:
            raise invalid_request(f"QueryExecution {query_id} was not found")
        row["context"] = json.loads(row["context"])
        row["result"] = json.loads(row["result"]) if row["result"] else None
        return row

    def close(self, grace: float = 5.0) -> None:
        """The server is stopping: every running query fails saying so, and its statement is interrupted."""
        with self._lock:
            ids = list(self._running)
        for query_id in ids:
            self.stop(query_id, "FAILED", SERVER_STOPPED)
        deadline = time.monotonic() + grace
        for query_id in ids:
            self.wait(query_id, max(0.0, deadline - time.monotonic()))
