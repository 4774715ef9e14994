"""Profiler: each ProfilerReport rule on synthetic recordings that must and must not trigger it, the
system sampler's fallbacks, the report, and one short real training loop driven through the events."""

from __future__ import annotations

import json
import logging
import math
import os
import sys

import numpy as np
import pandas as pd
import pytest

from sagestack.errors import ConfigError
from sagestack.profiler import rules as R
from sagestack.profiler.framework import Profiler, ProfilerConfig
from sagestack.profiler.recording import framework_rows_to_frame, load_framework, load_profile
from sagestack.profiler.report import render_profiler_html, report_from_folder, write_profiler_report
from sagestack.profiler.system import SYSTEM_FILE, SystemMonitor, SystemSampler, load_system, system_rows_to_frame

ALL_RULES = ["LowGPUUtilization", "CPUBottleneck", "IOBottleneck", "GPUMemoryIncrease", "BatchSize", "LoadBalancing",
             "StepOutlier", "Dataloader", "MaxInitializationTime", "OverallSystemUsage", "OverallFrameworkMetrics"]


# ---- synthetic recordings ------------------------------------------------------------------------


def _series(value, n):
    return np.broadcast_to(np.asarray(value, dtype=float), (n,)) if np.ndim(value) == 0 else np.asarray(value, dtype=float)


def system(n=1100, cpu=50.0, cores=None, gpus=None, gpu_memory=None, io_wait=0.0, memory=40.0, total=80e9):
    """A system frame built through the same flattening as system.jsonl: ``gpus`` is a list of
    utilization values/arrays (one per GPU), ``gpu_memory`` the matching memory percentages."""
    cpu = _series(cpu, n)
    cores = [_series(c, n) for c in (cores if cores is not None else [cpu, cpu])]
    gpus = [_series(g, n) for g in (gpus or [])]
    gpu_memory = [_series(m, n) for m in (gpu_memory or [20.0] * len(gpus))]
    io_wait = _series(io_wait, n) if io_wait is not None else None
    rows = []
    for i in range(n):
        rows.append({
            "wall_time": 1_000.0 + 0.5 * i, "cpu_percent": cpu[i], "cpu_percent_per_core": [c[i] for c in cores],
            "io_wait_percent": None if io_wait is None else io_wait[i], "memory_percent": memory, "rss_bytes": 2**30,
            "gpus": [{"index": g, "gpu_util": gpus[g][i], "gpu_memory_used": gpu_memory[g][i] / 100 * total,
                      "gpu_memory_total": total} for g in range(len(gpus))],
        })
    return system_rows_to_frame(rows)


def framework(step_seconds, mode="train", phases=None):
    rows = []
    for i, seconds in enumerate(step_seconds):
        row = {"step": i, "epoch": 0, "mode": mode, "batch_size": 16, "wall_time": 1_000.0 + i, "step_seconds": seconds}
        for name, share in (phases or {}).items():
            row[f"{name}_seconds"] = share * seconds
        rows.append(row)
    return framework_rows_to_frame(rows)


EMPTY_FW = framework_rows_to_frame([])


def test_system_rows_flatten_to_per_core_and_per_gpu_columns():
    frame = system(n=3, cpu=30, cores=[10, 50], gpus=[80, 40], gpu_memory=[25, 50], total=8e9)
    assert {"cpu0_percent", "cpu1_percent", "gpu0_util", "gpu1_util", "gpu0_memory_percent", "gpu1_memory_used"} <= set(frame)
    assert frame["gpu1_memory_percent"].iloc[0] == pytest.approx(50.0)
    assert frame["gpu0_memory_used"].iloc[0] == pytest.approx(2e9)
    assert frame["cpu1_percent"].iloc[0] == 50.0
    assert R.gpu_indices(frame) == [0, 1]


# ---- GPU rules: the no-GPU path ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["LowGPUUtilization", "CPUBottleneck", "IOBottleneck", "GPUMemoryIncrease", "BatchSize",
                                  "LoadBalancing"])
def test_gpu_rules_are_not_applicable_without_a_gpu(name):
    result = R.RULES[name].function(system(n=1500, cpu=99, cores=[99, 99], io_wait=90), EMPTY_FW,
                                    **R.RULES[name].defaults)
    assert result.not_applicable == "no GPU"
    assert not result.triggered
    assert result.status == "not applicable (no GPU)"


# ---- LowGPUUtilization ---------------------------------------------------------------------------


