"""Starting the BentoML endpoint: ``bentoml serve serving.service:SentimentService`` with the
model reference and sagestack settings passed through the environment."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from sagestack.config import Settings
from sagestack.errors import SagestackError

SERVICE = "serving.service:SentimentService"
# The folder that holds the `serving` package, in a checkout and when installed.
WORKING_DIR = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_command(host: str, port: int) -> list[str]:
    """The ``bentoml serve`` command line for the sentiment service."""
    bentoml = Path(sys.executable).with_name("bentoml")
    return [str(bentoml), "serve", SERVICE, "--host", host, "--port", str(port), "--working-dir", str(WORKING_DIR)]


def serve_env(settings: Settings, model_ref: str, base: dict | None = None) -> dict:
    """Environment for the service: which model, and where the registry is."""
    env = dict(os.environ if base is None else base)
    env.update(
        SAGESTACK_MODEL=model_ref,
        SAGESTACK_HOME=str(settings.home.resolve()),
        SAGESTACK_TRACKING_URI=settings.mlflow_uri,
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


@contextlib.contextmanager
def running_server(
    settings: Settings, model_ref: str, host: str = "127.0.0.1", port: int | None = None, timeout: float = 120.0
) -> Iterator[str]:
    """Run the endpoint in the background for the duration of the block; yields its base URL.

    Raises:
        SagestackError: the server exits or is not ready within ``timeout`` seconds.
    """
    import httpx

    port = port or free_port(host)
    url = f"http://{host}:{port}"
    # Server output goes to a file: an unread pipe would fill up and stall the server.
    log_path = settings.home.resolve() / "logs" / f"serve-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(serve_command(host, port), env=serve_env(settings, model_ref), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise SagestackError(f"the endpoint exited during start-up ({' '.join(tail) or 'no output'}); log: {log_path}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SagestackError(f"the endpoint at {url} was not ready after {timeout:.0f} s; log: {log_path}")
            time.sleep(0.5)
        yield url
    finally:
        stop_process(process)
