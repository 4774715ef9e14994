"""Course 1, week 1: the Glue catalog and Athena through awswrangler (its real calls, from .venv-aws) against a
real ``sagestack serve-aws``, each query's result checked against the same aggregation in pandas on the same
CSV; and, in process, how Athena's SQL and SerDes are mirrored (:mod:`sagestack.aws.athena_sql`)."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import os
import shutil
import subprocess
import time

import pandas as pd
import pytest
from serve_aws_fixtures import aws, client_bin  # noqa: F401

from sagestack.aws.athena import _result_rows, result_records
from sagestack.aws.athena_queries import SERVER_STOPPED, QueryRunner
from sagestack.aws.athena_sql import run_query
from sagestack.aws.athena_tables import LAZY_SIMPLE, QueryFailed, split_lazy_simple, split_open_csv
from sagestack.aws.glue_catalog import GlueCatalog, name_matches
from sagestack.aws.identity import DEFAULT_ACCOUNT
from sagestack.aws.protocol import AwsError
from sagestack.aws.s3store import S3Store




@pytest.fixture(scope="module")
def week1(aws, shared_data):
    """What the lab's calls returned, and the reviews as Athena's LazySimpleSerDe reads them (quotes are data)."""
    path = shared_data / "reviews_balanced.csv"
    seen = aws.run("athena_glue.py", str(path))
    reviews = pd.read_csv(path, sep=",", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)
    reviews["sentiment"] = reviews["sentiment"].astype(int)
    return seen, reviews


def frame(result: dict) -> pd.DataFrame:
    return pd.DataFrame(result["data"], columns=result["columns"])


def test_glue_database_and_csv_table_as_the_lab_reads_them(week1):
    seen, _ = week1
    assert seen["databases"] == ["dsoaws"] and seen["databases_frame"] == ["dsoaws"]
    assert seen["table"]["Column Name"] == ["sentiment", "review_body", "product_category"]
    assert seen["table"]["Type"] == ["int", "string", "string"]
    assert seen["athena_bucket"] == f"s3://aws-athena-query-results-{DEFAULT_ACCOUNT}-us-east-1/"
    # The CTAS tables awswrangler made for each query were dropped again.
    assert seen["tables_left"] == ["empty", "nobucket", "reviews"]


def test_group_by_counts_and_averages_equal_pandas(week1):
    seen, reviews = week1
    by_category = reviews.groupby("product_category")["sentiment"]
    averages = frame(seen["results"]["avg_sentiment"])
    assert dict(zip(averages.product_category, averages.avg_sentiment)) == pytest.approx(
        by_category.mean().to_dict(), abs=1e-9)
    assert list(averages.avg_sentiment) == sorted(averages.avg_sentiment, reverse=True)
    counts = frame(seen["results"]["count_sentiment"])
    assert dict(zip(counts.product_category, counts.count_sentiment)) == by_category.count().to_dict()
    assert list(counts.count_sentiment) == sorted(counts.count_sentiment, reverse=True)
    breakdown = frame(seen["results"]["breakdown"])
    expected = reviews.groupby(["product_category", "sentiment"]).size()
    assert {(c, s): n for c, s, n in breakdown.itertuples(index=False)} == expected.to_dict()
    assert list(zip(breakdown.product_category, -breakdown.sentiment)) == sorted(
        zip(breakdown.product_category, -breakdown.sentiment))
    assert seen["dtypes"]["count_sentiment"] == {"product_category": "string", "count_sentiment": "Int64"}
    assert seen["dtypes"]["breakdown"]["sentiment"] == "Int32"  # the table's int column


def test_string_functions_equal_pandas(week1):
    seen, reviews = week1
    body = reviews["review_body"]  # LazySimpleSerDe keeps a quoted review's quotes: they count in its length
    assert sorted(frame(seen["results"]["num_words"]).num_words) == sorted(len(text.split(" ")) for text in body)
    lengths = frame(seen["results"]["lengths"]).set_index("product_category")
    by_category = body.str.len().groupby(reviews["product_category"])
    assert lengths.avg_length.to_dict() == pytest.approx(by_category.mean().to_dict(), abs=1e-9)
    assert lengths.max_length.to_dict() == by_category.max().to_dict()
    assert list(lengths.index) == sorted(lengths.index)
    starts = frame(seen["results"]["starts"])
    counted = body.str[:12].str.lower().value_counts()
    expected = sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:10]
    assert list(zip(starts.review_start, starts.n)) == expected


def test_results_lie_in_athenas_bucket_where_athena_writes_them(week1):
    seen, _ = week1
    left = seen["results_left"]
    assert left and all(key.startswith(seen["athena_bucket"]) for key in left)
    # The plain query's result CSV and its .metadata are there (awswrangler deletes only CTAS tables' data).
    csvs = [key for key in left if key.endswith(".csv") and "/tables/" not in key]
    assert csvs and all(f"{key}.metadata" in left for key in csvs)


def test_without_ctas_and_through_unload_the_result_is_the_same(week1):
    seen, _ = week1
    assert seen["plain"] == seen["results"]["count_sentiment"] == seen["unloaded"]
    assert seen["plain_dtypes"] == seen["dtypes"]["count_sentiment"]


def test_a_table_over_a_missing_prefix_has_no_rows_and_a_missing_bucket_fails(week1):
    seen, _ = week1
    assert seen["empty"] == {"columns": ["a", "n"], "rows": 0}
    assert seen["empty_ctas"] == {"columns": ["a"], "rows": 0, "dtypes": ["Int32"]}
    failure = seen["errors"]["missing_bucket"]
    assert failure["kind"] == "QueryFailed" and "no-such-bucket" in failure["message"]


@pytest.mark.parametrize("case, kind, words", [
    ("malformed", "QueryFailed", "SYNTAX_ERROR: line 5:"),  # inside awswrangler's CTAS wrapping, as on Athena
    ("malformed_plain", "QueryFailed", "SYNTAX_ERROR: line 1:44: Expecting )"),
    ("unknown_column", "QueryFailed", "COLUMN_NOT_FOUND: "),
    ("unknown_database_query", "QueryFailed", "SCHEMA_NOT_FOUND: line 5:"),
    ("unknown_database_table", "EntityNotFoundException", "Database no_such_database not found."),
    ("unknown_table", "EntityNotFoundException", "Table no_such_table not found."),
    ("no_such_execution", "InvalidRequestException", "QueryExecution no-such-id was not found"),
    ("no_output_location", "InvalidRequestException", "No output location provided."),
    ("file_output_location", "InvalidRequestException", "file:///tmp/results/ is not an s3:// location"),
    ("other_workgroup", "InvalidRequestException", "WorkGroup analysts is not found."),
])
def test_bad_queries_fail_with_athenas_reason(week1, case, kind, words):
    failure = week1[0]["errors"][case]
    assert failure.get("code", failure["kind"]) == kind
    assert words in failure["message"]
    if case == "unknown_database_query":
        assert "Schema 'no_such_database' does not exist" in failure["message"]


@pytest.fixture(scope="module")
def ops(aws, week1):
    """What athena_ops.py saw: stops, the cap, tokens, paging, Glue refusals (after week1 made the table)."""
    return aws.run("athena_ops.py")


def test_stop_query_execution_interrupts_the_query_and_frees_its_place_under_the_cap(ops):
    assert ops["running"] == ["RUNNING"] * 4
    assert ops["refused"][0] == "TooManyRequestsException" and "--max-queries" in ops["refused"][1]
    assert ops["stopped"] == ["CANCELLED"] * 4
    # The stopped queries' statements were interrupted: their places under the cap came back at once.
    # (Bounds loose for a loaded machine: a statement left running would hold its place past the client's 30 s,
    # and a StartQueryExecution that waited for its query would leave none RUNNING.)
    assert ops["after_stop"] is not None and ops["after_stop"] < 20
    assert ops["start_seconds"] < 10  # StartQueryExecution waits about a second for a query, no more


def test_a_client_request_token_names_one_execution(ops):
    assert ops["token"]["same"] and ops["token"]["state"] == "SUCCEEDED"
    assert ops["token"]["other"][0] == "InvalidRequestException"
    assert "Idempotent parameters do not match" in ops["token"]["other"][1]


def test_get_query_results_pages_by_next_token(ops):
    pages = ops["pages"]
    assert [len(page) for page in pages] == [1000, 1000, 346]  # 2345 rows after the header
    everything = [row for page in pages for row in page]
    assert everything[0] == ["review_body", "sentiment"] == ops["columns"]
    assert ops["small"] == everything  # boto3's paginator, 333 rows a page
    assert all(not token.isdigit() for token in ops["page_tokens"])
    assert ops["bad_token"][0] == "InvalidRequestException"
    assert ops["json_path"] == {"state": "SUCCEEDED", "rows": 2}  # X-Amz-Target: AmazonAthena.<Operation>


def test_glue_refuses_table_inputs_of_the_wrong_shape(ops):
    for name, refusal in ops["refusals"].items():
        assert refusal is not None and refusal[0] == "InvalidInputException", name
    assert "TableInput.StorageDescriptor.Columns[0].Name is required" in ops["refusals"]["column_without_name"][1]
    assert "skip.header.line.count" in ops["refusals"]["skip_not_number"][1]
    assert ops["update_refused"][0] == "InvalidInputException"
    assert "bad" not in ops["tables_left"]


def test_get_tables_expression_is_glues_wildcards_not_a_regular_expression(ops):
    assert ops["nested"] == [] and ops["nested_seconds"] < 2
    assert ops["expressions"] == {"rev*": ["reviews"], "*ev*": ["reviews"], "x|reviews": ["reviews"],
                                  "a*": ["a" * 25]}
    assert name_matches("a.b", "a.b") and not name_matches("a.b", "axb") and name_matches("R*S|x", "reviews")
    assert not name_matches("rev*s", "review") and name_matches("*", "") and name_matches("a**b*", "aXb")
    started = time.monotonic()  # stars that a backtracking matcher takes exponential time over
    assert not name_matches("a*" * 40 + "b", "a" * 255) and time.monotonic() - started < 1


# -- in process: the SerDes and the SQL ---------------------------------------------------------------------

def test_the_glue_catalog_keeps_names_lower_case_and_refuses_duplicates(tmp_path):
    catalog = GlueCatalog(tmp_path / "glue.db")
    catalog.create_database({"Name": "Lab", "Description": "week 1"})
    with pytest.raises(AwsError, match="AlreadyExistsException|already exists") as exists:
        catalog.create_database({"Name": "lab"})
    assert exists.value.code == "AlreadyExistsException"
    table = {"Name": "Reviews",
             "StorageDescriptor": {"Columns": [{"Name": "A", "Type": "int"}], "Location": "s3://b/p"}}
    catalog.create_table("LAB", table)
    assert catalog.table("lab", "reviews").columns == (("a", "int"),)
    catalog.update_table("lab", {**table, "StorageDescriptor": {"Columns": [], "Location": "s3://b/q"}})
    assert catalog.table_input("lab", "REVIEWS")[3] == 2 and catalog.table("lab", "reviews").location == "s3://b/q"
    with pytest.raises(AwsError) as missing:
        catalog.create_table("nowhere", table)
    assert (missing.value.code, missing.value.message) == ("EntityNotFoundException", "Database nowhere not found.")
    catalog.delete_database("lab")
    assert catalog.databases() == []


def test_lazy_simple_serde_splits_at_the_separator_and_keeps_quotes():
    data = b'a,b,c\n1,"x, y",z\r\n2,\\N\n3,p\\,q,r,extra\n'
    records = split_lazy_simple(data, ",", skip_lines=1, escape="\\")
    assert records == [["1", '"x', ' y"', "z"], ["2", None], ["3", "p,q", "r", "extra"]]
    assert split_lazy_simple(b"", ",") == []
    assert split_open_csv(b'h\n1,"x, y"\n', skip_lines=1) == [["1", "x, y"]]


def test_result_csv_rows_tell_null_from_empty():
    assert _result_rows('"a","b"\n"1",\n,""\n"x ""q""\nz",\n') == [
        ["a", "b"], ["1", None], [None, ""], ['x "q"\nz', None]]


@pytest.fixture
def lake(tmp_path):
    s3, catalog = S3Store(tmp_path / "s3"), GlueCatalog(tmp_path / "glue.db")
    s3.create_bucket("data", "us-east-1")
    s3.create_bucket("out", "us-east-1")
    s3.put("data", "t/part-0.csv", b'n,word\n7,"Hello, world"\n2,abc\nx,\n')
    s3.put("data", "t/_SUCCESS", b"not data")
    catalog.create_database({"Name": "Lab"})
    catalog.create_table("lab", {"Name": "T", "Parameters": {"skip.header.line.count": "1"}, "StorageDescriptor": {
        "Columns": [{"Name": "n", "Type": "bigint"}, {"Name": "word", "Type": "string"}],
        "Location": "s3://data/t/", "SerdeInfo": {"SerializationLibrary": LAZY_SIMPLE,
                                                  "Parameters": {"field.delim": ","}}}})
    ids = iter(range(100))

    def query(sql: str):
        return run_query(sql, database="lab", catalog=catalog, s3=s3, output_location="s3://out/results/",
                         query_id=f"q{next(ids)}")

    return s3, catalog, query


def read_result(s3: S3Store, uri: str) -> list:
    _, body = s3.open("out", uri.removeprefix("s3://out/"))
    with body:
        return _result_rows(body.read().decode())


def test_queries_run_with_trinos_semantics(lake):
    s3, _, query = lake
    result = query("SELECT n / 2 AS half, length(word), sum(n) AS total FROM t GROUP BY 1, 2 ORDER BY half NULLS LAST")
    assert [(column.name, column.type) for column in result.columns] == [
        ("half", "bigint"), ("_col1", "bigint"), ("total", "bigint")]
    # 7 / 2 is 3 (integer division); the quoted field keeps its quote and loses what followed the comma;
    # 'x' is no bigint: NULL, as Hive reads it; the _SUCCESS marker is no data.
    assert read_result(s3, result.output_location) == [
        ["half", "_col1", "total"], ["1", "3", "2"], ["3", "6", "7"], [None, "0", None]]
    assert result.statement_type == "DML" and s3.get("out", "results/q0.csv.metadata").size


def test_ctas_writes_parquet_a_manifest_and_registers_the_table(lake):
    s3, catalog, query = lake
    result = query("CREATE TABLE lab.copy WITH (format = 'PARQUET') AS SELECT n, upper(word) AS word FROM t")
    assert result.substatement_type == "CREATE_TABLE_AS_SELECT" and result.rows == 3
    assert result.manifest_location == "s3://out/results/tables/q0-manifest.csv"
    _, manifest = s3.open("out", "results/tables/q0-manifest.csv")
    assert manifest.read().decode() == "s3://out/results/tables/q0/q0_00000\n"
    assert catalog.table("lab", "copy").columns == (("n", "bigint"), ("word", "string"))
    again = query("SELECT count(*) AS n_rows, max(word) AS top FROM copy")
    assert read_result(s3, again.output_location)[1] == ["3", "ABC"]
    with pytest.raises(QueryFailed, match="MISSING_COLUMN_NAME: Column name not specified at position 1"):
        query("CREATE TABLE lab.other AS SELECT count(*) FROM t")
    with pytest.raises(QueryFailed, match="TABLE_ALREADY_EXISTS"):
        query("CREATE TABLE lab.copy AS SELECT n FROM t")


@pytest.mark.parametrize("sql, reason", [
    ("SELECT n FROM", "SYNTAX_ERROR: "),
    ("SELECT nope(n) FROM t", "FUNCTION_NOT_FOUND: "),
    ("SELECT * FROM lab.missing", "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.lab.missing' does not exist"),
    ("SELECT *\nFROM other.t", "SCHEMA_NOT_FOUND: line 2:6: Schema 'other' does not exist"),
    ("DROP TABLE t", "NOT_SUPPORTED: "),
    ("SELECT * FROM read_csv('/etc/hostname')", "PERMISSION_DENIED: "),  # a query reads the catalog, no file
    ("SELECT 1; SELECT 2", "SYNTAX_ERROR: a query execution runs exactly one statement"),
])
def test_what_cannot_run_fails_with_a_reason(lake, sql, reason):
    with pytest.raises(QueryFailed) as failed:
        lake[2](sql)
    assert failed.value.reason.startswith(reason)


# -- in process: the query runner ------------------------------------------------------------------------------

SLOW_SQL = "SELECT count(*) FROM range(100000000) a, range(100000000) b WHERE a.range + b.range = -1"


def _final(runner: QueryRunner, query_id: str, seconds: float = 20) -> dict:
    runner.wait(query_id, seconds)
    return runner.record(query_id)


def _request(sql: str) -> dict:
    return {"query": sql, "context": {}, "output": "s3://out/", "workgroup": "primary"}


def test_a_query_running_past_the_timeout_fails_and_its_connection_has_a_budget(tmp_path):
    runner = QueryRunner(tmp_path, max_queries=2, timeout=0.5)
    settings = {}

    def work(query_id, connection):
        settings.update(zip(("memory", "threads", "temp"), connection.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads'), "
            "current_setting('temp_directory')").fetchone()))
        connection.execute(SLOW_SQL)
        return {}

    began = time.monotonic()
    query_id, _ = runner.start(_request("slow"), None, work)
    record = _final(runner, query_id)
    assert time.monotonic() - began < 10
    assert record["state"] == "FAILED" and record["reason"].startswith("EXCEEDED_TIME_LIMIT: ")
    assert settings["threads"] == max(1, (os.cpu_count() or 1) // 2)
    assert settings["temp"] == str(tmp_path / "athena-tmp" / query_id)
    assert not (tmp_path / "athena-tmp" / query_id).exists()  # its spill folder goes with it


def test_a_stopping_server_fails_its_queries_and_the_next_one_fails_what_a_crashed_one_left(tmp_path):
    runner = QueryRunner(tmp_path, max_queries=1, timeout=600)
    query_id, _ = runner.start(_request("slow"), None, lambda _, connection: connection.execute(SLOW_SQL))
    time.sleep(0.3)
    with pytest.raises(AwsError) as refused:
        runner.start(_request("another"), None, lambda *_: {})
    assert refused.value.code == "TooManyRequestsException"
    runner.close()
    record = runner.record(query_id)
    assert (record["state"], record["reason"]) == ("FAILED", SERVER_STOPPED)
    # A crashed server left a RUNNING record (whatever its pid): the next server of the home fails it.
    from sagestack.aws.records import transaction

    with transaction(tmp_path / "athena.db") as db:
        db.execute("UPDATE executions SET state = 'RUNNING', reason = NULL WHERE id = ?", (query_id,))
    after = QueryRunner(tmp_path, max_queries=1, timeout=600)
    assert (after.record(query_id)["state"], after.record(query_id)["reason"]) == ("FAILED", SERVER_STOPPED)
    quick, _ = after.start(_request("quick"), None, lambda *_: {})
    assert _final(after, quick)["state"] == "SUCCEEDED"


def test_result_records_stream_rows_with_newlines_and_their_offsets():
    data = b'"a","b"\n"1",\n"x ""q""\nz",""\n'
    stream = io.BytesIO(data)
    records = list(result_records(stream))
    assert [values for values, _ in records] == [["a", "b"], ["1", None], ['x "q"\nz', ""]]
    stream.seek(records[0][1])
    assert next(result_records(stream))[0] == ["1", None]


# -- in process: how tables are read -----------------------------------------------------------------------

def _table(catalog: GlueCatalog, name: str, location: str, serde: str = LAZY_SIMPLE, parameters=None,
           columns=(("n", "bigint"), ("word", "string")), skip: str = "0") -> None:
    catalog.create_table("lab", {"Name": name, "Parameters": {"skip.header.line.count": skip}, "StorageDescriptor": {
        "Columns": [{"Name": column, "Type": kind} for column, kind in columns], "Location": location,
        "SerdeInfo": {"SerializationLibrary": serde, "Parameters": parameters or {"field.delim": ","}}}})


def _rows(lake, sql: str) -> list:
    s3, _, query = lake
    return read_result(s3, query(sql).output_location)[1:]


def test_text_files_read_alike_plain_gzip_bzip2_zstd_and_by_the_python_reader(lake, monkeypatch):
    from sagestack.aws import athena_tables

    s3, catalog, _ = lake
    text = b'n,word\n7,"Hello, world"\n2,abc\nx,\n5,\\N\n'
    expected = [["7", '"Hello'], ["2", "abc"], [None, ""], ["5", None]]
    files = {"plain/p.csv": text, "gz/p.csv.gz": gzip.compress(text), "bz/p.csv.bz2": bz2.compress(text)}
    if shutil.which("zstd"):
        files["zst/p.csv.zst"] = subprocess.run(["zstd", "-c"], input=text, capture_output=True, check=True).stdout
    for key, body in files.items():
        s3.put("data", key, body)
        folder = key.split("/")[0]
        _table(catalog, folder, f"s3://data/{folder}/", skip="1")
        with monkeypatch.context() as patched:
            if folder != "bz":  # DuckDB's read_csv reads these; only bzip2 needs the Python reader
                patched.setattr(athena_tables, "lazy_simple_records", None)
            assert _rows(lake, f"SELECT n, word FROM {folder}") == expected, key
    # escape.delim: the Python reader; invalid UTF-8 (DuckDB refuses it) too, replaced as Hive does.
    _table(catalog, "escaped", "s3://data/plain/", parameters={"field.delim": ",", "escape.delim": "\\"}, skip="1")
    assert _rows(lake, "SELECT n, word FROM escaped") == expected
    s3.put("data", "latin/p.csv", b"1,caf\xe9\n")
    _table(catalog, "latin", "s3://data/latin/")
    assert _rows(lake, "SELECT n, word FROM latin") == [["1", "caf\ufffd"]]


def test_open_csv_serde_takes_a_doubled_quote_as_one(lake):
    s3, catalog, _ = lake
    s3.put("data", "open/p.csv", b'1,"say ""hi"", then go"\n')
    _table(catalog, "opencsv", "s3://data/open/", serde="org.apache.hadoop.hive.serde2.OpenCSVSerde", parameters={})
    assert _rows(lake, "SELECT word FROM opencsv") == [['say "hi", then go']]


@pytest.mark.parametrize("key, body, serde, reason", [
    ("bad/p.csv.gz", b"not gzip at all", LAZY_SIMPLE, "HIVE_BAD_DATA: cannot read s3://data/bad/p.csv.gz: "),
    ("bad/p.parquet", b"not parquet", "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
     "HIVE_BAD_DATA: File 's3://data/bad/p.parquet' too small to be a Parquet file"),
    ("bad/p.csv.snappy", b"x", LAZY_SIMPLE, "NOT_SUPPORTED: s3://data/bad/p.csv.snappy is compressed with snappy"),
])
def test_bad_data_fails_naming_the_s3_object_never_a_server_path(lake, tmp_path, key, body, serde, reason):
    s3, catalog, query = lake
    s3.put("data", key, body)
    _table(catalog, "bad", "s3://data/bad/", serde=serde)
    with pytest.raises(QueryFailed) as failed:
        query("SELECT * FROM bad")
    assert failed.value.reason.startswith(reason) and str(tmp_path) not in failed.value.reason
    assert "s3://data/bad/" in failed.value.reason


@pytest.mark.parametrize("sql, reason", [
    ("SELECT 1 / 0 AS x", "DIVISION_BY_ZERO: Division by zero"),
    ("SELECT " + "(" * 400 + "1" + ")" * 400 + " AS x", "SYNTAX_ERROR: "),
])
def test_arithmetic_and_nesting_fail_as_athena_says(lake, sql, reason):
    with pytest.raises(QueryFailed) as failed:
        lake[2](sql)
    assert failed.value.reason.startswith(reason)


def test_text_values_are_typed_as_hive_reads_them(lake):
    s3, catalog, _ = lake
    s3.put("data", "typed/p.csv", b"7.5,1e2,t\n-7.9, 2.5 ,TRUE\n0x10,NaN,yes\n1_000,1_0,false\n 3,x,1\n")
    _table(catalog, "typed", "s3://data/typed/", columns=(("i", "int"), ("d", "double"), ("b", "boolean")))
    assert _rows(lake, "SELECT i, d, b FROM typed") == [
        ["7", "100.0", None], ["-7", "2.5", "true"], [None, "NaN", None], [None, None, "false"], [None, None, None]]


def test_timestamps_are_written_as_athena_writes_them(lake):
    assert _rows(lake, "SELECT CAST('2020-01-02' AS timestamp) AS a, TIMESTAMP '2020-01-02 03:04:05.123456' AS b, "
                       "DATE '2020-01-02' AS c") == [["2020-01-02 00:00:00.000", "2020-01-02 03:04:05.123", "2020-01-02"]]


def test_a_repeated_column_name_is_kept_as_athena_keeps_it(lake):
    s3, _, query = lake
    result = query("SELECT n AS a, word AS a, n FROM t ORDER BY n LIMIT 1")
    assert [column.name for column in result.columns] == ["a", "a", "n"]
    assert read_result(s3, result.output_location)[0] == ["a", "a", "n"]
    starred = query("SELECT * FROM t x, t y LIMIT 1")
    assert [column.name for column in starred.columns] == ["n", "word", "n", "word"]
    with pytest.raises(QueryFailed, match="DUPLICATE_COLUMN_NAME: Column name 'a' specified more than once"):
        query("CREATE TABLE lab.twice AS SELECT n AS a, word AS a FROM t")


def test_a_query_past_its_memory_share_fails_exceeded_memory_limit(lake):
    import duckdb

    s3, catalog, _ = lake
    connection = duckdb.connect(config={"memory_limit": "8MB", "threads": 1})
    with pytest.raises(QueryFailed) as failed:
        run_query("SELECT length(string_agg(CAST(x AS varchar), ',')) AS n FROM UNNEST(sequence(1, 2000000)) AS t(x)",
                  database="lab", catalog=catalog, s3=s3, output_location="s3://out/results/", query_id="big",
                  connection=connection)
    connection.close()
    assert failed.value.reason.startswith("EXCEEDED_MEMORY_LIMIT: Query exhausted resources at this scale factor")
