"""Experiment tracking and the model registry (MLflow). Imports MLflow only when used.

The only package of sagestack that talks to MLflow: runs in ``tracking``, registered versions in
``models``, lineage tags and endpoint records in ``provenance``, the stores (explicit URIs) in ``store``.

The names below load on first use (PEP 562), so naming the registry's constants (e.g. a command
line's default model name) costs nothing.
"""

from sagestack.lazy import lazy_exports

# One registered model per task, whatever the kind: every kind's versions compete for @champion.
DEFAULT_MODEL_NAME = "reviews-sentiment"

_EXPORTS = {
    # Runs (sagestack.registry.tracking): experiments, runs, their metrics, params and artifacts.
    "DatasetRef": "sagestack.registry.tracking",
    "Runs": "sagestack.registry.tracking",
    "git_commit": "sagestack.registry.tracking",
    "log_model_run": "sagestack.registry.tracking",
    "start_run": "sagestack.registry.tracking",
    # Model versions (sagestack.registry.models): registration, approval, aliases, loading.
    "APPROVAL_STATUSES": "sagestack.registry.models",
    "KIND_TAG": "sagestack.registry.models",
    "ModelVersionInfo": "sagestack.registry.models",
    "get_version": "sagestack.registry.models",
    "list_models": "sagestack.registry.models",
    "kind_of": "sagestack.registry.models",
    "load_predictor": "sagestack.registry.models",
    "promote": "sagestack.registry.models",
    "registration_status": "sagestack.registry.models",
    "resolve_ref": "sagestack.registry.models",
    "set_approval": "sagestack.registry.models",
    "version_table": "sagestack.registry.models",
    # Lineage (sagestack.registry.provenance): pipeline tags, endpoint records, the chain read back.
    "lineage": "sagestack.registry.provenance",
    "record_endpoint": "sagestack.registry.provenance",
    "record_endpoint_stopped": "sagestack.registry.provenance",
    # The stores (sagestack.registry.store).
    "registry_exists": "sagestack.registry.store",
}

__all__ = [*_EXPORTS, "DEFAULT_MODEL_NAME"]
__getattr__ = lazy_exports(__name__, _EXPORTS)
