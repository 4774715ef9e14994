"""The Glue Data Catalog of a home (``home/aws/glue.db``): databases and tables as Glue keeps them, which Athena
queries read (:mod:`sagestack.aws.athena_queries`); Glue's API over it is :mod:`sagestack.aws.glue`.

A table is kept as the ``TableInput`` it was given (Glue's own shape), so what a client wrote reads back as it
wrote it; :class:`Table` is the part a query needs (columns, location, SerDe). Partitions are not kept:
``GetPartitions`` answers none, and a query of a partitioned table fails saying so.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from sagestack.aws.protocol import AwsError, member, members
from sagestack.aws.records import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS databases (name TEXT PRIMARY KEY, input TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tables (
    database TEXT NOT NULL, name TEXT NOT NULL, input TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    version INTEGER NOT NULL, PRIMARY KEY (database, name));
"""
MAX_NAME = 255


def _not_found(what: str) -> AwsError:
    return AwsError("EntityNotFoundException", f"{what} not found.")


@dataclass(frozen=True)
class Table:
    """What a query needs of a catalog table.

    Attributes:
        database, name: where it is (lower case, as Glue keeps names).
        columns: (name, Hive type) of each column, in order.
        location: the ``s3://`` prefix its data lies under ('' when none).
        serde: the SerDe's class (``...LazySimpleSerDe``, ``...OpenCSVSerde``, ``...ParquetHiveSerDe`` …).
        serde_parameters: the SerDe's parameters (``field.delim``, ``separatorChar`` …).
        parameters: the table's parameters (``skip.header.line.count``, ``classification`` …).
        input_format: the storage descriptor's input format class.
        partition_keys: the names of its partition columns.
    """

    database: str
    name: str
    columns: tuple[tuple[str, str], ...]
    location: str
    serde: str
    serde_parameters: dict[str, str]
    parameters: dict[str, str]
    input_format: str
    partition_keys: tuple[str, ...]

    @classmethod
    def from_input(cls, database: str, table_input: dict) -> "Table":
        """The query's view of a stored ``TableInput``."""
        storage = table_input.get("StorageDescriptor") or {}
        serde = storage.get("SerdeInfo") or {}
        return cls(database=database, name=table_input["Name"],
                   columns=tuple((column["Name"].lower(), column.get("Type", "string"))
                                 for column in storage.get("Columns") or []),
                   location=storage.get("Location") or "", serde=serde.get("SerializationLibrary") or "",
                   serde_parameters=dict(serde.get("Parameters") or {}),
                   parameters=dict(table_input.get("Parameters") or {}),
                   input_format=storage.get("InputFormat") or "",
                   partition_keys=tuple(key["Name"].lower() for key in table_input.get("PartitionKeys") or []))


