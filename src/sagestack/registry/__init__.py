"""Experiment tracking and the model registry (MLflow). Imports MLflow only when used."""

from sagestack.registry.tracking import (
    APPROVAL_STATUSES,
    DEFAULT_MODEL_NAME,
    KIND_TAG,
    DatasetRef,
    ModelVersionInfo,
    get_version,
    lineage,
    list_models,
    load_predictor,
    log_model_run,
    promote,
    record_endpoint,
    registry_exists,
    resolve_ref,
    set_approval,
    version_table,
)

__all__ = [
    "APPROVAL_STATUSES",
    "DEFAULT_MODEL_NAME",
    "KIND_TAG",
    "DatasetRef",
    "ModelVersionInfo",
    "get_version",
    "lineage",
    "list_models",
    "load_predictor",
    "log_model_run",
    "promote",
    "record_endpoint",
    "registry_exists",
    "resolve_ref",
    "set_approval",
    "version_table",
]
