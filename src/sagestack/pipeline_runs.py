"""Pipeline run history: the record each local pipeline run leaves under the home, and reading it back.

A run is a folder ``HOME/pipelines/runs/<run>/`` (KFP's local runner names it and writes the steps'
artifacts there); :func:`write_summary` adds the run's ``summary.json`` (pipeline, run, status,
started_at, seconds, log, arguments, steps, trainers, selection, registered, rejection, and error
for a failed run). The runner in ``pipelines/`` writes it; the console and ``sagestack pipeline runs``
read it here, without KFP.

``steps`` lists every task of the pipeline, the plumbing of its branches included (the stand-in of
each trainer left out, the skipped steps of branches not taken); what a person reads is
:func:`work_steps` (the steps that did work) and :func:`run_trainers` (the trainers that trained).
"""

from __future__ import annotations

import json
from pathlib import Path

SUMMARY_FILE = "summary.json"


def pipelines_folder(settings) -> Path:
    """``HOME/pipelines``: the local runs, the step cache and the runner's logs."""
    return settings.home.resolve() / "pipelines"


def runs_folder(settings) -> Path:
    """``HOME/pipelines/runs``: one folder per local pipeline run."""
    return pipelines_folder(settings) / "runs"


def write_summary(run_dir: Path, summary: dict) -> None:
    """Write a run's summary as ``run_dir/summary.json`` (atomically; nothing when the folder is gone)."""
    from sagestack.data.atomic import atomic_file

    if run_dir.is_dir():
        with atomic_file(run_dir / SUMMARY_FILE) as tmp:
            tmp.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")


def read_summary(path: Path) -> dict | None:
    """A run's summary read from its ``summary.json``; None when it cannot be read (gone, being
    replaced, or not JSON)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_trainers(summary: dict) -> list[str]:
    """The trainers that trained in a run: its ``trainers``, or for a summary written before they
    were recorded, the candidates of its champion selection."""
    if "trainers" in summary:
        return list(summary["trainers"] or [])
    return list(((summary.get("selection") or {}).get("candidates") or {}))


def work_steps(summary: dict) -> list[dict]:
    """The steps of a run that did work (ran, failed or came from the cache), without the branches'
    plumbing: skipped steps, and the steps of a trainer that did not train (its stand-in)."""
    trainers = set(run_trainers(summary))
    return [step for step in summary.get("steps", [])
            if step.get("status") != "SKIPPED" and (not step.get("trainer") or step["trainer"] in trainers)]


def list_runs(settings, *, limit: int = 20) -> list[dict]:
    """The most recent local pipeline runs, newest first, read from their ``summary.json`` files.

    Returns:
        One entry per run: ``{"pipeline", "run", "status", "started_at", "seconds", "trainers",
        "champion", "registered", "rejection", "error", "steps", "summary"}`` (``trainers``: those
        that trained; ``steps``: name, status and seconds of each step that did work, see
        :func:`work_steps` (every step is in the run's summary file); ``summary``: that file's path).
    """
    runs = []
    for path in runs_folder(settings).glob(f"*/{SUMMARY_FILE}"):
        data = read_summary(path)
        if not isinstance(data, dict):
            continue  # a summary being replaced, or not ours
        selection = data.get("selection") or {}
        runs.append({
            "pipeline": data.get("pipeline"), "run": data.get("run"), "status": data.get("status"),
            "started_at": data.get("started_at"), "seconds": data.get("seconds"), "trainers": run_trainers(data),
            "champion": selection.get("champion"), "registered": data.get("registered"),
            "rejection": data.get("rejection"), "error": data.get("error"),
            "steps": [{k: step.get(k) for k in ("name", "status", "seconds")} for step in work_steps(data)],
            "summary": str(path),
        })
    runs.sort(key=lambda r: (r["started_at"] or "", r["run"] or ""), reverse=True)
    return runs[:limit]
