"""Athena's view of a Glue table's data: the objects under its S3 location read the way Athena's SerDes read
them (LazySimpleSerDe splits at the separator and takes quotes as data; OpenCSVSerde honours quotes; Parquet by
column name) into a DuckDB table typed as the catalog says, a value that is no such type being NULL as in Hive.

:mod:`sagestack.aws.athena_sql` runs the queries over the tables loaded here.
"""

from __future__ import annotations

import bz2
import gzip
import io
import re
import zlib
from pathlib import PurePosixPath
from typing import IO, Iterator

from sagestack.aws.glue_catalog import Table
from sagestack.aws.protocol import AwsError
from sagestack.aws.s3store import S3Store, parse_s3_uri

LAZY_SIMPLE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
OPEN_CSV = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
HIVE_DEFAULT_DELIMITER = "\x01"  # LazySimpleSerDe's field separator when the table names none
TEXT_CODECS = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd"}  # Hadoop's codecs by extension
OTHER_CODECS = (".snappy", ".lz4", ".deflate", ".lzo", ".lzo_deflate", ".br", ".xz", ".z", ".zip")
BATCH = 65_536  # records the Python readers hand DuckDB at a time

class QueryFailed(Exception):
    """A query that cannot run; ``reason`` is its ``StateChangeReason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key) (:func:`sagestack.aws.s3store.parse_s3_uri`).

    Raises:
        QueryFailed: not an ``s3://`` URI.
    """
    parsed = parse_s3_uri(uri or "")
    if parsed is None:
        raise QueryFailed(f"INVALID_LOCATION: {uri!r} is not an s3:// location")
    return parsed


def _lines(stream: IO[bytes]) -> Iterator[str]:
    """The lines of a binary text stream as Hadoop's line reader ends them (``\\n``, ``\\r\\n`` or ``\\r``;
    str.splitlines also splits at \\x0b, \\x1c … which it keeps inside a line), without their ends."""
    for line in io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=None):
        yield line[:-1] if line.endswith("\n") else line


def lazy_simple_records(stream: IO[bytes], delimiter: str, *, skip_lines: int = 0, escape: str | None = None,
                        null_format: str = "\\N") -> Iterator[list[str | None]]:
    """The records of a text file as Hive's LazySimpleSerDe splits them: a line per record (``\\n``,
    ``\\r\\n`` or ``\\r``), fields at every ``delimiter``; quotes are data, not quoting. ``escape``
    (``escape.delim``) keeps the character after it literal (``\\n``/``\\r`` after it stand for a newline /
    carriage return). The first ``skip_lines`` lines (``skip.header.line.count``) are skipped; a field equal to
    ``null_format`` is NULL. Missing trailing fields are NULL and extra ones dropped by the caller, which knows
    the columns.
    """
    for number, line in enumerate(_lines(stream)):
        if number < skip_lines:
            continue
        if not escape or escape not in line:
            yield [None if value == null_format else value for value in line.split(delimiter)]
        else:  # the NULL marker is matched before unescaping, as Hive does
            yield [None if raw == null_format else value for raw, value in _split_escaped(line, delimiter, escape)]


def split_lazy_simple(data: bytes, delimiter: str, *, skip_lines: int = 0, escape: str | None = None,
                      null_format: str = "\\N") -> list[list[str | None]]:
    """:func:`lazy_simple_records` of ``data``, as a list."""
    return list(lazy_simple_records(io.BytesIO(data), delimiter, skip_lines=skip_lines, escape=escape,
                                    null_format=null_format))


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


def open_csv_records(stream: IO[bytes], separator: str = ",", quote: str = '"', escape: str = "\\", *,
                     skip_lines: int = 0) -> Iterator[list[str | None]]:
    """The records of a text file as OpenCSVSerde reads them: quoted fields (a quoted separator or newline is
    data, a doubled quote inside quotes is one quote), ``escape`` before a character keeps it literal."""
    import csv

    reader = csv.reader(io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""),
                        delimiter=separator, quotechar=quote, escapechar=escape or None, doublequote=True,
                        strict=False)
    for number, row in enumerate(reader):
        if number >= skip_lines:
            yield row


def split_open_csv(data: bytes, separator: str = ",", quote: str = '"', escape: str = "\\", *,
                   skip_lines: int = 0) -> list[list[str | None]]:
    """:func:`open_csv_records` of ``data``, as a list."""
    return list(open_csv_records(io.BytesIO(data), separator, quote, escape, skip_lines=skip_lines))


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


INTEGERS = ("TINYINT", "SMALLINT", "INT", "INTEGER", "BIGINT")
FLOATS = ("REAL", "FLOAT", "DOUBLE")
# What Hive's LazyInteger / LazyLong read: digits with an optional sign, a fraction truncated; and what Java's
# Double.parseDouble reads (surrounding blanks allowed); anything else (1e2 as an integer, 0x10, 1_000) is NULL.
HIVE_INTEGER = r"[+-]?[0-9]+(\.[0-9]*)?"
HIVE_FLOAT = r"\s*[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|NaN|Infinity)[dDfF]?\s*"


