"""The console as one app: the shared state (:class:`~sagestack.console.context.Console`), the error pages and each
page's routes (:mod:`sagestack.console.pages`, one module per page), behind :class:`~sagestack.console.security.ConsoleGuard`.

Every route maps the request to one library call (a data profile, the registry's version table,
a pipeline run's summary) or to a background job (:mod:`sagestack.jobs`), and renders a
template. User errors (:class:`~sagestack.errors.SagestackError`), unknown paths and malformed
parameters become a page with the message and a 4xx status.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from sagestack.console.context import HERE, Console
from sagestack.console.pages import automl, bias, data, endpoint, errors, jobs, models, monitoring, pipelines, review
from sagestack.console.security import LOOPBACK_HOSTS, ConsoleGuard
from sagestack.config import Settings
from sagestack.registry import DEFAULT_MODEL_NAME

DEFAULT_ENDPOINT = "http://127.0.0.1:3000"
# One module per page; no two pages share a path.
PAGES = (data, bias, automl, jobs, pipelines, models, monitoring, review, endpoint)


@dataclass(frozen=True)
class ConsoleOptions:
    """How a console runs.

    Attributes:
        settings: sagestack's settings (the home holds the job table, uploads and everything shown).
        data_dir: the data directory (uploads land here); default ``HOME/console/data``.
        endpoint: the endpoint the Endpoint page asks (fixed here, never taken from a browser).
        token: the access token (required when listening beyond loopback).
        max_upload_bytes: the largest upload.
        model_name: the registered model the Models page shows.
    """

    settings: Settings
    data_dir: Path | None = None
    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    max_upload_bytes: int = 100 << 20
    model_name: str = DEFAULT_MODEL_NAME


def create_app(options: ConsoleOptions) -> FastAPI:
    """The console as an ASGI app (wrapped in :class:`~sagestack.console.security.ConsoleGuard`).

    On start it marks jobs whose process is gone (a console that stopped mid-job) as failed.
    """
    console = Console.build(options)
    app = FastAPI(title="sagestack console", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    errors.register(app, console)
    for page in PAGES:
        app.include_router(page.router(console))
    return ConsoleGuard(app, token=options.token, max_upload_bytes=options.max_upload_bytes,
                        secret=_secret(console.home / "console" / "secret.key"),
                        allowed_hosts=None if options.token else LOOPBACK_HOSTS)


def _secret(path: Path) -> bytes:
    """The console's signing key (32 random bytes, 0600), kept in the home so a restart keeps
    browsers' CSRF cookies valid; a missing, short or readable-by-others key is made anew."""
    import secrets

    try:
        if path.stat().st_mode & 0o077 == 0:
            key = path.read_bytes()
            if len(key) == 32:
                return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".secret.", dir=path.parent)  # mkstemp makes it 0600
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
    os.replace(tmp, path)  # whole or not at all; two consoles starting at once: the last one wins
    return path.read_bytes()
