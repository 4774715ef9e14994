"""Athena's SQL run on DuckDB: a query in Athena's dialect (Trino) is translated by sqlglot, the catalog tables
it names are read from the S3 store the way Athena's SerDes read them, and the result is written where Athena
writes it (a quoted CSV for a query, Parquet files and a manifest for ``CREATE TABLE … AS SELECT``).

No HTTP here: :mod:`sagestack.aws.athena` serves the API over :func:`run_query`. What cannot run fails with
:class:`QueryFailed`, whose reason reads as Athena's ``StateChangeReason`` (``SYNTAX_ERROR: …``).
"""

from __future__ import annotations

import datetime
import json
import math
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from sagestack.aws.athena_tables import PARQUET_SERDE, QueryFailed, load_table, quote_identifier, split_s3_uri
from sagestack.aws.glue_catalog import GlueCatalog, Table
from sagestack.aws.protocol import AwsError
from sagestack.aws.s3store import S3Store

DATA_CATALOG = "awsdatacatalog"
# DuckDB result types -> (Athena's type name in ColumnInfo, Hive's in a Glue table); any other is cast to varchar.
RESULT_TYPES = {
    "BOOLEAN": ("boolean", "boolean"), "TINYINT": ("tinyint", "tinyint"), "SMALLINT": ("smallint", "smallint"),
    "INTEGER": ("integer", "int"), "BIGINT": ("bigint", "bigint"), "FLOAT": ("real", "float"),
    "DOUBLE": ("double", "double"), "VARCHAR": ("varchar", "string"), "DATE": ("date", "date"),
    "TIMESTAMP": ("timestamp", "timestamp"), "BLOB": ("varbinary", "binary"),
}
# DuckDB's wider integers (sum() of a bigint is a HUGEINT there, a bigint in Athena) come back as bigint.
AS_BIGINT = ("HUGEINT", "UHUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT")


@dataclass(frozen=True)
class Column:
    """One result column as Athena describes it (``ColumnInfo``)."""

    name: str
    type: str
    precision: int = 0
    scale: int = 0


@dataclass
class QueryResult:
    """What a finished query left: its columns, row count, where its output lies and what it read.

    ``output_location`` is the result CSV of a query (``OUTPUT/ID.csv``) or ``OUTPUT/tables/ID`` of a CTAS,
    whose data files ``manifest_location`` lists.
    """

    statement_type: str  # DML or DDL
    substatement_type: str  # SELECT, CREATE_TABLE_AS_SELECT or UNLOAD
    columns: list[Column]
    rows: int
    output_location: str
    manifest_location: str | None = None
    scanned_bytes: int = 0
    tables: list[str] = field(default_factory=list)


# -- translating and running ----------------------------------------------------------------------------------

def _where(reference) -> str:
    """``line L:C: `` where a table reference starts (as Athena's messages begin), or nothing when unknown."""
    first = reference.args.get("catalog") or reference.args.get("db") or reference.this
    meta = getattr(first, "meta", None) or {}
    if {"line", "col", "start", "end"} <= meta.keys():
        return f"line {meta['line']}:{meta['col'] - (meta['end'] - meta['start'])}: "
    return ""


def _parse(sql: str):
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [statement for statement in sqlglot.parse(sql, read="athena") if statement is not None]
    except RecursionError:
        raise QueryFailed("SYNTAX_ERROR: the query is nested too deeply to parse") from None
    except ParseError as error:
        detail = error.errors[0] if error.errors else {}
        where = f"line {detail['line']}:{detail['col']}: " if detail.get("line") else ""
        message = (detail.get("description") or str(error)).splitlines()[0]
        raise QueryFailed(f"SYNTAX_ERROR: {where}{message}") from None
    except TokenError as error:
        raise QueryFailed(f"SYNTAX_ERROR: {str(error).splitlines()[0]}") from None
    if len(statements) != 1:
        raise QueryFailed("SYNTAX_ERROR: a query execution runs exactly one statement")
    return statements[0]