def _text_cast(column: str, kind: str) -> str:
    """The SQL that reads the text ``column`` as DuckDB type ``kind`` the way Hive's text SerDes do (a value
    that is no such type is NULL)."""
    if kind in INTEGERS:
        return (f"CASE WHEN regexp_full_match({column}, '{HIVE_INTEGER}') "
                f"THEN TRY_CAST(split_part({column}, '.', 1) AS {kind}) END")
    if kind in FLOATS:
        return (f"CASE WHEN regexp_full_match({column}, '{HIVE_FLOAT}') "
                f"THEN TRY_CAST(rtrim(trim({column}), 'dDfF') AS {kind}) END")
    if kind == "BOOLEAN":  # LazyBoolean: true or false in any case, nothing else
        return f"CASE lower({column}) WHEN 'true' THEN true WHEN 'false' THEN false END"
    return f"TRY_CAST({column} AS {kind})"


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _codec(bucket: str, item) -> str | None:
    """How ``item`` is compressed, by its name's extension as Hadoop's codecs are picked.

    Raises:
        QueryFailed: a codec not read here (NOT_SUPPORTED).
    """
    suffix = PurePosixPath(item.key).suffix.lower()
    if suffix in OTHER_CODECS:
        raise QueryFailed(f"NOT_SUPPORTED: s3://{bucket}/{item.key} is compressed with {suffix[1:]}; sagestack "
                          "serve-aws reads text files uncompressed or compressed with gzip, bzip2 or zstd")
    return TEXT_CODECS.get(suffix)


def _open(path, codec: str | None) -> IO[bytes]:
    """The object's file, decompressed as it is read."""
    if codec == "gzip":
        return gzip.open(path, "rb")
    if codec == "bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


def _public(message: str, bucket: str, objects: list) -> str:
    """``message`` with each object's file on this server named by its ``s3://`` URI instead."""
    for item in objects:
        message = message.replace(str(item.path), f"s3://{bucket}/{item.key}")
    return re.sub(r"^[A-Za-z ]+ Error: ", "", message.splitlines()[0] if message else message)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read_csv(path, delimiter: str, skip: int, null_format: str, width: int, codec: str | None) -> str:
    """DuckDB's ``read_csv`` reading a file as LazySimpleSerDe does (no quoting, no escaping, every field text,
    missing fields NULL, extra ones dropped)."""
    columns = "{" + ", ".join(f"'c{index}': 'VARCHAR'" for index in range(width)) + "}"
    return (f"read_csv({_sql_string(str(path))}, delim={_sql_string(delimiter)}, quote='', escape='', "
            f"header=false, skip={skip}, columns={columns}, auto_detect=false, null_padding=true, "
            f"strict_mode=false, nullstr={_sql_string(null_format)}, compression='{codec or 'none'}')")


def _insert_records(connection, insert: str, records: Iterator[list[str | None]], width: int) -> None:
    """Insert ``records`` (lists of text) through ``insert`` (``INSERT … SELECT … FROM``) in batches."""
    import pyarrow as pa

    values: list[list[str | None]] = [[] for _ in range(width)]

    def flush() -> None:
        batch = pa.table({f"c{index}": pa.array(column, pa.string()) for index, column in enumerate(values)})
        connection.register("raw_text", batch)
        try:
            connection.execute(f"{insert} raw_text")
        finally:
            connection.unregister("raw_text")
        for column in values:
            column.clear()

    for record in records:
        for index in range(width):
            values[index].append(record[index] if index < len(record) else None)
        if len(values[0]) >= BATCH:
            flush()
    if values[0]:
        flush()


