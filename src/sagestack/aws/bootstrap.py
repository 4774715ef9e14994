"""The environment a client process needs to use ``sagestack serve-aws`` (``serve-aws --env``): the endpoint,
region and credentials, the protobuf setting the SageMaker SDK 2.x needs to import, and a ``PYTHONPATH``
entry holding the start-up shim that reroutes explicitly named AWS endpoints (``shim/sitecustomize.py``)."""

from __future__ import annotations

import os
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


KERNEL_NAME = "sagestack-aws"
KERNEL_DISPLAY_NAME = "Python (sagestack AWS)"


def install_kernel(home: Path, port: int, python: Path, prefix: Path | None = None,
                   name: str = KERNEL_NAME) -> Path:
    """Install a Jupyter kernel that runs ``python`` with the client environment of ``serve-aws --env``, so a
    notebook runs against the loopback server with no cell edited, only the kernel chosen.

    Args:
        home: the sagestack home (its identity and shim).
        port: the port ``serve-aws`` listens on.
        python: the client environment's interpreter (it needs ipykernel and the AWS SDKs).
        prefix: where to install (``PREFIX/share/jupyter/kernels/NAME``); default: ``python``'s own prefix,
            where that environment's Jupyter finds it.
        name: the kernel's name.

    Returns:
        The kernel's folder.

    Raises:
        ConfigError: ``python`` is not an interpreter that can run ipykernel.
    """
    import json
    import subprocess

    from sagestack.errors import ConfigError

    python = Path(python).absolute()
    probe = subprocess.run([str(python), "-c", "import sys, ipykernel; print(sys.prefix)"], capture_output=True,
                           text=True) if python.is_file() else None
    if probe is None or probe.returncode != 0:
        raise ConfigError(f"{python} is not a Python with ipykernel; build the client environment with "
                          "`make aws-client` or pass --python")
    folder = Path(prefix or probe.stdout.strip()) / "share" / "jupyter" / "kernels" / name
    environment = client_environment(home, "127.0.0.1", port)
    spec = {"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": KERNEL_DISPLAY_NAME, "language": "python", "env": environment,
            "metadata": {"sagestack": {"home": str(Path(home).absolute()), "port": port}}}
    folder.mkdir(parents=True, exist_ok=True)
    # It holds the secret key: its owner's alone (as ~/.aws/credentials is), also when it was there before.
    with open(os.open(folder / "kernel.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w",
              encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(json.dumps(spec, indent=1))
    return folder