def _name_projections(query, *, ctas: bool) -> None:
    """Name each unnamed output column ``_colN`` as Athena does; a CTAS needs every column named."""
    from sqlglot import exp

    select = query
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select):
        return
    for index, projection in enumerate(list(select.expressions)):
        if isinstance(projection, (exp.Alias, exp.Column, exp.Star)):
            continue
        if ctas:
            raise QueryFailed(f"MISSING_COLUMN_NAME: Column name not specified at position {index + 1}")
        select.expressions[index] = exp.alias_(projection, f"_col{index}", quoted=True)


def _resolve_tables(query, database: str | None, catalog: GlueCatalog) -> dict[tuple[str, str], Table]:
    """The catalog tables ``query`` reads, each reference rewritten to DuckDB's ``schema.table``.

    Raises:
        QueryFailed: an unknown catalog, database or table (Athena's SCHEMA_NOT_FOUND / TABLE_NOT_FOUND).
    """
    from sqlglot import exp

    cte_names = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    tables: dict[tuple[str, str], Table] = {}
    for reference in list(query.find_all(exp.Table)):
        if not reference.name or (not reference.db and reference.name.lower() in cte_names):
            continue
        if reference.catalog and reference.catalog.lower() != DATA_CATALOG:
            raise QueryFailed(f"CATALOG_NOT_FOUND: {_where(reference)}Catalog '{reference.catalog}' does not exist")
        schema = (reference.db or database or "default").lower()
        name = reference.name.lower()
        if (schema, name) not in tables:
            try:
                catalog.database(schema)
            except AwsError:
                raise QueryFailed(f"SCHEMA_NOT_FOUND: {_where(reference)}Schema '{schema}' does not exist") from None
            try:
                tables[schema, name] = catalog.table(schema, name)
            except AwsError:
                raise QueryFailed(f"TABLE_NOT_FOUND: {_where(reference)}Table '{DATA_CATALOG}.{schema}.{name}' "
                                  "does not exist") from None
        reference.set("catalog", None)
        reference.set("db", exp.to_identifier(schema, quoted=True))
        reference.set("this", exp.to_identifier(name, quoted=True))
    return tables


def _duckdb_failure(error: Exception) -> QueryFailed:
    import duckdb

    message = str(error).splitlines()[0]
    message = re.sub(r"^[A-Za-z ]+ Error: ", "", message)
    if isinstance(error, (duckdb.ParserException,)):
        code = "SYNTAX_ERROR"
    elif isinstance(error, duckdb.CatalogException):
        code = "FUNCTION_NOT_FOUND" if "function" in message.lower() else "SYNTAX_ERROR"
    elif isinstance(error, duckdb.BinderException):
        code = "COLUMN_NOT_FOUND" if "not found" in message.lower() else "SYNTAX_ERROR"
    elif isinstance(error, duckdb.OutOfMemoryException):  # past the query's share (serve-aws --max-queries)
        code, message = "EXCEEDED_MEMORY_LIMIT", f"Query exhausted resources at this scale factor ({message})"
    elif "division by zero" in message.lower():
        code, message = "DIVISION_BY_ZERO", "Division by zero"
    elif isinstance(error, (duckdb.ConversionException, duckdb.InvalidInputException)):
        code = "INVALID_CAST_ARGUMENT"
    elif isinstance(error, duckdb.PermissionException):
        code = "PERMISSION_DENIED"
    elif isinstance(error, duckdb.OutOfRangeException):
        code = "NUMERIC_VALUE_OUT_OF_RANGE"
    else:
        code = "GENERIC_USER_ERROR"
    return QueryFailed(f"{code}: {message} (the query ran on DuckDB after translation by sqlglot)")