def load_table(connection, s3: S3Store, table: Table) -> int:
    """Create ``table`` in the DuckDB ``connection`` (schema = its database) from its objects; the bytes read.

    LazySimpleSerDe files are read by DuckDB's ``read_csv`` (no quoting or escaping, as Hive; one difference: a
    blank line is no record there, where Hive reads a record of empty/NULL fields); a table with an
    ``escape.delim``, a bzip2 file or one DuckDB refuses (say, invalid UTF-8, which Hive replaces) by
    :func:`lazy_simple_records`, streamed; OpenCSVSerde files by :func:`open_csv_records`.

    Raises:
        QueryFailed: a partitioned table, a SerDe or compression not served here, a location that cannot be
            read, or an object that is not what the table says (HIVE_BAD_DATA, naming it).
    """
    import duckdb

    if table.partition_keys:
        raise QueryFailed(f"NOT_SUPPORTED: table {table.database}.{table.name} is partitioned "
                          f"({', '.join(table.partition_keys)}); sagestack serve-aws does not keep partitions")
    if not table.columns:
        raise QueryFailed(f"HIVE_INVALID_METADATA: table {table.database}.{table.name} has no columns")
    objects = _objects(s3, table)
    bucket, _ = split_s3_uri(table.location)
    target = f"{quote_identifier(table.database)}.{quote_identifier(table.name)}"
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(table.database)}")
    types = [_duckdb_type(kind, table) for _, kind in table.columns]
    casts = ", ".join(f"TRY_CAST(c{index} AS {kind}) AS {quote_identifier(name)}"
                      for index, ((name, _), kind) in enumerate(zip(table.columns, types)))
    text_casts = ", ".join(f"{_text_cast(f'c{index}', kind)} AS {quote_identifier(name)}"
                           for index, ((name, _), kind) in enumerate(zip(table.columns, types)))
    serde, scanned = table.serde or LAZY_SIMPLE, sum(item.size for item in objects)
    width = len(table.columns)
    if "parquet" in serde.lower() or "parquet" in table.input_format.lower():
        if not objects:
            connection.execute(f"CREATE TABLE {target} AS SELECT {casts} FROM (SELECT "
                               + ", ".join(f"NULL AS c{i}" for i in range(width)) + ") WHERE false")
            return 0
        files = "[" + ", ".join(_sql_string(str(item.path)) for item in objects) + "]"
        try:
            present = {row[0].lower(): row[0] for row in connection.execute(
                f"DESCRIBE SELECT * FROM read_parquet({files}, union_by_name=true)").fetchall()}
            # Athena matches Parquet columns by name; one the files lack is NULL.
            picks = ", ".join(f"{quote_identifier(present[name]) if name in present else 'NULL'} AS c{index}"
                              for index, (name, _) in enumerate(table.columns))
            connection.execute(f"CREATE TABLE {target} AS SELECT {casts} FROM "
                               f"(SELECT {picks} FROM read_parquet({files}, union_by_name=true))")
        except (duckdb.InterruptException, duckdb.OutOfMemoryException):
            raise
        except duckdb.Error as error:
            raise QueryFailed(f"HIVE_BAD_DATA: {_public(str(error), bucket, objects)}") from None
        return scanned
    skip = int(table.parameters.get("skip.header.line.count", "0") or 0)
    parameters = table.serde_parameters
    if serde == OPEN_CSV:
        def records(stream):
            return open_csv_records(stream, parameters.get("separatorChar", ","), parameters.get("quoteChar", '"'),
                                    parameters.get("escapeChar", "\\"), skip_lines=skip)
        fast = None
    elif serde == LAZY_SIMPLE:
        delimiter = parameters.get("field.delim") or parameters.get("serialization.format") or HIVE_DEFAULT_DELIMITER
        if delimiter.isdigit():  # Hive also takes the separator as its byte value ("44")
            delimiter = chr(int(delimiter))
        escape = parameters.get("escape.delim") or None
        null_format = parameters.get("serialization.null.format", "\\N")

        def records(stream):
            return lazy_simple_records(stream, delimiter, skip_lines=skip, escape=escape, null_format=null_format)
        fast = None if escape or len(delimiter) != 1 else (delimiter, null_format)
    else:
        raise QueryFailed(f"NOT_SUPPORTED: table {table.database}.{table.name} uses SerDe {serde}; sagestack "
                          f"serve-aws reads {LAZY_SIMPLE}, {OPEN_CSV} and Parquet tables")
    connection.execute(f"CREATE TABLE {target} ("
                       + ", ".join(f"{quote_identifier(name)} {kind}" for (name, _), kind in zip(table.columns, types))
                       + ")")
    insert = f"INSERT INTO {target} SELECT {text_casts} FROM"
    for item in objects:
        codec = _codec(bucket, item)
        if fast and codec != "bz2":
            delimiter, null_format = fast
            # DuckDB would push each column's TRY_CAST into the reader as a CAST that fails on a bad value.
            connection.execute("SET disabled_optimizers = 'type_pushdown'")
            try:
                connection.execute(f"{insert} {_read_csv(item.path, delimiter, skip, null_format, width, codec)}")
                continue
            except (duckdb.InterruptException, duckdb.OutOfMemoryException):
                raise
            except duckdb.Error:  # what DuckDB refuses (invalid UTF-8 …) the Python reader reads as Hive does
                pass
            finally:
                connection.execute("RESET disabled_optimizers")
        if codec == "zstd":
            raise QueryFailed(f"NOT_SUPPORTED: s3://{bucket}/{item.key} is compressed with zstd, which sagestack "
                              "serve-aws reads only for LazySimpleSerDe tables without escape.delim")
        try:
            with _open(item.path, codec) as stream:
                _insert_records(connection, insert, records(stream), width)
        except (OSError, EOFError, zlib.error, UnicodeError) as error:
            raise QueryFailed(f"HIVE_BAD_DATA: cannot read s3://{bucket}/{item.key}: "
                              f"{_public(str(error), bucket, objects)}") from None
    return scanned
