"""Processes sagestack starts and watches: one supervisor for the endpoint launcher, the loopback
topology and the console's jobs.

- Naming one process for good: a pid and its start time (clock ticks since boot, from ``/proc``).
  A pid alone may since belong to another process; the pair cannot. Used wherever sagestack
  records a process to check on later (the loopback topology's servers, the console's jobs).
- The check every server sagestack starts makes before it starts: is its port free?
- :func:`start` and :class:`Supervised`: start a command with an environment and a log file, wait
  until a readiness predicate holds or a deadline passes (a process that dies meanwhile is
  reported with the last line of its log), stop it gracefully and then kill it (its whole process
  group when it runs in a session of its own).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Callable, Iterator


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the pid, it names one process for good."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def alive(pid: int | None, started: int | None = None) -> bool:
    """Whether ``pid`` runs (a zombie does not) and, given ``started``, is still the process that started then."""
    if not pid:
        return False
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        return False
    return started is None or int(fields[19]) == started


def check_port_free(host: str, port: int) -> None:
    """Refuse, in one line, a ``--host``/``--port`` that a server could not listen on (taken, or
    not an address of this machine), before anything starts: the servers' own errors are tracebacks.

    Raises:
        ConfigError: the address cannot be bound; the message names it and the fix.
    """
    import socket

    from sagestack.errors import ConfigError

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers 200 within ``timeout`` seconds (a readiness predicate for HTTP servers)."""
    import httpx

    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def last_line(log: Path) -> str:
    """The last line of a log file, for one-line errors (``no output`` / ``no log``)."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to process group ``pgid``; returns False when the group is gone.

    Raises:
        PermissionError: the group belongs to another user.
    """
    try:
        os.killpg(pgid, signum)
        return True
    except ProcessLookupError:
        return False


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies waiting to be reaped do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc: ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


def stop_group(pgid: int, grace: float = 20.0) -> bool:
    """Stop a process group: SIGTERM, up to ``grace`` seconds for all of it to exit, then SIGKILL
    what is left (a worker that ignores SIGTERM). Returns whether the group was there.

    Raises:
        PermissionError: the group belongs to another user.
    """
    if not signal_group(pgid, signal.SIGTERM):
        return False
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_alive(pgid):
        signal_group(pgid, signal.SIGKILL)
    return True


def stop_recorded(pid: int, started: int | None, grace: float = 20.0) -> bool:
    """Stop the process group a recorded process leads (started in a session of its own), if that pid is
    still the process that started at ``started`` ticks: what a killed parent left running. Returns whether
    it was stopped; a group of another user is left alone."""
    if started is None or not alive(pid, started):
        return False
    try:
        return stop_group(pid, grace)
    except PermissionError:
        return False


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Terminate one child process, killing it if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Supervised:
    """A process started by :func:`start`: wait until it is ready, wait for it, signal or stop it.

    Args:
        process: the started process.
        what: how messages name it (``the MLflow server``).
        log: the file whose last line a failure quotes (``None``: its output went to a terminal).
        group: whether it leads a process group of its own (signals and stops go to the whole group).
    """

    def __init__(self, process: subprocess.Popen, what: str, log: Path | None, group: bool) -> None:
        self.process = process
        self.what = what
        self.log = log
        self.group = group

    @property
    def pid(self) -> int:
        """The process id (and, with ``group``, the process group id)."""
        return self.process.pid

    def _failure(self, what_happened: str) -> str:
        if self.log is None:
            return f"{self.what} {what_happened} (see its output above)"
        return f"{self.what} {what_happened}; last log line: {last_line(self.log)} (log: {self.log})"

    def wait_ready(self, ready: Callable[[], bool], timeout: float, interval: float = 0.3) -> None:
        """Poll ``ready`` until it holds.

        Raises:
            SagestackError: the process exited first, or ``ready`` did not hold within ``timeout``
                seconds; one line with the last line of its log.
        """
        from sagestack.errors import SagestackError

        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                raise SagestackError(self._failure("exited during start-up"))
            if time.monotonic() > deadline:
                raise SagestackError(self._failure(f"was not ready after {timeout:.0f} s"))
            time.sleep(interval)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process (its whole group with ``group``); nothing when it is gone."""
        try:
            if self.group:
                signal_group(self.pid, signum)
            else:
                self.process.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, stop_requested: Callable[[], bool] = lambda: False, grace: float = 10.0) -> int:
        """Wait for the process to exit; returns its exit status. Once ``stop_requested()`` holds
        (the caller signalled it), it gets ``grace`` seconds before SIGKILL."""
        stop_since = None
        while True:
            try:
                return self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                if stop_requested() and stop_since is None:
                    stop_since = time.monotonic()
                if stop_since is not None and time.monotonic() - stop_since > grace:
                    self.signal(signal.SIGKILL)

    def stop(self, grace: float = 20.0) -> None:
        """Stop it gracefully (SIGTERM), SIGKILL after ``grace`` seconds (the whole group with ``group``)."""
        if self.group:
            try:
                stop_group(self.pid, grace)
            except PermissionError:
                pass
            self.process.poll()
        else:
            stop_process(self.process, grace)

    @contextlib.contextmanager
    def forwarding_signals(self) -> Iterator["Supervised"]:
        """Pass SIGINT and SIGTERM on to the process for the block (a server run in the foreground
        shuts down gracefully on Ctrl-C), restoring the previous handlers after it."""
        previous = {sig: signal.signal(sig, lambda signum, frame: self.signal(signum))
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def start(
    command: list[str], *, what: str, env: dict | None = None, cwd: Path | str | None = None,
    log: Path | None = None, log_mode: str = "ab", stdout: IO | int | None = None, report_log: Path | None = None,
    new_session: bool = False, preexec_fn: Callable[[], None] | None = None,
) -> Supervised:
    """Start ``command`` as a supervised child process.

    Args:
        command: the argv.
        what: how messages name the process.
        env: its environment (``None``: this process's).
        cwd: its working directory.
        log: where its stderr goes, and its stdout unless ``stdout`` is given (``None``: this
            process's stderr). A file, never a pipe: an unread pipe fills up and stalls the process.
        log_mode: how the log is opened (``"ab"`` appends, ``"wb"`` starts it afresh).
        stdout: where its stdout goes instead of the log (a file, or ``None`` for this process's).
        report_log: the log whose last line a failure quotes, when not ``log`` (e.g. a server's
            own error log).
        new_session: run it in a session (and process group) of its own, so that stopping it stops
            every process it started.
        preexec_fn: called in the child before the command runs.
    """
    if log is None:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout,
                                   start_new_session=new_session, preexec_fn=preexec_fn)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, log_mode) as output:
            process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                       stdout=output if stdout is None else stdout, stderr=output,
                                       start_new_session=new_session, preexec_fn=preexec_fn)
    return Supervised(process, what, report_log or log, new_session)
