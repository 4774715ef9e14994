"""Athena's API: query executions run by :mod:`sagestack.aws.athena_sql` on DuckDB over the Glue catalog
(:mod:`sagestack.aws.glue`) and the S3 store. botocore speaks rest-json to Athena (``POST /query-executions``,
``GET /query-executions/ID`` …); older clients speak json (``X-Amz-Target: AmazonAthena.<Operation>``): both
are served, each operation reading its input through :func:`_input`.

:class:`QueryRunner` (held on the server's :class:`~sagestack.aws.backends.Backends`) records each execution in
``home/aws/athena.db`` and runs it on a thread of its own, as Athena runs it asynchronously, on a DuckDB
connection with its share of the server's memory and threads; it knows the queries running now, so
``StopQueryExecution`` interrupts one, at most ``max_queries`` run at once, and one running past the timeout
fails. ``StartQueryExecution`` answers once its query ends or after :data:`START_WAIT` seconds, whichever comes
first, so a short query is final at the client's first ``GetQueryExecution`` and a long one is polled.
Only the ``primary`` workgroup exists, with no result location of its own (as a new AWS account's).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from sagestack.aws.protocol import AwsError, Request, Response, json_response, member
from sagestack.aws.records import transaction

if TYPE_CHECKING:
    from sagestack.aws.backends import Backends

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, query TEXT NOT NULL, context TEXT NOT NULL, output TEXT NOT NULL, workgroup TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT, submitted REAL NOT NULL, completed REAL, pid INTEGER NOT NULL,
    result TEXT);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, id TEXT NOT NULL, request TEXT NOT NULL);
"""
WORKGROUP = "primary"
START_WAIT = 1.0  # seconds StartQueryExecution waits for its query before answering
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
MAX_RESULTS = 1000
MEMORY_SHARE = 0.5  # of the machine's memory, shared by the queries that may run at once
MIN_QUERY_MEMORY = 256 * 2**20
NO_OUTPUT = ("No output location provided. An output location is required either through the Workgroup result "
             "configuration setting or as an API input.")
SERVER_STOPPED = "INTERNAL_ERROR_QUERY_ENGINE: the server stopped before the query finished; run it again"