def test_low_gpu_utilization_fires_when_p95_is_below_threshold():
    result = R.low_gpu_utilization(system(gpus=[30.0]), EMPTY_FW)
    assert result.triggered and "underutilized" in result.detail
    assert result.datapoints == 1100


def test_low_gpu_utilization_fires_on_fluctuation():
    util = np.tile([0.0, 100.0], 550)  # p95 = 100 > 70, p5 = 0 < 10
    result = R.low_gpu_utilization(system(gpus=[util]), EMPTY_FW)
    assert result.triggered and "fluctuating" in result.detail


def test_low_gpu_utilization_quiet_on_a_busy_gpu():
    result = R.low_gpu_utilization(system(gpus=[90.0]), EMPTY_FW)
    assert not result.triggered and result.not_applicable is None
    assert result.details["gpu0"]["p95"] == pytest.approx(90.0)


def test_low_gpu_utilization_uses_only_the_last_window():
    util = np.concatenate([np.full(600, 5.0), np.full(500, 95.0)])  # idle start, busy last 500 samples
    assert not R.low_gpu_utilization(system(gpus=[util]), EMPTY_FW, window=500).triggered
    assert R.low_gpu_utilization(system(gpus=[util]), EMPTY_FW, window=1100).triggered


def test_low_gpu_utilization_waits_for_patience():
    result = R.low_gpu_utilization(system(n=1000, gpus=[5.0]), EMPTY_FW)  # 1000 samples, patience 1000
    assert not result.triggered and "not evaluated" in result.detail
    assert R.low_gpu_utilization(system(n=1000, gpus=[5.0]), EMPTY_FW, patience=999).triggered


# ---- CPUBottleneck / IOBottleneck ----------------------------------------------------------------


def test_cpu_bottleneck_fires_when_a_busy_core_starves_the_gpu():
    result = R.cpu_bottleneck(system(gpus=[5.0], cores=[95.0, 20.0]), EMPTY_FW)
    assert result.triggered
    assert result.details["bottlenecks"] == 1100 and result.details["share_percent"] == pytest.approx(100.0)


def test_cpu_bottleneck_counts_the_share_of_samples():
    n = 1100
    high = np.where(np.arange(n) < 0.6 * n, 95.0, 30.0)
    assert R.cpu_bottleneck(system(n=n, gpus=[5.0], cores=[high, 10.0]), EMPTY_FW).triggered  # 60% > 50%
    high = np.where(np.arange(n) < 0.4 * n, 95.0, 30.0)
    result = R.cpu_bottleneck(system(n=n, gpus=[5.0], cores=[high, 10.0]), EMPTY_FW)  # 40% ≤ 50%
    assert not result.triggered and result.details["share_percent"] == pytest.approx(40.0)


def test_cpu_bottleneck_quiet_when_the_gpu_is_busy_or_the_cpu_idle():
    assert not R.cpu_bottleneck(system(gpus=[80.0], cores=[99.0, 99.0]), EMPTY_FW).triggered
    assert not R.cpu_bottleneck(system(gpus=[5.0], cores=[50.0, 50.0]), EMPTY_FW).triggered


def test_io_bottleneck_fires_on_high_io_wait_with_an_idle_gpu():
    assert R.io_bottleneck(system(gpus=[5.0], io_wait=80.0), EMPTY_FW).triggered
    assert not R.io_bottleneck(system(gpus=[5.0], io_wait=10.0), EMPTY_FW).triggered
    assert not R.io_bottleneck(system(gpus=[90.0], io_wait=80.0), EMPTY_FW).triggered


def test_io_bottleneck_not_applicable_without_io_wait():
    result = R.io_bottleneck(system(gpus=[5.0], io_wait=None), EMPTY_FW)
    assert result.not_applicable and "I/O wait" in result.not_applicable


# ---- GPUMemoryIncrease ---------------------------------------------------------------------------


def test_gpu_memory_increase_fires_on_a_jump_after_patience():
    memory = np.where(np.arange(1100) < 1050, 40.0, 60.0)
    result = R.gpu_memory_increase(system(gpus=[90.0], gpu_memory=[memory]), EMPTY_FW)
    assert result.triggered
    assert result.details["gpu0"]["max_rise"] == pytest.approx(20.0)


