"""Model kinds: one predictor per kind behind one protocol, found through a registry of kinds.

``load_model(dir)`` loads any trained model; ``get_kind(name)`` says how a kind is loaded,
which packages it needs and whether its predictions are cheap or heavy to serve. The names
load on first use (PEP 562): importing one light submodule (a kind's parameters) stays cheap.
"""

from sagestack.lazy import lazy_exports

_EXPORTS = {
    "CARD_FILE": "sagestack.models.base",
    "ModelCard": "sagestack.models.base",
    "Prediction": "sagestack.models.base",
    "Predictor": "sagestack.models.base",
    "TextClassifier": "sagestack.models.base",
    "label_value": "sagestack.models.base",
    "SELECT_METRICS": "sagestack.models.evaluation",
    "Evaluation": "sagestack.models.evaluation",
    "evaluate_labels": "sagestack.models.evaluation",
    "evaluate_predictor": "sagestack.models.evaluation",
    "evaluation_markdown": "sagestack.models.evaluation",
    "label_order": "sagestack.models.evaluation",
    "KIND_MODULES": "sagestack.models.kinds",
    "ModelKind": "sagestack.models.kinds",
    "get_kind": "sagestack.models.kinds",
    "kind_for_file": "sagestack.models.kinds",
    "kind_names": "sagestack.models.kinds",
    "load_model": "sagestack.models.kinds",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
