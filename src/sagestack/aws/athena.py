"""Athena's API: query executions run by :mod:`sagestack.aws.athena_sql` on DuckDB over the Glue catalog
(:mod:`sagestack.aws.glue`) and the S3 store. botocore speaks rest-json to Athena (``POST /query-executions``,
``GET /query-executions/ID`` …); older clients speak json (``X-Amz-Target: AmazonAthena.<Operation>``): both
are served, each operation reading its input through :func:`_input`.

An execution is recorded in ``home/aws/athena.db`` and runs on a thread of its own, as Athena runs it
asynchronously; ``StartQueryExecution`` answers once it ends or after :data:`START_WAIT` seconds, whichever
comes first, so a short query is final at the client's first ``GetQueryExecution`` and a long one is polled.
Only the ``primary`` workgroup exists, with no result location of its own (as a new AWS account's).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import traceback
import uuid

from sagestack.aws.backends import Backends
from sagestack.aws.identity import aws_home
from sagestack.aws.protocol import AwsError, Request, Response, json_response, member
from sagestack.aws.records import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, query TEXT NOT NULL, context TEXT NOT NULL, output TEXT NOT NULL, workgroup TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT, submitted REAL NOT NULL, completed REAL, pid INTEGER NOT NULL,
    result TEXT);
"""
WORKGROUP = "primary"
START_WAIT = 10.0  # seconds StartQueryExecution waits for its query before answering
MAX_RUNNING = 4  # queries running at once per server (Athena's own quota answers TooManyRequestsException too)
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
MAX_RESULTS = 1000
NO_OUTPUT = ("No output location provided. An output location is required either through the Workgroup result "
             "configuration setting or as an API input.")


# rest-json: (method, path pattern) -> the operation and the input members its path carries.
ROUTES = (
    ("POST", re.compile(r"^/query-executions/?$"), "StartQueryExecution"),
    ("GET", re.compile(r"^/query-executions/(?P<QueryExecutionId>[^/]+)/results/?$"), "GetQueryResults"),
    ("POST", re.compile(r"^/query-executions/(?P<QueryExecutionId>[^/]+)/stop/?$"), "StopQueryExecution"),
    ("GET", re.compile(r"^/query-executions/(?P<QueryExecutionId>[^/]+)/?$"), "GetQueryExecution"),
    ("GET", re.compile(r"^/workgroups/(?P<WorkGroup>[^/]+)/?$"), "GetWorkGroup"),
)


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


def _records(backends: Backends):
    path = aws_home(backends.home) / "athena.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    with transaction(path) as db:
        db.executescript(SCHEMA)
    return path


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidRequestException", message)


def _workgroup(body: dict) -> str:
    name = member(body, "WorkGroup", str, code="InvalidRequestException") or WORKGROUP
    if name != WORKGROUP:
        raise _invalid(f"WorkGroup {name} is not found.")
    return name


def start_query_execution(backends: Backends, request: Request) -> Response:
    """StartQueryExecution: record the query and run it on a thread of its own."""
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
    path = _records(backends)
    query_id = str(uuid.uuid4())
    with transaction(path) as db:
        running = db.execute("SELECT count(*) FROM executions WHERE state IN ('QUEUED', 'RUNNING') AND pid = ?",
                             (os.getpid(),)).fetchone()[0]
        if running >= MAX_RUNNING:
            raise AwsError("TooManyRequestsException", f"{running} queries are running; at most {MAX_RUNNING} run "
                           "at once here: wait for one to finish")
        db.execute("INSERT INTO executions VALUES (?, ?, ?, ?, ?, 'RUNNING', NULL, ?, NULL, ?, NULL)",
                   (query_id, query, json.dumps(context), output, workgroup, time.time(), os.getpid()))
    worker = threading.Thread(target=_run, args=(backends, path, query_id, query, database, output),
                              name=f"athena-{query_id}", daemon=True)
    worker.start()
    worker.join(START_WAIT)
    return json_response({"QueryExecutionId": query_id})


