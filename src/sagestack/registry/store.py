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
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sagestack.config import Settings
from sagestack.errors import RegistryError

# set_tracking_uri/set_registry_uri also export these so that subprocesses inherit the URIs.
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_STORE_LOCK = threading.RLock()


def client(settings: Settings):
    """An ``MlflowClient`` for the configured tracking/registry store (creating ``home`` if needed).

    Raises:
        RegistryError: the store is a database made by an older MLflow.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if settings.mlflow_uri.startswith("sqlite:"):
        settings.home.mkdir(parents=True, exist_ok=True)
    seed_sqlite_store(settings)
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


def _template_path() -> Path:
    """Where the empty, migrated SQLite store of the installed MLflow is kept (the user's cache folder)."""
    from importlib.metadata import version

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "sagestack" / f"mlflow-{version('mlflow')}-empty.db"


def _make_template(path: Path) -> None:
    """Create the empty store MLflow makes (every migration run), without its ``Default`` experiment.

    That experiment's artifact location depends on where the store is opened from, so the copy
    leaves it to MLflow to create, exactly as it does for a new database.
    """
    import sqlite3
    import tempfile
    from contextlib import closing

    from mlflow.tracking import MlflowClient

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        made = Path(tmp) / "store.db"
        uri = f"sqlite:///{made}"
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
        with closing(sqlite3.connect(made)) as connection:
            connection.execute("DELETE FROM experiment_tags")
            connection.execute("DELETE FROM experiments")
            connection.commit()
        os.replace(made, path)  # a concurrent maker writes the same content: either file is right


def seed_sqlite_store(settings: Settings) -> None:
    """Start a home's new SQLite store as a copy of an empty, migrated one.

    MLflow creates a new SQLite store by running every schema migration since its first release:
    4-13 s on a 2-core machine, paid by the first command in each new home (and by every test
    home). The result is the same for every store of one MLflow version, so it is made once into
    the user's cache (``$XDG_CACHE_HOME/sagestack``, keyed by MLflow's version) and copied. The
    copy is linked into place only if no store appeared meanwhile: an existing store is never
    replaced. Anything that goes wrong leaves MLflow to create the store itself.
    """
    uri = settings.mlflow_uri
    if not uri.startswith("sqlite:///"):
        return
    target = Path(uri.removeprefix("sqlite:///"))
    if target.exists() or not target.parent.is_dir():
        return
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        template = _template_path()
        if not template.is_file():
            _make_template(template)
        shutil.copyfile(template, partial)
        os.link(partial, target)  # fails when a store appeared meanwhile: that one stays
    except Exception:  # noqa: BLE001 - no home directory, a full disk, a locked cache, ...: only slower
        pass  # MLflow creates the store on first use, as it would have
    finally:
        partial.unlink(missing_ok=True)


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

    seed_sqlite_store(settings)
    # The URIs are process-wide: two threads inside at once would restore each other's. One at a
    # time (re-entrant: a block may use another store inside, as the tests do).
    with _STORE_LOCK:
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
