"""The shadow endpoints of a server's running Clarify jobs (:mod:`sagestack.aws.clarify_model` starts and
deletes them): one per model, shared by the jobs of that model running at once, held on the server's Backends;
a starting server deletes those a stopped or killed one left."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field

from sagestack.aws.protocol import AwsError

SHADOW_PREFIX = "sm-clarify-"


@dataclass
class _Shadow:
    """One shadow endpoint and the jobs using it: the first starts it, the last one out deletes it."""

    name: str
    users: int = 1
    ready: threading.Event = field(default_factory=threading.Event)
    url: str | None = None
    # The endpoint's own failure, which every user fails with; a user that gives up for a reason of its own (its
    # runtime) leaves none, and the next user waits on for the endpoint.
    failure: str | None = None
    created: float = field(default_factory=time.monotonic)  # when its first user joined (and started it)


class Shadows:
    """The shadow endpoints of one server's running Clarify jobs, by model (held on its Backends)."""

    def __init__(self) -> None:
        self._shadows: dict[tuple, _Shadow] = {}  # (model name, model creation time) -> its shadow
        self._lock = threading.Lock()

    @classmethod
    def open(cls, endpoints) -> "Shadows":
        """The registry of a starting server, after deleting the shadow endpoints a stopped or killed server left
        (their records and folders: no job of that server runs any more). Every endpoint named with
        :data:`SHADOW_PREFIX` is one: CreateEndpoint refuses the prefix."""
        for name in endpoints.names(SHADOW_PREFIX):
            with suppress(AwsError):
                endpoints.delete_endpoint(name)
        for folder in endpoints.root.glob(SHADOW_PREFIX + "*"):
            shutil.rmtree(folder, ignore_errors=True)
        return cls()

    def join(self, key: tuple, job_name: str) -> tuple[_Shadow, bool]:
        """The shadow of ``key`` with one more user, and whether this user starts it (a new one, named after the
        job)."""
        with self._lock:
            shadow = self._shadows.get(key)
            if shadow is None:
                shadow = self._shadows[key] = _Shadow(f"{SHADOW_PREFIX}{job_name[:38].rstrip('-')}-"
                                                      f"{uuid.uuid4().hex[:12]}")
                return shadow, True
            shadow.users += 1
            return shadow, False

    def leave(self, key: tuple, shadow: _Shadow) -> bool:
        """One user fewer; whether it was the last (who deletes the endpoint)."""
        with self._lock:
            shadow.users -= 1
            if shadow.users == 0:
                self._shadows.pop(key, None)
                return True
            return False