class GlueCatalog:
    """The databases and tables of one home; safe to share between threads (a connection per call)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with transaction(self.path) as db:
            db.executescript(SCHEMA)

    # -- databases ---------------------------------------------------------------------------------------

    def create_database(self, database_input: dict) -> None:
        """Create the database ``database_input`` describes (its ``Name`` lower-cased, as Glue does).

        Raises:
            AwsError: a bad name (``InvalidInputException``), or it exists (``AlreadyExistsException``).
        """
        name = _valid_name(database_input.get("Name"), "DatabaseInput.Name")
        with transaction(self.path) as db:
            inserted = db.execute("INSERT OR IGNORE INTO databases VALUES (?, ?, ?)",
                                  (name, json.dumps({**database_input, "Name": name}), time.time())).rowcount
        if not inserted:
            raise AwsError("AlreadyExistsException", f"Database already exists: {name}")

    def database(self, name: str) -> tuple[dict, float]:
        """The stored ``DatabaseInput`` of ``name`` and its creation time.

        Raises:
            AwsError: no such database (``EntityNotFoundException``).
        """
        with transaction(self.path) as db:
            row = db.execute("SELECT input, created FROM databases WHERE name = ?", (name.lower(),)).fetchone()
        if row is None:
            raise _not_found(f"Database {name.lower()}")
        return json.loads(row[0]), row[1]

    def databases(self) -> list[tuple[dict, float]]:
        """Every database's ``DatabaseInput`` and creation time, by name."""
        with transaction(self.path) as db:
            rows = db.execute("SELECT input, created FROM databases ORDER BY name").fetchall()
        return [(json.loads(text), created) for text, created in rows]

    def update_database(self, name: str, database_input: dict) -> None:
        """Replace the definition of database ``name`` (it keeps its name).

        Raises:
            AwsError: no such database.
        """
        self.database(name)
        with transaction(self.path) as db:
            db.execute("UPDATE databases SET input = ? WHERE name = ?",
                       (json.dumps({**database_input, "Name": name.lower()}), name.lower()))

    def delete_database(self, name: str) -> None:
        """Delete database ``name`` and its tables (Glue does both).

        Raises:
            AwsError: no such database.
        """
        self.database(name)
        with transaction(self.path) as db:
            db.execute("DELETE FROM tables WHERE database = ?", (name.lower(),))
            db.execute("DELETE FROM databases WHERE name = ?", (name.lower(),))

    # -- tables ------------------------------------------------------------------------------------------

    def create_table(self, database: str, table_input: dict) -> None:
        """Create the table ``table_input`` describes in ``database``.

        Raises:
            AwsError: no such database, a bad name or shape (``InvalidInputException``), or the table exists
                (``AlreadyExistsException``).
        """
        database = database.lower()
        self.database(database)
        name = _valid_name(table_input.get("Name"), "TableInput.Name")
        check_table_input(table_input)
        now = time.time()
        with transaction(self.path) as db:
            inserted = db.execute("INSERT OR IGNORE INTO tables VALUES (?, ?, ?, ?, ?, 1)",
                                  (database, name, json.dumps({**table_input, "Name": name}), now, now)).rowcount
        if not inserted:
            raise AwsError("AlreadyExistsException", f"Table already exists: {name}")

    def update_table(self, database: str, table_input: dict) -> None:
        """Replace the definition of the table ``table_input`` names.

        Raises:
            AwsError: no such database or table, or a bad shape (``InvalidInputException``).
        """
        name = _valid_name(table_input.get("Name"), "TableInput.Name")
        check_table_input(table_input)
        self.table_input(database, name)
        with transaction(self.path) as db:
            db.execute("UPDATE tables SET input = ?, updated = ?, version = version + 1 WHERE database = ? AND "
                       "name = ?", (json.dumps({**table_input, "Name": name}), time.time(), database.lower(), name))

    def table_input(self, database: str, name: str) -> tuple[dict, float, float, int]:
        """The stored ``TableInput`` of ``database.name``, its creation and update times and its version.

        Raises:
            AwsError: no such database or table (``EntityNotFoundException``).
        """
        self.database(database)
        with transaction(self.path) as db:
            row = db.execute("SELECT input, created, updated, version FROM tables WHERE database = ? AND name = ?",
                             (database.lower(), name.lower())).fetchone()
        if row is None:
            raise _not_found(f"Table {name.lower()}")
        return json.loads(row[0]), row[1], row[2], row[3]

    def table(self, database: str, name: str) -> Table:
        """The query's view of ``database.name``.

        Raises:
            AwsError: no such database or table.
        """
        return Table.from_input(database.lower(), self.table_input(database, name)[0])

    def tables(self, database: str) -> list[tuple[dict, float, float, int]]:
        """Every table of ``database`` as :meth:`table_input` gives one, by name.

        Raises:
            AwsError: no such database.
        """
        self.database(database)
        with transaction(self.path) as db:
            rows = db.execute("SELECT input, created, updated, version FROM tables WHERE database = ? ORDER BY name",
                              (database.lower(),)).fetchall()
        return [(json.loads(text), created, updated, version) for text, created, updated, version in rows]

    def delete_table(self, database: str, name: str) -> None:
        """Delete ``database.name``.

        Raises:
            AwsError: no such database or table.
        """
        self.table_input(database, name)
        with transaction(self.path) as db:
            db.execute("DELETE FROM tables WHERE database = ? AND name = ?", (database.lower(), name.lower()))


