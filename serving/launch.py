"""Starting the BentoML endpoint: ``bentoml serve serving.service:SentimentService`` with the
model reference and sagestack settings passed through the environment."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from sagestack.config import Settings, settings_env
from sagestack.errors import SagestackError

SERVICE = "serving.service:SentimentService"
# The folder that holds the `serving` package, in a checkout and when installed.
WORKING_DIR = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_command(host: str, port: int, service: str = SERVICE, working_dir: Path = WORKING_DIR) -> list[str]:
    """The ``bentoml serve`` command line for a service (default: the sentiment endpoint)."""
    bentoml = Path(sys.executable).with_name("bentoml")
    return [str(bentoml), "serve", service, "--host", host, "--port", str(port), "--working-dir", str(working_dir)]


def serve_env(settings: Settings, model_ref: str, base: dict | None = None) -> dict:
    """Environment for the service: which model, and every setting (the server runs in another
    working directory, so a ``sagestack.toml`` here would not reach it otherwise)."""
    env = {**(os.environ if base is None else base), **settings_env(settings)}
    env.update(
        SAGESTACK_MODEL=model_ref,
        # BentoML keeps its own state; never inside a build context (DESIGN.md).
        BENTOML_HOME=env.get("BENTOML_HOME", str(settings.home.resolve() / "bentoml")),
    )
    return env


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Terminate a background server, killing it if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_ready(process: subprocess.Popen, url: str, timeout: float, log_hint: str, *,
                path: str = "/readyz", what: str = "the endpoint") -> None:
    """Poll ``url`` + ``path`` until it answers 200; raise if the server exits or the time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SagestackError(f"{what} exited during start-up ({log_hint})")
        try:
            if httpx.get(f"{url}{path}", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SagestackError(f"{what} at {url} was not ready after {timeout:.0f} s ({log_hint})")
        time.sleep(0.5)


def run_until_stopped(
    command: list[str], env: dict, url: str, *, on_ready: Callable[[str], None], ready_path: str = "/readyz",
    what: str = "the endpoint", timeout: float = 300.0, output=None,
) -> int:
    """Run a server in the foreground until it exits or is interrupted; returns its exit status.

    ``on_ready(url)`` is called once ``url + ready_path`` answers 200. SIGINT and SIGTERM are
    passed on to the server, which shuts down gracefully. ``output`` is where the server's stdout
    goes (``None``: this process's; e.g. ``sys.stderr`` to keep stdout for one JSON line).
    """
    process = subprocess.Popen(command, env=env, stdout=output)
    previous = {sig: signal.signal(sig, lambda signum, frame: process.send_signal(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _wait_ready(process, url, timeout, "see its output above", path=ready_path, what=what)
        on_ready(url)
        return process.wait()
    except BaseException:
        stop_process(process)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_until_stopped(
    settings: Settings, model_ref: str, host: str, port: int, *, on_ready: Callable[[str], None], timeout: float = 300.0,
    output=None,
) -> int:
    """Run the endpoint in the foreground until it exits or is interrupted; returns its exit status.

    ``on_ready(url)`` is called once ``/readyz`` answers (e.g. to record the endpoint on the
    model version: not before the server really serves); see :func:`run_until_stopped`.
    """
    return run_until_stopped(serve_command(host, port), serve_env(settings, model_ref), f"http://{host}:{port}",
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
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        try:
            _wait_ready(process, url, timeout, f"log: {log_path}")
        except SagestackError as exc:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise SagestackError(f"{exc}; last line: {' '.join(tail) or 'no output'}") from None
        yield url
    finally:
        stop_process(process)


def running_server(
    settings: Settings, model_ref: str, host: str = "127.0.0.1", port: int | None = None, timeout: float = 120.0
) -> contextlib.AbstractContextManager[str]:
    """Run the sentiment endpoint in the background for the duration of a ``with`` block; yields its base URL.

    Raises:
        SagestackError: the server exits or is not ready within ``timeout`` seconds.
    """
    port = port or free_port(host)
    log_path = settings.home.resolve() / "logs" / f"serve-{port}.log"
    return running_bentoml(serve_command(host, port), serve_env(settings, model_ref), f"http://{host}:{port}",
                           log_path, timeout)
