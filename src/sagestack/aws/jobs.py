"""SageMaker's asynchronous jobs: ``Create*Job`` records the job and returns at once, the work runs on one of
a bounded pool of threads (each job's heavy work runs in a process of its own), and ``Describe*Job`` reads the
record: ``InProgress`` → ``Completed`` or ``Failed`` with a ``FailureReason``, as SageMaker reports it.

Records live in ``home/aws/jobs/jobs.db`` and each job has a folder ``home/aws/jobs/<kind>/<name>``. A job's
command runs in a process group of its own (:meth:`JobRunner.run_command`), stopped when the job's
``StoppingCondition.MaxRuntimeInSeconds`` passes or the server ends; a job that was running when the server
stopped is ``Failed`` with that reason, and a command a killed server left behind is stopped on the next start.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from sagestack.aws.protocol import AwsError
from sagestack.aws.records import transaction
from sagestack.processes import start, start_ticks, stop_recorded

IN_PROGRESS, COMPLETED, FAILED = "InProgress", "Completed", "Failed"
STOPPED_WHILE_RUNNING = "sagestack serve-aws stopped while the job ran; start it again"
STOP_GRACE = 5.0  # seconds a job's command gets to exit after SIGTERM before SIGKILL
LOG_FILE = "log.txt"
MAX_REASON = 1024  # FailureReason's most characters in SageMaker's API
# SageMaker's message for each secondary status (the SDK prints it when the status changes).
STATUS_MESSAGES = {"Starting": "Starting the job", "Downloading": "Downloading input data",
                   "Training": "Training in progress (sagestack)", "Uploading": "Uploading generated model",
                   COMPLETED: "Job completed", FAILED: "Job failed"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    kind TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, secondary TEXT, failure TEXT,
    request TEXT NOT NULL, result TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL, started REAL, ended REAL,
    modified REAL NOT NULL, transitions TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS processes (kind TEXT NOT NULL, name TEXT NOT NULL, pid INTEGER NOT NULL,
    ticks INTEGER, PRIMARY KEY (kind, name));
"""


class JobFailed(Exception):
    """Raised by a job's work: the job fails with this one-line reason (SageMaker's ``FailureReason``), its
    secondary status ``secondary`` (default ``Failed``)."""

    def __init__(self, reason: str, secondary: str = "Failed") -> None:
        super().__init__(reason)
        self.secondary = secondary


