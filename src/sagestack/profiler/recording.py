"""A profiler output folder read back: the step frame, the run's facts, and the phases a step is split into.

The recorder (:mod:`sagestack.profiler.framework`) writes these files; the rules
(:mod:`sagestack.profiler.rules`) and the report (:mod:`sagestack.profiler.report`) read them.
Both sides import this module, never each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sagestack.profiler.system import SYSTEM_FILE

FRAMEWORK_FILE = "framework.jsonl"
RUN_FILE = "run.json"
# The phases a training loop announces within a step (``on_phase_begin``/``on_phase_end``).
PHASES = ("data", "forward", "backward", "optimizer")
FRAMEWORK_COLUMNS = ["step", "epoch", "mode", "batch_size", "wall_time", "step_seconds", "data_seconds",
                     "forward_seconds", "backward_seconds", "optimizer_seconds", "gpu_memory_allocated"]


def framework_rows_to_frame(rows: list[dict]):
    """Step rows (dicts as in ``framework.jsonl``) as the frame :func:`load_framework` returns."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for column in FRAMEWORK_COLUMNS:
        if column not in frame:
            frame[column] = None
    extra = [c for c in frame.columns if c not in FRAMEWORK_COLUMNS]
    frame = frame[FRAMEWORK_COLUMNS + extra]
    for column in frame.columns:
        if column != "mode":
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    if len(frame):
        frame["step"] = frame["step"].astype(int)
    return frame.reset_index(drop=True)


def load_framework(directory: Path | str):
    """Read ``framework.jsonl`` from a profiler output folder: one row per step, :data:`FRAMEWORK_COLUMNS`.

    Times are seconds (``wall_time`` is the step's start in epoch seconds); a phase the loop did
    not announce is NaN; a line cut short by a crash is skipped.

    Raises:
        FileNotFoundError: the folder has no ``framework.jsonl``.
    """
    from sagestack.lazy import read_jsonl

    return framework_rows_to_frame(read_jsonl(Path(directory) / FRAMEWORK_FILE))


def load_run_facts(directory: Path | str) -> dict:
    """Read ``run.json`` (the run's facts) from a profiler output folder; ``{}`` when absent."""
    path = Path(directory) / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@dataclass
class ProfileRecording:
    """A profiler output folder read back: the system and framework frames and the run's facts."""

    system: object
    framework: object
    facts: dict

    @property
    def init_seconds(self) -> float | None:
        """Seconds from start to the first step (None if no step began)."""
        return self.facts.get("init_seconds")


def load_profile(directory: Path | str) -> ProfileRecording:
    """Read a profiler output folder (a missing ``system.jsonl`` or ``framework.jsonl`` reads as empty)."""
    from sagestack.profiler.system import load_system, system_rows_to_frame

    directory = Path(directory)
    system = load_system(directory) if (directory / SYSTEM_FILE).is_file() else system_rows_to_frame([])
    framework = load_framework(directory) if (directory / FRAMEWORK_FILE).is_file() else framework_rows_to_frame([])
    return ProfileRecording(system, framework, load_run_facts(directory))