# rest-json: (method, path pattern) -> the operation and the input members its path carries.
ROUTES = (
    ("POST", re.compile(r"^/query-executions/?$"), "StartQueryExecution"),
    ("GET", re.compile(r"^/query-executions/(?P<QueryExecutionId>[^/]+)/results/?$"), "GetQueryResults"),
    ("POST", re.compile(r"^/query-executions/(?P<QueryExecutionId>[^/]+)/stop/?$"), "StopQueryExecution"),
    ("GET", re.compile(r"^/query-executions/(?P<QueryExecutionId>[^/]+)/?$"), "GetQueryExecution"),
    ("GET", re.compile(r"^/workgroups/(?P<WorkGroup>[^/]+)/?$"), "GetWorkGroup"),
)


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
                        raise _invalid("Idempotent parameters do not match: ClientRequestToken was used for "
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
            raise _invalid("QueryExecutionId is required")
        with transaction(self.path) as db:
            db.row_factory = lambda cursor, row: {column[0]: value for column, value in zip(cursor.description, row)}
            row = db.execute("SELECT * FROM executions WHERE id = ?", (query_id,)).fetchone()
        if row is None:
            raise _invalid(f"QueryExecution {query_id} was not found")
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


def operation_name(request: Request) -> str | None:
    """The operation a rest-json request's method and path name, else None."""
    for method, pattern, name in ROUTES:
        if request.method == method and pattern.match(request.path):
            return name
    return None


def _input(request: Request) -> dict:
    """The operation's input: the json body, with the members a rest-json request carries in its path and query."""
    document = request.json()
    for method, pattern, _ in ROUTES:
        match = pattern.match(request.path) if request.method == method else None
        if match:
            document.update(match.groupdict())
            break
    for name, value in request.params().items():
        document[name] = int(value) if name == "MaxResults" and value.isdigit() else value
    return document


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidRequestException", message)


def _workgroup(body: dict) -> str:
    name = member(body, "WorkGroup", str, code="InvalidRequestException") or WORKGROUP
    if name != WORKGROUP:
        raise _invalid(f"WorkGroup {name} is not found.")
    return name


def start_query_execution(backends: Backends, request: Request) -> Response:
    """StartQueryExecution: record the query and run it on a thread of its own (the same ``ClientRequestToken``
    with the same request answers the same execution)."""
    body = request.json()
    query = member(body, "QueryString", str, required=True, code="InvalidRequestException")
    context = member(body, "QueryExecutionContext", dict, code="InvalidRequestException") or {}
    database = member(context, "Database", str, code="InvalidRequestException", where="QueryExecutionContext.")
    catalog = member(context, "Catalog", str, code="InvalidRequestException", where="QueryExecutionContext.")
    if catalog and catalog.lower() != "awsdatacatalog":
        raise _invalid(f"Catalog {catalog} is not found; the one data catalog here is AwsDataCatalog")
    if body.get("ExecutionParameters"):
        raise _invalid("ExecutionParameters are not supported by sagestack serve-aws; put the values in the query")
    workgroup = _workgroup(body)
    result_configuration = member(body, "ResultConfiguration", dict, code="InvalidRequestException") or {}
    output = member(result_configuration, "OutputLocation", str, code="InvalidRequestException",
                    where="ResultConfiguration.")
    if not output:
        raise _invalid(NO_OUTPUT)
    if not output.startswith("s3://") or not output[5:].split("/", 1)[0]:
        raise _invalid(f"The S3 location provided to save your query results is invalid: {output} is not an s3:// "
                       "location")
    token = member(body, "ClientRequestToken", str, code="InvalidRequestException")
    if token is not None and not 32 <= len(token) <= 128:
        raise _invalid("ClientRequestToken must be 32 to 128 characters long")

    def work(query_id: str, connection) -> dict:
        from sagestack.aws.athena_sql import run_query

        outcome = run_query(query, database=database, catalog=backends.glue, s3=backends.s3,
                            output_location=output, query_id=query_id, connection=connection)
        return {"statement_type": outcome.statement_type, "substatement_type": outcome.substatement_type,
                "rows": outcome.rows, "columns": [column.__dict__ for column in outcome.columns],
                "output": outcome.output_location, "manifest": outcome.manifest_location,
                "scanned": outcome.scanned_bytes}

    query_id, new = backends.athena.start({"query": query, "context": context, "output": output,
                                           "workgroup": workgroup}, token, work)
    if new:
        backends.athena.wait(query_id, START_WAIT)
    return json_response({"QueryExecutionId": query_id})


def _execution_document(row: dict) -> dict:
    result = row["result"] or {}
    status = {"State": row["state"], "SubmissionDateTime": row["submitted"]}
    if row["completed"]:
        status["CompletionDateTime"] = row["completed"]
    if row["reason"]:
        status["StateChangeReason"] = row["reason"]
    elapsed = int(((row["completed"] or time.time()) - row["submitted"]) * 1000)
    statistics = {"EngineExecutionTimeInMillis": elapsed, "DataScannedInBytes": result.get("scanned", 0),
                  "TotalExecutionTimeInMillis": elapsed, "QueryQueueTimeInMillis": 0,
                  "ServiceProcessingTimeInMillis": 0}
    if result.get("manifest"):
        statistics["DataManifestLocation"] = result["manifest"]
    output = result.get("output") or f"{row['output'].rstrip('/')}/{row['id']}.csv"
    return {"QueryExecution": {
        "QueryExecutionId": row["id"], "Query": row["query"],
        "StatementType": result.get("statement_type", "DML"),
        "SubstatementType": result.get("substatement_type", "SELECT"),
        "ResultConfiguration": {"OutputLocation": output}, "QueryExecutionContext": row["context"],
        "Status": status, "Statistics": statistics, "WorkGroup": row["workgroup"],
        "EngineVersion": {"SelectedEngineVersion": "AUTO", "EffectiveEngineVersion": "Athena engine version 3"},
        "ResultReuseConfiguration": {"ResultReuseByAgeConfiguration": {"Enabled": False}}}}


def get_query_execution(backends: Backends, request: Request) -> Response:
    """GetQueryExecution: the state (``StateChangeReason`` when it failed), where the result is, statistics."""
    return json_response(_execution_document(backends.athena.record(_input(request).get("QueryExecutionId"))))


def stop_query_execution(backends: Backends, request: Request) -> Response:
    """StopQueryExecution: a running query ends CANCELLED, its statement interrupted."""
    row = backends.athena.record(_input(request).get("QueryExecutionId"))
    backends.athena.stop(row["id"])
    return json_response({})


def _result_rows(text: str) -> list[list[str | None]]:
    """The rows of an Athena result CSV, where every value is quoted and an empty field is NULL."""
    rows, row, index, length = [], [], 0, len(text)
    while index < length:
        if text[index] == '"':
            end, value = index + 1, []
            while True:
                quote = text.index('"', end)
                value.append(text[end:quote])
                if text.startswith('""', quote):
                    value.append('"')
                    end = quote + 2
                    continue
                break
            row.append("".join(value))
            index = quote + 1
        else:
            row.append(None)
        if index >= length or text[index] == "\n":
            rows.append(row)
            row = []
        index += 1
    return rows


def result_records(stream) -> Iterator[tuple[list[str | None], int]]:
    """Each row of the result CSV open in binary ``stream`` from where it stands, with the byte offset after it
    (a quoted value may hold newlines: a record ends where its quotes balance)."""
    offset, pending, quotes = stream.tell(), [], 0
    for line in stream:
        offset += len(line)
        pending.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield _result_rows(b"".join(pending).decode("utf-8"))[0], offset
            pending, quotes = [], 0


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"at": offset}).encode()).decode()