def _run(backends: Backends, path, query_id: str, query: str, database: str | None, output: str) -> None:
    from sagestack.aws.athena_sql import QueryFailed, run_query
    from sagestack.aws.glue import open_catalog

    state, reason, result = "SUCCEEDED", None, None
    try:
        outcome = run_query(query, database=database, catalog=open_catalog(backends), s3=backends.s3,
                            output_location=output, query_id=query_id)
        result = {"statement_type": outcome.statement_type, "substatement_type": outcome.substatement_type,
                  "rows": outcome.rows,
                  "columns": [column.__dict__ for column in outcome.columns],
                  "output": outcome.output_location, "manifest": outcome.manifest_location,
                  "scanned": outcome.scanned_bytes}
    except QueryFailed as failure:
        state, reason = "FAILED", failure.reason
    except Exception as error:  # a bug here: the query fails with it, the traceback goes to the log
        traceback.print_exc(file=sys.stderr)
        state, reason = "FAILED", f"GENERIC_INTERNAL_ERROR: sagestack serve-aws failed on this query ({error!r})"
    with transaction(path) as db:  # a query cancelled meanwhile stays CANCELLED
        db.execute("UPDATE executions SET state = ?, reason = ?, completed = ?, result = ? WHERE id = ? AND "
                   "state = 'RUNNING'", (state, reason, time.time(), json.dumps(result), query_id))


def _execution(backends: Backends, query_id: object) -> dict:
    if not isinstance(query_id, str) or not query_id:
        raise _invalid("QueryExecutionId is required")
    with transaction(_records(backends)) as db:
        db.row_factory = lambda cursor, row: {column[0]: value for column, value in zip(cursor.description, row)}
        row = db.execute("SELECT * FROM executions WHERE id = ?", (query_id,)).fetchone()
        if row is not None and row["state"] not in FINAL and row["pid"] != os.getpid():
            row.update(state="FAILED", reason="INTERNAL_ERROR_QUERY_ENGINE: the server stopped before the query "
                       "finished", completed=time.time())
            db.execute("UPDATE executions SET state = ?, reason = ?, completed = ? WHERE id = ?",
                       (row["state"], row["reason"], row["completed"], query_id))
    if row is None:
        raise _invalid(f"QueryExecution {query_id} was not found")
    row["context"] = json.loads(row["context"])
    row["result"] = json.loads(row["result"]) if row["result"] else None
    return row


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
    return json_response(_execution_document(_execution(backends, _input(request).get("QueryExecutionId"))))


def stop_query_execution(backends: Backends, request: Request) -> Response:
    """StopQueryExecution: a running query ends CANCELLED (its work is dropped when it finishes)."""
    row = _execution(backends, _input(request).get("QueryExecutionId"))
    with transaction(_records(backends)) as db:
        db.execute("UPDATE executions SET state = 'CANCELLED', completed = ? WHERE id = ? AND state = 'RUNNING'",
                   (time.time(), row["id"]))
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


def get_query_results(backends: Backends, request: Request) -> Response:
    """GetQueryResults: the result's column info and a page of rows (the first page starts with the header)."""
    body = _input(request)
    row = _execution(backends, body.get("QueryExecutionId"))
    if row["state"] != "SUCCEEDED":
        raise _invalid(f"Query has not yet finished. Current state: {row['state']}" if row["state"] not in FINAL
                       else f"Query did not finish successfully. Final query state: {row['state']}")
    result = row["result"]
    size = member(body, "MaxResults", int, code="InvalidRequestException") or MAX_RESULTS
    if not 1 <= size <= MAX_RESULTS:
        raise _invalid(f"MaxResults must be between 1 and {MAX_RESULTS}")
    token = member(body, "NextToken", str, code="InvalidRequestException") or "0"
    if not token.isdigit():
        raise _invalid("NextToken is not valid")
    start = int(token)
    columns = result["columns"]
    if result["substatement_type"] == "CREATE_TABLE_AS_SELECT":
        rows = [["rows"], [str(result["rows"])]]
    elif result["substatement_type"] == "UNLOAD":  # its rows are the Parquet files, not a result
        rows = []
    else:
        from sagestack.aws.athena_sql import split_s3_uri

        bucket, key = split_s3_uri(result["output"])
        try:
            _, stream = backends.s3.open(bucket, key)
        except AwsError:
            raise _invalid(f"the result of query {row['id']} is no longer at {result['output']}") from None
        with stream:
            rows = _result_rows(stream.read().decode("utf-8"))
    page = rows[start:start + size]
    document = {"ResultSet": {
        "Rows": [{"Data": [{} if value is None else {"VarCharValue": value} for value in values]} for values in page],
        "ResultSetMetadata": {"ColumnInfo": [
            {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": column["name"],
             "Label": column["name"], "Type": column["type"], "Precision": column["precision"],
             "Scale": column["scale"], "Nullable": "UNKNOWN", "CaseSensitive": column["type"] == "varchar"}
            for column in columns]}},
        "UpdateCount": result["rows"] if result["statement_type"] == "DDL" else 0}
    if start + size < len(rows):
        document["NextToken"] = str(start + size)
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
