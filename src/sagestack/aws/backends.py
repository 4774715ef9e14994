"""What every operation's handler may use: the identity and the stores of one home."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sagestack.aws.athena_queries import QueryRunner
from sagestack.aws.defaults import DEFAULT_MAX_JOBS, DEFAULT_MAX_QUERIES, DEFAULT_QUERY_TIMEOUT
from sagestack.aws.endpoints import Endpoints
from sagestack.aws.glue_catalog import GlueCatalog
from sagestack.aws.identity import Identity, aws_home, load_identity
from sagestack.aws.jobs import JobRunner
from sagestack.aws.s3store import S3Store
from sagestack.aws.shadows import Shadows
from sagestack.errors import ConfigError



@dataclass(frozen=True)
class Backends:
    """The server's state: the home, the identity requests are signed with, the S3 store, the job runner,
    the endpoints, the Glue catalog, the Athena queries and the Clarify jobs' shadow endpoints."""

    home: Path
    identity: Identity
    s3: S3Store
    jobs: JobRunner
    endpoints: Endpoints
    glue: GlueCatalog
    athena: QueryRunner
    shadows: Shadows = field(default_factory=Shadows)
    lock: IO | None = field(default=None, repr=False)

    @classmethod
    def open(cls, home: Path, max_jobs: int = DEFAULT_MAX_JOBS, max_queries: int = DEFAULT_MAX_QUERIES,
             query_timeout: float = DEFAULT_QUERY_TIMEOUT) -> "Backends":
        """The backends of a sagestack home (``home/aws``), made on first use; ``max_jobs`` jobs and
        ``max_queries`` Athena queries run at once, a query for ``query_timeout`` seconds at most.

        One server owns a home at a time (``home/aws/server.lock``): opening resets what a previous server
        left running (jobs and queries ``FAILED``, endpoints stopped, Clarify's shadow endpoints deleted), which
        must never happen under a live one.

        Raises:
            ConfigError: another serve-aws serves the home, the stored identity is unreadable, or the explicit
                credentials are half set.
        """
        lock = _lock(Path(home))
        try:
            endpoints = Endpoints(aws_home(home) / "endpoints")
            return cls(home=Path(home), identity=load_identity(home), s3=S3Store(aws_home(home) / "s3"),
                       jobs=JobRunner(aws_home(home) / "jobs", max_jobs), endpoints=endpoints,
                       shadows=Shadows.open(endpoints),
                       glue=GlueCatalog(aws_home(home) / "glue.db"),
                       athena=QueryRunner(aws_home(home), max_queries, query_timeout), lock=lock)
        except BaseException:
            lock.close()
            raise

    def close(self) -> None:
        """Stop the endpoints' servers, the jobs and the queries (the server is ending), then give the home up."""
        try:
            self.athena.close()
            self.endpoints.close()
            self.jobs.close()
        finally:
            if self.lock is not None:
                self.lock.close()


def _lock(home: Path) -> IO:
    """``home/aws/server.lock``, held exclusively (released when the file is closed, or the process ends).

    Raises:
        ConfigError: another serve-aws holds it; the message names its pid.
    """
    path = aws_home(home) / "server.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise ConfigError(f"another serve-aws (pid {holder}) serves {home}") from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock
