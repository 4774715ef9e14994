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


CALL = """
import json
import torch
from sagestack.serving.threads import use_threads
torch.set_num_threads(1)
use_threads(2)
two = torch.get_num_threads()
use_threads(None)
print(json.dumps({"two": two, "unset": torch.get_num_threads()}))
"""


def _case(code: str, **env: str) -> dict:
    import json

    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")} | env
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_worker_s_openmp_threads_wait_passively_unless_the_operator_chose(tmp_path):
    from sagestack.config import load_settings
    from sagestack.bento.launch import serve_env
    from sagestack.serving.threads import worker_environment

    assert worker_environment({}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert worker_environment({"OMP_WAIT_POLICY": "active"}) == {}
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    # Whoever starts the workers passes it; the operator's own policy wins.
    assert serve_env(settings, "m@champion", base={})["OMP_WAIT_POLICY"] == "PASSIVE"
    assert serve_env(settings, "m@champion", base={"OMP_WAIT_POLICY": "active"})["OMP_WAIT_POLICY"] == "active"


def test_a_call_sets_the_thread_count_unless_omp_num_threads_is_set():
    assert _case(CALL) == {"two": 2, "unset": 2}
    assert _case(CALL, OMP_NUM_THREADS="1") == {"two": 1, "unset": 1}