def _offset(token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["at"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise _invalid("NextToken is not valid") from None
    if not isinstance(offset, int) or offset < 0:
        raise _invalid("NextToken is not valid")
    return offset


def get_query_results(backends: Backends, request: Request) -> Response:
    """GetQueryResults: the result's column info and a page of rows (the first page starts with the header),
    read from the result CSV up to the page's end; ``NextToken`` says where the next page starts."""
    body = _input(request)
    row = backends.athena.record(body.get("QueryExecutionId"))
    if row["state"] != "SUCCEEDED":
        raise _invalid(f"Query has not yet finished. Current state: {row['state']}" if row["state"] not in FINAL
                       else f"Query did not finish successfully. Final query state: {row['state']}")
    result = row["result"]
    size = member(body, "MaxResults", int, code="InvalidRequestException") or MAX_RESULTS
    if not 1 <= size <= MAX_RESULTS:
        raise _invalid(f"MaxResults must be between 1 and {MAX_RESULTS}")
    token = member(body, "NextToken", str, code="InvalidRequestException")
    start = _offset(token) if token else 0
    page, after = [], None
    if result["substatement_type"] in ("CREATE_TABLE_AS_SELECT", "UNLOAD"):  # an UNLOAD's rows are its files
        rows = [["rows"], [str(result["rows"])]] if result["substatement_type"] == "CREATE_TABLE_AS_SELECT" else []
        page = rows[start:start + size]
        after = start + size if start + size < len(rows) else None
    else:
        from sagestack.aws.containers import split_s3_uri
        from sagestack.aws.jobs import JobFailed

        try:
            _, stream = backends.s3.open(*split_s3_uri(result["output"]))
        except (AwsError, JobFailed):
            raise _invalid(f"the result of query {row['id']} is no longer at {result['output']}") from None
        with stream:
            stream.seek(start)
            for values, offset in result_records(stream):
                page.append(values)
                if len(page) == size:
                    after = offset if stream.read(1) else None
                    break
    document = {"ResultSet": {
        "Rows": [{"Data": [{} if value is None else {"VarCharValue": value} for value in values]} for values in page],
        "ResultSetMetadata": {"ColumnInfo": [
            {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": column["name"],
             "Label": column["name"], "Type": column["type"], "Precision": column["precision"],
             "Scale": column["scale"], "Nullable": "UNKNOWN", "CaseSensitive": column["type"] == "varchar"}
            for column in result["columns"]]}},
        "UpdateCount": result["rows"] if result["statement_type"] == "DDL" else 0}
    if after is not None:
        document["NextToken"] = _token(after)
    return json_response(document)


def get_work_group(backends: Backends, request: Request) -> Response:
    """GetWorkGroup: ``primary``, enabled, with no result location or encryption of its own."""
    _workgroup(_input(request))
    return json_response({"WorkGroup": {
        "Name": WORKGROUP, "State": "ENABLED", "Description": "", "CreationTime": 0,
        "Configuration": {"EnforceWorkGroupConfiguration": False, "PublishCloudWatchMetricsEnabled": False,
                          "RequesterPaysEnabled": False,
                          "EngineVersion": {"SelectedEngineVersion": "AUTO",
                                            "EffectiveEngineVersion": "Athena engine version 3"}}}})
