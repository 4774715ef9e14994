"""Naming one process for good: a pid and its start time (clock ticks since boot, from ``/proc``).

A pid alone may since belong to another process; the pair cannot. Used wherever sagestack
records a process to check on later (the loopback topology's servers, the console's jobs).
Also the check every server sagestack starts makes before it starts: is its port free?
"""

from __future__ import annotations

from pathlib import Path


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
