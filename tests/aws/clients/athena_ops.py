"""Athena's and Glue's operations beyond the lab's happy path, through boto3, after athena_glue.py made the
``dsoaws.reviews`` table: running queries stopped for real and counted against the cap, StartQueryExecution's
short wait, ClientRequestToken, GetQueryResults paged by NextToken, TableInput shapes refused, GetTables'
Expression as Glue's wildcards. Prints one JSON line.

Usage: athena_ops.py
"""

import json
import time

import boto3
from botocore.exceptions import ClientError

account = boto3.client("sts").get_caller_identity()["Account"]
output = f"s3://sagemaker-us-east-1-{account}/athena-ops/"
athena, glue = boto3.client("athena"), boto3.client("glue")
SLOW = "SELECT count(*) AS n FROM reviews a, reviews b, reviews c WHERE a.review_body < b.review_body || c.review_body"


def start(sql, **extra):
    return athena.start_query_execution(QueryString=sql, QueryExecutionContext={"Database": "dsoaws"},
                                        ResultConfiguration={"OutputLocation": output}, **extra)["QueryExecutionId"]


def code(call):
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"], error.response["Error"]["Message"]
    return None


def state(query_id):
    return athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]["State"]


def wait(query_id, timeout=60):
    deadline = time.time() + timeout
    while state(query_id) in ("QUEUED", "RUNNING") and time.time() < deadline:
        time.sleep(0.1)
    return state(query_id)


clock = {"begin": time.time()}
# -- the cap, StopQueryExecution, StartQueryExecution's wait ---------------------------------------------------
began = time.time()
slow = [start(SLOW) for _ in range(4)]
start_seconds = (time.time() - began) / 4
running = [state(query_id) for query_id in slow]
refused = code(lambda: start("SELECT 1 AS one"))
for query_id in slow:
    athena.stop_query_execution(QueryExecutionId=query_id)
stopped = [wait(query_id) for query_id in slow]
# Stopped queries leave the cap once their statements end: four more start again at once.
began, after_stop = time.time(), None
while time.time() - began < 30:  # a stopped query that ran on would hold its place for minutes
    attempt = code(lambda: start("SELECT 1 AS one"))
    if attempt is None:
        after_stop = round(time.time() - began, 2)
        break
    time.sleep(0.1)

clock["cap"] = time.time()
# -- ClientRequestToken -------------------------------------------------------------------------------------
token = "sagestack-token-0123456789abcdef0123"
first = start("SELECT 2 AS two", ClientRequestToken=token)
again = start("SELECT 2 AS two", ClientRequestToken=token)
other = code(lambda: start("SELECT 3 AS three", ClientRequestToken=token))

clock["token"] = time.time()
# -- GetQueryResults paged ------------------------------------------------------------------------------------
paged = start("SELECT review_body, sentiment FROM reviews ORDER BY review_body, sentiment LIMIT 2345")
wait(paged)


def rows(page):
    return [[datum.get("VarCharValue") for datum in row["Data"]] for row in page["ResultSet"]["Rows"]]


pages, token_seen, next_token = [], [], None
while True:
    page = athena.get_query_results(QueryExecutionId=paged, MaxResults=1000,
                                    **({"NextToken": next_token} if next_token else {}))
    pages.append(rows(page))
    next_token = page.get("NextToken")
    if not next_token:
        break
    token_seen.append(next_token)
small = [row for page in athena.get_paginator("get_query_results").paginate(
    QueryExecutionId=paged, PaginationConfig={"PageSize": 333}) for row in rows(page)]
columns = [column["Name"] for column in athena.get_query_results(
    QueryExecutionId=paged, MaxResults=1)["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]]
bad_token = code(lambda: athena.get_query_results(QueryExecutionId=paged, NextToken="not-a-token"))



def json_protocol(operation, body):
    """``operation`` as older clients send it: json with ``X-Amz-Target: AmazonAthena.<Operation>``."""
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.session.Session()
    request = AWSRequest(method="POST", url=athena.meta.endpoint_url + "/", data=json.dumps(body).encode(),
                         headers={"Content-Type": "application/x-amz-json-1.1",
                                  "X-Amz-Target": f"AmazonAthena.{operation}"})
    SigV4Auth(session.get_credentials(), "athena", session.region_name).add_auth(request)
    sent = urllib.request.Request(request.url, data=request.body, method="POST", headers=dict(request.headers))
    with urllib.request.urlopen(sent, timeout=60) as answer:
        return json.loads(answer.read())


json_path = {"state": json_protocol("GetQueryExecution", {"QueryExecutionId": paged})["QueryExecution"]["Status"]
             ["State"], "rows": len(json_protocol("GetQueryResults", {"QueryExecutionId": paged, "MaxResults": 2})
                                    ["ResultSet"]["Rows"])}
clock["paged"] = time.time()
# -- Glue: TableInput shapes, GetTables' Expression -------------------------------------------------------
BAD = {
    "storage_not_structure": {"Name": "bad", "StorageDescriptor": "x"},
    "column_not_structure": {"Name": "bad", "StorageDescriptor": {"Columns": ["a"]}},
    "column_without_name": {"Name": "bad", "StorageDescriptor": {"Columns": [{"Type": "int"}]}},
    "partition_keys_not_list": {"Name": "bad", "PartitionKeys": "pk"},
    "parameters_not_map": {"Name": "bad", "Parameters": "x"},
    "skip_not_number": {"Name": "bad", "Parameters": {"skip.header.line.count": "abc"}},
    "location_not_string": {"Name": "bad", "StorageDescriptor": {"Location": 5}},
}
raw_glue, body = boto3.client("glue"), {}


def raw_body(request, **kwargs):
    """botocore serializes only well-shaped input: the wrong shapes go in as the signed body itself."""
    request.data = json.dumps(body).encode()


raw_glue.meta.events.register("before-sign.glue.*", raw_body)


def send_raw(operation, table_input):
    body.clear()
    body.update(DatabaseName="dsoaws", TableInput=table_input)
    return code(lambda: getattr(raw_glue, operation)(DatabaseName="dsoaws", TableInput={"Name": "bad"}))


refusals = {name: send_raw("create_table", table_input) for name, table_input in BAD.items()}
update_refused = send_raw("update_table", BAD["column_without_name"])
glue.create_table(DatabaseName="dsoaws", TableInput={"Name": "a" * 25, "StorageDescriptor": {
    "Columns": [{"Name": "x", "Type": "int"}], "Location": output}})
began = time.time()
nested = [table["Name"] for table in glue.get_tables(DatabaseName="dsoaws", Expression="(a+)+b")["TableList"]]
nested_seconds = time.time() - began
expressions = {expression: sorted(table["Name"] for table in glue.get_tables(
    DatabaseName="dsoaws", Expression=expression)["TableList"]) for expression in ("rev*", "*ev*", "x|reviews", "a*")}
glue.delete_table(DatabaseName="dsoaws", Name="a" * 25)
left = [table["Name"] for table in glue.get_tables(DatabaseName="dsoaws")["TableList"]]

clock["glue"] = time.time()
print(json.dumps({"clock": {name: round(clock[name] - clock["begin"], 2) for name in clock},
    "start_seconds": start_seconds, "running": running, "refused": refused, "stopped": stopped,
    "after_stop": after_stop,
    "token": {"same": first == again, "state": wait(first), "other": other},
    "pages": pages, "json_path": json_path, "page_tokens": token_seen, "small": small, "columns": columns, "bad_token": bad_token,
    "refusals": refusals, "update_refused": update_refused, "nested": nested, "nested_seconds": nested_seconds,
    "expressions": expressions, "tables_left": sorted(left),
}))
