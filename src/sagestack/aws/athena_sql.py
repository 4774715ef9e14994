"""Athena's SQL run on DuckDB: a query in Athena's dialect (Trino) is translated by sqlglot, the catalog tables
it names are read from the S3 store the way Athena's SerDes read them, and the result is written where Athena
writes it (a quoted CSV for a query, Parquet files and a manifest for ``CREATE TABLE … AS SELECT``).

No HTTP here: :mod:`sagestack.aws.athena` serves the API over :func:`run_query`. What cannot run fails with
:class:`QueryFailed`, whose reason reads as Athena's ``StateChangeReason`` (``SYNTAX_ERROR: …``).
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sagestack.aws.glue import GlueCatalog, Table
from sagestack.aws.protocol import AwsError
from sagestack.aws.s3store import S3Store

LAZY_SIMPLE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
OPEN_CSV = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
HIVE_DEFAULT_DELIMITER = "\x01"  # LazySimpleSerDe's field separator when the table names none
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


class QueryFailed(Exception):
    """A query that cannot run; ``reason`` is its ``StateChangeReason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key).

    Raises:
        QueryFailed: not an ``s3://`` URI.
    """
    match = re.fullmatch(r"s3a?n?://([^/]+)/?(.*)", uri or "", re.DOTALL)
    if not match:
        raise QueryFailed(f"INVALID_LOCATION: {uri!r} is not an s3:// location")
    return match.group(1), match.group(2)


# -- reading tables the way Athena's SerDes do ----------------------------------------------------------------

def split_lazy_simple(data: bytes, delimiter: str, *, skip_lines: int = 0, escape: str | None = None,
                      null_format: str = "\\N") -> list[list[str | None]]:
    """The records of a text file as Hive's LazySimpleSerDe splits them: a line per record (``\\n``, ``\\r\\n``
    or ``\\r``), fields at every ``delimiter``; quotes are data, not quoting. ``escape`` (``escape.delim``)
    keeps the character after it literal (``\\n``/``\\r`` after it stand for a newline / carriage return).
    The first ``skip_lines`` lines (``skip.header.line.count``) are skipped; a field equal to ``null_format``
    is NULL. Missing trailing fields are NULL and extra ones dropped by the caller, which knows the columns.
    """
    # str.splitlines also splits at \x0b, \x1c … which Hadoop's line reader keeps inside a line.
    lines = re.split(r"\r\n|\r|\n", data.decode("utf-8", "replace")) if data else []
    if lines and lines[-1] == "":
        lines.pop()
    records = []
    for line in lines[skip_lines:]:
        if not escape or escape not in line:
            records.append([None if value == null_format else value for value in line.split(delimiter)])
        else:  # the NULL marker is matched before unescaping, as Hive does
            records.append([None if raw == null_format else value
                            for raw, value in _split_escaped(line, delimiter, escape)])
    return records


def _split_escaped(line: str, delimiter: str, escape: str) -> list[tuple[str, str]]:
    """Each field of ``line`` as written and unescaped."""
    fields, current, start, index = [], [], 0, 0
    while index < len(line):
        char = line[index]
        if char == escape and index + 1 < len(line):
            following = line[index + 1]
            current.append({"n": "\n", "r": "\r"}.get(following, following))
            index += 2
            continue
        if line.startswith(delimiter, index):
            fields.append((line[start:index], "".join(current)))
            current = []
            index += len(delimiter)
            start = index
            continue
        current.append(char)
        index += 1
    fields.append((line[start:], "".join(current)))
    return fields


def split_open_csv(data: bytes, separator: str = ",", quote: str = '"', escape: str = "\\", *,
                   skip_lines: int = 0) -> list[list[str | None]]:
    """The records of a text file as OpenCSVSerde reads them: quoted fields (a quoted separator or newline is
    data), ``escape`` before a character keeps it literal."""
    import csv
    import io

    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""), delimiter=separator,
                        quotechar=quote, escapechar=escape or None, doublequote=False, strict=False)
    return [list(row) for row in list(reader)[skip_lines:]]


def _objects(s3: S3Store, table: Table) -> list:
    """The data objects under the table's location (recursively; names starting ``_`` or ``.`` are not data).

    Raises:
        QueryFailed: no location, or its bucket does not exist.
    """
    if not table.location:
        raise QueryFailed(f"HIVE_METASTORE_ERROR: table {table.database}.{table.name} has no location")
    bucket, prefix = split_s3_uri(table.location)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    objects, after = [], ""
    try:
        while True:
            listing = s3.list(bucket, prefix, after=after)
            objects.extend(item for item in listing.objects if item.size and not item.key.endswith("/")
                           and not item.key.rpartition("/")[2].startswith(("_", ".")))
            if not listing.truncated:
                return objects
            after = listing.last
    except AwsError as error:
        raise QueryFailed(f"HIVE_FILESYSTEM_ERROR: cannot list {table.location} (location of table "
                          f"{table.database}.{table.name}): {error.message}") from None


def _duckdb_type(hive_type: str, table: Table) -> str:
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        return exp.DataType.build(hive_type, dialect="hive").sql("duckdb")
    except (ParseError, ValueError):
        raise QueryFailed(f"HIVE_INVALID_METADATA: column type {hive_type!r} of table {table.database}."
                          f"{table.name} is not a type Athena knows") from None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def load_table(connection, s3: S3Store, table: Table) -> int:
    """Create ``table`` in the DuckDB ``connection`` (schema = its database) from its objects; the bytes read.

    Raises:
        QueryFailed: a partitioned table, a SerDe or format not served here, or a location that cannot be read.
    """
    import pyarrow as pa

    if table.partition_keys:
        raise QueryFailed(f"NOT_SUPPORTED: table {table.database}.{table.name} is partitioned "
                          f"({', '.join(table.partition_keys)}); sagestack serve-aws does not keep partitions")
    objects = _objects(s3, table)
    target = f"{_quoted(table.database)}.{_quoted(table.name)}"
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(table.database)}")
    casts = ", ".join(f"TRY_CAST(c{index} AS {_duckdb_type(kind, table)}) AS {_quoted(name)}"
                      for index, (name, kind) in enumerate(table.columns))
    if not table.columns:
        raise QueryFailed(f"HIVE_INVALID_METADATA: table {table.database}.{table.name} has no columns")
    serde, scanned = table.serde or LAZY_SIMPLE, sum(item.size for item in objects)
    if "parquet" in serde.lower() or "parquet" in table.input_format.lower():
        if not objects:
            connection.execute(f"CREATE TABLE {target} AS SELECT {casts} FROM (SELECT "
                               + ", ".join(f"NULL AS c{i}" for i in range(len(table.columns))) + ") WHERE false")
            return 0
        files = "[" + ", ".join("'" + str(item.path).replace("'", "''") + "'" for item in objects) + "]"
        present = {row[0].lower(): row[0] for row in
                   connection.execute(f"DESCRIBE SELECT * FROM read_parquet({files}, union_by_name=true)").fetchall()}
        # Athena matches Parquet columns by name; one the files lack is NULL.
        picks = ", ".join(f"{_quoted(present[name]) if name in present else 'NULL'} AS c{index}"
                          for index, (name, _) in enumerate(table.columns))
        connection.execute(f"CREATE TABLE {target} AS SELECT {casts} FROM "
                           f"(SELECT {picks} FROM read_parquet({files}, union_by_name=true))")
        return scanned
    skip = int(table.parameters.get("skip.header.line.count", "0") or 0)
    if serde == OPEN_CSV:
        parameters = table.serde_parameters
        split = lambda data: split_open_csv(data, parameters.get("separatorChar", ","),  # noqa: E731
                                            parameters.get("quoteChar", '"'), parameters.get("escapeChar", "\\"),
                                            skip_lines=skip)
    elif serde == LAZY_SIMPLE:
        parameters = table.serde_parameters
        delimiter = parameters.get("field.delim") or parameters.get("serialization.format") or HIVE_DEFAULT_DELIMITER
        if delimiter.isdigit():  # Hive also takes the separator as its byte value ("44")
            delimiter = chr(int(delimiter))
        split = lambda data: split_lazy_simple(data, delimiter, skip_lines=skip,  # noqa: E731
                                               escape=parameters.get("escape.delim") or None,
                                               null_format=parameters.get("serialization.null.format", "\\N"))
    else:
        raise QueryFailed(f"NOT_SUPPORTED: table {table.database}.{table.name} uses SerDe {serde}; sagestack "
                          f"serve-aws reads {LAZY_SIMPLE}, {OPEN_CSV} and Parquet tables")
    width = len(table.columns)
    values: list[list[str | None]] = [[] for _ in range(width)]
    for item in objects:
        data = item.path.read_bytes()
        if item.key.endswith(".gz"):
            data = gzip.decompress(data)
        for record in split(data):
            for index in range(width):
                values[index].append(record[index] if index < len(record) else None)
    raw = pa.table({f"c{index}": pa.array(column, pa.string()) for index, column in enumerate(values)})
    connection.register("raw_text", raw)
    try:
        connection.execute(f"CREATE TABLE {target} AS SELECT {casts} FROM raw_text")
    finally:
        connection.unregister("raw_text")
    return scanned


# -- translating and running ----------------------------------------------------------------------------------

def _where(node) -> str:
    meta = getattr(node, "meta", None) or {}
    if "line" in meta and "col" in meta:
        return f"line {meta['line']}:{max(1, meta['col'] - len(node.name) + 1)}: "
    return ""


def _parse(sql: str):
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [statement for statement in sqlglot.parse(sql, read="athena") if statement is not None]
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
    message = re.sub(r"^\w+ Error: ", "", message)
    if isinstance(error, (duckdb.ParserException,)):
        code = "SYNTAX_ERROR"
    elif isinstance(error, duckdb.CatalogException):
        code = "FUNCTION_NOT_FOUND" if "function" in message.lower() else "SYNTAX_ERROR"
    elif isinstance(error, duckdb.BinderException):
        code = "COLUMN_NOT_FOUND" if "not found" in message.lower() else "SYNTAX_ERROR"
    elif isinstance(error, (duckdb.ConversionException, duckdb.InvalidInputException)):
        code = "INVALID_CAST_ARGUMENT"
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
            selects.append(f"{_quoted(name)} AS {_quoted(out)}")
            hive_types.append(f"decimal({precision},{scale})")
            continue
        if kind.startswith("TIMESTAMP"):
            kind = "TIMESTAMP" if kind in ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S") else kind
        target = "BIGINT" if kind in AS_BIGINT else kind if kind in RESULT_TYPES else "VARCHAR"
        athena_type, hive_type = RESULT_TYPES[target]
        precision = {"bigint": 19, "integer": 10, "smallint": 5, "tinyint": 3, "double": 17, "real": 17,
                     "varchar": 2147483647}.get(athena_type, 0)
        columns.append(Column(out, athena_type, precision))
        selects.append(f"CAST({_quoted(name)} AS {target}) AS {_quoted(out)}" if target != kind
                       else f"{_quoted(name)} AS {_quoted(out)}")
        hive_types.append(hive_type)
    return columns, selects, hive_types


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, bytes):
        text = value.hex(" ")
    else:
        text = str(value)
    return '"' + text.replace('"', '""') + '"'


UNLOAD = re.compile(r"^\s*UNLOAD\s*\((?P<query>.*)\)\s*TO\s*'(?P<path>[^']*)'\s*WITH\s*\((?P<options>.*)\)\s*;?\s*$",
                    re.IGNORECASE | re.DOTALL)
OPTION = re.compile(r"(\w+)\s*=\s*(?:'([^']*)'|(ARRAY\s*\[[^\]]*\]))", re.IGNORECASE)


def run_query(sql: str, *, database: str | None, catalog: GlueCatalog, s3: S3Store, output_location: str,
              query_id: str) -> QueryResult:
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
    connection = duckdb.connect()
    try:
        connection.execute("SET integer_division = true")  # Trino's `/` of two integers is an integer
        scanned = sum(load_table(connection, s3, table) for table in tables.values())
        try:
            connection.execute(f"CREATE TEMP TABLE __result AS {query.sql('duckdb')}")
        except duckdb.Error as error:
            raise _duckdb_failure(error) from None
        columns, selects, hive_types = _result_columns(connection)
        final = f"SELECT {', '.join(selects)} FROM __result"
        count = connection.execute("SELECT count(*) FROM __result").fetchone()[0]
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
            connection.execute(f"COPY ({final}) TO '{path}' (FORMAT PARQUET, COMPRESSION GZIP)")
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
