"""What an endpoint's ``/readyz`` reports: warming up, then whether everything a request needs is there.

A worker of a multi-worker server is ready when it has loaded its model and opened its online
store (:meth:`Readiness.warming` until then), when the checks of what its requests need pass (the
model files, the online store: run again at most once per ``ttl`` seconds, so a probe storm costs
nothing) and when every other worker of the same server is warm too: the workers share one
listening socket, so a load balancer that trusted one warm worker would hand requests to a cold
one. Once they have all been warm, a worker the server restarts warms up before it accepts
connections and keeps nobody waiting. The workers find each other through :class:`WorkerGroup`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable

# A check returns None when all is well, else the reason the endpoint is not ready.
Check = Callable[[], Awaitable[str | None]]
# Written once every worker of the first generation is warm.
ALL_WARM = "all-warm"


class WorkerGroup:
    """The worker processes of one server; each marks itself warm with a file in a shared folder.

    Args:
        folder: the group's folder (one per server process).
        me: this worker's process id.
        members: returns the process ids of the group's live workers.
    """

    def __init__(self, folder: Path, me: int, members: Callable[[], list[int]]) -> None:
        self.folder = folder
        self.me = me
        self._members = members

    @classmethod
    def of_parent(cls, worker_marker: str) -> "WorkerGroup":
        """The workers of the server process that started this one (its parent): its children whose
        command line has ``worker_marker`` in it (the web adapter knows its framework's mark).

        The folder is named by the parent's pid and start time, so a reused pid never inherits
        another server's marks; it lives in the user's own folder under the temp directory.
        """
        import psutil

        parent = psutil.Process(os.getppid())
        folder = Path(tempfile.gettempdir()) / f"sagestack-endpoint-{os.getuid()}" / f"{parent.pid}-{int(parent.create_time())}"

        # Workers are told apart from other children by their command line. A worker caught right
        # after its fork still shows the server's and is missed for that moment; the workers are
        # spawned together at start, long before any of them is warm, so none is missed when it counts.
        def members() -> list[int]:
            workers = []
            for child in parent.children():
                try:
                    if worker_marker in child.cmdline():
                        workers.append(child.pid)
                except psutil.Error:  # exited while we looked
                    continue
            return workers

        group = cls(folder, os.getpid(), members)
        group.mark_cold()  # a mark left under this pid by a killed worker is not this one's
        return group

    def mark_warm(self) -> None:
        """Record that this worker is warm.

        Raises:
            PermissionError: the folder above the group's is another user's (who could plant
                marks there); one of ours that others could write to is closed first.
        """
        owner = self.folder.parent
        owner.mkdir(mode=0o700, exist_ok=True)
        if owner.stat().st_uid != os.getuid():
            raise PermissionError(f"{owner} belongs to another user; remove it and restart")
        if owner.stat().st_mode & 0o077:
            owner.chmod(0o700)  # ours, made open by an older sagestack or a umask: close it
        self.folder.mkdir(exist_ok=True, mode=0o700)
        (self.folder / str(self.me)).touch()

    def mark_cold(self) -> None:
        """Withdraw this worker's mark (it starts, or stops); the last one out removes the folder."""
        (self.folder / str(self.me)).unlink(missing_ok=True)
        if not any(path.name.isdigit() for path in self._entries()):
            (self.folder / ALL_WARM).unlink(missing_ok=True)
            try:
                self.folder.rmdir()
            except OSError:  # it never existed
                pass

    def _entries(self) -> list[Path]:
        return list(self.folder.iterdir()) if self.folder.is_dir() else []

    def others_warm(self) -> bool:
        """Whether another live worker of the group is warm (so this one joins a serving endpoint)."""
        return any(pid != self.me and (self.folder / str(pid)).exists() for pid in self._members())

    def cold_workers(self) -> tuple[int, int]:
        """``(workers not warm yet, workers)`` among the live ones, until they have all been warm once.

        After that a worker without a mark is one the server restarted: it warms up before it takes
        connections (see the endpoint's start-up), so nobody waits for it and it is not counted.
        """
        members = self._members()
        if (self.folder / ALL_WARM).exists():
            return 0, len(members)
        cold = sum(not (self.folder / str(pid)).exists() for pid in members)
        if not cold and (self.folder / str(self.me)).exists():
            (self.folder / ALL_WARM).touch()
        return cold, len(members)


class Readiness:
    """One worker's readiness: :meth:`reason` is ``None`` when ready, else why not.

    Args:
        group: the server's workers (``None``: this worker alone decides).
        ttl: how long a round of checks is trusted, in seconds.
        timeout: how long one check may take before it counts as failed, in seconds.
    """

    def __init__(self, group: WorkerGroup | None = None, *, ttl: float = 1.0, timeout: float = 2.0) -> None:
        self._group = group
        self._ttl = ttl
        self._timeout = timeout
        self._warming: str | None = "warming up: starting"
        self._checks: dict[str, Check] = {}
        self._last: tuple[float, str | None] | None = None

    @property
    def warm(self) -> bool:
        """Whether this worker has finished warming up."""
        return self._warming is None

    @property
    def status(self) -> str:
        """``warming up: <step>`` until warm, then ``warm``."""
        return self._warming or "warm"

    def warming(self, step: str) -> None:
        """Report what the warm-up is doing (the reason ``/readyz`` gives until it is done)."""
        self._warming = f"warming up: {step}"

    def add_check(self, name: str, check: Check) -> None:
        """Check one more dependency from now on (e.g. an online store opened after the warm-up)."""
        self._checks[name] = check
        self._last = None

    def ready(self, checks: dict[str, Check]) -> None:
        """The warm-up is done: from now on readiness is these named checks (and the other workers)."""
        if self._group is not None:
            self._group.mark_warm()  # first: a probe in between must not count this worker as cold
        self._checks = dict(checks)
        self._last = None
        self._warming = None

    def joins_warm_workers(self) -> bool:
        """Whether other workers of this server are warm already (this one was restarted beside them)."""
        try:
            return self._group is not None and self._group.others_warm()
        except Exception:  # psutil or the file system failed: warm up as a first-generation worker
            return False

    def stopping(self) -> None:
        """This worker is shutting down: the others no longer wait for it."""
        if self._group is not None:
            self._group.mark_cold()

    async def reason(self) -> str | None:
        """``None`` when this worker, what it needs and its sibling workers are ready; else the reason."""
        if self._warming is not None:
            return self._warming
        # Only the dependency checks are cached: the other workers are counted on every probe (a
        # few file lookups), so the moment the last one is warm every worker says so.
        now = time.monotonic()
        if self._last is None or now - self._last[0] >= self._ttl:
            self._last = (now, await self._run_checks())
        if self._last[1]:
            return self._last[1]
        if self._group is not None:
            cold, total = self._group.cold_workers()
            if cold:
                return f"{cold} of {total} workers of this endpoint are still warming up"
        return None

    async def _run_checks(self) -> str | None:
        names = list(self._checks)
        results = await asyncio.gather(*(self._bounded(name, self._checks[name]) for name in names))
        failed = [reason for reason in results if reason]
        return "; ".join(failed) if failed else None

    async def _bounded(self, name: str, check: Check) -> str | None:
        try:
            return await asyncio.wait_for(check(), self._timeout)
        except asyncio.TimeoutError:
            return f"{name}: no answer within {self._timeout:g} s"
        except Exception as exc:  # a check that breaks is a failed check, never a 500 from /readyz
            return f"{name}: {exc}"


async def model_files_check(path: Path | None) -> str | None:
    """The readiness check of a model's files: ``None`` while ``path`` exists (or is unknown), else why not."""
    # A stat, right here: cheaper than a thread hop, and never queued behind blocking work in a pool.
    if path is None or path.exists():
        return None
    return f"the model files at {path} are gone; restore them or restart the endpoint on another model"
