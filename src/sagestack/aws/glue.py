"""Glue's json API (``X-Amz-Target: AWSGlue.<Operation>``) over the home's catalog
(:mod:`sagestack.aws.glue_catalog`, held on the server's :class:`~sagestack.aws.backends.Backends`).
"""

from __future__ import annotations

from sagestack.aws.backends import Backends
from sagestack.aws.glue_catalog import name_matches
from sagestack.aws.protocol import Request, Response, json_response, member


def _database_document(backends: Backends, database_input: dict, created: float) -> dict:
    return {"Parameters": {}, **database_input, "CreateTime": created, "CatalogId": backends.identity.account,
            "CreateTableDefaultPermissions": [{"Principal": {"DataLakePrincipalIdentifier": "IAM_ALLOWED_PRINCIPALS"},
                                               "Permissions": ["ALL"]}]}


def _table_document(backends: Backends, database: str, stored: tuple[dict, float, float, int]) -> dict:
    table_input, created, updated, version = stored
    return {"Retention": 0, "PartitionKeys": [], "Parameters": {}, **table_input, "DatabaseName": database.lower(),
            "CreateTime": created, "UpdateTime": updated, "CreatedBy": backends.identity.caller_arn,
            "IsRegisteredWithLakeFormation": False, "CatalogId": backends.identity.account,
            "VersionId": str(version)}


def _database_name(body: dict, field: str = "DatabaseName") -> str:
    return member(body, field, str, required=True, code="InvalidInputException")


def create_database(backends: Backends, request: Request) -> Response:
    """CreateDatabase."""
    database_input = member(request.json(), "DatabaseInput", dict, required=True, code="InvalidInputException")
    backends.glue.create_database(database_input)
    return json_response({})


def get_database(backends: Backends, request: Request) -> Response:
    """GetDatabase."""
    database_input, created = backends.glue.database(_database_name(request.json(), "Name"))
    return json_response({"Database": _database_document(backends, database_input, created)})


def get_databases(backends: Backends, request: Request) -> Response:
    """GetDatabases: every database, on one page."""
    return json_response({"DatabaseList": [_database_document(backends, database_input, created)
                                           for database_input, created in backends.glue.databases()]})


def update_database(backends: Backends, request: Request) -> Response:
    """UpdateDatabase."""
    body = request.json()
    database_input = member(body, "DatabaseInput", dict, required=True, code="InvalidInputException")
    backends.glue.update_database(_database_name(body, "Name"), database_input)
    return json_response({})


def delete_database(backends: Backends, request: Request) -> Response:
    """DeleteDatabase (and its tables)."""
    backends.glue.delete_database(_database_name(request.json(), "Name"))
    return json_response({})


def create_table(backends: Backends, request: Request) -> Response:
    """CreateTable."""
    body = request.json()
    table_input = member(body, "TableInput", dict, required=True, code="InvalidInputException")
    backends.glue.create_table(_database_name(body), table_input)
    return json_response({})


def update_table(backends: Backends, request: Request) -> Response:
    """UpdateTable."""
    body = request.json()
    table_input = member(body, "TableInput", dict, required=True, code="InvalidInputException")
    backends.glue.update_table(_database_name(body), table_input)
    return json_response({})


def get_table(backends: Backends, request: Request) -> Response:
    """GetTable."""
    body = request.json()
    database = _database_name(body)
    stored = backends.glue.table_input(database, member(body, "Name", str, required=True,
                                                                 code="InvalidInputException"))
    return json_response({"Table": _table_document(backends, database, stored)})


def get_tables(backends: Backends, request: Request) -> Response:
    """GetTables: every table of the database, on one page; ``Expression`` keeps the names it matches
    (:func:`~sagestack.aws.glue_catalog.name_matches`)."""
    body = request.json()
    database = _database_name(body)
    expression = member(body, "Expression", str, code="InvalidInputException")
    tables = [_table_document(backends, database, stored) for stored in backends.glue.tables(database)]
    if expression:
        tables = [table for table in tables if name_matches(expression, table["Name"])]
    return json_response({"TableList": tables})


def delete_table(backends: Backends, request: Request) -> Response:
    """DeleteTable."""
    body = request.json()
    backends.glue.delete_table(_database_name(body), member(body, "Name", str, required=True,
                                                                     code="InvalidInputException"))
    return json_response({})


def get_partitions(backends: Backends, request: Request) -> Response:
    """GetPartitions: none (partitions are not kept here), for a table that exists."""
    body = request.json()
    backends.glue.table_input(_database_name(body), member(body, "TableName", str, required=True,
                                                                     code="InvalidInputException"))
    return json_response({"Partitions": []})
