"""``sagestack console``: the web console (Studio / Data Wrangler pages) on this machine."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Optional

import typer

from sagestack.cli.common import settings


def _loopback(host: str) -> bool:
    """127.0.0.1, localhost or ::1: the names a token-less console answers to (see sagestack.console.security)."""
    from sagestack.console.security import LOOPBACK_HOSTS

    return host in LOOPBACK_HOSTS


def _settle_memory() -> None:
    """Import what the pages use, then move every object alive now out of the garbage collector's
    sight (``gc.freeze``): a full collection then walks only what requests allocate, not the
    millions of objects of MLflow, SQLAlchemy and pandas, which put 200 ms pauses into page loads."""
    import gc

    import sagestack.pipelines.runner  # noqa: F401  (the Pipelines page)
    import sagestack.data.profile  # noqa: F401  (the Data page)
    from sagestack.registry.store import import_mlflow

    import_mlflow()  # the Models page
    gc.collect()
    gc.freeze()


def console(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but loopback needs --token."),
    port: int = typer.Option(8080, "--port", help="TCP port."),
    token: Optional[str] = typer.Option(None, "--token", envvar="SAGESTACK_CONSOLE_TOKEN",
                                        help="Access token (required beyond loopback; also SAGESTACK_CONSOLE_TOKEN)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data directory for uploads (default: HOME/console/data)."),
    endpoint: str = typer.Option("http://127.0.0.1:3000", "--endpoint", help="The endpoint the Endpoint page asks."),
    max_upload_mb: float = typer.Option(100.0, "--max-upload-mb", min=0.001, help="Largest CSV upload, in MB."),
    json_output: bool = typer.Option(False, "--json", help="Once the console answers, print one JSON line "
                                     '{"url", "pid", "home"} on stdout instead of the banner, and keep serving.'),
) -> None:
    """Start the web console and print its URL (stop it with Ctrl-C)."""
    import uvicorn

    from sagestack.console import ConsoleOptions, create_app
    from sagestack.errors import ConfigError
    from sagestack.processes import check_port_free

    if not _loopback(host) and not token:
        raise ConfigError(f"listening on {host} without a token would expose the console; "
                          "pass --token (or set SAGESTACK_CONSOLE_TOKEN), or keep the default --host 127.0.0.1")
    check_port_free(host, port)
    options = ConsoleOptions(settings=settings(), data_dir=data_dir, endpoint=endpoint.rstrip("/"), token=token,
                             max_upload_bytes=int(max_upload_mb * 1e6))
    app = create_app(options)
    _settle_memory()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    home = options.settings.home.resolve()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    if json_output:
        threading.Thread(target=_announce_when_started, args=(server, {"url": url, "pid": os.getpid(), "home": str(home)}),
                         daemon=True).start()
    else:
        typer.echo(f"sagestack console: {url}  (home {home}; Ctrl-C stops it)")
    server.run()


def _announce_when_started(server, document: dict) -> None:
    """Print ``document`` as one JSON line once uvicorn listens (its ``started`` flag), so a script
    that reads it can use the URL at once."""
    import json
    import time

    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    typer.echo(json.dumps(document))
