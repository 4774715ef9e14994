"""Lineage of a registered version (provenance): the pipeline run and steps that made it, the champion
selection it won, and the endpoint that serves it (read back by :func:`lineage`)."""

from __future__ import annotations

import os

from sagestack.config import Settings
from sagestack.registry.models import CHAMPION_TAGS, KIND_TAG, ModelVersionInfo, get_version, resolve_ref
from sagestack.registry.store import client

ENDPOINT_TAG = "endpoint.url"  # the URL of the endpoint serving the version now
ENDPOINT_PROCESS_TAG = "endpoint.process"  # HOST:PID of the command serving it (lineage checks it still runs)
LAST_ENDPOINT_TAG = "endpoint.last_url"  # once it stopped: where it served, and when it stopped
ENDPOINT_STOPPED_TAG = "endpoint.stopped_at"
STEP_TAG_PREFIX = "pipeline.step."


def pipeline_lineage_tags(run: str, steps: list[tuple[str, str, str]]) -> dict[str, str]:
    """Tags tying a model version to a pipeline run and its upstream artifacts.

    Args:
        run: the pipeline run's name.
        steps: ``(step, artifact, uri)`` in pipeline order.

    Returns:
        ``{"pipeline.run": run, "pipeline.step.<n>.<step>.<artifact>": uri, ...}``, which
        :func:`lineage` reads back in the same order.
    """
    tags = {"pipeline.run": run}
    for number, (step, artifact, uri) in enumerate(steps, start=1):
        tags[f"{STEP_TAG_PREFIX}{number}.{step}.{artifact}"] = uri
    return tags


CANDIDATE_TAG_PREFIX = "pipeline.candidate."


def candidate_tags(selection: dict) -> dict[str, str]:
    """Tags recording a pipeline's champion selection: the winner, the metric and every candidate's scores.

    Args:
        selection: ``{"champion", "metric", "candidates": {trainer: {"kind", "test_accuracy", ...}}}``.

    Returns:
        ``{"pipeline.champion": trainer, "pipeline.select_metric": metric,
        "pipeline.candidate.<trainer>.<field>": value, ...}``, which :func:`lineage` reads back.
    """
    tags = {CHAMPION_TAGS[0]: selection["champion"], CHAMPION_TAGS[1]: selection["metric"]}
    for trainer, scores in selection["candidates"].items():
        for field, value in scores.items():
            tags[f"{CANDIDATE_TAG_PREFIX}{trainer}.{field}"] = str(value)
    return tags


def _candidates_from_tags(tags: dict[str, str]) -> dict[str, dict]:
    candidates: dict[str, dict] = {}
    for key, value in tags.items():
        if key.startswith(CANDIDATE_TAG_PREFIX):
            trainer, field = key[len(CANDIDATE_TAG_PREFIX):].split(".", 1)
            try:
                candidates.setdefault(trainer, {})[field] = float(value)
            except ValueError:
                candidates.setdefault(trainer, {})[field] = value
    return candidates


