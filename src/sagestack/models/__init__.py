"""Model kinds: one predictor per kind behind one protocol, found through a registry of kinds.

``load_model(dir)`` loads any trained model; ``get_kind(name)`` says how a kind is loaded,
which packages it needs and whether its predictions are cheap or heavy to serve.
"""

from sagestack.models.base import CARD_FILE, ModelCard, Prediction, Predictor, TextClassifier, label_value
from sagestack.models.evaluation import (
    SELECT_METRICS,
    Evaluation,
    evaluate_labels,
    evaluate_predictor,
    evaluation_markdown,
    label_order,
)
from sagestack.models.kinds import KIND_MODULES, ModelKind, get_kind, kind_for_file, kind_names, load_model

__all__ = [
    "CARD_FILE",
    "KIND_MODULES",
    "SELECT_METRICS",
    "Evaluation",
    "ModelCard",
    "ModelKind",
    "Prediction",
    "Predictor",
    "TextClassifier",
    "evaluate_labels",
    "evaluate_predictor",
    "evaluation_markdown",
    "get_kind",
    "kind_for_file",
    "kind_names",
    "label_order",
    "label_value",
    "load_model",
]
