"""SageMaker models, endpoint configurations and endpoints: a model is a record (image + ``model.tar.gz``), an
endpoint is a sagestack endpoint (``sagestack serve`` on a free loopback port, its own process) serving the
model of its configuration's first variant. ``CreateEndpoint`` answers at once with ``Creating``; a thread
unpacks the model and starts the server, then the endpoint is ``InService`` (or ``Failed`` with the reason).
``DeleteEndpoint`` and the end of ``serve-aws`` stop the servers. Records live in ``home/aws/endpoints``.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tarfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sagestack.aws.protocol import AwsError

CREATING, IN_SERVICE, FAILED = "Creating", "InService", "Failed"
RESTARTED = "sagestack serve-aws restarted; delete the endpoint and create it again"
READY_SECONDS = 180  # a BentoML server with a model takes ~15 s here; a loaded machine much longer
SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (kind TEXT NOT NULL, name TEXT NOT NULL, document TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS endpoints (name TEXT PRIMARY KEY, config TEXT NOT NULL, status TEXT NOT NULL,
    failure TEXT, url TEXT, created REAL NOT NULL, modified REAL NOT NULL, serving TEXT NOT NULL DEFAULT '{}');
"""
NOT_FOUND = {"model": "Could not find model \"{name}\".", "endpoint-config": "Could not find endpoint configuration "
             "\"{name}\".", "endpoint": "Could not find endpoint \"{name}\"."}


class Endpoints:
    """The models, endpoint configurations and running endpoints of one home."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._servers: dict[str, object] = {}  # endpoint name -> its Supervised server process
        self._lock = threading.Lock()
        with self._db() as db:
            db.executescript(SCHEMA)
            db.execute("UPDATE endpoints SET status = ?, failure = ?, url = NULL WHERE status != ?",
                       (FAILED, RESTARTED, FAILED))

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.root / "endpoints.db", timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    # -- models and endpoint configurations: records -----------------------------------------------------

    def put(self, kind: str, name: str, document: dict) -> None:
        """Record a model or endpoint configuration.

        Raises:
            AwsError: one of that name exists (``ValidationException``, as SageMaker answers).
        """
        with self._db() as db:
            if db.execute("SELECT 1 FROM resources WHERE kind = ? AND name = ?", (kind, name)).fetchone():
                label = "model" if kind == "model" else "endpoint configuration"
                raise AwsError("ValidationException", f"Cannot create already existing {label} \"{name}\".")
            db.execute("INSERT INTO resources VALUES (?, ?, ?, ?)", (kind, name, json.dumps(document), time.time()))

    def get(self, kind: str, name: str) -> tuple[dict, float]:
        """A model's or endpoint configuration's document and creation time.

        Raises:
            AwsError: none of that name (``ValidationException: Could not find …``, as SageMaker answers).
        """
        with self._db() as db:
            row = db.execute("SELECT document, created FROM resources WHERE kind = ? AND name = ?",
                             (kind, name)).fetchone()
        if row is None:
            raise AwsError("ValidationException", NOT_FOUND[kind].format(name=name))
        return json.loads(row[0]), row[1]

    def delete(self, kind: str, name: str) -> None:
        """Delete a model or endpoint configuration (raises like :meth:`get` when there is none)."""
        self.get(kind, name)
        with self._db() as db:
            db.execute("DELETE FROM resources WHERE kind = ? AND name = ?", (kind, name))

    # -- endpoints ---------------------------------------------------------------------------------------

    def endpoint(self, name: str) -> dict:
        """An endpoint's record: name, config, status, failure, url, created, modified, and ``serving`` (what it
        serves, kept at creation as SageMaker does: the variant, its model's image; deleting the configuration or
        the model later changes nothing).

        Raises:
            AwsError: no such endpoint (``ValidationException: Could not find endpoint …``).
        """
        with self._db() as db:
            row = db.execute("SELECT name, config, status, failure, url, created, modified, serving FROM endpoints "
                             "WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise AwsError("ValidationException", NOT_FOUND["endpoint"].format(name=name))
        record = dict(zip(("name", "config", "status", "failure", "url", "created", "modified"), row[:7]))
        return {**record, "serving": json.loads(row[7])}

    def _set(self, name: str, **fields) -> None:
        with self._db() as db:
            db.execute(f"UPDATE endpoints SET {', '.join(f'{k} = ?' for k in fields)}, modified = ? WHERE name = ?",
                       (*fields.values(), time.time(), name))

    def create_endpoint(self, name: str, config: str, serving: dict, model_archive: Path | None,
                        failure: str | None = None) -> None:
        """Record endpoint ``name`` as Creating and start its server in the background from ``model_archive``
        (the model's ``model.tar.gz``, already fetched); with a ``failure``, record it Failed for that reason.
        ``serving`` is what it serves (variant, image), kept with it.

        Raises:
            AwsError: an endpoint of that name exists (``ValidationException``).
        """
        now = time.time()
        with self._lock, self._db() as db:
            if db.execute("SELECT 1 FROM endpoints WHERE name = ?", (name,)).fetchone():
                raise AwsError("ValidationException", f"Cannot create already existing endpoint \"{name}\".")
            db.execute("INSERT INTO endpoints VALUES (?, ?, ?, ?, NULL, ?, ?, ?)",
                       (name, config, FAILED if failure else CREATING, failure, now, now, json.dumps(serving)))
        if not failure:
            threading.Thread(target=self._start, args=(name, model_archive), name=f"endpoint-{name}",
                             daemon=True).start()

    def _start(self, name: str, model_archive: Path) -> None:
        from sagestack.errors import SagestackError
        from sagestack.processes import free_port, start

        folder = self.root / name
        model = folder / "model"
        try:
            model.mkdir(parents=True, exist_ok=True)
            with tarfile.open(model_archive) as packed:
                packed.extractall(model, filter="data")
            port = free_port()
            ready = folder / "ready.json"
            ready.unlink(missing_ok=True)
            with open(ready, "w") as out:
                server = start([sys.executable, "-m", "sagestack", "serve", "--model", str(model), "--host",
                                "127.0.0.1", "--port", str(port), "--json", "--home", str(folder / "home")],
                               what=f"endpoint {name}", log=folder / "log.txt", stdout=out, new_session=True)
            with self._lock:
                self._servers[name] = server
            server.wait_ready(lambda: ready.stat().st_size > 0, READY_SECONDS)
            self._set(name, status=IN_SERVICE, url=json.loads(ready.read_text().splitlines()[0])["url"])
        except (OSError, tarfile.TarError) as exc:
            self._set(name, status=FAILED, failure=f"ClientError: cannot unpack the model ({exc})")
        except SagestackError as exc:
            self._set(name, status=FAILED, failure=f"ClientError: {exc}")
        except Exception as exc:  # a bug here: the endpoint fails with the reason instead of staying Creating
            import traceback

            traceback.print_exc(file=sys.stderr)
            self._set(name, status=FAILED, failure=f"sagestack serve-aws failed starting the endpoint "
                                                   f"({type(exc).__name__}: {exc})")

    def delete_endpoint(self, name: str) -> None:
        """Stop endpoint ``name``'s server and forget it (raises like :meth:`endpoint` when there is none)."""
        self.endpoint(name)
        with self._lock:
            server = self._servers.pop(name, None)
        if server is not None:
            server.stop(grace=10)
        with self._db() as db:
            db.execute("DELETE FROM endpoints WHERE name = ?", (name,))

    def close(self) -> None:
        """Stop every endpoint server (``serve-aws`` is ending)."""
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.stop(grace=10)
