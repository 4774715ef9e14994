"""What every operation's handler may use: the identity and the stores of one home."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sagestack.aws.identity import Identity, aws_home, load_identity
from sagestack.aws.s3store import S3Store


@dataclass(frozen=True)
class Backends:
    """The server's state: the identity requests are signed with, and the S3 store."""

    identity: Identity
    s3: S3Store

    @classmethod
    def open(cls, home: Path) -> "Backends":
        """The backends of a sagestack home (``home/aws``), made on first use.

        Raises:
            ConfigError: the stored identity is unreadable, or the explicit credentials are half set.
        """
        return cls(identity=load_identity(home), s3=S3Store(aws_home(home) / "s3"))
