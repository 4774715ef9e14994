"""SageMaker models, endpoint configurations and endpoints: a model is a record (image + ``model.tar.gz``), an
endpoint is a sagestack endpoint (``sagestack serve`` on a free loopback port, its own process) serving the
model of its configuration's first variant. ``CreateEndpoint`` answers at once with ``Creating``; a thread
unpacks the model and starts the server, then the endpoint is ``InService`` (or ``Failed`` with the reason).
``DeleteEndpoint`` and the end of ``serve-aws`` stop the servers. Records live in ``home/aws/endpoints``; each
start of an endpoint unpacks into a fresh folder ``home/aws/endpoints/NAME/ID`` (``DeleteEndpoint`` removes
``NAME/``), and its server's pid and start time are recorded, so that the servers a killed ``serve-aws`` left
running are stopped when the next one starts.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import sys
import tarfile
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from sagestack.aws.protocol import AwsError
from sagestack.aws.records import transaction
from sagestack.processes import stop_recorded

CREATING, IN_SERVICE, FAILED = "Creating", "InService", "Failed"
RESTARTED = "sagestack serve-aws restarted; delete the endpoint and create it again"
READY_SECONDS = 180  # a BentoML server with a model takes ~15 s here; a loaded machine much longer
SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (kind TEXT NOT NULL, name TEXT NOT NULL, document TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS endpoints (name TEXT PRIMARY KEY, config TEXT NOT NULL, status TEXT NOT NULL,
    failure TEXT, url TEXT, created REAL NOT NULL, modified REAL NOT NULL, serving TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS servers (name TEXT PRIMARY KEY, pid INTEGER NOT NULL, ticks INTEGER);
"""
STOP_GRACE = 10.0  # seconds an endpoint's server gets to exit after SIGTERM
NOT_FOUND = {"model": "Could not find model \"{name}\".", "endpoint-config": "Could not find endpoint configuration "
             "\"{name}\".", "endpoint": "Could not find endpoint \"{name}\"."}


