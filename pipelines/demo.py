"""The main job (``sagestack demo``): run the pipeline auto-approved, serve what it registered, send one review.

Top floor: it drives the pipeline runner and the BentoML endpoint, so it lives beside the
pipelines rather than in the library; the CLI and the web console both call :func:`run_demo`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sagestack.errors import SagestackError

DEMO_REVIEW = "I love this dress: the fabric is soft and it fits perfectly."


def run_demo(settings, *, data: Path | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Run the sentiment pipeline (every trainer, auto-approved), serve the version it registered, predict one review.

    Returns:
        ``{"pipeline": run summary, "endpoint": url, "request": review, "response": /predict body}``.

    Raises:
        SagestackError: the pipeline failed or registered nothing, or the endpoint did not answer.
    """
    import httpx

    from pipelines.runner import run_local
    from sagestack.registry import record_endpoint
    from serving.launch import running_server

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
        answer = httpx.post(f"{url}/predict", json={"reviews": [DEMO_REVIEW]}, timeout=30)
        if answer.status_code != 200:
            raise SagestackError(f"the endpoint answered {answer.status_code}: {answer.text[:200]}")
    return {"pipeline": summary, "served": ref, "endpoint": url, "request": DEMO_REVIEW, "response": answer.json()}