def _valid_name(name: object, field: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or "\n" in name:
        raise AwsError("InvalidInputException", f"{field} must be a single-line string of 1 to {MAX_NAME} "
                       "characters")
    return name.lower()


def _strings(document: dict, name: str, where: str) -> dict | None:
    """``document[name]`` as a map of strings to strings (Glue's ``ParametersMap``)."""
    value = member(document, name, dict, code="InvalidInputException", where=where)
    for key, item in (value or {}).items():
        if not isinstance(item, str):
            raise AwsError("InvalidInputException", f"{where}{name}[{key!r}] must be a string, not "
                           f"{type(item).__name__}")
    return value


def _columns(document: dict, name: str, where: str) -> None:
    for index, column in enumerate(members(document, name, where=where, code="InvalidInputException")):
        at = f"{where}{name}[{index}]."
        _valid_name(member(column, "Name", str, required=True, code="InvalidInputException", where=at),
                    f"{at}Name")
        for text in ("Type", "Comment"):
            member(column, text, str, code="InvalidInputException", where=at)
        _strings(column, "Parameters", at)


def check_table_input(table_input: dict) -> None:
    """Refuse a ``TableInput`` whose members are not of Glue's shapes (what a query reads of it above all).

    Raises:
        AwsError: ``InvalidInputException`` naming the member.
    """
    for text in ("Description", "Owner", "TableType", "ViewOriginalText", "ViewExpandedText"):
        member(table_input, text, str, code="InvalidInputException", where="TableInput.")
    _columns(table_input, "PartitionKeys", "TableInput.")
    parameters = _strings(table_input, "Parameters", "TableInput.") or {}
    skip = parameters.get("skip.header.line.count")
    if skip is not None and not skip.strip().isdigit():
        raise AwsError("InvalidInputException", "TableInput.Parameters['skip.header.line.count'] must be a whole "
                       f"number, not {skip!r}")
    storage = member(table_input, "StorageDescriptor", dict, code="InvalidInputException", where="TableInput.")
    if storage is None:
        return
    where = "TableInput.StorageDescriptor."
    _columns(storage, "Columns", where)
    for text in ("Location", "InputFormat", "OutputFormat"):
        member(storage, text, str, code="InvalidInputException", where=where)
    member(storage, "NumberOfBuckets", int, code="InvalidInputException", where=where)
    _strings(storage, "Parameters", where)
    serde = member(storage, "SerdeInfo", dict, code="InvalidInputException", where=where)
    if serde is not None:
        for text in ("Name", "SerializationLibrary"):
            member(serde, text, str, code="InvalidInputException", where=f"{where}SerdeInfo.")
        _strings(serde, "Parameters", f"{where}SerdeInfo.")


def name_matches(expression: str, name: str) -> bool:
    """Whether ``name`` matches Glue's ``GetTables`` ``Expression``: alternatives joined by ``|``, ``*`` any run of
    characters, everything else literal, case aside. Matched without regular expressions, in time linear in
    the name for each star (a client's ``a*a*a*…b`` cannot stall a request thread)."""
    name = name.lower()
    return any(_wildcard_match(option.lower(), name) for option in expression.split("|"))


def _wildcard_match(pattern: str, text: str) -> bool:
    # The classic greedy matcher: on a mismatch, go back only to the last star, one character further.
    p = t = 0
    star, resume = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] != "*" and pattern[p] == text[t]:
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume, p = p, t, p + 1
        elif star >= 0:
            p, resume = star + 1, resume + 1
            t = resume
        else:
            return False
    return all(c == "*" for c in pattern[p:])
