"""Profiler: SageMaker Debugger's profiling (system + framework metrics, ProfilerReport rules) on PyTorch.

- :mod:`~sagestack.profiler.system` — :class:`SystemMonitor`, a thread sampling CPU, memory and
  GPU use into ``system.jsonl`` (psutil and NVML when present, ``/proc`` otherwise).
- :mod:`~sagestack.profiler.framework` — :class:`Profiler`, the training callback: step and phase
  times into ``framework.jsonl``, a torch.profiler trace window, and the report at train end.
- :mod:`~sagestack.profiler.recording` — an output folder read back (:func:`load_profile`) and the
  step phases, shared by the recorder, the rules and the report.
- :mod:`~sagestack.profiler.rules` — the ProfilerReport rules as pure functions of the recordings.
- :mod:`~sagestack.profiler.report` — ``profiler-report.html`` and ``profiler-rules.json``.

Names are imported on first use (PEP 562): ``import sagestack.profiler`` costs nothing, and the
training side needs only torch, numpy, pandas and the standard library.
"""

from __future__ import annotations

from sagestack.lazy import lazy_exports

_EXPORTS = {
    "Profiler": "sagestack.profiler.framework",
    "ProfilerConfig": "sagestack.profiler.framework",
    "ProfileRecording": "sagestack.profiler.recording",
    "load_framework": "sagestack.profiler.recording",
    "load_profile": "sagestack.profiler.recording",
    "load_run_facts": "sagestack.profiler.recording",
    "SystemMonitor": "sagestack.profiler.system",
    "load_system": "sagestack.profiler.system",
    "RULES": "sagestack.profiler.rules",
    "RuleResult": "sagestack.profiler.rules",
    "evaluate_rules": "sagestack.profiler.rules",
    "profiler_report_params": "sagestack.profiler.rules",
    "render_profiler_html": "sagestack.profiler.report",
    "report_from_folder": "sagestack.profiler.report",
    "write_profiler_report": "sagestack.profiler.report",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
