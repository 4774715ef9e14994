"""An endpoint worker gives PyTorch its share of the cores (tests/unit, a process of its own per case)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CASE = """
import json, sys
import torch
from sagestack.serving.threads import available_cores, share_cores
workers = None if sys.argv[1] == "default" else int(sys.argv[1])
before = torch.get_num_threads()
print(json.dumps({"before": before, "set": share_cores(workers), "threads": torch.get_num_threads(),
                  "cores": available_cores()}))
"""


def _run(workers: str, **env: str) -> dict:
    import json

    environment = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | env
    done = subprocess.run([sys.executable, "-c", CASE, workers], capture_output=True, text=True, env=environment,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("workers", ["default", "2", "1"])
def test_each_worker_gets_its_share_of_the_cores(workers):
    got = _run(workers)
    expected = max(1, got["cores"] // (got["cores"] if workers == "default" else int(workers)))
    assert got["set"] == got["threads"] == expected


def test_an_explicit_omp_num_threads_is_left_alone():
    got = _run("default", OMP_NUM_THREADS="3")
    assert got["set"] is None and got["threads"] == got["before"]