def command_failure(output: str, command: str, code: int) -> JobFailed:
    """Why ``sagestack COMMAND`` failed, from its own ``output`` (its stderr): its one-line ``error:`` (a user
    error) as a ClientError, else (a failure of sagestack's, e.g. a traceback) an AlgorithmError with the exit
    status and the output's last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    error = next((line[len("error: "):] for line in reversed(lines) if line.startswith("error: ")), None)
    if error is not None:
        return JobFailed(f"ClientError: {error}")
    return JobFailed(f"AlgorithmError: sagestack {command} failed (exit status {code})"
                     + (f": {lines[-1]}" if lines else ""))


def _max_runtime(job: "Job") -> tuple[float | None, JobFailed]:
    """The job's ``StoppingCondition.MaxRuntimeInSeconds`` and what it fails with past them."""
    seconds = (job.request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    return seconds, JobFailed(f"MaxRuntimeExceeded: the job ran longer than its StoppingCondition's "
                              f"MaxRuntimeInSeconds ({seconds}) and was stopped")


@dataclass(frozen=True)
class Job:
    """One job's record."""

    kind: str
    name: str
    status: str
    secondary: str | None
    failure: str | None
    request: dict
    result: dict
    created: float
    started: float | None
    ended: float | None
    modified: float
    transitions: list[dict]
    folder: Path


def job_environment(environ: Mapping[str, str], extra: Mapping[str, str], home: Path) -> dict[str, str]:
    """The environment of a sagestack command a job runs: ``environ`` (the server's) without its ``SAGESTACK_*``
    settings — the job has a home of its own, and an operator's tracking server or stores must not receive the
    job's runs — then ``extra``, and the job's ``home``."""
    kept = {name: value for name, value in environ.items() if not name.startswith("SAGESTACK_")}
    return {**kept, **extra, "SAGESTACK_HOME": str(home)}


class JobRunner:
    """The job records of one home and the pool that runs their work (``max_concurrent`` at once)."""

    def __init__(self, root: Path, max_concurrent: int = 2) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_concurrent = max_concurrent
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="sagemaker-job")
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], object] = {}  # (kind, name) -> the Supervised command of the job
        self._closed = False
        with self._db() as db:
            db.executescript(SCHEMA)
            leftovers = db.execute("SELECT pid, ticks FROM processes").fetchall()
        self._fail_unfinished()  # first: a job whose command is stopped next must not end Completed
        for pid, ticks in leftovers:
            stop_recorded(pid, ticks, STOP_GRACE)
        with self._db() as db:
            db.execute("DELETE FROM processes")

    def _fail_unfinished(self) -> None:
        """Every InProgress job becomes Failed: the server that ran it is gone or going."""
        now = time.time()
        with self._lock, self._db() as db:
            rows = db.execute("SELECT kind, name, transitions FROM jobs WHERE status = ?", (IN_PROGRESS,)).fetchall()
            for kind, name, transitions in rows:
                transitions = json.loads(transitions)
                if transitions:
                    transitions[-1].setdefault("EndTime", now)
                transitions.append({"Status": FAILED, "StartTime": now, "EndTime": now,
                                    "StatusMessage": STATUS_MESSAGES[FAILED]})
                db.execute("UPDATE jobs SET status = ?, secondary = ?, failure = ?, ended = ?, modified = ?, "
                           "transitions = ? WHERE kind = ? AND name = ? AND status = ?",
                           (FAILED, FAILED, STOPPED_WHILE_RUNNING, now, now, json.dumps(transitions), kind, name,
                            IN_PROGRESS))

    def _db(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self.root / "jobs.db")

    @property
    def closed(self) -> bool:
        """Whether the runner stopped taking work (``serve-aws`` is ending): a job's waits give up."""
        return self._closed

    def folder(self, kind: str, name: str) -> Path:
        """The job's working folder."""
        return self.root / kind / name

    def log(self, job: Job, line: str) -> None:
        """Append ``line`` to the job's log (``FOLDER/log.txt``: what CloudWatch Logs serves for the job)."""
        with open(job.folder / LOG_FILE, "a", encoding="utf-8") as log:
            log.write(line.rstrip("\n") + "\n")

    def submit(self, kind: str, name: str, request: dict, work: Callable[[Job], dict | None]) -> Job:
        """Record job ``name`` as ``InProgress`` and queue ``work(job)``; its returned dict is kept as the result.

        Raises:
            AwsError: a job of this kind and name exists already (``ResourceInUse``), or the runner is closed
                (``ServiceUnavailable``, 503).
        """
        now = time.time()
        with self._lock, self._db() as db:
            if self._closed:
                raise AwsError("ServiceUnavailable", "sagestack serve-aws is stopping; start the job again once it "
                               "runs", 503)
            if db.execute("SELECT 1 FROM jobs WHERE kind = ? AND name = ?", (kind, name)).fetchone():
                raise AwsError("ResourceInUse", f"a {kind} job named {name} exists already; job names are unique")
            db.execute("INSERT INTO jobs (kind, name, status, secondary, request, created, modified, transitions) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (kind, name, IN_PROGRESS, "Starting", json.dumps(request), now,
                                                        now, json.dumps([{"Status": "Starting", "StartTime": now,
                                                                    "StatusMessage": STATUS_MESSAGES["Starting"]}])))
        self.folder(kind, name).mkdir(parents=True, exist_ok=True)
        self._pool.submit(self._run, kind, name, work)
        return self.get(kind, name)

    def get(self, kind: str, name: str, error_code: str = "ValidationException") -> Job:
        """The record of job ``name``.

        Raises:
            AwsError: no such job (``error_code``: SageMaker answers a Describe of an unknown processing or
                training job with ``ValidationException``, of an AutoML job with ``ResourceNotFound``).
        """
        with self._db() as db:
            row = db.execute("SELECT kind, name, status, secondary, failure, request, result, created, started, "
                             "ended, modified, transitions FROM jobs WHERE kind = ? AND name = ?", (kind, name)).fetchone()
        if row is None:
            raise AwsError(error_code, f"Could not find requested job with name {name}")
        return Job(*row[:5], json.loads(row[5]), json.loads(row[6]), *row[7:11], json.loads(row[11]),
                   folder=self.folder(kind, name))

    def names(self, kind: str) -> list[str]:
        """The names of the jobs of ``kind``, newest first."""
        with self._db() as db:
            return [row[0] for row in db.execute("SELECT name FROM jobs WHERE kind = ? ORDER BY created DESC", (kind,))]

    def update(self, job: Job, *, secondary: str | None = None, **fields) -> None:
        """Set a running job's secondary status, recorded in its transitions as SageMaker lists them (and other
        columns: status, failure, started, ended, result); a job that is no longer InProgress is left as it is."""
        now = time.time()
        values = {"modified": now, **fields}
        if "result" in values:
            values["result"] = json.dumps(values["result"])
        with self._lock, self._db() as db:
            if secondary:
                transitions = json.loads(db.execute("SELECT transitions FROM jobs WHERE kind = ? AND name = ?",
                                                    (job.kind, job.name)).fetchone()[0])
                if transitions:
                    transitions[-1].setdefault("EndTime", now)
                final = secondary in (COMPLETED, FAILED)
                transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": STATUS_MESSAGES.get(
                    secondary, secondary), **({"EndTime": now} if final else {})})
                values.update(secondary=secondary, transitions=json.dumps(transitions))
            # Only a running job changes: a Failed or Completed one stays so (a job the server gave up on
            # must not turn Completed when its work returns later).
            db.execute(f"UPDATE jobs SET {', '.join(f'{key} = ?' for key in values)} WHERE kind = ? AND name = ? "
                       "AND status = ?", (*values.values(), job.kind, job.name, IN_PROGRESS))

    def _run(self, kind: str, name: str, work: Callable[[Job], dict | None]) -> None:
        job = self.get(kind, name)
        self.update(job, secondary="Downloading", started=time.time())  # SageMaker's next secondary status
        self.log(job, f"sagestack serve-aws: {kind} job {name} started")
        try:
            result = work(job) or {}
        except JobFailed as failure:
            self.log(job, f"sagestack serve-aws: {kind} job {name} failed: {failure}")
            self.update(job, status=FAILED, secondary=failure.secondary, failure=str(failure)[:MAX_REASON],
                        ended=time.time())
        except Exception as exc:  # a bug in sagestack: the job fails with the reason, the traceback goes to stderr
            traceback.print_exc(file=sys.stderr)
            reason = f"sagestack serve-aws failed running the job ({type(exc).__name__}: {exc})"
            self.log(job, reason)
            self.update(job, status=FAILED, secondary="Failed", ended=time.time(), failure=reason[:MAX_REASON])
        else:
            self.log(job, f"sagestack serve-aws: {kind} job {name} completed")
            self.update(job, status=COMPLETED, secondary="Completed", ended=time.time(), result=result)

    def run_sagestack(self, job: Job, arguments: list[str], *, work: Path, env: dict[str, str] | None = None,
                      limit: tuple[float, JobFailed] | None = None) -> dict:
        """Run ``sagestack ARGUMENTS --json`` for ``job`` in ``work``, with a home of the job's own (the commands
        jobs run keep no state, and some refuse an output inside their home) and ``env`` added; its JSON result.
        ``limit``: as :meth:`run_command`'s.

        Raises:
            JobFailed: the command failed: its own one-line ``error:`` (a user error, exit status 2) as a
                ClientError, else (a failure of sagestack's) an AlgorithmError with its exit status and last line.
        """
        import json
        import os
        import sys

        command = [sys.executable, "-m", "sagestack", *arguments, "--json"]
        self.log(job, "$ " + " ".join(command))
        environment = job_environment(os.environ, env or {}, work / "home")
        self.run_checked(job, command, arguments[0], env=environment, cwd=work, stdout=work / "result.json",
                         limit=limit)
        return json.loads((work / "result.json").read_text(encoding="utf-8"))

    def run_checked(self, job: Job, command: list[str], what: str, *, env: dict[str, str], cwd: Path, stdout: Path,
                    limit: tuple[float, JobFailed] | None = None) -> None:
        """:meth:`run_command`, a failure raised as :func:`command_failure` of what the command wrote to the
        job's log (``what`` names it: ``sagestack WHAT failed``).

        Raises:
            JobFailed: the command failed (a ClientError for its own ``error:`` line, else an AlgorithmError), or
                as :meth:`run_command` raises.
        """
        log = job.folder / LOG_FILE
        start = log.stat().st_size if log.exists() else 0
        code = self.run_command(job, command, env=env, cwd=cwd, stdout=stdout, limit=limit)
        if code != 0:
            with open(log, "rb") as text:
                text.seek(start)
                raise command_failure(text.read().decode("utf-8", "replace"), what, code)

    def run_command(self, job: Job, command: list[str], *, env: dict[str, str], cwd: Path, stdout: Path,
                    limit: tuple[float, JobFailed] | None = None) -> int:
        """Run a job's ``command`` in a process group of its own (stderr to the job's log, stdout to the file
        ``stdout``) until it exits; its exit status. ``limit``: the seconds the job may run from its start and
        what it fails with past them (default: its ``StoppingCondition.MaxRuntimeInSeconds``, failing with
        ``MaxRuntimeExceeded``).

        Raises:
            JobFailed: the job ran past its limit (the command stopped), or the runner closed meanwhile.
        """
        key = (job.kind, job.name)
        seconds, past_limit = limit or _max_runtime(job)
        started = self.get(job.kind, job.name).started or time.time()
        with self._lock:
            if self._closed:
                raise JobFailed(STOPPED_WHILE_RUNNING)
            with open(stdout, "wb") as out:
                process = start(command, what=f"the {job.kind} job {job.name}", env=env, cwd=cwd,
                                log=job.folder / LOG_FILE, stdout=out, new_session=True)
            self._running[key] = process
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO processes VALUES (?, ?, ?, ?)", (*key, process.pid,
                                                                               start_ticks(process.pid)))
        try:
            while True:
                try:
                    code = process.process.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if isinstance(seconds, (int, float)) and seconds > 0 and time.time() - started > seconds:
                    process.stop(grace=STOP_GRACE)
                    raise past_limit
            if self._closed:
                raise JobFailed(STOPPED_WHILE_RUNNING)
            return code
        finally:
            with self._lock:
                self._running.pop(key, None)
            with self._db() as db:
                db.execute("DELETE FROM processes WHERE kind = ? AND name = ? AND pid = ?", (*key, process.pid))

    def check_runtime(self, job: Job) -> None:
        """Raise when the job ran past its ``StoppingCondition.MaxRuntimeInSeconds`` (for work a job does in
        the server's process between its commands, as :meth:`run_command` stops a command past it).

        Raises:
            JobFailed: ``MaxRuntimeExceeded``.
        """
        seconds, past_limit = _max_runtime(job)
        started = self.get(job.kind, job.name).started
        if isinstance(seconds, (int, float)) and seconds > 0 and started and time.time() - started > seconds:
            raise past_limit

    def close(self) -> None:
        """Stop taking work, stop the commands of running jobs (SIGTERM, then SIGKILL after a grace) and fail
        every unfinished job with that reason."""
        with self._lock:
            self._closed = True
            running = list(self._running.values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in running:
            process.stop(grace=STOP_GRACE)
        self._fail_unfinished()
