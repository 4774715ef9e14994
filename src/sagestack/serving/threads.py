"""How many threads a worker's model library may use, so a server's workers share the cores instead of
oversubscribing them.

PyTorch starts one intra-op thread per core in every process. An endpoint runs one worker process per core by
default, so on 2 cores two BERT workers ran four busy threads whose OpenMP spin-waits starve each other: measured
here with the shipped MiniLM, two processes scoring batches of 8 reviews made 44 reviews/s each with two threads
and 150 with one (single reviews: 10 against 66). Each worker therefore gets its share of the cores.
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


def share_cores(workers: int | None) -> int | None:
    """Give PyTorch, when this process has imported it, ``cores // workers`` intra-op threads (at least one).

    ``workers``: the server's worker processes (``None``: one per core, BentoML's default). An explicit
    ``OMP_NUM_THREADS`` is the operator's choice and is left alone. Returns the thread count set, or ``None``.
    """
    torch = sys.modules.get("torch")
    if torch is None or os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = available_cores()
    threads = max(1, cores // (workers or cores))
    torch.set_num_threads(threads)
    return threads
