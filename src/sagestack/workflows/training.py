"""Train one model outside a pipeline and register it: what ``sagestack train <kind>`` does."""

from __future__ import annotations

from pathlib import Path

from sagestack.config import Settings
from sagestack.registry import DEFAULT_MODEL_NAME, DatasetRef, log_model_run


def register_trained_model(
    model_dir: Path,
    *,
    settings: Settings,
    train_data: Path,
    approve: bool = False,
    model_name: str = DEFAULT_MODEL_NAME,
) -> dict:
    """Log a freshly trained model (any kind) to MLflow and register it as a version of ``model_name``.

    Args:
        model_dir: the trained model's output directory.
        settings: where the registry is.
        train_data: the training file, recorded (path and sha256) for lineage.
        approve: register as ``Approved`` and point ``@champion`` at it; otherwise
            ``PendingManualApproval`` and ``@challenger``.
        model_name: the registered model (one per task, whatever the kind).

    Returns:
        What :func:`sagestack.registry.log_model_run` returns (word vectors are logged, not registered).
    """
    from sagestack.data.atomic import sha256_file
    from sagestack.registry import registration_status

    approval, aliases = registration_status(approve)
    return log_model_run(
        model_dir, settings=settings, model_name=model_name,
        dataset=DatasetRef(str(Path(train_data).resolve()), sha256_file(Path(train_data))),
        approval=approval, aliases=aliases,
    )
