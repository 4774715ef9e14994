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


def test_a_kind_that_spreads_a_call_over_the_cores_gets_one_worker_unless_the_operator_chose():
    from sagestack.serving.threads import server_workers

    assert server_workers("bert", None) == 1  # PyTorch's intra-op threads hold every core
    assert server_workers("fasttext", None) is None and server_workers("autogluon", None) is None  # one per core
    assert server_workers("bert", 3) == 3 and server_workers("fasttext", 1) == 1  # the operator's count wins
    assert server_workers(None, None) is None  # a model not resolved yet: one per core


def test_workers_that_share_the_cores_wait_passively_and_a_lone_worker_keeps_openmp_s_default():
    from sagestack.serving.threads import worker_environment

    assert worker_environment(2) == worker_environment(16) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert worker_environment(1) == {}


def test_a_call_sets_the_thread_count_unless_omp_num_threads_is_set():
    assert _case(CALL) == {"two": 2, "unset": 2}
    assert _case(CALL, OMP_NUM_THREADS="1") == {"two": 1, "unset": 1}


@pytest.mark.parametrize("kind", ["bert", "fasttext"])
def test_an_endpoint_s_layout_comes_from_the_kind_on_the_model_s_card_and_names_its_count(tmp_path, kind):
    import json

    from sagestack.config import load_settings
    from sagestack.models.base import CARD_FILE
    from sagestack.serving.threads import available_cores, endpoint_layout

    model = tmp_path / "model"
    model.mkdir()
    (model / CARD_FILE).write_text(json.dumps({"kind": kind, "labels": ["-1", "0", "1"]}))
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    workers, environment = endpoint_layout(settings, str(model))
    expected = 1 if kind == "bert" else available_cores()
    assert workers == expected
    assert environment == {"SAGESTACK_WORKERS": str(expected),
                           **({"OMP_WAIT_POLICY": "PASSIVE"} if expected > 1 else {})}


def test_an_endpoint_s_layout_needs_no_model_when_the_operator_set_the_count_and_creates_no_registry(tmp_path):
    from sagestack.config import load_settings
    from sagestack.serving.threads import available_cores, endpoint_layout

    home = tmp_path / "home"
    settings = load_settings(cwd=tmp_path, environ={}, home=home)
    # No registry yet, a model file that is not there: one worker per core, and nothing written.
    for ref in ("reviews-sentiment@champion", str(tmp_path / "gone.bin")):
        assert endpoint_layout(settings, ref)[0] == available_cores()
    assert not home.exists()
    assert endpoint_layout(load_settings(cwd=tmp_path, environ={}, home=home, workers=3), "ghost@champion") == (
        3, {"SAGESTACK_WORKERS": "3", "OMP_WAIT_POLICY": "PASSIVE"})


def test_a_cgroup_cpu_quota_caps_the_cores_as_a_kubernetes_cpu_limit_does(tmp_path):
    from sagestack.serving.threads import _cgroup_cpu_quota

    assert _cgroup_cpu_quota(tmp_path) is None  # no cgroup files: the affinity alone
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # limits: cpu: 1500m
    assert _cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")  # cgroup v1
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_cpu_quota(tmp_path) == 2.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert _cgroup_cpu_quota(tmp_path) is None