def _result_columns(connection) -> tuple[list[Column], list[str], list[str]]:
    """The result's Athena columns, the select list that casts it to them, and each column's Hive type."""
    columns, selects, hive_types = [], [], []
    for name, kind, *_ in connection.execute("DESCRIBE __result").fetchall():
        out = name.lower()
        decimal = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", kind)
        if decimal:
            precision, scale = int(decimal.group(1)), int(decimal.group(2))
            columns.append(Column(out, "decimal", precision, scale))
            selects.append(f"{quote_identifier(name)} AS {quote_identifier(out)}")
            hive_types.append(f"decimal({precision},{scale})")
            continue
        if kind.startswith("TIMESTAMP"):
            kind = "TIMESTAMP" if kind in ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S") else kind
        target = "BIGINT" if kind in AS_BIGINT else kind if kind in RESULT_TYPES else "VARCHAR"
        athena_type, hive_type = RESULT_TYPES[target]
        precision = {"bigint": 19, "integer": 10, "smallint": 5, "tinyint": 3, "double": 17, "real": 17,
                     "varchar": 2147483647}.get(athena_type, 0)
        columns.append(Column(out, athena_type, precision))
        selects.append(f"CAST({quote_identifier(name)} AS {target}) AS {quote_identifier(out)}" if target != kind
                       else f"{quote_identifier(name)} AS {quote_identifier(out)}")
        hive_types.append(hive_type)
    return columns, selects, hive_types


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, bytes):
        text = value.hex(" ")
    elif isinstance(value, float) and not math.isfinite(value):  # as Trino spells them
        text = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    elif isinstance(value, datetime.datetime) and value.tzinfo is None:  # Trino's timestamp(3): milliseconds
        text = value.isoformat(" ", "milliseconds")
    else:
        text = str(value)
    return '"' + text.replace('"', '""') + '"'


UNLOAD = re.compile(r"^\s*UNLOAD\s*\((?P<query>.*)\)\s*TO\s*'(?P<path>[^']*)'\s*WITH\s*\((?P<options>.*)\)\s*;?\s*$",
                    re.IGNORECASE | re.DOTALL)
OPTION = re.compile(r"(\w+)\s*=\s*(?:'([^']*)'|(ARRAY\s*\[[^\]]*\]))", re.IGNORECASE)


