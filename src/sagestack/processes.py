"""Naming one process for good: a pid and its start time (clock ticks since boot, from ``/proc``).

A pid alone may since belong to another process; the pair cannot. Used wherever sagestack
records a process to check on later (the loopback topology's servers, the console's jobs).
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
