"""The job table: one SQLite row per background job, and starting a job's runner.

A job's life: :meth:`JobStore.submit` inserts it as ``running`` (at most one job runs at a
time: this is a two-core laptop's console, and a second AutoML job would only slow the first);
:meth:`JobStore.start` launches :mod:`sagestack.jobs.runner`, which runs the command and writes
``succeeded`` or ``failed`` with the reason. A runner that vanished without writing its outcome
(killed, the machine rebooted) is found by :meth:`JobStore.reconcile`, which marks the job
``failed`` with the reason, so a restart of the console loses nothing and never shows a dead job
as running.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sagestack.errors import SagestackError
from sagestack.processes import alive, start_ticks

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
# The reason recorded for a job whose runner disappeared without recording an outcome.
VANISHED = "its process (pid {pid}) ended without recording a result: the console or the machine stopped while it ran"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    argv TEXT NOT NULL,
    folder TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    pid INTEGER,
    pid_started REAL,
    pgid INTEGER,
    pgid_started REAL,
    exit_code INTEGER,
    error TEXT,
    result TEXT
)
"""


_ADDED_COLUMNS = (("pgid", "INTEGER"), ("pgid_started", "REAL"))


class JobConflict(SagestackError):
    """A job was submitted while another one is still running."""


@dataclass(frozen=True)
class Job:
    """One background job as the table records it.

    Attributes:
        id: the job's number.
        kind: what it runs (``bias``, ``automl``, ``pipeline``).
        title: a one-line description for people.
        argv: the ``sagestack`` arguments (without ``--json``, which the runner adds).
        folder: the job's own folder: the command's outputs, ``result.json`` and ``log.txt``.
        status: ``running``, ``succeeded`` or ``failed``.
        created_at / finished_at: Unix times.
        pid / pid_started: the runner's process and its start (:func:`sagestack.processes.start_ticks`).
        pgid / pgid_started: the command's process group (its leader's pid) and the leader's start.
        exit_code: the command's exit status, once finished.
        error: why it failed (one line), for a failed job.
        result: the JSON document the command printed, for a finished job.
    """

    id: int
    kind: str
    title: str
    argv: list[str]
    folder: Path
    status: str
    created_at: float
    finished_at: float | None
    pid: int | None
    pid_started: int | None
    pgid: int | None
    pgid_started: int | None
    exit_code: int | None
    error: str | None
    result: dict | None

    @property
    def seconds(self) -> float:
        """How long it ran (so far, while it runs)."""
        return (self.finished_at or time.time()) - self.created_at

    @property
    def log_path(self) -> Path:
        """The command's stderr: progress lines, warnings, a traceback if it crashed."""
        return self.folder / "log.txt"

    @property
    def result_path(self) -> Path:
        """Where the command's ``--json`` document lands."""
        return self.folder / "result.json"

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last ``lines`` lines of the job's log (empty before it wrote any)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 16384))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]


def _row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"], kind=row["kind"], title=row["title"], argv=json.loads(row["argv"]), folder=Path(row["folder"]),
        status=row["status"], created_at=row["created_at"], finished_at=row["finished_at"], pid=row["pid"],
        pid_started=row["pid_started"], pgid=row["pgid"], pgid_started=row["pgid_started"],
        exit_code=row["exit_code"], error=row["error"],
        result=json.loads(row["result"]) if row["result"] else None,
    )


