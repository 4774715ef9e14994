"""Where MLflow's stores are, and the two ways sagestack reaches them.

Every call names its store explicitly: :func:`client` builds an ``MlflowClient`` for the
settings' tracking and registry URIs. MLflow's fluent API (``mlflow.start_run``,
``mlflow.pyfunc.log_model``, ``models:/`` downloads) reads process-wide URIs instead; the few
calls that need it run inside :func:`using_store`, which points those URIs at the settings' store
for the duration and restores what was there before, so a process that logs to two homes one
after the other (or a test process) is never left pointing at the wrong one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sagestack.config import Settings
from sagestack.errors import RegistryError

# set_tracking_uri/set_registry_uri also export these so that subprocesses inherit the URIs.
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def client(settings: Settings):
    """An ``MlflowClient`` for the configured tracking/registry store (creating ``home`` if needed).

    Raises:
        RegistryError: the store is a database made by an older MLflow.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if settings.mlflow_uri.startswith("sqlite:"):
        settings.home.mkdir(parents=True, exist_ok=True)
    uri = settings.mlflow_uri
    try:
        # MLflow opens the store here and refuses a database of another version with a long
        # exception; the fix (a backup, then `mlflow db upgrade`) is the user's to run, never ours.
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    except MlflowException as exc:
        if "out-of-date database schema" not in str(exc):
            raise
        raise RegistryError(f"the MLflow database {uri} was made by an older MLflow; back it up, then run "
                            f"`mlflow db upgrade {uri}` (or pass another --home)") from None


def registry_exists(settings: Settings) -> bool:
    """Whether the configured store can hold anything yet: False only for a local SQLite store whose
    file was never created (opening it through :func:`client` would create it, and take seconds)."""
    uri = settings.mlflow_uri
    if not uri.startswith("sqlite:///"):
        return True
    return Path(uri.removeprefix("sqlite:///")).is_file()


@contextmanager
def using_store(settings: Settings) -> Iterator[None]:
    """Point MLflow's fluent API (active runs, ``log_model``, ``models:/`` URIs) at the settings' store
    for the duration of the block, then restore the URIs (and their variables) exactly as they were.

    MLflow keeps the URIs as module state with no public way to tell "unset" from "set to the
    default"; restoring them through ``set_tracking_uri`` would pin a default the process never
    chose, so the state is saved and put back as it was.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    saved_env = {name: os.environ.get(name) for name in _URI_VARIABLES}
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def import_mlflow() -> None:
    """Import MLflow's client now (a long-lived process that freezes its heap, e.g. the console,
    loads it before rather than on its first page)."""
    import mlflow.tracking  # noqa: F401
