"""Starting the BentoML endpoint: ``bentoml serve sagestack.bento.service:SentimentService`` with the
model reference and sagestack settings passed through the environment."""

from __future__ import annotations

import contextlib
import os
import sys
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import sagestack
from sagestack.config import Settings
from sagestack.errors import SagestackError
from sagestack.processes import free_port, http_ok, last_line, start, stop_process  # noqa: F401  (stop_process: the tests' server stop)

SERVICE = "sagestack.bento.service:SentimentService"
# The folder that holds the `sagestack` package (src/ in a checkout, site-packages when installed): bentoml serve
# puts its working directory on sys.path, and this one adds no other top-level name.
WORKING_DIR = Path(sagestack.__file__).resolve().parents[1]


def serve_command(host: str, port: int, service: str = SERVICE, working_dir: Path = WORKING_DIR) -> list[str]:
    """The ``bentoml serve`` command line for a service (default: the sentiment endpoint)."""
    bentoml = Path(sys.executable).with_name("bentoml")
    return [str(bentoml), "serve", service, "--host", host, "--port", str(port), "--working-dir", str(working_dir)]


def serve_env(settings: Settings, model_ref: str, base: dict | None = None, port: int | None = None) -> dict:
    """Environment for the service: which model, and every setting (the server runs in another
    working directory, so a ``sagestack.toml`` here would not reach it otherwise).

    ``port``: the server's port, which names its BentoML home (``HOME/bentoml/<port>``): a ``bentoml
    serve`` empties its home's Prometheus folder when it starts, so two endpoints of one sagestack home
    on two ports must not share one, or the second wipes the first's ``/metrics``.
    """
    env = {**(os.environ if base is None else base), **settings.to_env()}
    bentoml_home = settings.home.resolve() / "bentoml"
    env.update(
        SAGESTACK_MODEL=model_ref,
        # BentoML keeps its own state; never inside a build context (DESIGN.md).
        BENTOML_HOME=env.get("BENTOML_HOME", str(bentoml_home / str(port) if port else bentoml_home)),
    )
    return env


def _wait_ready(server, what: str, url: str, path: str, timeout: float, log: Path | None = None) -> None:
    """Wait until ``url + path`` answers 200, worded as the launcher's errors always were: ``the endpoint
    exited during start-up (see its output above)``, ``... at URL was not ready after N s (log: P); last line: X``."""
    try:
        server.wait_ready(partial(http_ok, f"{url}{path}", 1.0), timeout, interval=0.5)
    except SagestackError:
        hint = f"log: {log}" if log else "see its output above"
        exited = server.process.poll() is not None
        message = f"{what} exited during start-up ({hint})" if exited else \
            f"{what} at {url} was not ready after {timeout:.0f} s ({hint})"
        raise SagestackError(f"{message}; last line: {last_line(log)}" if log else message) from None


def run_until_stopped(
    command: list[str], env: dict, url: str, *, on_ready: Callable[[str], None], ready_path: str = "/readyz",
    what: str = "the endpoint", timeout: float = 300.0, output=None,
) -> int:
    """Run a server in the foreground until it exits or is interrupted; returns its exit status.

    ``on_ready(url)`` is called once ``url + ready_path`` answers 200. SIGINT and SIGTERM are
    passed on to the server, which shuts down gracefully. ``output`` is where the server's stdout
    goes (``None``: this process's; e.g. ``sys.stderr`` to keep stdout for one JSON line).
    """
    server = start(command, what=what, env=env, stdout=output)
    with server.forwarding_signals():
        try:
            _wait_ready(server, what, url, ready_path, timeout)
            on_ready(url)
            return server.process.wait()
        except BaseException:
            server.stop()
            raise


def serve_until_stopped(
    settings: Settings, model_ref: str, host: str, port: int, *, on_ready: Callable[[str], None], timeout: float = 300.0,
    output=None,
) -> int:
    """Run the endpoint in the foreground until it exits or is interrupted; returns its exit status.

    ``on_ready(url)`` is called once ``/readyz`` answers (e.g. to record the endpoint on the
    model version: not before the server really serves); see :func:`run_until_stopped`.
    """
    return run_until_stopped(serve_command(host, port), serve_env(settings, model_ref, port=port), f"http://{host}:{port}",
                             on_ready=on_ready, timeout=timeout, output=output)


@contextlib.contextmanager
def running_bentoml(
    command: list[str], env: dict, url: str, log_path: Path, timeout: float = 120.0
) -> Iterator[str]:
    """Run a ``bentoml serve`` command in the background for the block, once ``/readyz`` answers; yields ``url``.

    Raises:
        SagestackError: the server exits or is not ready within ``timeout`` seconds (with its
            last log line).
    """
    # Server output goes to a file: an unread pipe would fill up and stall the server.
    server = start(command, what="the endpoint", env=env, log=log_path, log_mode="w")
    try:
        _wait_ready(server, "the endpoint", url, "/readyz", timeout, log_path)
        yield url
    finally:
        server.stop()


def running_server(
    settings: Settings, model_ref: str, host: str = "127.0.0.1", port: int | None = None, timeout: float = 120.0
) -> contextlib.AbstractContextManager[str]:
    """Run the sentiment endpoint in the background for the duration of a ``with`` block; yields its base URL.

    Raises:
        SagestackError: the server exits or is not ready within ``timeout`` seconds.
    """
    port = port or free_port(host)
    log_path = settings.home.resolve() / "logs" / f"serve-{port}.log"
    return running_bentoml(serve_command(host, port), serve_env(settings, model_ref, port=port), f"http://{host}:{port}",
                           log_path, timeout)