def test_gpu_memory_increase_quiet_on_flat_or_slow_growth_or_an_early_jump():
    flat = R.gpu_memory_increase(system(gpus=[90.0], gpu_memory=[40.0]), EMPTY_FW)
    assert not flat.triggered and flat.details["gpu0"]["max_rise"] == pytest.approx(0.0)
    slow = np.linspace(10, 21, 1100)  # +0.1 point per 10 samples
    assert not R.gpu_memory_increase(system(gpus=[90.0], gpu_memory=[slow]), EMPTY_FW).triggered
    early = np.where(np.arange(1100) < 100, 10.0, 60.0)  # the jump happens during the patience period
    assert not R.gpu_memory_increase(system(gpus=[90.0], gpu_memory=[early]), EMPTY_FW).triggered


# ---- BatchSize -----------------------------------------------------------------------------------


def test_batch_size_fires_when_cpu_gpu_and_memory_are_all_low():
    result = R.batch_size(system(cpu=30.0, gpus=[30.0], gpu_memory=[20.0]), EMPTY_FW)
    assert result.triggered


@pytest.mark.parametrize("cpu,gpu,memory", [(80.0, 30.0, 20.0), (30.0, 90.0, 20.0), (30.0, 30.0, 85.0)])
def test_batch_size_quiet_when_any_resource_is_busy(cpu, gpu, memory):
    assert not R.batch_size(system(cpu=cpu, gpus=[gpu], gpu_memory=[memory]), EMPTY_FW).triggered


def test_batch_size_waits_for_patience():
    result = R.batch_size(system(n=600, cpu=30.0, gpus=[30.0]), EMPTY_FW)
    assert not result.triggered and "not evaluated" in result.detail


# ---- LoadBalancing -------------------------------------------------------------------------------


def test_js_distance_hand_computed():
    assert R.js_distance([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)))
    assert R.js_distance([3, 5], [3, 5]) == pytest.approx(0.0)
    # m = (0.75, 0.25): KL(p||m) = 0.5 ln(2/3) + 0.5 ln 2, KL(q||m) = ln(4/3)
    expected = math.sqrt((0.5 * math.log(2 / 3) + 0.5 * math.log(2) + math.log(4 / 3)) / 2)
    assert R.js_distance([1, 1], [1, 0]) == pytest.approx(expected)


def test_load_balancing_fires_on_uneven_gpus():
    rng = np.random.default_rng(0)
    busy, idle = rng.uniform(85, 99, 1100), rng.uniform(2, 15, 1100)
    result = R.load_balancing(system(gpus=[busy, idle]), EMPTY_FW)
    assert result.triggered and result.details["distances"]["gpu0-gpu1"] == pytest.approx(math.sqrt(math.log(2)))


def test_load_balancing_quiet_on_even_gpus():
    rng = np.random.default_rng(1)
    result = R.load_balancing(system(gpus=[rng.uniform(80, 99, 1100), rng.uniform(80, 99, 1100)]), EMPTY_FW)
    assert not result.triggered and result.details["distances"]["gpu0-gpu1"] < 0.5


def test_load_balancing_needs_two_gpus():
    assert R.load_balancing(system(gpus=[50.0]), EMPTY_FW).not_applicable == "only one GPU"


# ---- StepOutlier ---------------------------------------------------------------------------------


def test_step_outlier_fires_with_more_than_n_outliers():
    steps = [1.0 if i % 13 == 0 and i < 195 else 0.1 for i in range(200)]  # 15 slow steps
    assert sum(s == 1.0 for s in steps) == 15
    result = R.step_outlier(system(n=2), framework(steps))
    assert result.triggered
    assert len(result.details["train"]["outlier_steps"]) == 15
    # mean 0.1675, population std sqrt(0.075 * 0.925) * 0.9 ≈ 0.23705 → threshold ≈ 0.8787
    assert result.details["train"]["threshold_seconds"] == pytest.approx(0.1675 + 3 * 0.9 * math.sqrt(0.075 * 0.925))


def test_step_outlier_quiet_with_few_outliers_or_few_steps():
    few = [1.0 if i in (10, 50, 90, 130, 170) else 0.1 for i in range(200)]
    result = R.step_outlier(system(n=2), framework(few))
    assert not result.triggered and len(result.details["train"]["outlier_steps"]) == 5
    short = [1.0 if i % 4 == 0 else 0.1 for i in range(60)]  # 60 steps: below SageMaker's 100-step minimum
    result = R.step_outlier(system(n=2), framework(short), n_outliers=1, stddev=1)
    assert not result.triggered and "not evaluated" in result.detail