def run_query(sql: str, *, database: str | None, catalog: GlueCatalog, s3: S3Store, output_location: str,
              query_id: str, connection=None) -> QueryResult:
    """Run one Athena statement: a query (``SELECT`` / ``WITH`` / set operations), ``CREATE TABLE … AS`` or
    ``UNLOAD (query) TO 's3://…' WITH (format = 'PARQUET')``.

    A query's result goes to ``OUTPUT/ID.csv`` (every value quoted, NULL empty, a header) and
    ``OUTPUT/ID.csv.metadata``. A CTAS writes Parquet under its ``external_location`` (default
    ``OUTPUT/tables/ID/``) and ``OUTPUT/tables/ID-manifest.csv`` listing the files, and registers the table;
    an UNLOAD writes Parquet under its path and ``OUTPUT/ID-manifest.csv``.

    Args:
        sql: the statement, in Athena's (Trino's) dialect.
        database: the default database of unqualified tables (``QueryExecutionContext.Database``).
        catalog: the Glue catalog tables are looked up in.
        s3: the S3 store tables are read from and results written to.
        output_location: ``s3://bucket/prefix`` results go under (no trailing slash needed).
        query_id: the execution's id (names the result objects).
        connection: the DuckDB connection to run on (a fresh one with DuckDB's defaults when None); the
            caller keeps and closes its own. An interrupt of it ends the query with ``duckdb.InterruptException``.

    Raises:
        QueryFailed: the statement cannot be parsed, translated, or run; the reason says why.
    """
    import duckdb
    from sqlglot import exp

    unload = UNLOAD.match(sql)
    statement = _parse(unload.group("query") if unload else sql)
    ctas = isinstance(statement, exp.Create) and (statement.args.get("kind") or "").upper() == "TABLE" \
        and isinstance(statement.expression, exp.Query)
    query = statement.expression if ctas else statement
    if not isinstance(query, exp.Query):
        kind = type(statement).__name__.upper()
        raise QueryFailed(f"NOT_SUPPORTED: sagestack serve-aws runs queries (SELECT), CREATE TABLE AS SELECT and "
                          f"UNLOAD; not {kind} (create tables and databases through Glue, e.g. awswrangler's "
                          "catalog)")
    output_location = output_location.rstrip("/")
    tables = _resolve_tables(query, database, catalog)
    _name_projections(query, ctas=ctas or bool(unload))
    read = [f"{schema}.{name}" for schema, name in tables]
    own = connection is None
    if own:
        connection = duckdb.connect()
    try:
        connection.execute("SET integer_division = true")  # Trino's `/` of two integers is an integer
        try:
            scanned = sum(load_table(connection, s3, table) for table in tables.values())
        except duckdb.OutOfMemoryException as error:
            raise _duckdb_failure(error) from None
        # The query itself reads nothing but the tables loaded above: no files, no extensions (DuckDB would
        # otherwise run read_csv('/any/file') or COPY for whoever may sign requests).
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        try:
            translated = query.sql("duckdb")
            # The query's own output names: the table below renames a repeated one (a, a_1); Athena keeps it.
            names = [row[0].lower() for row in connection.execute(f"DESCRIBE {translated}").fetchall()]
            connection.execute(f"CREATE TEMP TABLE __result AS {translated}")
        except duckdb.InterruptException:
            raise
        except duckdb.Error as error:
            raise _duckdb_failure(error) from None
        except RecursionError:
            raise QueryFailed("SYNTAX_ERROR: the query is nested too deeply to run") from None
        columns, selects, hive_types = _result_columns(connection)
        if len(names) == len(columns):
            columns = [replace(column, name=name) for column, name in zip(columns, names)]
        final = f"SELECT {', '.join(selects)} FROM __result"
        count = connection.execute("SELECT count(*) FROM __result").fetchall()[0][0]
        if ctas:
            return _write_ctas(statement, connection, final, columns, hive_types, count, catalog, s3, database,
                               output_location, query_id, scanned, read)
        if unload:
            options = {match.group(1).lower(): match.group(2) or match.group(3)
                       for match in OPTION.finditer(unload.group("options"))}
            if (options.get("format") or "").upper() != "PARQUET" or options.get("partitioned_by"):
                raise QueryFailed("NOT_SUPPORTED: sagestack serve-aws UNLOADs with format = 'PARQUET', unpartitioned")
            _unique_names(columns)
            _write_parquet(connection, final, columns, count, unload.group("path"), query_id, s3,
                           f"{output_location}/{query_id}")
            return QueryResult("DML", "UNLOAD", columns, count, unload.group("path"),
                               f"{output_location}/{query_id}-manifest.csv", scanned, read)
        out_bucket, out_prefix = split_s3_uri(output_location)
        base = f"{out_prefix}/" if out_prefix else ""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "result.csv"
            cursor = connection.execute(final)
            with open(path, "w", encoding="utf-8", newline="") as out:
                out.write(",".join(_csv_value(column.name) for column in columns) + "\n")
                while rows := cursor.fetchmany(10_000):
                    out.writelines(",".join(_csv_value(value) for value in row) + "\n" for row in rows)
            _put(s3, out_bucket, f"{base}{query_id}.csv", path, "text/csv")
        _put_bytes(s3, out_bucket, f"{base}{query_id}.csv.metadata", _metadata(columns))
        return QueryResult("DML", "SELECT", columns, count, f"{output_location}/{query_id}.csv", None, scanned,
                           read)
    finally:
        if own:
            connection.close()


def _metadata(columns: list[Column]) -> bytes:
    # Athena's own .metadata is an undocumented binary; clients only delete it. This one says what it is.
    return json.dumps({"columns": [column.__dict__ for column in columns]}).encode()


def _unique_names(columns: list[Column]) -> None:
    names = [column.name for column in columns]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise QueryFailed(f"DUPLICATE_COLUMN_NAME: Column name '{duplicated[0]}' specified more than once")


def _put(s3: S3Store, bucket: str, key: str, path: Path, content_type: str) -> None:
    try:
        s3.put_file(bucket, key, path, content_type)
    except AwsError as error:
        raise QueryFailed(f"HIVE_FILESYSTEM_ERROR: cannot write s3://{bucket}/{key}: {error.message}") from None


def _put_bytes(s3: S3Store, bucket: str, key: str, data: bytes) -> None:
    try:
        s3.put(bucket, key, data)
    except AwsError as error:
        raise QueryFailed(f"HIVE_FILESYSTEM_ERROR: cannot write s3://{bucket}/{key}: {error.message}") from None


