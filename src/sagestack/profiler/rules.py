"""ProfilerReport rules: SageMaker Debugger's built-in profiler rules as pure functions of the recordings.

Every rule takes the system frame (:func:`sagestack.profiler.system.load_system`), the framework
frame (:func:`sagestack.profiler.recording.load_framework`), the initialization time in seconds
and the run's facts (``num_workers``, ``cpu_count``, ...), plus its own keyword parameters, and
returns a :class:`RuleResult`. Names, parameter names and defaults are SageMaker's
(``smdebug_rulesconfig.profiler_rules.rules`` — the classes ``ProfilerRule.sagemaker(...)``
takes — and the rule implementations in ``smdebug/profiler/analysis/rules``). SageMaker's
``scan_interval_us`` is left out: it paces a streaming scan, and these rules judge a finished
recording. A *datapoint* is one system sample (0.5 s by default) for system rules and one
training step for framework rules, as in SageMaker.

Rules that judge GPUs return ``not_applicable="no GPU"`` when the recording has no GPU
columns, instead of passing silently. A rule whose data are fewer than its ``patience`` is *not
evaluated*: it does not trigger and its detail says so (SageMaker's behaviour).
``OverallSystemUsage`` and ``OverallFrameworkMetrics`` are summaries and never trigger.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from sagestack import stats
from sagestack.errors import ConfigError
from sagestack.plugins import Registry
from sagestack.profiler.recording import PHASES
from sagestack.profiler.system import core_columns, gpu_indices

NO_GPU = "no GPU"
STAT_QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
# SageMaker's StepOutlier judges a mode only once it has more than this many steps (fixed, not a parameter).
STEP_OUTLIER_MIN_STEPS = 100


@dataclass(frozen=True)
class RuleResult:
    """What one rule found.

    Attributes:
        name: SageMaker's rule name (e.g. ``LowGPUUtilization``).
        triggered: the rule's condition was met.
        not_applicable: why the rule could not be judged on this run (e.g. ``"no GPU"``), else None.
        datapoints: how many datapoints it checked (system samples or steps).
        detail: one line with the numbers behind the verdict.
        recommendation: what to do when it triggers (SageMaker's report gives one per rule).
        parameters: the parameters it ran with.
        details: structured figures for the report (statistics tables, outlier steps, ...).
        summary: True for the two summary rules, which never trigger.
    """

    name: str
    triggered: bool
    not_applicable: str | None
    datapoints: int
    detail: str
    recommendation: str
    parameters: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    summary: bool = False

    @property
    def status(self) -> str:
        """``triggered``, ``not applicable (...)``, ``summary`` or ``not triggered``."""
        if self.not_applicable:
            return f"not applicable ({self.not_applicable})"
        if self.summary:
            return "summary"
        return "triggered" if self.triggered else "not triggered"

    def to_dict(self) -> dict:
        """A JSON-ready dict (non-finite floats become None)."""
        out = asdict(self)
        out["status"] = self.status
        return _json_ready(out)


@dataclass(frozen=True)
class ProfilerRule:
    """A registered rule: its function, SageMaker's defaults (read from the signature) and texts."""

    name: str
    function: Callable[..., RuleResult]
    description: str
    recommendation: str
    summary: bool = False

    @property
    def defaults(self) -> dict:
        """The rule's parameters and SageMaker's default values."""
        signature = inspect.signature(self.function)
        return {n: p.default for n, p in signature.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


RULES: Registry[ProfilerRule] = Registry("profiler rule")


def register(name: str, description: str, recommendation: str, summary: bool = False):
    """Decorator: add a rule function to :data:`RULES` under SageMaker's rule name."""
    return RULES.register(name, lambda function: ProfilerRule(name, function, description, recommendation, summary))


# ---------------------------------------------------------------------------------------------
# helpers


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.array([], dtype=float)
    return frame[column].dropna().to_numpy(dtype=float)


def _q(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else float("nan")


def _stats(values: np.ndarray) -> dict:
    """min, p50, p95, p99, max (and mean) of the finite values; an empty input gives NaNs."""
    values = values[np.isfinite(values)] if len(values) else values
    if not len(values):
        return {k: float("nan") for k in ("mean", "min", "p50", "p95", "p99", "max")}
    out = {"mean": float(np.mean(values)), "min": float(np.min(values))}
    out.update({k: _q(values, q) for k, q in STAT_QUANTILES.items()})
    out["max"] = float(np.max(values))
    return out


def _result(name: str, *, triggered: bool = False, datapoints: int = 0, detail: str = "", not_applicable: str | None = None,
            parameters: dict | None = None, details: dict | None = None) -> RuleResult:
    rule = RULES[name]
    if not_applicable and not detail:
        detail = f"not applicable: {not_applicable}"
    return RuleResult(name, bool(triggered), not_applicable, int(datapoints), detail, rule.recommendation,
                      dict(parameters or {}), dict(details or {}), rule.summary)


def _not_evaluated(n: int, patience: int, what: str = "datapoints") -> str:
    return f"not evaluated: {n} {what}, the rule waits for more than patience={patience}"


def _cpu_max_per_sample(system: pd.DataFrame) -> pd.Series:
    """Highest per-core utilization of each sample (the machine figure when cores were not recorded)."""
    cores = core_columns(system)
    if cores:
        return system[cores].max(axis=1, skipna=True)
    return system["cpu_percent"] if "cpu_percent" in system else pd.Series(np.nan, index=system.index)


def _min_gpu_per_sample(system: pd.DataFrame, gpus: list[int]) -> pd.Series:
    return system[[f"gpu{i}_util" for i in gpus]].min(axis=1, skipna=True)


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.1f}%"


# ---------------------------------------------------------------------------------------------
# system rules


@register(
    "LowGPUUtilization",
    "A GPU is underutilized (95th percentile of utilization below threshold_p95) or fluctuates "
    "(95th percentile above threshold_p95 and 5th percentile below threshold_p5), over the last `window` samples.",
    "Look for bottlenecks that starve the GPU (data loading, CPU preprocessing, I/O), remove blocking calls "
    "(.item(), .cpu(), synchronize) from the step, increase the batch size, or choose a smaller GPU instance.",
)
def low_gpu_utilization(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
                        facts: dict | None = None, *, threshold_p95: float = 70, threshold_p5: float = 10,
                        window: int = 500, patience: int = 1000) -> RuleResult:
    """Per GPU with more than ``patience`` samples, over its last ``window`` samples u:
    underutilized if ``p95(u) < threshold_p95``; fluctuating if ``p95(u) > threshold_p95`` and
    ``p5(u) < threshold_p5``. Triggers if any GPU is either."""
    params = dict(threshold_p95=threshold_p95, threshold_p5=threshold_p5, window=window, patience=patience)
    gpus = gpu_indices(system)
    if not gpus:
        return _result("LowGPUUtilization", not_applicable=NO_GPU, datapoints=len(system), parameters=params)
    parts, triggered, datapoints, per_gpu = [], False, 0, {}
    for gpu in gpus:
        values = _values(system, f"gpu{gpu}_util")
        datapoints = max(datapoints, len(values))
        if len(values) <= patience:
            parts.append(f"gpu{gpu}: {_not_evaluated(len(values), patience, 'samples')}")
            continue
        recent = values[-window:]
        p95, p5 = _q(recent, 0.95), _q(recent, 0.05)
        per_gpu[f"gpu{gpu}"] = {"p95": p95, "p5": p5, "max": float(values.max())}
        if p95 < threshold_p95:
            triggered = True
            parts.append(f"gpu{gpu}: p95 {_pct(p95)} < {threshold_p95}% (underutilized)")
        elif p95 > threshold_p95 and p5 < threshold_p5:
            triggered = True
            parts.append(f"gpu{gpu}: p95 {_pct(p95)} but p5 {_pct(p5)} < {threshold_p5}% (fluctuating)")
        else:
            parts.append(f"gpu{gpu}: p95 {_pct(p95)}, p5 {_pct(p5)}")
    return _result("LowGPUUtilization", triggered=triggered, datapoints=datapoints, detail="; ".join(parts),
                   parameters=params, details=per_gpu)


def _bottleneck(name: str, system: pd.DataFrame, high: pd.Series, high_label: str, threshold: float,
                gpu_threshold: float, patience: int, params: dict) -> RuleResult:
    gpus = gpu_indices(system)
    low_gpu = _min_gpu_per_sample(system, gpus) < gpu_threshold
    bottleneck = low_gpu & high
    n, count = len(system), int(bottleneck.sum())
    share = 100.0 * count / n if n else 0.0
    details = {"bottlenecks": count, "low_gpu_utilization": int(low_gpu.sum()), "share_percent": share}
    figures = (f"{count} of {n} samples ({share:.1f}%) had a GPU below {gpu_threshold}% while {high_label}; "
               f"rule threshold {threshold}%")
    if n <= patience:
        return _result(name, datapoints=n, detail=f"{figures} — {_not_evaluated(n, patience, 'samples')}",
                       parameters=params, details=details)
    return _result(name, triggered=share > threshold, datapoints=n, detail=figures, parameters=params, details=details)


@register(
    "CPUBottleneck",
    "The GPU waits for the CPU: share of samples in which a GPU's utilization is below gpu_threshold while a "
    "CPU core is above cpu_threshold exceeds `threshold` percent.",
    "Move preprocessing (e.g. tokenization) out of the training step, raise DataLoader num_workers or prefetch "
    "batches, or choose an instance with more CPU cores per GPU.",
)
def cpu_bottleneck(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
                   facts: dict | None = None, *, threshold: float = 50, gpu_threshold: float = 10,
                   cpu_threshold: float = 90, patience: int = 1000) -> RuleResult:
    """A sample is a CPU bottleneck when ``min_g gpu_util_g < gpu_threshold`` and
    ``max_c cpu_c > cpu_threshold`` (per core, as SageMaker; the machine figure if cores were not
    recorded). Triggers when ``100 * bottlenecks / samples > threshold`` and ``samples > patience``."""
    params = dict(threshold=threshold, gpu_threshold=gpu_threshold, cpu_threshold=cpu_threshold, patience=patience)
    if not gpu_indices(system):
        return _result("CPUBottleneck", not_applicable=NO_GPU, datapoints=len(system), parameters=params)
    high = _cpu_max_per_sample(system) > cpu_threshold
    return _bottleneck("CPUBottleneck", system, high, f"a CPU core was above {cpu_threshold}%", threshold,
                       gpu_threshold, patience, params)


@register(
    "IOBottleneck",
    "The GPU waits for I/O: share of samples in which a GPU's utilization is below gpu_threshold while the "
    "CPU's I/O wait is above io_threshold exceeds `threshold` percent.",
    "Prefetch data, copy it to local disk instead of reading from network storage, or store it in a binary "
    "format (Arrow/Parquet, pre-tokenized tensors) that is cheaper to read.",
)
def io_bottleneck(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
                  facts: dict | None = None, *, threshold: float = 50, gpu_threshold: float = 10,
                  io_threshold: float = 50, patience: int = 1000) -> RuleResult:
    """A sample is an I/O bottleneck when ``min_g gpu_util_g < gpu_threshold`` and
    ``io_wait_percent > io_threshold``. Triggers when ``100 * bottlenecks / samples > threshold``
    and ``samples > patience``."""
    params = dict(threshold=threshold, gpu_threshold=gpu_threshold, io_threshold=io_threshold, patience=patience)
    if not gpu_indices(system):
        return _result("IOBottleneck", not_applicable=NO_GPU, datapoints=len(system), parameters=params)
    if "io_wait_percent" not in system or system["io_wait_percent"].isna().all():
        return _result("IOBottleneck", not_applicable="I/O wait not measured on this platform", datapoints=len(system),
                       parameters=params)
    high = system["io_wait_percent"] > io_threshold
    return _bottleneck("IOBottleneck", system, high, f"I/O wait was above {io_threshold}%", threshold,
                       gpu_threshold, patience, params)


@register(
    "GPUMemoryIncrease",
    "GPU memory grows: the moving average of memory use over `window` samples rises by more than `increase` "
    "percentage points over the moving average of the window before it.",
    "Look for tensors kept alive across steps (e.g. summing loss tensors instead of loss.item(), growing "
    "caches); if the footprint is near the GPU's capacity, choose a GPU with more memory.",
)
def gpu_memory_increase(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
                        facts: dict | None = None, *, increase: float = 5, patience: int = 1000,
                        window: int = 10) -> RuleResult:
    """Per GPU, with m_t the mean of memory % over samples t-window+1..t: triggers when some
    ``t >= patience`` has ``m_t - m_{t-window} > increase`` (percentage points of total memory).
    SageMaker's implementation compares two windows one sample apart; adjacent windows, as its
    documentation describes, make a steady leak visible."""
    params = dict(increase=increase, patience=patience, window=window)
    gpus = gpu_indices(system)
    if not gpus:
        return _result("GPUMemoryIncrease", not_applicable=NO_GPU, datapoints=len(system), parameters=params)
    parts, triggered, datapoints, per_gpu = [], False, 0, {}
    for gpu in gpus:
        values = pd.Series(_values(system, f"gpu{gpu}_memory_percent"))
        n = len(values)
        datapoints = max(datapoints, n)
        if n <= patience:
            parts.append(f"gpu{gpu}: {_not_evaluated(n, patience, 'samples')}")
            continue
        moving = values.rolling(window).mean()
        rise = (moving - moving.shift(window)).iloc[patience:]
        worst = float(rise.max()) if rise.notna().any() else float("nan")
        per_gpu[f"gpu{gpu}"] = {"max_rise": worst, "last_percent": float(values.iloc[-1]), "max_percent": float(values.max())}
        if math.isfinite(worst) and worst > increase:
            triggered = True
            parts.append(f"gpu{gpu}: memory moving average rose {worst:.1f} points > {increase} (now {values.iloc[-1]:.1f}%)")
        else:
            parts.append(f"gpu{gpu}: largest moving-average rise {worst:.1f} points (now {values.iloc[-1]:.1f}%)")
    return _result("GPUMemoryIncrease", triggered=triggered, datapoints=datapoints, detail="; ".join(parts),
                   parameters=params, details=per_gpu)


@register(
    "BatchSize",
    "The batch is too small for the hardware: over the last `window` samples the 95th percentiles of CPU "
    "utilization, GPU utilization and GPU memory are all below their thresholds.",
    "Increase the batch size (and scale the learning rate) to use the GPU, or run on a smaller, cheaper instance.",
)
def batch_size(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
               facts: dict | None = None, *, cpu_threshold_p95: float = 70, gpu_threshold_p95: float = 70,
               gpu_memory_threshold_p95: float = 70, patience: int = 1000, window: int = 500) -> RuleResult:
    """With more than ``max(window, patience)`` samples and ``p95(cpu_percent[-window:]) <
    cpu_threshold_p95`` (CPU averaged over cores), triggers for any GPU with
    ``p95(gpu_util[-window:]) < gpu_threshold_p95`` and ``p95(gpu_memory_percent[-window:]) <
    gpu_memory_threshold_p95``."""
    params = dict(cpu_threshold_p95=cpu_threshold_p95, gpu_threshold_p95=gpu_threshold_p95,
                  gpu_memory_threshold_p95=gpu_memory_threshold_p95, patience=patience, window=window)
    gpus = gpu_indices(system)
    if not gpus:
        return _result("BatchSize", not_applicable=NO_GPU, datapoints=len(system), parameters=params)
    cpu = _values(system, "cpu_percent")
    n = len(cpu)
    if n <= window or n <= patience:
        return _result("BatchSize", datapoints=n, detail=_not_evaluated(n, max(patience, window), "samples"),
                       parameters=params)
    cpu_p95 = _q(cpu[-window:], 0.95)
    details = {"cpu_p95": cpu_p95}
    if cpu_p95 >= cpu_threshold_p95:
        return _result("BatchSize", datapoints=n, detail=f"CPU p95 {_pct(cpu_p95)} ≥ {cpu_threshold_p95}%",
                       parameters=params, details=details)
    parts, triggered = [f"CPU p95 {_pct(cpu_p95)} < {cpu_threshold_p95}%"], False
    for gpu in gpus:
        util, memory = _values(system, f"gpu{gpu}_util"), _values(system, f"gpu{gpu}_memory_percent")
        if len(util) <= window or not len(memory):
            parts.append(f"gpu{gpu}: too few samples")
            continue
        gpu_p95, memory_p95 = _q(util[-window:], 0.95), _q(memory[-window:], 0.95)
        details[f"gpu{gpu}"] = {"util_p95": gpu_p95, "memory_p95": memory_p95}
        small = gpu_p95 < gpu_threshold_p95 and memory_p95 < gpu_memory_threshold_p95
        triggered |= small
        parts.append(f"gpu{gpu}: util p95 {_pct(gpu_p95)}, memory p95 {_pct(memory_p95)}"
                     + (" (both below thresholds)" if small else ""))
    return _result("BatchSize", triggered=triggered, datapoints=n, detail="; ".join(parts), parameters=params,
                   details=details)


@register(
    "LoadBalancing",
    "Work is unevenly spread across GPUs: the Jensen-Shannon distance between two GPUs' utilization "
    "histograms exceeds `threshold`.",
    "Check the distributed strategy (DistributedDataParallel rather than DataParallel) and that every rank "
    "gets equally sized batches and equal work.",
)
def load_balancing(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
                   facts: dict | None = None, *, threshold: float = 0.5, patience: int = 1000) -> RuleResult:
    """For each GPU with more than ``patience`` samples, h_g is the histogram of utilization in
    2-point bins over [0, 100]; triggers when some pair has
    ``sqrt((KL(h_a || m) + KL(h_b || m)) / 2) > threshold`` with ``m = (h_a + h_b) / 2`` (histograms
    normalized, natural log; the distance lies in [0, sqrt(ln 2) ≈ 0.83])."""
    params = dict(threshold=threshold, patience=patience)
    gpus = gpu_indices(system)
    if not gpus:
        return _result("LoadBalancing", not_applicable=NO_GPU, datapoints=len(system), parameters=params)
    if len(gpus) < 2:
        return _result("LoadBalancing", not_applicable="only one GPU", datapoints=len(system), parameters=params)
    bins = np.arange(0, 102, 2)
    histograms, datapoints = {}, 0
    for gpu in gpus:
        values = _values(system, f"gpu{gpu}_util")
        datapoints = max(datapoints, len(values))
        if len(values) > patience:
            histograms[gpu] = np.histogram(np.clip(values, 0, 100), bins=bins)[0].astype(float)
    if len(histograms) < 2:
        return _result("LoadBalancing", datapoints=datapoints, detail=_not_evaluated(datapoints, patience, "samples"),
                       parameters=params)
    distances, triggered, parts = {}, False, []
    keys = sorted(histograms)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            distance = js_distance(histograms[a], histograms[b])
            distances[f"gpu{a}-gpu{b}"] = distance
            if distance > threshold:
                triggered = True
                parts.append(f"gpu{a} vs gpu{b}: distance {distance:.2f} > {threshold}")
    if not parts:
        worst = max(distances.items(), key=lambda kv: kv[1])
        parts.append(f"largest distance {worst[1]:.2f} ({worst[0]}) ≤ {threshold}")
    return _result("LoadBalancing", triggered=triggered, datapoints=datapoints, detail="; ".join(parts),
                   parameters=params, details={"distances": distances})


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance of two histograms: ``sqrt((KL(p||m) + KL(q||m)) / 2)``, ``m = (p+q)/2``,
    after normalizing each to sum 1 (natural log). Raises ValueError for an empty histogram."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("histograms must have positive mass")
    return float(stats.jensen_shannon(p, q))


# ---------------------------------------------------------------------------------------------
# framework rules


def _normal_mode(mode: str | None) -> str | None:
    if mode is None:
        return None
    mode = str(mode).lower()
    return mode.split("modekeys.")[-1] if "modekeys." in mode else mode


@register(
    "StepOutlier",
    "Step durations have outliers: more than n_outliers steps take longer than mean + stddev × standard "
    "deviation (per mode; evaluated once more than 100 steps are recorded, as in SageMaker).",
    "Check whether CPU or I/O bottlenecks, evaluation, checkpointing, logging or garbage collection coincide "
    "with the outlier steps.",
)
def step_outlier(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
                 facts: dict | None = None, *, stddev: float = 3, mode: str | None = None,
                 n_outliers: int = 10) -> RuleResult:
    """Per mode (``train``/``eval``; only ``mode`` when given), with step durations d:
    outliers are steps with ``d > mean(d) + stddev * std(d)`` (population std); triggers when a
    mode with more than 100 steps (SageMaker's fixed minimum) has more than ``n_outliers``."""
    params = dict(stddev=stddev, mode=mode, n_outliers=n_outliers)
    if framework.empty or "step_seconds" not in framework:
        return _result("StepOutlier", not_applicable="no training steps recorded", parameters=params)
    frame = framework.dropna(subset=["step_seconds"])
    modes = frame["mode"].fillna("train") if "mode" in frame else pd.Series("train", index=frame.index)
    wanted = _normal_mode(mode)
    parts, triggered, datapoints, per_mode = [], False, 0, {}
    for name in sorted(modes.unique()):
        if wanted is not None and name != wanted:
            continue
        rows = frame[modes == name]
        values = rows["step_seconds"].to_numpy(dtype=float)
        datapoints += len(values)
        mean, std = float(values.mean()), float(values.std())
        limit = mean + stddev * std
        outliers = rows.loc[values > limit, "step"].astype(int).tolist() if len(values) >= 2 else []
        per_mode[name] = {"threshold_seconds": limit, "outlier_steps": outliers, "count": len(values),
                          "std": std, **_stats(values)}
        figures = (f"{name}: {len(outliers)} of {len(values)} steps above mean {mean:.4f}s + {stddev}×std {std:.4f}s "
                   f"= {limit:.4f}s")
        if len(values) <= STEP_OUTLIER_MIN_STEPS:
            parts.append(f"{figures} — not evaluated: {len(values)} steps, the rule needs more than {STEP_OUTLIER_MIN_STEPS}")
        elif len(outliers) > n_outliers:
            triggered = True
            parts.append(f"{figures} > n_outliers={n_outliers}")
        else:
            parts.append(f"{figures} ≤ n_outliers={n_outliers}")
    if not parts:
        return _result("StepOutlier", not_applicable=f"no steps in mode {mode!r}", parameters=params)
    return _result("StepOutlier", triggered=triggered, datapoints=datapoints, detail="; ".join(parts),
                   parameters=params, details=per_mode)


@register(
    "Dataloader",
    "The number of data-loading processes does not match the CPU: below min_threshold % or above "
    "max_threshold % of the cores.",
    "Set DataLoader num_workers between min_threshold % and max_threshold % of the CPU cores; use "
    "pin_memory=True when training on a GPU.",
)
def dataloader(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
               facts: dict | None = None, *, min_threshold: float = 70, max_threshold: float = 200) -> RuleResult:
    """With w = ``num_workers`` (the loop's ``TrainingState.extra["num_workers"]``; 0 means the main
    process loads, counted as 1 process) and c CPU cores: triggers when
    ``w < c * min_threshold / 100`` or ``w > c * max_threshold / 100``."""
    params = dict(min_threshold=min_threshold, max_threshold=max_threshold)
    facts = facts or {}
    workers = facts.get("num_workers")
    cores = facts.get("cpu_count") or len(core_columns(system)) or None
    if workers is None:
        return _result("Dataloader", not_applicable="num_workers not recorded (the loop passes it in "
                       "TrainingState.extra['num_workers'])", datapoints=len(framework), parameters=params)
    if not cores:
        return _result("Dataloader", not_applicable="CPU count unknown", datapoints=len(framework), parameters=params)
    processes = max(int(workers), 1)
    low, high = cores * min_threshold / 100, cores * max_threshold / 100
    details = {"num_workers": int(workers), "processes": processes, "cores": int(cores),
               "pin_memory": facts.get("pin_memory")}
    data = _values(framework, "data_seconds")
    timing = ""
    if len(data):
        details["data_seconds"] = _stats(data)
        timing = f"; data loading per step p50 {details['data_seconds']['p50']:.4f}s, p95 {details['data_seconds']['p95']:.4f}s"
    label = f"num_workers={int(workers)}" + (" (main process loads)" if int(workers) == 0 else "")
    if processes < low:
        detail, triggered = f"{label}: {processes} loading process(es) < {min_threshold}% of {cores} cores ({low:g})", True
    elif processes > high:
        detail, triggered = f"{label}: {processes} loading processes > {max_threshold}% of {cores} cores ({high:g})", True
    else:
        detail, triggered = f"{label}: {processes} loading process(es) for {cores} cores, within [{low:g}, {high:g}]", False
    return _result("Dataloader", triggered=triggered, datapoints=len(framework), detail=detail + timing,
                   parameters=params, details=details)


@register(
    "MaxInitializationTime",
    "Initialization is too long: the first training step began more than `threshold` minutes after the "
    "job (the profiler) started.",
    "Speed up start-up: load data and model from local disk, cache tokenized data, avoid downloads and "
    "large imports before training.",
)
def max_initialization_time(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
                            facts: dict | None = None, *, threshold: float = 20) -> RuleResult:
    """Triggers when ``init_seconds > threshold * 60``; when no step began, when the system
    recording spans more than ``threshold`` minutes without one."""
    params = dict(threshold=threshold)
    limit = threshold * 60
    if init_seconds is not None and math.isfinite(init_seconds):
        triggered = init_seconds > limit
        op = ">" if triggered else "≤"
        return _result("MaxInitializationTime", triggered=triggered, datapoints=len(framework),
                       detail=f"first step began {init_seconds:.1f}s after start {op} {threshold} min ({limit:g}s)",
                       parameters=params, details={"init_seconds": init_seconds})
    if framework.empty and len(system) > 1:
        waited = float(system["wall_time"].max() - system["wall_time"].min())
        triggered = waited > limit
        return _result("MaxInitializationTime", triggered=triggered, datapoints=0,
                       detail=f"no training step began in {waited:.1f}s of recording (threshold {limit:g}s)",
                       parameters=params, details={"waited_seconds": waited})
    return _result("MaxInitializationTime", not_applicable="initialization time not recorded",
                   datapoints=len(framework), parameters=params)


# ---------------------------------------------------------------------------------------------
# summaries


@register(
    "OverallSystemUsage",
    "Summary of system utilization: min, p50, p95, p99 and max of CPU, memory, I/O wait and each GPU's "
    "utilization and memory.",
    "Summary only: if every figure stays low, a smaller instance would do; if CPU or memory sit near 100%, "
    "choose a larger one.",
    summary=True,
)
def overall_system_usage(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
                         facts: dict | None = None) -> RuleResult:
    """Statistics (min/p50/p95/p99/max) of each system metric; never triggers."""
    if system.empty:
        return _result("OverallSystemUsage", not_applicable="no system samples")
    table = {}
    labels = {"cpu_percent": "CPU (all cores) %", "memory_percent": "memory %", "io_wait_percent": "I/O wait %"}
    for column, label in labels.items():
        values = _values(system, column)
        if len(values):
            table[label] = _stats(values)
    cores = core_columns(system)
    if cores:
        table["CPU busiest core %"] = _stats(system[cores].max(axis=1).dropna().to_numpy(dtype=float))
    rss = _values(system, "rss_bytes")
    if len(rss):
        table["process RSS GiB"] = _stats(rss / 2**30)
    for gpu in gpu_indices(system):
        for column, label in ((f"gpu{gpu}_util", f"gpu{gpu} utilization %"), (f"gpu{gpu}_memory_percent", f"gpu{gpu} memory %")):
            values = _values(system, column)
            if len(values):
                table[label] = _stats(values)
    span = float(system["wall_time"].max() - system["wall_time"].min()) if len(system) > 1 else 0.0
    parts = [f"{len(system)} samples over {span:.1f}s"]
    parts += [f"{label} p50 {s['p50']:.1f} / p95 {s['p95']:.1f} / max {s['max']:.1f}"
              for label, s in table.items() if label != "process RSS GiB"]
    if not gpu_indices(system):
        parts.append("no GPU")
    return _result("OverallSystemUsage", datapoints=len(system), detail="; ".join(parts),
                   details={"table": table, "span_seconds": span, "gpus": len(gpu_indices(system))})


@register(
    "OverallFrameworkMetrics",
    "Summary of the training loop: step-time statistics and the share of step time spent in each phase "
    "(data loading, forward, backward, optimizer, other).",
    "Summary only: optimize the phase with the largest share first (data → more workers or prefetching; "
    "forward/backward → mixed precision or a larger batch; optimizer → a fused optimizer).",
    summary=True,
)
def overall_framework_metrics(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
                              facts: dict | None = None) -> RuleResult:
    """Step time statistics and phase shares ``sum(phase_seconds) / sum(step_seconds)`` (``other``
    is the rest); never triggers."""
    if framework.empty or "step_seconds" not in framework:
        return _result("OverallFrameworkMetrics", not_applicable="no training steps recorded")
    steps = framework["step_seconds"].dropna().to_numpy(dtype=float)
    total = float(steps.sum())
    shares = {}
    for phase in PHASES:
        column = f"{phase}_seconds"
        seconds = float(framework[column].fillna(0).sum()) if column in framework else 0.0
        shares[phase] = {"seconds": seconds, "share": seconds / total if total > 0 else float("nan")}
    other = total - sum(v["seconds"] for v in shares.values())
    shares["other"] = {"seconds": other, "share": other / total if total > 0 else float("nan")}
    step_stats = _stats(steps)
    details = {"steps": len(steps), "step_seconds": step_stats, "phases": shares, "total_step_seconds": total,
               "init_seconds": init_seconds}
    if "wall_time" in framework and len(framework):
        first = float(framework["wall_time"].min())
        last = framework.loc[framework["wall_time"].idxmax()]
        loop = float(last["wall_time"] + (last["step_seconds"] if pd.notna(last["step_seconds"]) else 0.0) - first)
        details["loop_seconds"] = loop
        details["share_in_steps"] = total / loop if loop > 0 else float("nan")
    memory = _values(framework, "gpu_memory_allocated")
    if len(memory):
        details["gpu_memory_allocated_gib"] = _stats(memory / 2**30)
    biggest = max(PHASES + ("other",), key=lambda p: shares[p]["seconds"])
    share_text = ", ".join(f"{p} {100 * shares[p]['share']:.1f}%" for p in PHASES + ("other",))
    detail = (f"{len(steps)} steps, step time p50 {step_stats['p50']:.4f}s / p95 {step_stats['p95']:.4f}s / max "
              f"{step_stats['max']:.4f}s; phase shares: {share_text}; largest: {biggest}")
    return _result("OverallFrameworkMetrics", datapoints=len(steps), detail=detail, details=details)


# ---------------------------------------------------------------------------------------------
# evaluation


def rule_parameters(params: dict[str, dict] | None = None) -> dict[str, dict]:
    """Each rule's parameters: SageMaker's defaults overridden by ``params`` (``{rule: {name: value}}``).

    Raises:
        ConfigError: an unknown rule or parameter name.
    """
    merged = {name: rule.defaults for name, rule in RULES.items()}
    for name, values in (params or {}).items():
        RULES.check([name])
        unknown = set(values) - set(merged[name])
        if unknown:
            raise ConfigError(f"unknown parameter(s) {', '.join(sorted(unknown))} for profiler rule {name}; "
                              f"known: {', '.join(merged[name]) or 'none'}")
        merged[name].update(values)
    return merged


def profiler_report_params(flat: dict) -> dict[str, dict]:
    """SageMaker's ``ProfilerReport(<RuleName>_<parameter>=value, ...)`` keys as ``{rule: {parameter: value}}``.

    ``{"CPUBottleneck_threshold": 40}`` → ``{"CPUBottleneck": {"threshold": 40}}`` (rule names
    are matched case-insensitively, as SageMaker does).

    Raises:
        ConfigError: a key without ``_`` or naming an unknown rule.
    """
    out: dict[str, dict] = {}
    for key, value in flat.items():
        rule, _, parameter = key.partition("_")
        name = RULES.name_for(rule, ignore_case=True)
        if not parameter or name is None:
            raise ConfigError(f"ProfilerReport key {key!r} does not follow <RuleName>_<parameter>; "
                              f"rules: {', '.join(RULES)}")
        out.setdefault(name, {})[parameter.lower()] = value
    return out


def evaluate_rules(system: pd.DataFrame, framework: pd.DataFrame, init_seconds: float | None = None,
                   facts: dict | None = None, params: dict[str, dict] | None = None,
                   rules: list[str] | None = None) -> list[RuleResult]:
    """Run the ProfilerReport rules (all, or those named in ``rules``) on one recording.

    Args:
        system: the system frame (:func:`~sagestack.profiler.system.load_system`).
        framework: the framework frame (:func:`~sagestack.profiler.recording.load_framework`).
        init_seconds: time from start to the first step, or None if unknown.
        facts: the run's facts (``num_workers``, ``cpu_count``, ...).
        params: parameter overrides, ``{rule: {parameter: value}}``.
        rules: rule names to run (default: all, in :data:`RULES` order).

    Returns:
        One :class:`RuleResult` per rule. A rule that raises gives a not-applicable result that
        names the error instead of stopping the others.

    Raises:
        ConfigError: an unknown rule or parameter name.
    """
    merged = rule_parameters(params)
    names = list(rules) if rules is not None else list(RULES)
    RULES.check(names)
    results = []
    for name in names:
        rule = RULES[name]
        try:
            results.append(rule.function(system, framework, init_seconds, facts, **merged[name]))
        except Exception as error:  # a rule bug must not hide the other rules' findings
            results.append(RuleResult(name, False, f"evaluation failed: {type(error).__name__}: {error}", 0, "",
                                      rule.recommendation, merged[name], {}, rule.summary))
    return results