def test_step_outlier_mode_filter_and_no_steps():
    frame = pd.concat([framework([0.1] * 150, mode="train"), framework([0.1] * 140 + [5.0] * 11, mode="eval")])
    assert R.step_outlier(system(n=2), frame).triggered
    assert not R.step_outlier(system(n=2), frame, mode="train").triggered
    assert R.step_outlier(system(n=2), frame, mode="eval").triggered
    assert R.step_outlier(system(n=2), EMPTY_FW).not_applicable == "no training steps recorded"


# ---- Dataloader ----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers,cores,fires", [(0, 8, True), (3, 8, True), (6, 8, False), (16, 8, False), (20, 8, True),
                                                 (0, 1, False)])
def test_dataloader_compares_num_workers_with_cores(workers, cores, fires):
    facts = {"num_workers": workers, "cpu_count": cores}
    result = R.dataloader(system(n=2), framework([0.1] * 5, phases={"data": 0.5}), facts=facts)
    assert result.triggered is fires and result.not_applicable is None
    assert result.details["data_seconds"]["p50"] == pytest.approx(0.05)


def test_dataloader_counts_cores_from_the_system_frame_and_needs_num_workers():
    frame = system(n=2, cores=[10.0] * 4)
    assert R.dataloader(frame, EMPTY_FW, facts={"num_workers": 1}).details["cores"] == 4
    assert "num_workers" in R.dataloader(frame, EMPTY_FW, facts={}).not_applicable


# ---- MaxInitializationTime -----------------------------------------------------------------------


def test_max_initialization_time():
    assert R.max_initialization_time(system(n=2), framework([0.1]), 1300.0).triggered  # > 20 min
    assert not R.max_initialization_time(system(n=2), framework([0.1]), 30.0).triggered
    assert R.max_initialization_time(system(n=2), framework([0.1]), 90.0, threshold=1).triggered
    waited = system(n=3001)  # 1500 s of samples and no step
    assert R.max_initialization_time(waited, EMPTY_FW, None).triggered
    assert not R.max_initialization_time(system(n=100), EMPTY_FW, None).triggered
    assert R.max_initialization_time(system(n=0), EMPTY_FW, None).not_applicable


# ---- summaries -----------------------------------------------------------------------------------


def test_overall_system_usage_statistics():
    cpu = np.arange(101, dtype=float)
    result = R.overall_system_usage(system(n=101, cpu=cpu, gpus=[cpu]), EMPTY_FW)
    assert result.summary and not result.triggered and result.status == "summary"
    table = result.details["table"]
    assert table["CPU (all cores) %"]["p50"] == pytest.approx(50.0)
    assert table["CPU (all cores) %"]["p95"] == pytest.approx(95.0)
    assert table["CPU (all cores) %"]["p99"] == pytest.approx(99.0)
    assert (table["gpu0 utilization %"]["min"], table["gpu0 utilization %"]["max"]) == (0.0, 100.0)
    assert R.overall_system_usage(system(n=0), EMPTY_FW).not_applicable == "no system samples"


def test_overall_framework_metrics_phase_shares():
    frame = framework([1.0, 1.0, 1.0, 2.0], phases={"data": 0.1, "forward": 0.3, "backward": 0.4, "optimizer": 0.1})
    result = R.overall_framework_metrics(system(n=2), frame, 12.5)
    assert result.summary and not result.triggered
    phases = result.details["phases"]
    assert phases["backward"]["share"] == pytest.approx(0.4)
    assert phases["other"]["share"] == pytest.approx(0.1)
    assert phases["data"]["seconds"] == pytest.approx(0.5)
    assert result.details["step_seconds"]["max"] == 2.0 and result.details["steps"] == 4
    assert result.details["loop_seconds"] == pytest.approx(5.0)  # wall_time 1000..1003, last step 2 s


# ---- evaluation, parameters ----------------------------------------------------------------------


def test_rules_carry_sagemaker_defaults():
    defaults = {name: rule.defaults for name, rule in R.RULES.items()}
    assert list(defaults) == ALL_RULES
    assert defaults["LowGPUUtilization"] == {"threshold_p95": 70, "threshold_p5": 10, "window": 500, "patience": 1000}
    assert defaults["CPUBottleneck"] == {"threshold": 50, "gpu_threshold": 10, "cpu_threshold": 90, "patience": 1000}
    assert defaults["IOBottleneck"] == {"threshold": 50, "gpu_threshold": 10, "io_threshold": 50, "patience": 1000}
    assert defaults["GPUMemoryIncrease"] == {"increase": 5, "patience": 1000, "window": 10}
    assert defaults["BatchSize"] == {"cpu_threshold_p95": 70, "gpu_threshold_p95": 70, "gpu_memory_threshold_p95": 70,
                                     "patience": 1000, "window": 500}
    assert defaults["LoadBalancing"] == {"threshold": 0.5, "patience": 1000}
    assert defaults["StepOutlier"] == {"stddev": 3, "mode": None, "n_outliers": 10}
    assert defaults["Dataloader"] == {"min_threshold": 70, "max_threshold": 200}
    assert defaults["MaxInitializationTime"] == {"threshold": 20}