def _write_parquet(connection, final: str, columns: list[Column], count: int, location: str, query_id: str,
                   s3: S3Store, manifest_base: str) -> None:
    """Write the rows of ``final`` as a Parquet file under ``location`` (none when there are no rows, as
    Athena), then ``MANIFEST_BASE-manifest.csv`` listing the files and ``MANIFEST_BASE.metadata``.

    Raises:
        QueryFailed: ``location`` holds objects already (Athena's HIVE_PATH_ALREADY_EXISTS) or cannot be written.
    """
    import pyarrow.parquet as pq

    bucket, prefix = split_s3_uri(location.rstrip("/") + "/")
    try:
        if s3.list(bucket, prefix, max_keys=1).objects:
            raise QueryFailed(f"HIVE_PATH_ALREADY_EXISTS: Target directory {location} already exists")
    except AwsError as error:
        raise QueryFailed(f"HIVE_FILESYSTEM_ERROR: cannot write {location}: {error.message}") from None
    files = []
    if count:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "part.parquet"
            reader = connection.sql(final).to_arrow_reader()
            with pq.ParquetWriter(path, reader.schema, compression="gzip") as writer:
                for batch in reader:
                    writer.write_batch(batch)
            key = f"{prefix}{query_id}_00000"
            _put(s3, bucket, key, path, "application/octet-stream")
            files.append(f"s3://{bucket}/{key}")
    manifest_bucket, manifest_key = split_s3_uri(manifest_base)
    _put_bytes(s3, manifest_bucket, f"{manifest_key}-manifest.csv", "".join(f"{item}\n" for item in files).encode())
    _put_bytes(s3, manifest_bucket, f"{manifest_key}.metadata", _metadata(columns))


def _write_ctas(statement, connection, final: str, columns: list[Column], hive_types: list[str], count: int,
                catalog: GlueCatalog, s3: S3Store, database: str | None, output_location: str, query_id: str,
                scanned: int, read: list[str]) -> QueryResult:
    """Write a CTAS's rows as Parquet, its manifest, and register its table (see :func:`run_query`)."""
    from sqlglot import exp

    _unique_names(columns)
    target = statement.this
    if isinstance(target, exp.Schema):
        target = target.this
    schema, name = (target.db or database or "default").lower(), target.name.lower()
    try:
        catalog.database(schema)
    except AwsError:
        raise QueryFailed(f"SCHEMA_NOT_FOUND: Schema '{schema}' does not exist") from None
    try:
        catalog.table(schema, name)
        raise QueryFailed(f"TABLE_ALREADY_EXISTS: Table '{DATA_CATALOG}.{schema}.{name}' already exists")
    except AwsError:
        pass
    properties = {}
    for prop in (statement.args.get("properties") or exp.Properties(expressions=[])).expressions:
        if isinstance(prop, exp.FileFormatProperty):
            properties["format"] = prop.this.name if prop.this is not None else ""
        elif isinstance(prop, exp.Property):
            properties[prop.name.lower()] = prop.args["value"].name if prop.args.get("value") is not None else ""
    file_format = (properties.get("format") or "PARQUET").upper()
    if file_format != "PARQUET" or properties.get("partitioned_by") or properties.get("bucketed_by"):
        raise QueryFailed(f"NOT_SUPPORTED: CREATE TABLE AS with format '{file_format}', partitioned or bucketed; "
                          "sagestack serve-aws writes unpartitioned PARQUET")
    location = (properties.get("external_location") or f"{output_location}/tables/{query_id}").rstrip("/")
    manifest_base = f"{output_location}/tables/{query_id}"
    _write_parquet(connection, final, columns, count, location, query_id, s3, manifest_base)
    table_input = {
        "Name": name, "TableType": "EXTERNAL_TABLE", "PartitionKeys": [],
        "Parameters": {"EXTERNAL": "TRUE", "has_encrypted_data": "false", "parquet.compression": "GZIP"},
        "StorageDescriptor": {
            "Columns": [{"Name": column.name, "Type": kind} for column, kind in zip(columns, hive_types)],
            "Location": location,
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
            "Compressed": False, "NumberOfBuckets": 0, "StoredAsSubDirectories": False}}
    try:
        catalog.create_table(schema, table_input)
    except AwsError as error:
        raise QueryFailed(f"HIVE_METASTORE_ERROR: cannot register {schema}.{name}: {error.message}") from None
    return QueryResult("DDL", "CREATE_TABLE_AS_SELECT", [Column("rows", "bigint", 19)], count, manifest_base,
                       f"{manifest_base}-manifest.csv", scanned, read)
