"""How an endpoint lays its model's work out on the cores: how many worker processes, how many threads each
model call uses, and how idle OpenMP threads wait.

One worker per core suits kinds whose call runs on one thread (fastText, the baseline, AutoGluon's feature
pipeline). A kind whose predictor spreads one call over every core itself (``ModelKind.intra_op``: PyTorch)
gets one worker that holds all the cores instead: two BERT workers on 2 cores had to share them (one thread
each under load, every core for a lone request), and whichever OpenMP wait they used cost something: busy
waits made the workers' threads spin against each other (7-20 req/s at 8 and 32 clients), passive waits
made a lone review wake sleeping threads between every operation (1-client p99 46.7 against 33.9 ms). One
worker with OpenMP's default short spin, its heavy calls on one model thread (:func:`model_thread`), measured
1-client p99 a median 1.4 ms below the code before batching's over 11 paired runs, and 54 against 39 req/s
at 32 clients (``bench/serving_http.py``, 2026-12-07; the README has the runs).

Several workers sharing the cores get passive OpenMP waits: AutoGluon's two workers (LightGBM's OpenMP)
made 481-564 req/s at 32 clients with them and 372-457 without.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable


def available_cores() -> int:
    """The cores this process may use: its CPU affinity (which a container's cpuset narrows), at most its
    cgroup's CPU quota rounded down (a Kubernetes CPU limit, in the container's own cgroup v2 namespace or
    cgroup v1; at least one)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cores, int(quota))) if quota else cores


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs the cgroup's quota allows (cgroup v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``), ``None`` when unlimited."""
    try:
        if (root / "cpu.max").is_file():
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if (root / "cpu" / "cpu.cfs_quota_us").is_file():
            quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
            return None if quota <= 0 else quota / int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):  # unreadable or unexpected: the affinity alone
        return None
    return None


# What workers that share the cores need in their environment unless the operator set it: OpenMP reads its wait
# policy from the environment once, when a library loads it, and has no API for it. The service declares it for
# the workers BentoML starts (its ``envs``); nothing sets it in a running process.
SHARED_CORES_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def server_workers(kind: str | None, workers: int | None) -> int | None:
    """How many worker processes an endpoint serving a model of ``kind`` runs: the operator's ``workers``,
    else one for a kind that spreads a call over every core itself (``ModelKind.intra_op``), else ``None``:
    one per core (BentoML's ``cpu_count``). An unknown or unresolved kind (``None``) gets one per core."""
    if workers or kind is None:
        return workers
    from sagestack.models import get_kind

    return 1 if get_kind(kind).intra_op else None


def worker_environment(workers: int) -> dict[str, str]:
    """The OpenMP environment ``workers`` endpoint workers need: passive waits when several share the cores,
    nothing for a lone worker (OpenMP's default short spin suits one process's threads).

    A lone worker does not know of other servers on the same cores: ``sagestack up`` runs variant A (fastText,
    a worker per core) beside variant B; a BERT B then spins briefly beside A's passive workers."""
    return dict(SHARED_CORES_ENVIRONMENT) if workers > 1 else {}


def endpoint_layout(settings, ref: str) -> tuple[int, dict[str, str]]:
    """How many workers an endpoint serving ``ref`` runs, and the environment they are started with: the
    operator's ``workers``, else :func:`server_workers` for the model's kind (one per core when the kind cannot
    be told yet: a missing model is ``check_deployable``'s to report). The environment names the count
    (``SAGESTACK_WORKERS``: a worker shares the cores by the count the server started, whatever it loads
    later) and :func:`worker_environment`'s variables. The model is looked up only without a count, in the
    process that starts the workers."""
    from sagestack.config import fields_as_env

    workers = settings.endpoint.workers or server_workers(_kind_hint(settings, ref), None) or available_cores()
    return workers, {**fields_as_env(workers=workers), **worker_environment(workers)}


def _kind_hint(settings, ref: str) -> str | None:
    from sagestack.registry import kind_of, registry_exists

    if not Path(ref).exists() and not registry_exists(settings):
        return None  # no registry yet: looking would create one
    try:
        return kind_of(settings, ref)
    except Exception:  # noqa: BLE001 - only a hint; check_deployable reports what is wrong in one line
        return None


def share_cores(workers: int | None) -> int | None:
    """Give PyTorch, when this process has imported it, ``cores // workers`` intra-op threads (at least one).

    ``workers``: the server's worker processes (``None``: one per core, BentoML's default). An explicit
    ``OMP_NUM_THREADS`` is the operator's choice and is left alone. Returns the thread count set, or ``None``.
    """
    if not _torch_threads_are_ours():
        return None
    cores = available_cores()
    threads = max(1, cores // (workers or cores))
    sys.modules["torch"].set_num_threads(threads)
    return threads


def use_threads(threads: int | None) -> None:
    """Run the next PyTorch operations on ``threads`` intra-op threads (``None``: as they are).

    The caller sets it right before each model call it makes, on the thread that makes it (an endpoint worker
    makes its calls on one model thread, one at a time). Nothing happens without torch loaded or with an explicit
    ``OMP_NUM_THREADS``.
    """
    if threads and _torch_threads_are_ours():
        torch = sys.modules["torch"]
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _torch_threads_are_ours() -> bool:
    return "torch" in sys.modules and not os.environ.get("OMP_NUM_THREADS")


# The one thread a process runs its heavy model calls on. Why one: PyTorch's OpenMP (libgomp) keeps a team of
# threads for every thread that starts parallel work, and once the teams' threads outnumber the cores it cuts
# every team's spin between parallel regions to about 100 iterations, so each of a BERT forward pass's ~170
# regions wakes sleeping threads. asyncio's pool ran each call on whichever of its threads was free, and a worker
# soon had several teams: measured in-process, a lone review then took 166 voluntary context switches and 3 ms
# of system time, p50 +6 ms against the same calls from one thread, which made none.
_model_thread: ThreadPoolExecutor | None = None
_model_thread_lock = threading.Lock()


def _forget_model_thread() -> None:
    global _model_thread
    _model_thread = None  # a forked child has the executor but not its thread: it makes its own


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_model_thread)


def model_thread() -> ThreadPoolExecutor:
    """The single thread this process runs its model calls on (made on first use): the warm-up prediction and
    every heavy kind's prediction, so their OpenMP work always starts from the same thread."""
    global _model_thread
    with _model_thread_lock:
        if _model_thread is None:
            _model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sagestack-model")
        return _model_thread


def call_on_model_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` on :func:`model_thread` and wait for its result (from any other thread)."""
    return model_thread().submit(function, *args).result()


async def on_model_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` on :func:`model_thread` without blocking the event loop; return its result."""
    return await asyncio.get_running_loop().run_in_executor(model_thread(), partial(function, *args))