class JobStore:
    """The job table ``folder/jobs.db`` (created on first use) and each job's folder ``folder/<id>``."""

    def __init__(self, folder: Path):
        self.root = Path(folder)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "jobs.db"
        with self._connect() as db:
            db.execute(_SCHEMA)
            # A table made by an earlier sagestack lacks the newer columns: add them.
            present = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            for column, kind in _ADDED_COLUMNS:
                if column not in present:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=10, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def get(self, job_id: int) -> Job | None:
        """The job numbered ``job_id``, or None."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(row) if row else None

    def list(self, *, kind: str | None = None, limit: int = 50) -> list[Job]:
        """The newest jobs first (of one kind if given)."""
        query, params = "SELECT * FROM jobs", ()
        if kind:
            query, params = query + " WHERE kind = ?", (kind,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [_row_to_job(row) for row in rows]

    def submit(self, kind: str, title: str, argv: list[str]) -> Job:
        """Record a new job as running, after checking that no other job runs.

        Returns:
            The job, with its folder created; call :meth:`start` to run it.

        Raises:
            JobConflict: another job is still running.
        """
        self.reconcile()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # the check and the insert are one step for every console
            busy = db.execute("SELECT id, kind FROM jobs WHERE status = ?", (RUNNING,)).fetchone()
            if busy:
                db.execute("ROLLBACK")
                raise JobConflict(f"job {busy['id']} ({busy['kind']}) is still running; wait for it to finish, "
                                  "then start this one")
            cursor = db.execute(
                "INSERT INTO jobs (kind, title, argv, folder, status, created_at) VALUES (?, ?, ?, '', ?, ?)",
                (kind, title, json.dumps(argv), RUNNING, time.time()),
            )
            job_id = cursor.lastrowid
            folder = self.root / str(job_id)
            db.execute("UPDATE jobs SET folder = ? WHERE id = ?", (str(folder), job_id))
            db.execute("COMMIT")
        folder.mkdir(parents=True, exist_ok=True)
        return self.get(job_id)

    def start(self, job: Job, *, environ: dict[str, str] | None = None) -> subprocess.Popen:
        """Launch the runner of a submitted job and record its process.

        The runner is this process's child and dies with it (see :mod:`sagestack.jobs.runner`).
        Call this from a thread that lives as long as the process (e.g. the event loop's): Linux
        signals a child when the *thread* that started it ends.
        """
        process = subprocess.Popen(
            [sys.executable, "-m", "sagestack.jobs.runner", str(self.root), str(job.id), str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **(environ or {})}, close_fds=True,
        )
        with self._connect() as db:
            db.execute("UPDATE jobs SET pid = ?, pid_started = ? WHERE id = ? AND status = ?",
                       (process.pid, start_ticks(process.pid), job.id, RUNNING))
        # Reap the runner when it ends (it records its own outcome), so no zombie is left behind.
        threading.Thread(target=process.wait, name=f"job-{job.id}-reaper", daemon=True).start()
        return process

    def record_group(self, job_id: int, pgid: int) -> None:
        """Record the process group the job's command runs in (called by the runner)."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET pgid = ?, pgid_started = ? WHERE id = ?", (pgid, start_ticks(pgid), job_id))

    def finish(self, job_id: int, *, status: str, exit_code: int | None, error: str | None, result: dict | None) -> None:
        """Record a running job's outcome (a job already finished keeps its first outcome)."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = ?, exit_code = ?, error = ?, result = ?, finished_at = ? "
                "WHERE id = ? AND status = ?",
                (status, exit_code, error, json.dumps(result) if result is not None else None, time.time(), job_id,
                 RUNNING),
            )

    def reconcile(self) -> list[int]:
        """Mark running jobs whose runner is gone as failed, with the reason.

        Returns:
            The ids of the jobs it marked.
        """
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE status = ?", (RUNNING,)).fetchall()
        marked = []
        for job in map(_row_to_job, rows):
            if job.pid is None and time.time() - job.created_at < 10:
                continue  # submitted a moment ago, its runner is being started
            if not alive(job.pid, job.pid_started):
                stop_leftovers(job.pgid, job.pgid_started, job.created_at)
                self.finish(job.id, status=FAILED, exit_code=None, error=VANISHED.format(pid=job.pid), result=None)
                marked.append(job.id)
        return marked


def stop_leftovers(pgid: int | None, started: int | None, recorded_at: float | None) -> list[int]:
    """SIGKILL what is left of a job's process group after its runner vanished.

    A group id is its leader's pid, and Linux hands out no pid that is still some group's id; so
    while the group's leader lives, its start (``started``, see :mod:`sagestack.processes`) tells
    whether the group is the job's (else the id was reused by someone else's group: left alone),
    and once the leader is gone every process still in a group of that id is the job's. Nothing
    is done for a job recorded (``recorded_at``, a Unix time) before this machine booted.

    Returns:
        The pids it killed.
    """
    import psutil

    if not pgid or started is None or recorded_at is None or recorded_at < psutil.boot_time():
        return []
    if alive(pgid) and not alive(pgid, started):
        return []  # a live leader that is not the job's command: the id is someone else's now
    killed = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.pid != os.getpid() and os.getpgid(process.pid) == pgid:
                process.kill()
                killed.append(process.pid)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return killed