def test_evaluate_rules_runs_all_with_overrides():
    frame = system(n=50, gpus=[5.0])
    results = R.evaluate_rules(frame, framework([0.1] * 20), 3.0, {"num_workers": 2, "cpu_count": 2})
    assert [r.name for r in results] == ALL_RULES
    low = results[0]
    assert not low.triggered and "not evaluated" in low.detail
    overridden = R.evaluate_rules(frame, EMPTY_FW, params={"LowGPUUtilization": {"patience": 10}},
                                  rules=["LowGPUUtilization"])
    assert overridden[0].triggered and overridden[0].parameters["patience"] == 10


def test_evaluate_rules_rejects_unknown_names():
    with pytest.raises(ConfigError, match="NoSuchRule"):
        R.evaluate_rules(system(n=2), EMPTY_FW, params={"NoSuchRule": {}})
    with pytest.raises(ConfigError, match="bogus"):
        R.evaluate_rules(system(n=2), EMPTY_FW, params={"StepOutlier": {"bogus": 1}})
    with pytest.raises(ConfigError):
        ProfilerConfig(rules={"CPUBottleneck": {"treshold": 1}})


def test_profiler_report_params_maps_sagemaker_keys():
    assert R.profiler_report_params({"CPUBottleneck_threshold": 40, "lowgpuutilization_threshold_p95": 60}) == {
        "CPUBottleneck": {"threshold": 40}, "LowGPUUtilization": {"threshold_p95": 60}}
    with pytest.raises(ConfigError):
        R.profiler_report_params({"Nope_threshold": 1})


def test_a_failing_rule_does_not_hide_the_others(monkeypatch):
    def broken(system, framework, init_seconds=None, facts=None):
        raise RuntimeError("boom")

    monkeypatch.setitem(R.RULES, "StepOutlier", R.ProfilerRule("StepOutlier", broken, "d", "r"))
    results = {r.name: r for r in R.evaluate_rules(system(n=2), framework([0.1]))}
    assert "boom" in results["StepOutlier"].not_applicable
    assert results["OverallFrameworkMetrics"].not_applicable is None


# ---- system sampling -----------------------------------------------------------------------------


def test_system_monitor_writes_samples_and_reads_back(tmp_path):
    from conftest import wait_until

    with SystemMonitor(tmp_path, interval=0.02) as monitor:
        assert monitor.running
        wait_until(lambda: monitor.samples >= 3, 10, "the monitor took fewer than 3 samples", interval=0.02)
    assert not monitor.running
    monitor.stop()  # a second stop is harmless
    frame = load_system(tmp_path)
    assert len(frame) == monitor.samples >= 3
    assert frame["wall_time"].is_monotonic_increasing
    assert frame["memory_percent"].between(0, 100).all()
    assert (frame["rss_bytes"] > 0).all()


