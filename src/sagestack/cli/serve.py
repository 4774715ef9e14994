"""``sagestack serve``: the real-time endpoint (BentoML) for a registered model of any kind."""

from __future__ import annotations

import typer

from sagestack.cli.common import JsonOpt, settings
from sagestack.registry import DEFAULT_MODEL_NAME


def serve(
    model: str = typer.Option(f"{DEFAULT_MODEL_NAME}@champion", "--model", help="NAME@ALIAS, NAME/VERSION or a model path."),
    port: int = typer.Option(3000, "--port", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    json_output: bool = typer.Option(False, "--json", help="Once the endpoint answers, print one JSON line "
                                     '{"url", "pid", "model", "kind"} on stdout (server output goes to stderr) and keep serving.'),
) -> None:
    """Serve a model over HTTP with BentoML (POST /predict, /predict_batch, /predict_by_id; /healthz, /readyz, /metrics, /docs)."""
    import json
    import os
    import sys
    from pathlib import Path

    from sagestack.processes import check_port_free
    from sagestack.registry import load_predictor, record_endpoint, record_endpoint_stopped
    from sagestack.bento.launch import serve_until_stopped

    check_port_free(host, port)  # BentoML's own refusal is a 50-line traceback
    current = settings()
    if Path(model).exists():  # the server runs in another working directory: pass paths absolute
        model = str(Path(model).resolve())
    predictor, info = load_predictor(current, model)  # a wrong reference fails here, with one line
    if current.review.flow:  # so does an unknown review flow (SAGESTACK_REVIEW_FLOW)
        from sagestack.review.store import review_store

        review_store(current).flow(current.review.flow)

    served = []  # (NAME/VERSION, url) once recorded: the alias may move while it serves

    def ready(url: str) -> None:
        if info is not None:  # the end of the version's lineage, once the endpoint really answers
            recorded = record_endpoint(current, model, url)
            served.append((f"{recorded.name}/{recorded.version}", url))
        if json_output:  # the pid to signal: this process passes SIGINT/SIGTERM on to the server
            typer.echo(json.dumps({"url": url, "pid": os.getpid(), "model": model, "kind": predictor.kind}))
        else:
            typer.echo(f"... serving {model} ({predictor.kind}) on {url} (docs at /docs)", err=True)

    try:
        status = serve_until_stopped(current, model, host, port, on_ready=ready,
                                     output=sys.stderr if json_output else None)
    finally:
        for ref, url in served:  # lineage must not name a stopped endpoint as the one serving
            record_endpoint_stopped(current, ref, url)
    raise typer.Exit(status)
