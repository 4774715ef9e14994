"""The Profiler callback: step and phase timings, a torch.profiler trace window, system metrics, the report.

:class:`Profiler` is a :class:`~sagestack.debugger.events.TrainingCallback`. Any loop that calls
the event methods — including ``on_phase_begin``/``on_phase_end`` for ``data``, ``forward``,
``backward`` and ``optimizer`` — gets SageMaker Profiler's outputs in one folder::

    OUT/system.jsonl          one system sample per interval (sagestack.profiler.system)
    OUT/framework.jsonl       one row per step: step, epoch, mode, batch_size, wall_time (step start,
                              epoch s), step_seconds, data/forward/backward/optimizer_seconds,
                              gpu_memory_allocated (bytes, CUDA only)
    OUT/run.json              the run's facts: init_seconds, num_workers, cpu_count, device, trace window, ...
    OUT/trace/trace.json      Chrome trace of steps start_step .. start_step+num_steps-1 (torch.profiler)
    OUT/trace/top_ops.txt     the operators with the most self time in that window
    OUT/profiler-rules.json   the ProfilerReport rules' results
    OUT/profiler-report.html  the report

Profiling must never stop training: every event method catches its own failures and logs a
warning instead (the first per method with its traceback), and the run's facts list them.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sagestack.debugger.events import TrainingCallback, TrainingState
from sagestack.profiler.recording import FRAMEWORK_FILE, PHASES, RUN_FILE, load_framework
from sagestack.profiler.system import DEFAULT_INTERVAL, SYSTEM_FILE, SystemMonitor

logger = logging.getLogger(__name__)

TRACE_DIR = "trace"
TRACE_FILE = "trace.json"
TOP_OPS_FILE = "top_ops.txt"
TOP_OPS_ROWS = 25
# Names of the ranges the trace window marks; the top-ops table leaves them out (they are not operators).
STEP_ANNOTATION = "step#{step}"
PHASE_ANNOTATION = "phase:{phase}"
ANNOTATION_PREFIXES = (STEP_ANNOTATION.split("{")[0], PHASE_ANNOTATION.split("{")[0])


@dataclass
class ProfilerConfig:
    """What the profiler records.

    Attributes:
        system_interval: seconds between system samples (SageMaker: 500 ms).
        start_step: first step of the torch.profiler trace window (the course used 5).
        num_steps: steps in the trace window (the course used 10).
        trace: run torch.profiler over the window and export a Chrome trace.
        cuda_sync: call ``torch.cuda.synchronize()`` at each phase end when the model is on CUDA, so
            phase times measure GPU work rather than kernel launches; ``None`` means on when CUDA is
            available.
        report: evaluate the rules and write the report at the end of training.
        rules: rule parameter overrides, ``{rule: {parameter: value}}`` (SageMaker's names).
    """

    system_interval: float = DEFAULT_INTERVAL
    start_step: int = 5
    num_steps: int = 10
    trace: bool = True
    cuda_sync: bool | None = None
    report: bool = True
    rules: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from sagestack.errors import ConfigError

        if not self.system_interval > 0:
            raise ConfigError(f"the profiler's system interval must be above 0 s, got {self.system_interval!r}")
        if self.start_step < 0:
            raise ConfigError(f"--profile-start-step must be 0 or more, got {self.start_step!r}")
        if self.num_steps < 1:
            raise ConfigError(f"--profile-num-steps must be 1 or more, got {self.num_steps!r}")
        if self.rules:
            from sagestack.profiler.rules import rule_parameters

            rule_parameters(self.rules)  # raises ConfigError naming an unknown rule or parameter


def _safe(method):
    """Run an event method; on failure log a warning instead of raising into the training loop."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as error:
            self._failed(method.__name__, error)
            return None

    return wrapper


def _cpu_count() -> int | None:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use
    except (AttributeError, OSError):
        return os.cpu_count()


def _write_json_atomic(path: Path, document: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


class Profiler(TrainingCallback):
    """SageMaker Profiler for any loop that calls the training events.

    Usage::

        profiler = Profiler("out/profiler", ProfilerConfig(start_step=5, num_steps=10))
        callbacks = CallbackList([profiler, ...])   # the loop calls the event methods
        ...
        profiler.results        # list of RuleResult after on_train_end
        profiler.report_path    # OUT/profiler-report.html

    The loop may pass ``TrainingState.extra["num_workers"]`` (and ``"pin_memory"``, ``"device"``)
    for the Dataloader rule and device detection.
    """

    def __init__(self, out_dir: Path | str, config: ProfilerConfig | None = None, created_at: float | None = None) -> None:
        """Args:
            out_dir: the output folder (created at train begin).
            config: what to record (defaults: :class:`ProfilerConfig`).
            created_at: when the job started, in epoch seconds (``time.time()``); initialization time
                runs from here to the first step. Default: now.
        """
        self.out_dir = Path(out_dir)
        self.config = config or ProfilerConfig()
        self.created_at = time.time() if created_at is None else float(created_at)
        self.results: list = []
        self.report_path: Path | None = None
        self.rules_path: Path | None = None
        self.trace_path: Path | None = None
        self.errors: list[str] = []
        self._logged: set[str] = set()
        self._monitor: SystemMonitor | None = None
        self._file = None
        self._began = False
        self._ended = False
        self._on_cuda = False
        self._sync = False
        self._device = None
        self._facts: dict = {}
        self._wall0 = 0.0
        self._perf0 = 0.0
        self._step_start: float | None = None
        self._pending_start: float | None = None
        self._phase_start: dict[str, float] = {}
        self._phase_seconds: dict[str, float] = {}
        self._steps = 0
        self._first_step_perf: float | None = None
        self._last_step_end: float | None = None
        self._torch_profiler = None
        self._trace_state = "off" if not self.config.trace else "waiting"
        self._trace_steps: list[int] = []
        self._annotations: dict[tuple, object] = {}

    # ---- failures -----------------------------------------------------------------------------

    def _failed(self, where: str, error: Exception) -> None:
        message = f"{where}: {type(error).__name__}: {error}"
        if len(self.errors) < 100:
            self.errors.append(message)
        if where not in self._logged:
            self._logged.add(where)
            logger.warning("profiler %s failed; training continues (further failures here are not logged)",
                           where, exc_info=error)

    # ---- clock --------------------------------------------------------------------------------

    def _wall(self, perf: float) -> float:
        return self._wall0 + (perf - self._perf0)

    def _sync_cuda(self) -> None:
        if self._sync:
            import torch

            # Waits for every queued kernel: phase times then measure GPU work, not kernel launches.
            # The cost is the lost CPU/GPU overlap: on an H200, a launch-bound 4-layer MLP at ~1 ms per
            # step took ~0.4 ms more per step (3 syncs); a step of tens of ms barely notices. Turn it
            # off with ProfilerConfig(cuda_sync=False) when only step totals matter.
            torch.cuda.synchronize(self._device)

    # ---- events -------------------------------------------------------------------------------

    @_safe
    def on_train_begin(self, state: TrainingState) -> None:
        """Open the outputs, note the run's facts and start the system monitor."""
        if self._began:
            return
        self._began = True
        self._wall0, self._perf0 = time.time(), time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # A fresh recording per run: a reused folder must not mix two runs' samples.
        for name in (SYSTEM_FILE, FRAMEWORK_FILE, "profiler-report.html", "profiler-rules.json",
                     f"{TRACE_DIR}/{TRACE_FILE}", f"{TRACE_DIR}/{TOP_OPS_FILE}"):
            (self.out_dir / name).unlink(missing_ok=True)
        self._file = open(self.out_dir / FRAMEWORK_FILE, "w", encoding="utf-8", buffering=1)
        self._detect_device(state)
        self._facts = {
            "created_at": self.created_at,
            "train_begin": self._wall0,
            "first_step_time": None,
            "init_seconds": None,
            "train_end": None,
            "num_workers": state.extra.get("num_workers"),
            "pin_memory": state.extra.get("pin_memory"),
            "cpu_count": _cpu_count(),
            "device": str(self._device) if self._device is not None else "cpu",
            "cuda": self._on_cuda,
            "cuda_sync": self._sync,
            "gpu_count": 0,
            "config": asdict(self.config),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
        try:
            import torch

            self._facts["torch"] = torch.__version__
        except ImportError:
            pass
        self._write_run()
        self._monitor = SystemMonitor(self.out_dir, self.config.system_interval)
        self._monitor.start()
        self._facts["gpu_count"] = self._monitor.gpu_count

    def _detect_device(self, state: TrainingState) -> None:
        device = state.extra.get("device")
        try:
            import torch
        except ImportError:
            return
        if device is None and state.model is not None and hasattr(state.model, "parameters"):
            try:
                device = next(state.model.parameters()).device
            except StopIteration:
                device = None
        if device is None:
            return
        device = torch.device(device)
        self._device = device
        self._on_cuda = device.type == "cuda" and torch.cuda.is_available()
        wanted = self.config.cuda_sync if self.config.cuda_sync is not None else torch.cuda.is_available()
        self._sync = bool(wanted and self._on_cuda)

    @_safe
    def on_phase_begin(self, state: TrainingState, phase: str) -> None:
        """Start timing a phase (and annotate it in the trace while the trace window is open)."""
        now = time.perf_counter()
        if self._step_start is None and self._pending_start is None:
            # Loops that load the next batch before on_step_begin: that time belongs to the next step.
            self._pending_start = now
        self._phase_start[phase] = now
        if self._torch_profiler is not None:
            self._annotate(PHASE_ANNOTATION.format(phase=phase), ("phase", phase))

    @_safe
    def on_phase_end(self, state: TrainingState, phase: str) -> None:
        """Stop timing a phase; repeated phases within one step add up."""
        start = self._phase_start.pop(phase, None)
        if start is None:
            return
        self._sync_cuda()
        self._phase_seconds[phase] = self._phase_seconds.get(phase, 0.0) + (time.perf_counter() - start)
        self._close_annotation(("phase", phase))

    @_safe
    def on_step_begin(self, state: TrainingState) -> None:
        """Open a step (starting the trace window at ``start_step``)."""
        now = time.perf_counter()
        self._step_start = self._pending_start if self._pending_start is not None else now
        self._pending_start = None
        if self._first_step_perf is None:
            self._first_step_perf = self._step_start
            first = self._wall(self._step_start)
            self._facts["first_step_time"] = first
            self._facts["init_seconds"] = first - self.created_at
        if "num_workers" in state.extra and self._facts.get("num_workers") is None:
            self._facts["num_workers"] = state.extra["num_workers"]
        if self._trace_state == "waiting" and state.mode == "train" and self._in_window(state.step):
            self._start_trace()
        if self._torch_profiler is not None:
            self._annotate(STEP_ANNOTATION.format(step=state.step), ("step",))

    def _in_window(self, step: int) -> bool:
        return self.config.start_step <= step < self.config.start_step + self.config.num_steps

    @_safe
    def on_step_end(self, state: TrainingState) -> None:
        """Write the step's row; close the trace window after ``num_steps`` traced steps."""
        if self._step_start is None:
            return
        self._sync_cuda()
        end = time.perf_counter()
        row = {
            "step": int(state.step),
            "epoch": int(state.epoch),
            "mode": state.mode,
            "batch_size": int(state.batch_size) if state.batch_size is not None else None,
            "wall_time": round(self._wall(self._step_start), 6),
            "step_seconds": end - self._step_start,
        }
        for phase in PHASES:
            row[f"{phase}_seconds"] = self._phase_seconds.get(phase)
        for phase, seconds in self._phase_seconds.items():
            if phase not in PHASES:
                row[f"{phase}_seconds"] = seconds
        if self._on_cuda:
            import torch

            # memory_allocated builds the allocator's whole stats dict: ~0.1-0.2 ms, once per step.
            row["gpu_memory_allocated"] = int(torch.cuda.memory_allocated(self._device))
        self._step_start = None
        self._phase_seconds = {}
        self._phase_start = {}
        self._steps += 1
        self._last_step_end = end
        self._file.write(json.dumps(row) + "\n")
        if self._torch_profiler is not None:
            self._close_annotation(("step",))
            self._trace_steps.append(int(state.step))
            if len(self._trace_steps) >= self.config.num_steps:
                self._stop_trace("complete")

    @_safe
    def on_train_end(self, state: TrainingState) -> None:
        """Stop the trace and the monitor, write the facts, evaluate the rules and write the report."""
        if not self._began or self._ended:
            return
        self._ended = True
        self._finish(state)

    def _finish(self, state: TrainingState) -> None:
        # Each part is guarded on its own: a failed trace export must not cost the report.
        for part in (self._finish_trace, self._finish_monitor, self._finish_framework):
            try:
                part()
            except Exception as error:
                self._failed(part.__name__, error)
        self._facts.update({
            "train_end": time.time(),
            "steps": self._steps,
            "stopped_early": bool(state.should_stop),
            "stop_reason": state.stop_reason or None,
            "trace": {"state": self._trace_state, "steps": self._trace_steps,
                      "path": f"{TRACE_DIR}/{TRACE_FILE}" if self.trace_path else None},
        })
        if self._facts.get("num_workers") is None and "num_workers" in state.extra:
            self._facts["num_workers"] = state.extra["num_workers"]
        try:
            self._facts["profiling_errors"] = list(self.errors)
            self._write_run()
        except Exception as error:
            self._failed("write run facts", error)
        if self.config.report:
            try:
                self._report()
            except Exception as error:
                self._failed("report", error)

    def _finish_trace(self) -> None:
        self._close_annotation(None)
        if self._torch_profiler is not None:
            self._stop_trace(f"partial: training ended after {len(self._trace_steps)} of {self.config.num_steps} steps")
        elif self._trace_state == "waiting":
            self._trace_state = f"not run: training ended before step {self.config.start_step}"

    def _finish_monitor(self) -> None:
        if self._monitor is not None:
            self._monitor.stop()
            self._facts["system_samples"] = self._monitor.samples

    def _finish_framework(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()

    def _report(self) -> None:
        from sagestack.profiler.report import write_profiler_report
        from sagestack.profiler.rules import evaluate_rules
        from sagestack.profiler.system import load_system

        system = load_system(self.out_dir)
        framework = load_framework(self.out_dir)
        self.results = evaluate_rules(system, framework, self._facts.get("init_seconds"), self._facts,
                                      self.config.rules or None)
        paths = write_profiler_report(self.out_dir, self.results, system, framework, self._facts)
        self.report_path, self.rules_path = paths["report"], paths["rules"]

    def _write_run(self) -> None:
        _write_json_atomic(self.out_dir / RUN_FILE, self._facts)

    # ---- torch.profiler window ----------------------------------------------------------------

    def _start_trace(self) -> None:
        try:
            import torch
            from torch.profiler import ProfilerActivity, profile

            activities = [ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(ProfilerActivity.CUDA)
            try:
                # Keep the window's events after stop() (newer torch warns about dropping them otherwise).
                profiler = profile(activities=activities, record_shapes=False, acc_events=True)
            except TypeError:  # torch without acc_events
                profiler = profile(activities=activities, record_shapes=False)
            profiler.start()
        except Exception:
            self._trace_state = "failed to start"
            raise
        self._torch_profiler = profiler
        self._trace_state = "running"

    def _stop_trace(self, state: str) -> None:
        profiler, self._torch_profiler = self._torch_profiler, None
        self._close_annotation(None)
        try:
            profiler.stop()
        except Exception:
            self._trace_state = "failed to stop"
            raise
        self._trace_state = state
        trace_dir = self.out_dir / TRACE_DIR
        trace_dir.mkdir(parents=True, exist_ok=True)
        target = trace_dir / TRACE_FILE
        tmp = trace_dir / f".{TRACE_FILE}.{os.getpid()}.tmp"
        profiler.export_chrome_trace(str(tmp))
        os.replace(tmp, target)
        self.trace_path = target
        (trace_dir / TOP_OPS_FILE).write_text(_top_ops(profiler, self._trace_steps), encoding="utf-8")

    def _annotate(self, name: str, key: tuple) -> None:
        from torch.profiler import record_function

        annotation = record_function(name)
        annotation.__enter__()
        self._annotations[key] = annotation

    def _close_annotation(self, key: tuple | None) -> None:
        keys = [key] if key is not None else list(self._annotations)[::-1]
        for k in keys:
            annotation = self._annotations.pop(k, None)
            if annotation is not None:
                annotation.__exit__(None, None, None)


def _top_ops(profiler, steps: list[int]) -> str:
    """The operators with the most self time, as torch.profiler's table (CPU, then GPU when traced)."""
    averages = profiler.key_averages()
    try:
        from torch.autograd.profiler_util import EventList

        averages = EventList([e for e in averages if not e.key.startswith(ANNOTATION_PREFIXES)],
                             use_device=getattr(averages, "_use_device", None),
                             profile_memory=getattr(averages, "_profile_memory", False),
                             with_flops=getattr(averages, "_with_flops", False))
    except Exception:
        pass
    span = f"steps {steps[0]}..{steps[-1]}" if steps else "no complete step"
    parts = [f"Top operators by self CPU time ({span})\n", averages.table(sort_by="self_cpu_time_total", row_limit=TOP_OPS_ROWS)]
    # torch >= 2.4 names it self_device_time_total; older releases self_cuda_time_total.
    key = "self_device_time_total" if averages and hasattr(averages[0], "self_device_time_total") else "self_cuda_time_total"
    if any(getattr(e, key, 0) for e in averages):
        parts += ["\nTop operators by self GPU time\n", averages.table(sort_by=key, row_limit=TOP_OPS_ROWS)]
    return "\n".join(parts)