def lineage(settings: Settings, ref: str) -> dict:
    """The chain dataset → pipeline steps → model version → endpoint of a registered version.

    Read back from the version's tags (written by the pipeline's register step and by
    ``sagestack serve``) and from its training run.

    Returns:
        ``{"dataset": {...}, "pipeline": {...}, "steps": [{"order", "step", "artifact", "uri"}],
        "candidates": {trainer: {"kind", "test_accuracy", ...}}, "champion": {"trainer", "metric"},
        "training_run", "model": {...}, "endpoint", "last_endpoint"}``: ``endpoint`` is the URL of the
        endpoint serving the version now (``None`` when none does); ``last_endpoint`` is
        ``{"url", "stopped_at"}`` of one that served it and stopped (``stopped_at`` is ``None``
        when its process ended without saying so), or ``None``.
    """
    info = resolve_ref(settings, ref)
    tags = info.tags
    # Tags "pipeline.step.<n>.<step>.<artifact>" = URI, numbered in pipeline order.
    steps = []
    for key in sorted(k for k in tags if k.startswith(STEP_TAG_PREFIX)):
        _, _, number, step, artifact = key.split(".", 4)
        steps.append({"order": int(number), "step": step, "artifact": artifact, "uri": tags[key]})
    steps.sort(key=lambda s: s["order"])
    return {
        "dataset": {"path": tags.get("dataset.path"), "sha256": tags.get("dataset.sha256")},
        "pipeline": {"run": tags.get("pipeline.run"), "git_commit": tags.get("git.commit"),
                     "sagestack_version": tags.get("sagestack.version")},
        "steps": steps,
        "candidates": _candidates_from_tags(tags),
        "champion": {"trainer": tags.get(CHAMPION_TAGS[0]), "metric": tags.get(CHAMPION_TAGS[1])},
        "training_run": info.run_id,
        "model": {"name": info.name, "version": info.version, "kind": tags.get(KIND_TAG),
                  "approval_status": info.status, "aliases": info.aliases, "uri": info.uri,
                  "test_accuracy": info.metrics.get("test_accuracy")},
        **_endpoint(tags),
        # The human-reviewed labels it trained on (``pipeline run --include-reviewed``), if any.
        "reviewed": ({key[len("reviewed."):]: value for key, value in tags.items() if key.startswith("reviewed.")}
                     or None),
    }


def record_endpoint(settings: Settings, ref: str, url: str, *, pid: int | None = None) -> ModelVersionInfo:
    """Tag a version with the URL of the endpoint that serves it (the end of its lineage) and the
    process serving it (``pid``, default this one), so that lineage can tell when it is gone.
    Call :func:`record_endpoint_stopped` when it stops."""
    import socket

    info = resolve_ref(settings, ref)
    mlflow_client = client(settings)
    mlflow_client.set_model_version_tag(info.name, info.version, ENDPOINT_TAG, url)
    mlflow_client.set_model_version_tag(info.name, info.version, ENDPOINT_PROCESS_TAG,
                                        f"{socket.gethostname()}:{pid or os.getpid()}")
    return get_version(settings, info.name, info.version)


def record_endpoint_stopped(settings: Settings, ref: str, url: str) -> ModelVersionInfo:
    """Record that the endpoint at ``url`` stopped serving the version ``ref`` names (pass
    ``NAME/VERSION``: an alias may have moved while it served): lineage then names it as the last
    endpoint, not as a live one. An endpoint recorded since at another URL stays recorded."""
    from datetime import datetime, timezone

    info = resolve_ref(settings, ref)
    mlflow_client = client(settings)
    if info.tags.get(ENDPOINT_TAG) == url:
        for tag in (ENDPOINT_TAG, ENDPOINT_PROCESS_TAG):
            if tag in info.tags:
                mlflow_client.delete_model_version_tag(info.name, info.version, tag)
    mlflow_client.set_model_version_tag(info.name, info.version, LAST_ENDPOINT_TAG, url)
    mlflow_client.set_model_version_tag(info.name, info.version, ENDPOINT_STOPPED_TAG,
                                        datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return get_version(settings, info.name, info.version)


def _endpoint(tags: dict[str, str]) -> dict:
    """Lineage's ``endpoint`` (live) and ``last_endpoint`` (stopped) read from a version's tags: a
    recorded endpoint whose process on this machine has ended (killed, no chance to say so) is not live."""
    import socket

    from sagestack.processes import alive

    url = tags.get(ENDPOINT_TAG)
    if url:
        host, _, pid = tags.get(ENDPOINT_PROCESS_TAG, "").rpartition(":")
        if not (host == socket.gethostname() and pid.isdigit() and not alive(int(pid))):
            return {"endpoint": url, "last_endpoint": None}
        return {"endpoint": None, "last_endpoint": {"url": url, "stopped_at": None}}
    last = tags.get(LAST_ENDPOINT_TAG)
    return {"endpoint": None,
            "last_endpoint": {"url": last, "stopped_at": tags.get(ENDPOINT_STOPPED_TAG)} if last else None}
