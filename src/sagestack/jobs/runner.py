"""A job's runner: ``python -m sagestack.jobs.runner FOLDER JOB_ID PARENT_PID``.

Runs the job's ``sagestack … --json`` command in its own process group (stdout to the job's
``result.json``, stderr to its ``log.txt``) and records the outcome in the job table: succeeded,
or failed with the command's own one-line error (or the last line of its log when it crashed).

The runner dies with the process that started it (the console): Linux sends it SIGTERM when its
parent goes (``PR_SET_PDEATHSIG``), and on SIGTERM it stops the command's whole process group
(a pipeline's steps, AutoGluon's workers) and records why. A job therefore never keeps running,
unseen, after its console stopped; the restarted console shows it failed, with that reason.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sagestack.jobs.store import FAILED, SUCCEEDED, JobStore

_PR_SET_PDEATHSIG = 1
STOPPED = "stopped: the console that started it stopped while it ran"


def _die_with_parent(parent_pid: int) -> bool:
    """Ask Linux to SIGTERM this process when its parent ends; False if the parent is already gone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the console's shutdown still stops its jobs, and reconcile catches the rest
    return os.getppid() == parent_pid


def _outcome(code: int, result_path: Path, log_lines: list[str]) -> tuple[str, str | None, dict | None]:
    """(status, error, result) from the command's exit code, its JSON document and its log."""
    try:
        result = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = None
    if code == 0 and isinstance(result, dict):
        return SUCCEEDED, None, result
    if isinstance(result, dict) and result.get("error"):
        return FAILED, str(result["error"]), None
    last = next((line for line in reversed(log_lines) if line.strip()), "no output")
    return FAILED, f"the command failed (exit code {code}): {last.strip()}", None


def run(folder: Path, job_id: int, parent_pid: int) -> int:
    """Run job ``job_id`` of the job table in ``folder`` and record its outcome; returns an exit code."""
    store = JobStore(folder)
    job = store.get(job_id)
    if job is None:
        return 2
    if not _die_with_parent(parent_pid):
        store.finish(job_id, status=FAILED, exit_code=None, error=STOPPED, result=None)
        return 1
    env = {**os.environ, "SAGESTACK_PROGRESS": "1"}  # progress lines on stderr even with --json
    with job.result_path.open("wb") as stdout, job.log_path.open("ab") as stderr:
        command = subprocess.Popen(
            [sys.executable, "-m", "sagestack", *job.argv, "--json"],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, cwd=job.folder,
            start_new_session=True,  # its own process group: stopping the job stops all of it
        )
        stopping = []

        def stop(signum, _frame):
            stopping.append(signum)
            try:
                os.killpg(command.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            code = command.wait(timeout=None)
        finally:
            if stopping:
                try:
                    command.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(command.pid, signal.SIGKILL)
                    command.wait()
    if stopping:
        store.finish(job_id, status=FAILED, exit_code=code, error=STOPPED, result=None)
        return 1
    status, error, result = _outcome(code, job.result_path, job.log_tail(5))
    store.finish(job_id, status=status, exit_code=code, error=error, result=result)
    return 0 if status == SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
