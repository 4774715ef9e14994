"""The one identity ``sagestack serve-aws`` accepts: an account, an execution role assumed by the caller, and
the access key pair requests must be signed with. Made once per home and kept there, so every client that
ran ``eval "$(sagestack serve-aws --env)"`` keeps working across restarts of the server."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import asdict, dataclass
from pathlib import Path

from sagestack.errors import ConfigError

DEFAULT_REGION = "us-east-1"
# AWS's shape of an account id (12 digits); LocalStack uses the same all-zero one.
DEFAULT_ACCOUNT = "000000000000"
ROLE_NAME = "sagestack-execution-role"
SESSION_NAME = "sagestack"
# Explicit credentials for a server that listens beyond loopback (`--host`): the operator chooses them.
ACCESS_KEY_VAR = "SAGESTACK_AWS_ACCESS_KEY_ID"
SECRET_KEY_VAR = "SAGESTACK_AWS_SECRET_ACCESS_KEY"


@dataclass(frozen=True)
class Identity:
    """Who the caller is, as STS and IAM report it, and the credentials that prove it."""

    access_key_id: str
    secret_access_key: str
    account: str = DEFAULT_ACCOUNT
    region: str = DEFAULT_REGION
    role_name: str = ROLE_NAME

    @property
    def role_arn(self) -> str:
        """The execution role, as ``sagemaker.get_execution_role()`` returns it."""
        return f"arn:aws:iam::{self.account}:role/{self.role_name}"

    @property
    def caller_arn(self) -> str:
        """The caller as STS ``GetCallerIdentity`` reports it: a session of the assumed execution role."""
        return f"arn:aws:sts::{self.account}:assumed-role/{self.role_name}/{SESSION_NAME}"

    @property
    def role_id(self) -> str:
        """The role's unique id (AWS's ``AROA…`` form), stable for the account."""
        return "AROA" + self.account.rjust(17, "0")


def aws_home(home: Path) -> Path:
    """Where the AWS API keeps its state under a sagestack home."""
    return Path(home) / "aws"


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def load_identity(home: Path, environ: dict[str, str] | None = None) -> Identity:
    """The home's identity, made on first use (``home/aws/identity.json``, readable by its owner only).

    ``SAGESTACK_AWS_ACCESS_KEY_ID`` and ``SAGESTACK_AWS_SECRET_ACCESS_KEY`` in ``environ`` (both or neither)
    replace the stored key pair.

    Raises:
        ConfigError: only one of the two variables is set, or the stored file is unreadable.
    """
    environ = os.environ if environ is None else environ
    path = aws_home(home) / "identity.json"
    if not path.is_file():
        _make_identity(path)
    try:
        identity = Identity(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a sagestack AWS identity ({exc}); remove it to make a new one") from None
    explicit = environ.get(ACCESS_KEY_VAR), environ.get(SECRET_KEY_VAR)
    if any(explicit) and not all(explicit):
        raise ConfigError(f"set both {ACCESS_KEY_VAR} and {SECRET_KEY_VAR}, or neither")
    if all(explicit):
        identity = Identity(**{**asdict(identity), "access_key_id": explicit[0], "secret_access_key": explicit[1]})
    return identity


def _make_identity(path: Path) -> None:
    """Write a new identity to ``path`` unless another process got there first (then its identity stands):
    written whole to a file of this process's own, then linked into place, which fails if one exists."""
    identity = Identity(access_key_id="ASIA" + _random(string.ascii_uppercase + string.digits, 16),
                        secret_access_key=_random(string.ascii_letters + string.digits + "+/", 40))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            json.dump(asdict(identity), out, indent=1)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)


def has_explicit_credentials(environ: dict[str, str] | None = None) -> bool:
    """Whether the operator chose the key pair (required before listening beyond loopback)."""
    environ = os.environ if environ is None else environ
    return bool(environ.get(ACCESS_KEY_VAR) and environ.get(SECRET_KEY_VAR))