class Endpoints:
    """The models, endpoint configurations and running endpoints of one home."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # endpoint name -> its Supervised server, or the token of the start under way (a delete or close
        # takes it away, and the start then spawns nothing)
        self._servers: dict[str, object] = {}
        self._lock = threading.Lock()
        self._closed = False
        with self._db() as db:
            db.executescript(SCHEMA)
            db.execute("UPDATE endpoints SET status = ?, failure = ?, url = NULL WHERE status != ?",
                       (FAILED, RESTARTED, FAILED))
            leftovers = db.execute("SELECT pid, ticks FROM servers").fetchall()
        for pid, ticks in leftovers:
            stop_recorded(pid, ticks, STOP_GRACE)
        with self._db() as db:
            db.execute("DELETE FROM servers")

    def _db(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self.root / "endpoints.db")

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

    def names(self, prefix: str = "") -> list[str]:
        """The names of the endpoints that start with ``prefix``."""
        with self._db() as db:
            return [row[0] for row in db.execute("SELECT name FROM endpoints WHERE substr(name, 1, ?) = ?",
                                                 (len(prefix), prefix))]

    def _set(self, name: str, **fields) -> None:
        with self._db() as db:
            db.execute(f"UPDATE endpoints SET {', '.join(f'{k} = ?' for k in fields)}, modified = ? WHERE name = ?",
                       (*fields.values(), time.time(), name))

    def create_endpoint(self, name: str, config: str, serving: dict, model_archive: BinaryIO | None,
                        failure: str | None = None) -> None:
        """Record endpoint ``name`` as Creating and start its server in the background from ``model_archive``
        (the model's ``model.tar.gz``, opened; closed here); with a ``failure``, record it Failed for that
        reason. ``serving`` is what it serves (variant, image), kept with it.

        Raises:
            AwsError: an endpoint of that name exists (``ValidationException``), or the server is stopping
                (``ServiceUnavailable``).
        """
        now = time.time()
        token = object()
        try:
            with self._lock, self._db() as db:
                if self._closed:
                    raise AwsError("ServiceUnavailable", "sagestack serve-aws is stopping; create the endpoint "
                                   "again once it runs", 503)
                if db.execute("SELECT 1 FROM endpoints WHERE name = ?", (name,)).fetchone():
                    raise AwsError("ValidationException", f"Cannot create already existing endpoint \"{name}\".")
                db.execute("INSERT INTO endpoints VALUES (?, ?, ?, ?, NULL, ?, ?, ?)",
                           (name, config, FAILED if failure else CREATING, failure, now, now, json.dumps(serving)))
                if not failure:
                    self._servers[name] = token
        except BaseException:
            if model_archive is not None:
                model_archive.close()
            raise
        if not failure:
            threading.Thread(target=self._start, args=(name, model_archive, token), name=f"endpoint-{name}",
                             daemon=True).start()
        elif model_archive is not None:
            model_archive.close()

    def command(self, model: Path, port: int, folder: Path) -> list[str]:
        """The command serving ``model`` on ``port`` (its JSON line, with the URL, on stdout once it listens)."""
        return [sys.executable, "-m", "sagestack", "serve", "--model", str(model), "--host", "127.0.0.1", "--port",
                str(port), "--json", "--home", str(folder / "home")]

    def _start(self, name: str, model_archive: BinaryIO, token: object) -> None:
        from sagestack.errors import SagestackError
        from sagestack.processes import free_port, start, start_ticks

        folder = self.root / name / uuid.uuid4().hex  # a fresh folder: nothing of an earlier endpoint of the name
        model = folder / "model"
        try:
            model.mkdir(parents=True)
            with model_archive, tarfile.open(fileobj=model_archive) as packed:
                packed.extractall(model, filter="data")
            ready = folder / "ready.json"
            with self._lock:
                if self._servers.get(name) is not token:  # deleted, or serve-aws stopping, meanwhile
                    shutil.rmtree(folder, ignore_errors=True)
                    with suppress(OSError):  # NAME/ too, when nothing else is in it
                        folder.parent.rmdir()
                    return
                with open(ready, "w") as out:
                    server = start(self.command(model, free_port(), folder), what=f"endpoint {name}",
                                   log=folder / "log.txt", stdout=out, new_session=True)
                self._servers[name] = server
            with self._db() as db:
                db.execute("INSERT OR REPLACE INTO servers VALUES (?, ?, ?)", (name, server.pid,
                                                                             start_ticks(server.pid)))
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
        """Stop endpoint ``name``'s server (or cancel its start), forget it and remove its folder (raises like
        :meth:`endpoint` when there is none)."""
        self.endpoint(name)
        with self._lock:
            server = self._servers.pop(name, None)
        _stop(server)
        with self._db() as db:
            db.execute("DELETE FROM endpoints WHERE name = ?", (name,))
            db.execute("DELETE FROM servers WHERE name = ?", (name,))
        shutil.rmtree(self.root / name, ignore_errors=True)

    def close(self) -> None:
        """Stop every endpoint server and cancel the starts under way (``serve-aws`` is ending)."""
        with self._lock:
            self._closed = True
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            _stop(server)
        with self._db() as db:
            db.execute("DELETE FROM servers")


def predict(url: str, texts: list[str]) -> list[dict]:
    """The predictions of the sagestack endpoint at ``url`` for ``texts`` (``POST /predict``, at most
    :data:`~sagestack.serving.requests.MAX_REVIEWS_PER_REQUEST` texts a request): one ``{"label",
    "probabilities"}`` per text, in order.

    Raises:
        AwsError: the endpoint refused the texts or did not answer (``ModelError``, 424, as SageMaker relays a
            model's error).
    """
    import urllib.error
    import urllib.request

    from sagestack.serving.requests import MAX_REVIEWS_PER_REQUEST

    predictions: list[dict] = []
    for first in range(0, len(texts), MAX_REVIEWS_PER_REQUEST):
        request = urllib.request.Request(
            url.rstrip("/") + "/predict", headers={"Content-Type": "application/json"},
            data=json.dumps({"reviews": texts[first:first + MAX_REVIEWS_PER_REQUEST]}).encode())
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                predictions += json.load(response)["predictions"]
        except urllib.error.HTTPError as exc:  # the endpoint's own one-line refusal
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise AwsError("ModelError", f"the sagestack endpoint refused the request ({exc.code}: {detail})",
                           424) from None
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            raise AwsError("ModelError", f"the sagestack endpoint did not answer ({exc})", 424) from None
    return predictions


def _stop(server: object) -> None:
    """Stop a started server (a start's token has nothing to stop: the start sees it gone and spawns nothing)."""
    from sagestack.processes import Supervised

    if isinstance(server, Supervised):
        server.stop(grace=STOP_GRACE)
