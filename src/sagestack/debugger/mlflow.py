"""Logging a Debugger recording to MLflow: every recorded scalar as a metric with its step."""

from __future__ import annotations

from sagestack.debugger.recording import Recording

BATCH = 1000  # MLflow's log_batch takes at most 1,000 metrics per call


def metric_key(collection: str, tensor: str, reduction: str, mode: str) -> str:
    """``debugger/<collection>/<tensor>/<reduction>`` (``.../eval`` for evaluation-mode values)."""
    key = f"debugger/{collection}/{tensor}/{reduction}"
    return key if mode == "train" else f"{key}/{mode}"


def log_recording(settings, run_id: str, recording: Recording) -> int:
    """Log every scalar of ``recording`` to the MLflow run ``run_id`` (non-finite values are skipped:
    MLflow stores no NaN; the Debugger report and ExplodingTensor keep them). Returns how many."""
    import math

    from mlflow.entities import Metric

    from sagestack.registry.tracking import client

    metrics = [
        Metric(metric_key(row.collection, row.tensor, row.reduction, row.mode), float(row.value),
               int(row.wall_time * 1000), int(row.step))
        for row in recording.frame.itertuples(index=False) if math.isfinite(row.value)
    ]
    tracking = client(settings)
    for start in range(0, len(metrics), BATCH):
        tracking.log_batch(run_id, metrics=metrics[start:start + BATCH])
    return len(metrics)
