"""What every operation's handler may use: the identity and the stores of one home."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sagestack.aws.endpoints import Endpoints
from sagestack.aws.identity import Identity, aws_home, load_identity
from sagestack.aws.jobs import JobRunner
from sagestack.aws.s3store import S3Store

# How many SageMaker jobs run at once by default (a two-core machine; the labs start at most two together).
DEFAULT_MAX_JOBS = 2


@dataclass(frozen=True)
class Backends:
    """The server's state: the home, the identity requests are signed with, the S3 store, the job runner and
    the endpoints."""

    home: Path
    identity: Identity
    s3: S3Store
    jobs: JobRunner
    endpoints: Endpoints

    @classmethod
    def open(cls, home: Path, max_jobs: int = DEFAULT_MAX_JOBS) -> "Backends":
        """The backends of a sagestack home (``home/aws``), made on first use; ``max_jobs`` jobs run at once.

        Raises:
            ConfigError: the stored identity is unreadable, or the explicit credentials are half set.
        """
        return cls(home=Path(home), identity=load_identity(home), s3=S3Store(aws_home(home) / "s3"),
                   jobs=JobRunner(aws_home(home) / "jobs", max_jobs), endpoints=Endpoints(aws_home(home) / "endpoints"))

    def close(self) -> None:
        """Stop the endpoints' servers and the job pool (the server is ending)."""
        self.endpoints.close()
        self.jobs.close()