def test_system_sampler_falls_back_to_proc_without_psutil(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    sampler = SystemSampler(gpus=False)
    assert sampler._psutil is None
    import time

    time.sleep(0.1)  # /proc/stat counts in 10 ms clock ticks
    sample = sampler.sample()
    if sys.platform.startswith("linux"):
        assert sample["cpu_percent"] is not None and 0 <= sample["cpu_percent"] <= 100
        assert len(sample["cpu_percent_per_core"]) >= 1
        assert 0 < sample["memory_percent"] < 100
    assert sample["gpus"] == []


def test_system_sampler_falls_back_to_the_load_average_without_proc(monkeypatch, tmp_path):
    from sagestack.profiler import system as system_module

    monkeypatch.setitem(sys.modules, "psutil", None)
    # A machine without /proc/stat: the sampler's own path, not os.path.exists for the whole process.
    monkeypatch.setattr(system_module, "PROC_STAT", str(tmp_path / "no-proc" / "stat"))
    sampler = SystemSampler(gpus=False)
    assert sampler._psutil is None and sampler._proc_cpu is None
    sample = sampler.sample()
    assert sample["cpu_percent_per_core"] == [] and sample["io_wait_percent"] is None
    expected = min(100.0, 100.0 * os.getloadavg()[0] / (os.cpu_count() or 1))
    assert sample["cpu_percent"] == pytest.approx(expected, abs=5)  # the load average, read a moment apart


def test_load_system_skips_a_truncated_line(tmp_path):
    good = {"wall_time": 1.0, "cpu_percent": 10.0, "cpu_percent_per_core": [10.0], "io_wait_percent": 0.0,
            "memory_percent": 5.0, "rss_bytes": 100, "gpus": []}
    (tmp_path / SYSTEM_FILE).write_text(json.dumps(good) + "\n" + '{"wall_time": 2.0, "cpu_per', encoding="utf-8")
    frame = load_system(tmp_path)
    assert len(frame) == 1 and frame["cpu0_percent"].iloc[0] == 10.0


def test_profiler_config_validation():
    with pytest.raises(ConfigError, match="system interval must be above 0"):
        ProfilerConfig(system_interval=0)
    with pytest.raises(ConfigError, match="^--profile-num-steps must be 1 or more, got 0$"):
        ProfilerConfig(num_steps=0)
    with pytest.raises(ConfigError, match="^--profile-start-step must be 0 or more"):
        ProfilerConfig(start_step=-1)
    with pytest.raises(ValueError):
        SystemMonitor("unused", interval=-1)


# ---- report --------------------------------------------------------------------------------------


def test_report_names_every_rule_and_escapes(tmp_path):
    frame = system(n=20, gpus=[50.0])
    steps = framework([0.1] * 10, phases={"data": 0.2, "forward": 0.3, "backward": 0.3, "optimizer": 0.1})
    facts = {"stop_reason": "<script>alert(1)</script>", "init_seconds": 4.0, "num_workers": 2, "cpu_count": 2}
    results = R.evaluate_rules(frame, steps, 4.0, facts)
    page = render_profiler_html(results, frame, steps, facts)
    for name in ALL_RULES:
        assert name in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert page.count("data:image/png;base64,") == 2  # system and step charts
    paths = write_profiler_report(tmp_path, results, frame, steps, facts)
    document = json.loads(paths["rules"].read_text())
    assert [r["name"] for r in document["rules"]] == ALL_RULES
    assert paths["report"].read_text().startswith("<!doctype html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profiler-report.html", "profiler-rules.json"]


def test_report_without_matplotlib_keeps_the_tables(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    steps = framework([0.1] * 10, phases={"forward": 0.5})
    page = render_profiler_html(R.evaluate_rules(system(n=5), steps), system(n=5), steps, {})
    assert "Charts left out" in page and "base64" not in page
    assert "Share of step time per phase" in page and "OverallSystemUsage" in page


# ---- a real training loop ------------------------------------------------------------------------


def _train(profiler, steps=30, stop_at=None, data_before_step=False, num_workers=0):
    import torch

    from sagestack.debugger.events import TrainingState

    torch.manual_seed(0)
    model = torch.nn.Linear(16, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = TrainingState(model=model, optimizer=optimizer, extra={"num_workers": num_workers})
    profiler.on_train_begin(state)
    for step in range(steps):
        state.step, state.batch_size = step, 8
        if data_before_step:
            profiler.on_phase_begin(state, "data")
            x, y = torch.randn(8, 16), torch.randint(0, 3, (8,))
            profiler.on_phase_end(state, "data")
            profiler.on_step_begin(state)
        else:
            profiler.on_step_begin(state)
            profiler.on_phase_begin(state, "data")
            x, y = torch.randn(8, 16), torch.randint(0, 3, (8,))
            profiler.on_phase_end(state, "data")
        profiler.on_phase_begin(state, "forward")
        loss = torch.nn.functional.cross_entropy(model(x), y)
        profiler.on_phase_end(state, "forward")
        profiler.on_phase_begin(state, "backward")
        optimizer.zero_grad()
        loss.backward()
        profiler.on_phase_end(state, "backward")
        profiler.on_phase_begin(state, "optimizer")
        optimizer.step()
        profiler.on_phase_end(state, "optimizer")
        state.loss = loss.item()
        profiler.on_step_end(state)
        if stop_at is not None and step == stop_at:
            state.request_stop("test stop")
            break
    profiler.on_train_end(state)
    return state


def _trace_names(path):
    document = json.loads(path.read_text())
    events = document["traceEvents"] if isinstance(document, dict) else document
    return {e.get("name") for e in events}


def test_profiler_on_a_real_loop(tmp_path):
    out = tmp_path / "profile"
    profiler = Profiler(out, ProfilerConfig(system_interval=0.05, start_step=5, num_steps=3))
    _train(profiler, steps=30)
    assert profiler.errors == []

    steps = load_framework(out)
    assert len(steps) == 30 and steps["step"].tolist() == list(range(30))
    phase_sum = steps[[f"{p}_seconds" for p in ("data", "forward", "backward", "optimizer")]].sum(axis=1)
    assert (steps[[f"{p}_seconds" for p in ("data", "forward", "backward", "optimizer")]] > 0).all().all()
    assert (phase_sum <= steps["step_seconds"]).all()
    assert (steps["batch_size"] == 8).all() and steps["wall_time"].is_monotonic_increasing

    samples = load_system(out)
    assert len(samples) >= 1 and samples["cpu_percent"].notna().all()

    trace = out / "trace" / "trace.json"
    names = _trace_names(trace)  # valid JSON
    assert {"step#5", "step#6", "step#7", "phase:forward"} <= names
    assert "step#4" not in names and "step#8" not in names
    top_ops = (out / "trace" / "top_ops.txt").read_text()
    names = [line.split()[0] for line in top_ops.splitlines() if line.strip()]
    assert "aten::addmm" in names and not [n for n in names if n.startswith(("step#", "phase:"))]

    facts = json.loads((out / "run.json").read_text())
    assert facts["num_workers"] == 0 and facts["steps"] == 30
    assert 0 <= facts["init_seconds"] < 60
    assert facts["trace"]["state"] == "complete" and facts["trace"]["steps"] == [5, 6, 7]

    page = (out / "profiler-report.html").read_text()
    for name in ALL_RULES:
        assert name in page
    rules = json.loads((out / "profiler-rules.json").read_text())
    by_name = {r["name"]: r for r in rules["rules"]}
    assert set(by_name) == set(ALL_RULES)
    if facts["gpu_count"] == 0:
        assert by_name["LowGPUUtilization"]["status"] == "not applicable (no GPU)"
    assert by_name["OverallFrameworkMetrics"]["datapoints"] == 30
    assert [r.name for r in profiler.results] == ALL_RULES and profiler.report_path == out / "profiler-report.html"

    recording = load_profile(out)  # the rules re-run from disk give the same verdicts
    again, _ = report_from_folder(out)
    assert [(r.name, r.triggered, r.not_applicable) for r in again] == [(r["name"], r["triggered"], r["not_applicable"])
                                                                       for r in rules["rules"]]
    assert recording.init_seconds == pytest.approx(facts["init_seconds"])


def test_profiler_exports_the_trace_when_training_stops_inside_the_window(tmp_path):
    profiler = Profiler(tmp_path, ProfilerConfig(system_interval=0.05, start_step=5, num_steps=10))
    _train(profiler, steps=30, stop_at=6)
    names = _trace_names(tmp_path / "trace" / "trace.json")
    assert {"step#5", "step#6"} <= names
    facts = json.loads((tmp_path / "run.json").read_text())
    assert facts["trace"]["state"].startswith("partial") and facts["trace"]["steps"] == [5, 6]
    assert facts["stopped_early"] and facts["stop_reason"] == "test stop"
    assert len(load_framework(tmp_path)) == 7


def test_profiler_without_trace_when_training_ends_before_the_window(tmp_path):
    profiler = Profiler(tmp_path, ProfilerConfig(system_interval=0.05, start_step=50, num_steps=3))
    _train(profiler, steps=4)
    assert not (tmp_path / "trace").exists()
    assert json.loads((tmp_path / "run.json").read_text())["trace"]["state"].startswith("not run")
    assert (tmp_path / "profiler-report.html").is_file()


def test_data_loaded_before_step_begin_counts_in_the_next_step(tmp_path):
    profiler = Profiler(tmp_path, ProfilerConfig(system_interval=0.05, trace=False))
    _train(profiler, steps=10, data_before_step=True)
    steps = load_framework(tmp_path)
    assert len(steps) == 10 and steps["data_seconds"].gt(0).all()
    phases = steps[[f"{p}_seconds" for p in ("data", "forward", "backward", "optimizer")]].sum(axis=1)
    assert (phases <= steps["step_seconds"]).all()


def test_initialization_time_runs_from_created_at(tmp_path):
    import time

    profiler = Profiler(tmp_path, ProfilerConfig(system_interval=0.05, trace=False), created_at=time.time() - 100)
    _train(profiler, steps=2)
    facts = json.loads((tmp_path / "run.json").read_text())
    assert 100 <= facts["init_seconds"] < 160


def test_profiling_failures_never_reach_the_loop(tmp_path, monkeypatch, caplog):
    import torch.profiler

    def refuse(*args, **kwargs):
        raise RuntimeError("profiler unavailable")

    monkeypatch.setattr(torch.profiler, "profile", refuse)
    profiler = Profiler(tmp_path, ProfilerConfig(system_interval=0.05, start_step=1, num_steps=2))
    with caplog.at_level(logging.WARNING, logger="sagestack.profiler.framework"):
        _train(profiler, steps=5)
    assert any("profiler unavailable" in e for e in profiler.errors)
    assert "training continues" in caplog.text
    assert len(load_framework(tmp_path)) == 5  # the steps were still recorded
    assert (tmp_path / "profiler-report.html").is_file()

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the output folder should be")
    broken = Profiler(blocked / "out", ProfilerConfig(system_interval=0.05))
    _train(broken, steps=3)  # must not raise
    assert broken.errors and not (blocked / "out").exists()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("device_name", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not _cuda_available(), reason="needs a CUDA GPU (the cpu case runs the same loop and checks everywhere)"))])
