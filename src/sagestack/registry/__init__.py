"""Experiment tracking and the model registry (MLflow). Imports MLflow only when used.

The names below load on first use (PEP 562), so naming the registry's constants (e.g. a command
line's default model name) costs nothing.
"""

from sagestack.lazy import lazy_exports

# One registered model per task, whatever the kind: every kind's versions compete for @champion.
DEFAULT_MODEL_NAME = "reviews-sentiment"

_EXPORTS = {
    "APPROVAL_STATUSES": "sagestack.registry.tracking",
    "KIND_TAG": "sagestack.registry.tracking",
    "DatasetRef": "sagestack.registry.tracking",
    "ModelVersionInfo": "sagestack.registry.tracking",
    "get_version": "sagestack.registry.tracking",
    "lineage": "sagestack.registry.tracking",
    "list_models": "sagestack.registry.tracking",
    "load_predictor": "sagestack.registry.tracking",
    "log_model_run": "sagestack.registry.tracking",
    "promote": "sagestack.registry.tracking",
    "record_endpoint": "sagestack.registry.tracking",
    "record_endpoint_stopped": "sagestack.registry.tracking",
    "registry_exists": "sagestack.registry.tracking",
    "resolve_ref": "sagestack.registry.tracking",
    "set_approval": "sagestack.registry.tracking",
    "version_table": "sagestack.registry.tracking",
}

__all__ = [*_EXPORTS, "DEFAULT_MODEL_NAME"]
__getattr__ = lazy_exports(__name__, _EXPORTS)
