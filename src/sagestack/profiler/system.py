"""System metrics: a background thread that samples CPU, memory and GPU use into ``system.jsonl``.

SageMaker's profiler agent samples the machine every 500 ms; :class:`SystemMonitor` does the same
in a daemon thread and appends one JSON object per sample, flushed line by line (a crash loses at
most the sample being written)::

    {"wall_time": 1764150000.5, "cpu_percent": 37.5, "cpu_percent_per_core": [50.0, 25.0],
     "io_wait_percent": 0.0, "memory_percent": 41.2, "rss_bytes": 512000000,
     "gpus": [{"index": 0, "gpu_util": 93.0, "gpu_memory_used": 1.2e10, "gpu_memory_total": 8.5e10}]}

Sources, each optional: ``psutil`` when installed, else ``/proc`` (Linux), else
``os.getloadavg`` and ``resource`` (per-core, I/O-wait and machine memory are then absent);
GPUs through NVML (``pynvml``) when it and a driver are present, else ``gpus`` is empty. A value
that could not be read is ``null``.

:func:`load_system` reads the file back as a frame with one row per sample and flat columns
(:data:`BASE_COLUMNS`, then ``cpu{i}_percent`` per core and ``gpu{i}_util``,
``gpu{i}_memory_used``, ``gpu{i}_memory_total``, ``gpu{i}_memory_percent`` per GPU) — what the
rules read.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

SYSTEM_FILE = "system.jsonl"
DEFAULT_INTERVAL = 0.5
BASE_COLUMNS = ["wall_time", "cpu_percent", "io_wait_percent", "memory_percent", "rss_bytes"]
_GPU_COLUMN = re.compile(r"^gpu(\d+)_util$")
_CORE_COLUMN = re.compile(r"^cpu(\d+)_percent$")

PROC_STAT = "/proc/stat"  # Linux's CPU counters, read when psutil is missing


def _round(value, digits: int = 2):
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


class _ProcCpu:
    """CPU busy and I/O-wait percentages from ``/proc/stat`` deltas (Linux without psutil)."""

    def __init__(self) -> None:
        self._last = self._read()

    @staticmethod
    def _read() -> dict[str, list[int]] | None:
        try:
            with open(PROC_STAT, encoding="ascii") as stat:
                lines = [line.split() for line in stat if line.startswith("cpu")]
        except OSError:
            return None
        return {fields[0]: [int(v) for v in fields[1:]] for fields in lines}

    @staticmethod
    def _busy_and_iowait(now: list[int], before: list[int]) -> tuple[float | None, float | None]:
        delta = [a - b for a, b in zip(now, before)]
        # Fields: user nice system idle iowait irq softirq steal [guest guest_nice]; guest time
        # is already counted in user/nice, so only the first eight make up the total.
        total = sum(delta[:8])
        if total <= 0:
            return None, None
        idle = delta[3] + (delta[4] if len(delta) > 4 else 0)
        iowait = delta[4] if len(delta) > 4 else 0
        return 100.0 * (total - idle) / total, 100.0 * iowait / total

    def sample(self) -> tuple[float | None, list[float | None], float | None]:
        """(machine busy %, busy % per core, I/O-wait %) since the previous call."""
        now = self._read()
        before, self._last = self._last, now
        if not now or not before or "cpu" not in now or "cpu" not in before:
            return None, [], None
        total, iowait = self._busy_and_iowait(now["cpu"], before["cpu"])
        if total is None:
            # Less than one clock tick (10 ms) passed: keep the old reference so the next sample spans more.
            self._last = before
            return None, [], None
        cores = []
        for index in range(len(now) - 1):
            name = f"cpu{index}"
            if name in now and name in before:
                cores.append(self._busy_and_iowait(now[name], before[name])[0])
        return total, cores, iowait


def _proc_memory_percent() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = {line.split(":")[0]: int(line.split()[1]) for line in meminfo if line.split()[1:]}
    except (OSError, ValueError, IndexError):
        return None
    total, available = fields.get("MemTotal"), fields.get("MemAvailable")
    if not total or available is None:
        return None
    return 100.0 * (total - available) / total


def _proc_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        # ru_maxrss is the peak, in KiB on Linux and bytes on macOS: the best there is without /proc.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if os.uname().sysname == "Darwin" else int(peak) * 1024
    except (ImportError, OSError, AttributeError):
        return None


def _visible_gpu_filter() -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs), or None when it is unset."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


class _Nvml:
    """GPU utilization and memory through NVML; empty when pynvml or the driver is missing."""

    def __init__(self) -> None:
        self.handles: list[tuple[int, object]] = []
        self._nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as error:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded, ...
            logger.debug("no NVML, GPU metrics off: %s", error)
            return
        self._nvml = pynvml
        try:
            wanted = _visible_gpu_filter()
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                if wanted is not None and not self._is_visible(index, handle, wanted):
                    continue
                self.handles.append((index, handle))
        except Exception as error:
            logger.warning("NVML could not list the GPUs, GPU metrics off: %s", error)
            self.handles = []

    def _is_visible(self, index: int, handle, wanted: list[str]) -> bool:
        # The same GPUs CUDA sees, so a shared machine's other GPUs do not count as idle ones of ours.
        if str(index) in wanted:
            return True
        try:
            uuid = self._nvml.nvmlDeviceGetUUID(handle)
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        except Exception:
            return False
        return any(item.startswith("GPU-") and uuid.startswith(item) for item in wanted)

    def sample(self) -> list[dict]:
        """One dict per GPU: index, gpu_util (%), gpu_memory_used and gpu_memory_total (bytes)."""
        gpus = []
        for index, handle in self.handles:
            entry: dict = {"index": index, "gpu_util": None, "gpu_memory_used": None, "gpu_memory_total": None}
            try:
                entry["gpu_util"] = float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:
                pass
            try:
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                entry["gpu_memory_used"] = int(memory.used)
                entry["gpu_memory_total"] = int(memory.total)
            except Exception:
                pass
            gpus.append(entry)
        return gpus

    def close(self) -> None:
        """Shut NVML down (once)."""
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None


class SystemSampler:
    """Reads one system sample at a time; the CPU figures are averages since the previous sample."""

    def __init__(self, gpus: bool = True) -> None:
        """Open the sources (psutil or /proc, NVML when ``gpus``); never raises for a missing one."""
        self._psutil = None
        self._process = None
        self._proc_cpu = None
        try:
            import psutil

            self._psutil = psutil
            self._process = psutil.Process()
        except Exception:
            self._psutil = None
            self._proc_cpu = _ProcCpu() if os.path.exists(PROC_STAT) else None
        self._nvml = _Nvml() if gpus else None
        self.prime()

    def prime(self) -> None:
        """Start the CPU averaging interval now, in the calling thread.

        psutil keeps the previous CPU times per thread, so the thread that samples must prime.
        """
        if self._psutil is not None:
            self._psutil.cpu_percent(percpu=True)
            self._psutil.cpu_times_percent()
        elif self._proc_cpu is not None:
            self._proc_cpu.sample()

    @property
    def gpu_count(self) -> int:
        """GPUs NVML reports (0 without NVML)."""
        return len(self._nvml.handles) if self._nvml else 0

    def sample(self) -> dict:
        """One sample as a JSON-ready dict (see the module docstring)."""
        cpu, cores, iowait, memory, rss = None, [], None, None, None
        if self._psutil is not None:
            psutil = self._psutil
            cores = psutil.cpu_percent(percpu=True)
            cpu = sum(cores) / len(cores) if cores else None
            times = psutil.cpu_times_percent()
            iowait = getattr(times, "iowait", None)
            memory = psutil.virtual_memory().percent
            try:
                rss = self._process.memory_info().rss
            except Exception:
                rss = None
        else:
            if self._proc_cpu is not None:
                cpu, cores, iowait = self._proc_cpu.sample()
            else:
                try:
                    # Without psutil or /proc the 1-minute load average is the only CPU figure left.
                    cpu = min(100.0, 100.0 * os.getloadavg()[0] / (os.cpu_count() or 1))
                except (OSError, AttributeError):
                    cpu = None
            memory = _proc_memory_percent()
            rss = _proc_rss_bytes()
        return {
            "wall_time": round(time.time(), 4),
            "cpu_percent": _round(cpu),
            "cpu_percent_per_core": [_round(c) for c in cores],
            "io_wait_percent": _round(iowait),
            "memory_percent": _round(memory),
            "rss_bytes": int(rss) if rss is not None else None,
            "gpus": self._nvml.sample() if self._nvml else [],
        }

    def close(self) -> None:
        """Release NVML."""
        if self._nvml is not None:
            self._nvml.close()


class SystemMonitor:
    """Samples the machine every ``interval`` seconds into ``out_dir/system.jsonl`` from a daemon thread.

    Use ``start()``/``stop()`` or ``with SystemMonitor(out_dir): ...``. Sampling failures are
    logged once and skipped; they never reach the caller.
    """

    def __init__(self, out_dir: Path | str, interval: float = DEFAULT_INTERVAL, gpus: bool = True) -> None:
        """Args:
            out_dir: folder for ``system.jsonl`` (created; the file is appended to).
            interval: seconds between samples (SageMaker's default is 0.5).
            gpus: read GPU metrics through NVML when available.

        Raises:
            ValueError: ``interval`` is not positive.
        """
        if not interval > 0:
            raise ValueError(f"system sampling interval must be positive, got {interval!r}")
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / SYSTEM_FILE
        self.interval = float(interval)
        self.gpus = gpus
        self.samples = 0
        self.gpu_count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file = None
        self._failed = False

    def start(self) -> "SystemMonitor":
        """Open the file, take a first sample and start the sampling thread (a no-op if running)."""
        if self._thread is not None:
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)
        sampler = SystemSampler(gpus=self.gpus)
        self.gpu_count = sampler.gpu_count
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sampler,), name="sagestack-system-monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self, sampler: SystemSampler) -> None:
        try:
            sampler.prime()
            # Wait, then sample: each sample averages the CPU over the interval before it.
            while True:
                if self._stop.wait(self.interval):
                    break
                self._write(sampler)
            self._write(sampler)  # a last sample at stop, so a short run still has one
        finally:
            sampler.close()

    def _write(self, sampler: SystemSampler) -> None:
        try:
            self._file.write(json.dumps(sampler.sample()) + "\n")
            self.samples += 1
        except Exception as error:
            if not self._failed:
                logger.warning("system metrics sample failed (further failures are not logged): %s", error)
                self._failed = True

    def stop(self) -> None:
        """Stop the thread, wait for it and close the file (safe to call twice)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._file is not None:
            self._file.flush()
            self._file.close()
            self._file = None

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._thread is not None

    def __enter__(self) -> "SystemMonitor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def system_rows_to_frame(rows: list[dict]):
    """Flatten system samples (dicts as in ``system.jsonl``) into the frame :func:`load_system` returns."""
    import pandas as pd

    flat = []
    for row in rows:
        entry = {column: row.get(column) for column in BASE_COLUMNS}
        for core, value in enumerate(row.get("cpu_percent_per_core") or []):
            entry[f"cpu{core}_percent"] = value
        for gpu in row.get("gpus") or []:
            index = gpu.get("index", 0)
            used, total = gpu.get("gpu_memory_used"), gpu.get("gpu_memory_total")
            entry[f"gpu{index}_util"] = gpu.get("gpu_util")
            entry[f"gpu{index}_memory_used"] = used
            entry[f"gpu{index}_memory_total"] = total
            entry[f"gpu{index}_memory_percent"] = 100.0 * used / total if used is not None and total else None
        flat.append(entry)
    frame = pd.DataFrame(flat)
    for column in BASE_COLUMNS:
        if column not in frame:
            frame[column] = None
    extra = sorted((c for c in frame.columns if c not in BASE_COLUMNS), key=_column_order)
    frame = frame[BASE_COLUMNS + extra].astype(float)
    return frame.sort_values("wall_time", kind="stable").reset_index(drop=True)


def _column_order(column: str) -> tuple:
    match = re.match(r"^(cpu|gpu)(\d+)_(.*)$", column)
    return (match.group(1), int(match.group(2)), match.group(3)) if match else ("~", 0, column)


def load_system(directory: Path | str):
    """Read ``system.jsonl`` from a profiler output folder as a frame (one row per sample).

    Columns: :data:`BASE_COLUMNS` (``wall_time`` in epoch seconds, percentages 0-100,
    ``rss_bytes``), ``cpu{i}_percent`` per core, and per GPU ``gpu{i}_util`` (%),
    ``gpu{i}_memory_used``/``gpu{i}_memory_total`` (bytes), ``gpu{i}_memory_percent``. Missing
    values are NaN; a line cut short by a crash is skipped.

    Raises:
        FileNotFoundError: the folder has no ``system.jsonl``.
    """
    from sagestack.lazy import read_jsonl

    return system_rows_to_frame(read_jsonl(Path(directory) / SYSTEM_FILE))


def gpu_indices(system) -> list[int]:
    """The GPU indices that have a utilization column in a system frame, sorted."""
    return sorted(int(m.group(1)) for m in map(_GPU_COLUMN.match, system.columns) if m)


def core_columns(system) -> list[str]:
    """The per-core CPU columns of a system frame, in core order."""
    return sorted((c for c in system.columns if _CORE_COLUMN.match(c)), key=lambda c: int(_CORE_COLUMN.match(c).group(1)))
