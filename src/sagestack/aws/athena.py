"""Athena's API: query executions run by :mod:`sagestack.aws.athena_sql` on DuckDB over the Glue catalog
(:mod:`sagestack.aws.glue_catalog`) and the S3 store. botocore speaks rest-json to Athena (``POST /query-executions``,
``GET /query-executions/ID`` …); older clients speak json (``X-Amz-Target: AmazonAthena.<Operation>``): both
are served, each operation reading its input through :func:`_input`.

The executions are the home's :class:`~sagestack.aws.athena_queries.QueryRunner` (held on the server's
:class:`~sagestack.aws.backends.Backends`). ``StartQueryExecution`` answers once its query ends or after :data:`START_WAIT` seconds, whichever comes
first, so a short query is final at the client's first ``GetQueryExecution`` and a long one is polled.
Only the ``primary`` workgroup exists, with no result location of its own (as a new AWS account's).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Iterator

from sagestack.aws.athena_queries import FINAL, invalid_request
from sagestack.aws.backends import Backends
from sagestack.aws.protocol import AwsError, Request, Response, json_response, member

WORKGROUP = "primary"
START_WAIT = 1.0  # seconds StartQueryExecution waits for its query before answering
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


def _workgroup(body: dict) -> str:
    name = member(body, "WorkGroup", str, code="InvalidRequestException") or WORKGROUP
    if name != WORKGROUP:
        raise invalid_request(f"WorkGroup {name} is not found.")
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
        raise invalid_request(f"Catalog {catalog} is not found; the one data catalog here is AwsDataCatalog")
    if body.get("ExecutionParameters"):
        raise invalid_request("ExecutionParameters are not supported by sagestack serve-aws; put the values in the query")
    workgroup = _workgroup(body)
    result_configuration = member(body, "ResultConfiguration", dict, code="InvalidRequestException") or {}
    output = member(result_configuration, "OutputLocation", str, code="InvalidRequestException",
                    where="ResultConfiguration.")
    if not output:
        raise invalid_request(NO_OUTPUT)
    if not output.startswith("s3://") or not output[5:].split("/", 1)[0]:
        raise invalid_request(f"The S3 location provided to save your query results is invalid: {output} is not an s3:// "
                       "location")
    token = member(body, "ClientRequestToken", str, code="InvalidRequestException")
    if token is not None and not 32 <= len(token) <= 128:
        raise invalid_request("ClientRequestToken must be 32 to 128 characters long")

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
        raise invalid_request("NextToken is not valid") from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid_request("NextToken is not valid")
    return offset


def get_query_results(backends: Backends, request: Request) -> Response:
    """GetQueryResults: the result's column info and a page of rows (the first page starts with the header),
    read from the result CSV up to the page's end; ``NextToken`` says where the next page starts."""
    body = _input(request)
    row = backends.athena.record(body.get("QueryExecutionId"))
    if row["state"] != "SUCCEEDED":
        raise invalid_request(f"Query has not yet finished. Current state: {row['state']}" if row["state"] not in FINAL
                       else f"Query did not finish successfully. Final query state: {row['state']}")
    result = row["result"]
    size = member(body, "MaxResults", int, code="InvalidRequestException") or MAX_RESULTS
    if not 1 <= size <= MAX_RESULTS:
        raise invalid_request(f"MaxResults must be between 1 and {MAX_RESULTS}")
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
            raise invalid_request(f"the result of query {row['id']} is no longer at {result['output']}") from None
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
