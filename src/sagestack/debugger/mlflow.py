"""Logging a Debugger recording to MLflow: every recorded scalar as a metric with its step."""

from __future__ import annotations

from sagestack.debugger.recording import Recording


def metric_key(collection: str, tensor: str, reduction: str, mode: str) -> str:
    """``debugger/<collection>/<tensor>/<reduction>`` (``.../eval`` for evaluation-mode values)."""
    key = f"debugger/{collection}/{tensor}/{reduction}"
    return key if mode == "train" else f"{key}/{mode}"


def log_recording(settings, run_id: str, recording: Recording) -> int:
    """Log every scalar of ``recording`` to the MLflow run ``run_id`` (non-finite values are skipped:
    MLflow stores no NaN; the Debugger report and ExplodingTensor keep them). Returns how many."""
    import math

    from sagestack.registry import Runs

    points = [
        (metric_key(row.collection, row.tensor, row.reduction, row.mode), float(row.value),
         int(row.wall_time * 1000), int(row.step))
        for row in recording.frame.itertuples(index=False) if math.isfinite(row.value)
    ]
    Runs(settings).log(run_id, metrics=points)  # in batches MLflow accepts
    return len(points)
