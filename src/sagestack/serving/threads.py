"""How many threads a worker's model library may use, so a server's workers share the cores instead of
oversubscribing them, while a lone request still gets every core.

PyTorch starts one intra-op thread per core in every process. An endpoint runs one worker process per core by
default, so on 2 cores two BERT workers ran four busy threads whose OpenMP spin-waits starve each other: measured
here with the shipped MiniLM, two processes scoring batches of 8 copies of the 12-token warm-up review made 44
reviews/s each with two threads and 150 with one (real reviews, 75 tokens on average, score 25-35/s per core: see
``bench/bert_serving_floor.py``). Each worker therefore gets its share of the cores for a call
that answers several requests (under load), and every core for a call that answers one request (a lone client:
its latency, not the throughput, is what counts then).

Threads that outnumber the free cores now and then (a lone request in one worker while the other works) must not
spin: OpenMP's default busy wait made a 2-thread lone review on this shared 2-core machine take 834 ms and 391 ms
of CPU instead of 93 and 33 with one thread; with passive waits, 78 ms and 44 ms (measured while other work held
the cores).
"""

from __future__ import annotations

import os
import sys
from typing import Mapping


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


# What an endpoint worker's environment holds unless the operator set it: OpenMP reads its wait policy from the
# environment once, when PyTorch loads it, and has no API for it. Whoever starts the workers (the launcher, the
# topology, the k8s manifests) passes it; nothing sets it in a running process.
WORKER_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of :data:`WORKER_ENVIRONMENT` that ``environ`` (the environment workers are started with)
    does not set already: an explicit ``OMP_WAIT_POLICY`` is the operator's choice."""
    return {name: value for name, value in WORKER_ENVIRONMENT.items() if name not in environ}


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
