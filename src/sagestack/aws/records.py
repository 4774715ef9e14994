"""The SQLite files serve-aws keeps its records in (jobs, endpoints): one connection per call, so the server's
threads never share one; the block is one transaction, committed when it ends without an error."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the database file ``path`` for one transaction, closed afterwards."""
    db = sqlite3.connect(path, timeout=30)
    try:
        with db:
            yield db
    finally:
        db.close()
