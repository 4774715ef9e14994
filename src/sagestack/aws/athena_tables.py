"""Athena's view of a Glue table's data: the objects under its S3 location read the way Athena's SerDes read
them (LazySimpleSerDe splits at the separator and takes quotes as data; OpenCSVSerde honours quotes; Parquet by
column name) into a DuckDB table typed as the catalog says, a value that is no such type being NULL as in Hive.

:mod:`sagestack.aws.athena_sql` runs the queries over the tables loaded here.
"""

from __future__ import annotations

import gzip
import re

from sagestack.aws.glue import Table
from sagestack.aws.protocol import AwsError
from sagestack.aws.s3store import S3Store

LAZY_SIMPLE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
OPEN_CSV = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
HIVE_DEFAULT_DELIMITER = "\x01"  # LazySimpleSerDe's field separator when the table names none

class QueryFailed(Exception):
    """A query that cannot run; ``reason`` is its ``StateChangeReason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key).

    Raises:
        QueryFailed: not an ``s3://`` URI.
    """
    match = re.fullmatch(r"s3a?n?://([^/]+)/?(.*)", uri or "", re.DOTALL)
    if not match:
        raise QueryFailed(f"INVALID_LOCATION: {uri!r} is not an s3:// location")
    return match.group(1), match.group(2)


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


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
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
    target = f"{quote_identifier(table.database)}.{quote_identifier(table.name)}"
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(table.database)}")
    casts = ", ".join(f"TRY_CAST(c{index} AS {_duckdb_type(kind, table)}) AS {quote_identifier(name)}"
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
        picks = ", ".join(f"{quote_identifier(present[name]) if name in present else 'NULL'} AS c{index}"
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
