"""A home whose MLflow database another MLflow version made is one line with the fix, not a traceback."""

from __future__ import annotations

import sqlite3

from sagestack.registry.models import list_models


def test_a_database_of_an_older_mlflow_names_the_upgrade_command(settings, cli):
    """Through the command (MLflow checks a store's schema once per process, when it first opens it)."""
    list_models(settings)  # a real store, at today's schema
    database = settings.home / "mlflow.db"
    with sqlite3.connect(database) as connection:  # as an older MLflow would have left it
        connection.execute("update alembic_version set version_num = '0584bdc529eb'")
    before = database.read_bytes()
    proc = cli("models", "list")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: the MLflow database {settings.mlflow_uri} was made by an older MLflow; "
                                   f"back it up, then run `mlflow db upgrade {settings.mlflow_uri}` (or pass another --home)")
    assert database.read_bytes() == before  # nothing migrated behind the user's back
