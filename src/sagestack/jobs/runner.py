"""A job's runner: ``python -m sagestack.jobs.runner FOLDER JOB_ID PARENT_PID``.

Runs the job's ``sagestack … --json`` command in its own process group (stdout to the job's
``result.json``, stderr to its ``log.txt``) and records the outcome in the job table: succeeded,
or failed with the command's own one-line error (or the last line of its log when it crashed).

The runner dies with the process that started it (the console): Linux sends it SIGTERM when its
parent goes (``PR_SET_PDEATHSIG``), and on SIGTERM it stops the command's whole process group
(a pipeline's steps, AutoGluon's workers; SIGKILL after a grace period) and records why. Should
the runner itself be killed outright, the command gets SIGTERM the same way, and the group id
recorded in the job table lets :meth:`~sagestack.jobs.store.JobStore.reconcile` stop whatever
is left of it. A job therefore never keeps running, unseen, after its console stopped; the
restarted console shows it failed, with the reason.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path

from sagestack.jobs.store import FAILED, SUCCEEDED, JobStore
from sagestack.processes import Supervised, start, stop_group

_PR_SET_PDEATHSIG = 1
STOPPED = "stopped: the console that started it stopped while it ran"
# How long a stopped command's process group gets to exit on SIGTERM before SIGKILL.
GRACE_SECONDS = 10.0


def _set_parent_death_signal(signum: int) -> None:
    """Ask Linux to send ``signum`` to this process when its parent ends (no-op elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
    except (OSError, AttributeError):
        pass  # not Linux: the console's shutdown still stops its jobs, and reconcile catches the rest


def _error_line(log_lines: list[str]) -> str:
    """What a failed command said last: the text of Typer's boxed usage error (its lines joined),
    else the last line of the log that has words in it."""
    box = "│╭╮╰╯─┌┐└┘ "
    ends = [i for i, line in enumerate(log_lines) if line.strip().startswith(("╰", "└"))]
    if ends:
        starts = [i for i, line in enumerate(log_lines[: ends[-1]]) if line.strip().startswith(("╭", "┌"))]
        inside = log_lines[(starts[-1] + 1 if starts else 0): ends[-1]]
        text = " ".join(line.strip().strip(box).strip() for line in inside).strip()
        if any(ch.isalnum() for ch in text):
            return " ".join(text.split())
    for line in reversed(log_lines):
        text = line.strip().strip(box).strip()
        if any(ch.isalnum() for ch in text):
            return text
    return "no output"


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
    return FAILED, f"the command failed (exit code {code}): {_error_line(log_lines)}", None


def run(folder: Path, job_id: int, parent_pid: int) -> int:
    """Run job ``job_id`` of the job table in ``folder`` and record its outcome; returns an exit code."""
    store = JobStore(folder)
    job = store.get(job_id)
    if job is None:
        return 2
    stopping: list[int] = []
    command: Supervised | None = None

    def stop(signum, _frame):
        stopping.append(signum)
        if command is not None:
            command.signal(signal.SIGTERM)

    # Handlers first: a stop that arrives while the command starts must still stop it.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent_pid:  # the console was gone before the line above took effect
        store.finish(job_id, status=FAILED, exit_code=None, error=STOPPED, result=None)
        return 1
    if stopping:  # told to stop before the command started: do not start it
        store.finish(job_id, status=FAILED, exit_code=None, error=STOPPED, result=None)
        return 1
    env = {**os.environ, "SAGESTACK_PROGRESS": "1"}  # progress lines on stderr even with --json
    runner_pid = os.getpid()

    def in_child() -> None:
        # Should this runner be killed outright, the command hears of it too; if it already was
        # (between fork and here), the command must not start at all.
        _set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != runner_pid:
            os._exit(1)

    with job.result_path.open("wb") as stdout:
        command = start(
            [sys.executable, "-m", "sagestack", *job.argv, "--json"], what="the job's command", env=env,
            cwd=job.folder, log=job.log_path, stdout=stdout,
            new_session=True,  # its own process group: stopping the job stops all of it
            preexec_fn=in_child,
        )
    store.record_group(job_id, command.pid)
    if stopping:
        command.signal(signal.SIGTERM)
    code = command.wait(lambda: bool(stopping), GRACE_SECONDS)
    _drain_group(command.pid)
    if stopping:
        store.finish(job_id, status=FAILED, exit_code=code, error=STOPPED, result=None)
        return 1
    status, error, result = _outcome(code, job.result_path, job.log_tail(8))
    store.finish(job_id, status=status, exit_code=code, error=error, result=result)
    return 0 if status == SUCCEEDED else 1


def _drain_group(pgid: int) -> None:
    """After the command ended, end whatever of its group is left (a step it started, a worker
    that ignores SIGTERM): SIGTERM, GRACE_SECONDS, then SIGKILL."""
    try:
        stop_group(pgid, GRACE_SECONDS)
    except PermissionError:
        pass


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
