"""Offline analysis: re-evaluate rules on a recorded run and write the Debugger report."""

from __future__ import annotations

from pathlib import Path

from sagestack.debugger.recording import TENSORS_FILE, Recording
from sagestack.errors import DataError

ANALYSIS_REPORT = "analysis.html"


def find_recording(run_dir: Path | str) -> Path:
    """The recording folder of a run: ``RUN_DIR`` itself or its ``debugger/``.

    Raises:
        DataError: neither holds a recording.
    """
    run_dir = Path(run_dir)
    for candidate in (run_dir, run_dir / "debugger"):
        if (candidate / TENSORS_FILE).is_file():
            return candidate
    raise DataError(f"{run_dir} holds no Debugger recording ({TENSORS_FILE}); pass a `train bert` output folder")


def applicable_rules(recording: Recording) -> list:
    """Every built-in rule whose collections and reductions the recording has (TensorVariance needs
    thresholds, so it runs only when asked for)."""
    from sagestack.debugger.rules import RULES

    present = set(zip(recording.frame["collection"], recording.frame["reduction"]))
    collections = {c for c, _ in present}
    chosen = []
    for name, rule_class in RULES.items():
        if name == "TensorVariance":
            continue
        rule = rule_class()
        needs = set(getattr(rule, "collections", ()))
        reductions = getattr(rule, "reductions", {}) or {}
        if needs <= collections and all((c, r) in present for c, rs in reductions.items() for r in rs):
            chosen.append(rule)
    return chosen


def analyze_run(run_dir: Path | str, *, rules: tuple[str, ...] | None = None, report: Path | None = None) -> dict:
    """Evaluate rules on a recorded run and write an HTML report.

    Args:
        run_dir: the run's folder (or its ``debugger/``).
        rules: rule specs (``"Name:param=value"``); ``None``: every rule the recording can feed.
        report: where the HTML goes (default ``<recording>/analysis.html``).

    Returns:
        ``{"recording", "rules", "findings": [{rule, step, detail}], "report"}``.

    Raises:
        DataError: no recording; ConfigError: a bad rule spec.
    """
    from sagestack.debugger.report import write_debugger_report
    from sagestack.debugger.rules import evaluate_rules, parse_rule

    if report is not None and Path(report).is_dir():
        raise DataError(f"--out {report} is a folder; pass the path of the HTML file to write")
    directory = find_recording(run_dir)
    recording = Recording.load(directory)
    chosen = [parse_rule(text) for text in rules] if rules else applicable_rules(recording)
    findings = evaluate_rules(chosen, recording)
    path = Path(report) if report else directory / ANALYSIS_REPORT
    write_debugger_report(recording, findings, path, title=f"Debugger analysis of {Path(run_dir).name}")
    return {"recording": str(directory), "rules": [r.name for r in chosen],
            "findings": [f.to_dict() for f in findings], "report": str(path)}
