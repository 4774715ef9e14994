"""``sagestack demo``: the main job, end to end on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sagestack.cli.common import JsonOpt, emit, progress, settings


def demo(
    data: Optional[Path] = typer.Option(None, "--data", help="Review CSV; default: the resolved reviews_balanced.csv."),
    json_output: bool = JsonOpt,
) -> None:
    """The main job: run the pipeline (every trainer, auto-approved), serve its champion, send one real prediction."""
    from pipelines.demo import run_demo

    result = run_demo(settings(), data=data, progress=progress(json_output))
    summary, response = result["pipeline"], result["response"]
    prediction, selection = response["predictions"][0], summary["selection"]
    emit(result, json_output, [
        *(f"  {st['name']:20} {st['status']:8} {st['seconds']:6.2f} s" for st in summary["steps"]),
        *(f"candidate {name:9} test {selection['metric']} {c['score']:.4f}" for name, c in selection["candidates"].items()),
        f"champion: {selection['champion']}; registered {result['served']} (Approved); lineage: sagestack lineage {result['served']}",
        f"served at {result['endpoint']}: POST /predict {result['request']!r}",
        f"  -> label {prediction['label']} {prediction['probabilities']} "
        f"({response['model']['kind']} model, version {response['model']['version']})",
    ])