def test_profiler_on_a_device_loop(tmp_path, device_name):
    """The same loop on the device the training job names: CUDA synchronised, its memory and kernels recorded
    on a GPU; on the CPU, the same code records no CUDA facts (the path every CI machine takes)."""
    import torch

    from sagestack.debugger.events import TrainingState

    on_cuda = device_name == "cuda"
    device = torch.device(device_name)
    model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    profiler = Profiler(tmp_path, ProfilerConfig(system_interval=0.05, start_step=5, num_steps=3))
    state = TrainingState(model=model, optimizer=optimizer, extra={"num_workers": 2, "device": device})
    profiler.on_train_begin(state)
    for step in range(40):
        state.step, state.batch_size = step, 64
        profiler.on_step_begin(state)
        for phase in ("data", "forward", "backward", "optimizer"):
            profiler.on_phase_begin(state, phase)
            if phase == "data":
                x, y = torch.randn(64, 512, device=device), torch.randint(0, 10, (64,), device=device)
            elif phase == "forward":
                loss = torch.nn.functional.cross_entropy(model(x), y)
            elif phase == "backward":
                optimizer.zero_grad()
                loss.backward()
            else:
                optimizer.step()
            profiler.on_phase_end(state, phase)
        profiler.on_step_end(state)
    profiler.on_train_end(state)
    assert profiler.errors == []

    facts = json.loads((tmp_path / "run.json").read_text())
    assert facts["cuda"] is on_cuda and facts["cuda_sync"] is on_cuda and facts["device"].startswith(device_name)
    steps = load_framework(tmp_path)
    assert len(steps) == 40
    if on_cuda:
        assert (steps["gpu_memory_allocated"] > 0).all()
    else:
        assert steps["gpu_memory_allocated"].isna().all()
    phases = steps[[f"{p}_seconds" for p in ("data", "forward", "backward", "optimizer")]].sum(axis=1)
    assert (phases <= steps["step_seconds"]).all()
    document = json.loads((tmp_path / "trace" / "trace.json").read_text())
    events = document["traceEvents"] if isinstance(document, dict) else document
    assert any(e.get("cat") == "kernel" for e in events) is on_cuda  # GPU kernels were traced on CUDA only
    assert {"step#5", "step#6", "step#7"} <= {e.get("name") for e in events}
    top_ops = (tmp_path / "trace" / "top_ops.txt").read_text()
    assert "aten::addmm" in top_ops and ("GPU time" in top_ops) is on_cuda
    by_name = {r.name: r for r in profiler.results}
    if facts["gpu_count"]:  # NVML present: GPU rules are judged (here: too few samples for patience)
        samples = load_system(tmp_path)
        assert samples["gpu0_util"].notna().all() and samples["gpu0_memory_total"].gt(0).all()
        assert by_name["LowGPUUtilization"].not_applicable is None
        assert "not evaluated" in by_name["LowGPUUtilization"].detail
    else:
        assert by_name["LowGPUUtilization"].not_applicable == "no GPU"
