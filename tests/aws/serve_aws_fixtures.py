"""What the tests of ``sagestack serve-aws`` share: the client environment (``.venv-aws``, built by
``make aws-client`` from requirements/aws-client.txt, reused while the lock is unchanged), a real server on
a free loopback port, and client scripts run with the real SDKs in that environment.

A test module imports the fixtures it uses from here. This is no ``conftest.py``: pytest would put a second
one in ``sys.modules["conftest"]``, where other test modules import ``tests/conftest.py``'s helpers from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT_VENV = REPO / ".venv-aws"
CLIENTS = Path(__file__).with_name("clients")
SAGESTACK = Path(sys.executable).with_name("sagestack")


@pytest.fixture(scope="session")
def client_bin() -> Path:
    """The client environment's ``bin/`` (``make aws-client`` builds it when the lock changed: about 50 s)."""
    started = time.monotonic()
    built = subprocess.run(["make", "-s", "aws-client"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout + built.stderr
    if "building" in built.stderr:
        print(f"built {CLIENT_VENV} in {time.monotonic() - started:.0f} s")
    return CLIENT_VENV / "bin"


@contextmanager
def serve_aws(home: Path, port: int):
    """A real ``sagestack serve-aws`` on 127.0.0.1:``port`` over ``home``; yields its URL, stops it after."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SAGESTACK_", "AWS_"))}
    log = open(home.parent / f"serve-aws-{port}.log", "w")
    process = subprocess.Popen([str(SAGESTACK), "serve-aws", "--home", str(home), "--port", str(port), "--json"],
                               stdout=subprocess.PIPE, stderr=log, text=True, env=environment)
    try:
        line = process.stdout.readline()  # one JSON line once the server listens
        assert line, f"serve-aws exited ({process.wait()}): {(home.parent / f'serve-aws-{port}.log').read_text()}"
        yield json.loads(line)["url"]
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def client_environment(home: Path, port: int) -> dict[str, str]:
    """The environment ``eval "$(sagestack serve-aws --env)"`` gives a client (nothing else of AWS's)."""
    printed = subprocess.run([str(SAGESTACK), "serve-aws", "--env", "--json", "--home", str(home), "--port", str(port)],
                             capture_output=True, text=True, check=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SAGESTACK_", "AWS_", "PYTHON"))}
    environment.update(json.loads(printed.stdout))
    environment["HOME"] = str(home.parent)  # no ~/.aws of the developer's
    return environment


@pytest.fixture(scope="module")
def aws(tmp_path_factory, client_bin):
    """A started server, its home and a client environment: ``run(script, *args)`` runs
    ``tests/aws/clients/SCRIPT`` with the client environment's Python and returns its JSON output."""
    from sagestack.processes import free_port

    home = tmp_path_factory.mktemp("serve-aws") / "home"
    port = free_port()
    with serve_aws(home, port) as url:
        environment = client_environment(home, port)

        def run(script: str, *args: str, check: bool = True) -> dict:
            result = subprocess.run([str(client_bin / "python"), str(CLIENTS / script), *args], capture_output=True,
                                    text=True, env=environment, cwd=home.parent, timeout=300)
            if check:
                assert result.returncode == 0, result.stdout + result.stderr
            if not result.stdout.strip():
                return {}
            last = result.stdout.strip().splitlines()[-1]  # the SDK's progress dots may precede it on the line
            return json.loads(last[last.index("{"):])

        def command(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(client_bin / args[0]), *args[1:]], capture_output=True, text=True,
                                  env=environment, cwd=home.parent, timeout=300)

        yield type("Aws", (), {"url": url, "home": home, "port": port, "env": environment, "run": staticmethod(run),
                               "command": staticmethod(command)})()
