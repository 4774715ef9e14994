"""How an endpoint lays its model's work out on the cores: how many worker processes, how many threads each
model call uses, and how idle OpenMP threads wait.

One worker per core suits kinds whose call runs on one thread (fastText, the baseline, AutoGluon's feature
pipeline). A kind whose predictor spreads one call over every core itself (``ModelKind.intra_op``: PyTorch)
gets one worker that holds all the cores instead: two BERT workers on 2 cores had to share them (one thread
each under load, every core for a lone request), and whichever OpenMP wait they used cost something: busy
waits made the workers' threads spin against each other (7-20 req/s at 8 and 32 clients), passive waits
made a lone review wake sleeping threads between every operation (1-client p99 46.7 against 33.9 ms). One
worker with OpenMP's default short spin measured 1-client p99 37.4 against 37.1 ms for the code before
batching and 60 against 49 req/s at 32 clients (``bench/serving_http.py``, 2026-12-07).

Several workers sharing the cores get passive OpenMP waits: AutoGluon's two workers (LightGBM's OpenMP)
made 481-564 req/s at 32 clients with them and 372-457 without.
"""

from __future__ import annotations

import os
import sys


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


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


def worker_environment(workers: int | None) -> dict[str, str]:
    """The environment variables an endpoint's workers need (``workers`` as :func:`server_workers` gives it):
    passive OpenMP waits when several share the cores, nothing for a lone worker (OpenMP's default short spin
    suits one process's threads)."""
    several = (workers or available_cores()) > 1
    return dict(SHARED_CORES_ENVIRONMENT) if several else {}


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

    PyTorch's count is the process's: the caller sets it right before each model call it makes (an endpoint
    worker makes one ``/predict`` call at a time). Nothing happens without torch loaded or with an explicit
    ``OMP_NUM_THREADS``.
    """
    if threads and _torch_threads_are_ours():
        torch = sys.modules["torch"]
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _torch_threads_are_ours() -> bool:
    return "torch" in sys.modules and not os.environ.get("OMP_NUM_THREADS")
