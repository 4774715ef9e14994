"""``sagestack demo``: the main job, end to end on this machine.

Top floor: it drives the pipeline runner and the BentoML endpoint (both imported lazily), so
it lives with the CLI, not in the library; :func:`run_demo` is what a console calls too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import typer

from sagestack.cli.common import JsonOpt, candidate_lines, emit, human, progress, settings, step_lines
from sagestack.errors import SagestackError

DEMO_REVIEW = "I love this dress: the fabric is soft and it fits perfectly."


def run_demo(settings, *, data: Path | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """The main job as a function (the command below and a web console call it): run the sentiment
    pipeline (its default trainers, auto-approved), serve the version it registered, predict one review.

    Returns:
        ``{"pipeline": run summary, "served": NAME/VERSION, "endpoint": url, "request": review,
        "response": /predict body}``.

    Raises:
        SagestackError: the pipeline failed or registered nothing, or the endpoint did not answer.
    """
    import httpx

    from sagestack.pipelines.runner import run_local
    from sagestack.registry import record_endpoint, record_endpoint_stopped
    from sagestack.bento.launch import running_server

    arguments = {"auto_approve": True}
    if data:
        arguments["data_path"] = str(Path(data).resolve())
    summary = run_local(arguments, settings=settings, progress=progress)
    if not summary["registered"]:
        raise SagestackError(f"the pipeline registered no model ({summary['rejection']}); nothing to serve")
    # Serve the version this run registered. (An identical re-run replays the registration from
    # KFP's cache, and @champion may have moved since; the version number does not.)
    ref = summary["registered"]
    if progress:
        progress(f"starting the endpoint for {ref}")
    with running_server(settings, ref) as url:
        record_endpoint(settings, ref, url)
        try:
            answer = httpx.post(f"{url}/predict", json={"reviews": [DEMO_REVIEW]}, timeout=30)
        finally:  # the demo's endpoint stops with it: lineage keeps it as the last one, not a live one
            record_endpoint_stopped(settings, ref, url)
        if answer.status_code != 200:
            raise SagestackError(f"the endpoint answered {answer.status_code}: {answer.text[:200]}")
    return {"pipeline": summary, "served": ref, "endpoint": url, "request": DEMO_REVIEW, "response": answer.json()}


def demo(
    data: Optional[Path] = typer.Option(None, "--data", help="Review CSV; default: the resolved reviews_balanced.csv."),
    json_output: bool = JsonOpt,
) -> None:
    """The main job: run the pipeline (its default trainers, auto-approved), serve its champion, send one real prediction."""
    result = run_demo(settings(), data=data, progress=progress(json_output))
    summary, response = result["pipeline"], result["response"]
    prediction, selection = response["predictions"][0], summary["selection"]
    emit(result, json_output, [
        *step_lines(summary),
        *candidate_lines(selection),
        f"champion: {selection['champion']}; registered {result['served']} (Approved); lineage: sagestack lineage {result['served']}",
        f"served at {result['endpoint']}: POST /predict {json.dumps(result['request'])}",
        f"  -> label {prediction['label']} ({human(prediction['probabilities'])}) "
        f"({response['model']['kind']} model, version {response['model']['version']})",
    ])
