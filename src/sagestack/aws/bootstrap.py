"""The environment a client process needs to use ``sagestack serve-aws`` (``serve-aws --env``): the endpoint,
region and credentials, the protobuf setting the SageMaker SDK 2.x needs to import, and a ``PYTHONPATH``
entry holding the start-up shim that reroutes explicitly named AWS endpoints (``shim/sitecustomize.py``)."""

from __future__ import annotations

import shlex
from pathlib import Path

from sagestack.aws.identity import aws_home, load_identity

SHIM = Path(__file__).with_name("shim") / "sitecustomize.py"


def install_shim(home: Path) -> Path:
    """Copy the start-up shim to ``home/aws/python`` (when it differs) and return that folder."""
    folder = aws_home(home) / "python"
    target = folder / "sitecustomize.py"
    source = SHIM.read_text(encoding="utf-8")
    if not target.is_file() or target.read_text(encoding="utf-8") != source:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        temporary.write_text(source, encoding="utf-8")
        temporary.replace(target)
    return folder


def connect_host(host: str) -> str:
    """The address a client on this machine reaches a server bound to ``host`` at (an IP, so that botocore
    addresses S3 buckets path-style)."""
    if host in ("", "0.0.0.0", "localhost"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def client_environment(home: Path, host: str, port: int) -> dict[str, str]:
    """The variables a client process needs; ``PYTHONPATH`` is only the shim's folder (prepend it).

    Raises:
        ConfigError: the home's stored identity is unreadable.
    """
    identity = load_identity(home)
    return {
        "AWS_ENDPOINT_URL": f"http://{connect_host(host)}:{port}",
        "AWS_DEFAULT_REGION": identity.region,
        "AWS_REGION": identity.region,
        "AWS_ACCESS_KEY_ID": identity.access_key_id,
        "AWS_SECRET_ACCESS_KEY": identity.secret_access_key,
        "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python",
        "PYTHONPATH": str(install_shim(home)),
    }


def export_lines(environment: dict[str, str]) -> list[str]:
    """``environment`` as POSIX shell ``export`` lines for ``eval``; ``PYTHONPATH`` keeps what was set before."""
    lines = []
    for name, value in environment.items():
        if name == "PYTHONPATH":
            lines.append(f'export PYTHONPATH={shlex.quote(value)}"${{PYTHONPATH:+:$PYTHONPATH}}"')
        else:
            lines.append(f"export {name}={shlex.quote(value)}")
    return lines
