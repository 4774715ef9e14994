"""What every model kind provides: a text classifier with labels, probabilities and a saved form.

A trained model is a directory: the kind's own files plus ``sagestack-model.json`` (the
:class:`ModelCard`), which names the kind, so any code can load any model without knowing
which kind it is (:func:`sagestack.models.load_model`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np

from sagestack.errors import RegistryError

CARD_FILE = "sagestack-model.json"
# What every trainer writes beside its model (train fasttext, baseline, bert, automl): see trainer_result().
RESULT_FILE = "result.json"


def label_value(label: str) -> int | str:
    """A label as the API reports it: ``"-1"`` -> ``-1``; non-numeric labels stay strings."""
    try:
        return int(label)
    except ValueError:
        return label


@dataclass(frozen=True)
class Prediction:
    """One prediction: the top label and the probability of every label."""

    label: int | str
    probabilities: dict[str, float]

    def to_dict(self) -> dict:
        """A JSON-serialisable form."""
        return {"label": self.label, "probabilities": self.probabilities}


@dataclass(frozen=True)
class ModelCard:
    """What a model directory holds: its kind, labels, training parameters and metrics.

    Attributes:
        kind: the registered model kind (``fasttext``, ``baseline``, ...).
        labels: the class labels, in the column order of ``predict_proba``.
        params: the training parameters (logged to MLflow).
        metrics: training figures (seconds, model size, ...), logged to MLflow.
        validation: the validation evaluation (``Evaluation.to_dict()``) or ``None``.
        servable: ``False`` for outputs that are not classifiers (fastText word vectors).
        requirements: distributions this model needs at inference beyond its kind's (e.g. the
            AutoML candidate's family, or the sentence encoder).
    """

    kind: str
    labels: list[str]
    params: dict = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    validation: dict | None = None
    servable: bool = True
    requirements: list[str] = field(default_factory=list)

    def result(self, out_dir: Path, model_path: Path, *, model_bytes: int | None = None) -> dict:
        """The ``result.json`` every trainer writes: the same keys whatever the kind.

        Args:
            out_dir: the trainer's output folder.
            model_path: the model file or folder inside it.
            model_bytes: its size (default: measured, every file under a folder).

        Returns:
            ``{"out_dir", "model_path", "kind", "params", "train_seconds", "model_bytes",
            "model_size_mb", "validation_accuracy", "validation"}`` (the last two ``None``
            without a validation set).
        """
        path = Path(model_path)
        if model_bytes is None:
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            model_bytes = sum(p.stat().st_size for p in files)
        return {"out_dir": str(out_dir), "model_path": str(model_path), "kind": self.kind, "params": self.params,
                "train_seconds": self.metrics.get("train_seconds"), "model_bytes": int(model_bytes),
                "model_size_mb": round(model_bytes / 1e6, 3),
                "validation_accuracy": (self.validation or {}).get("accuracy"), "validation": self.validation}

    def save(self, model_dir: Path) -> Path:
        """Write the card into ``model_dir``."""
        path = Path(model_dir) / CARD_FILE
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, model_dir: Path) -> "ModelCard":
        """Read the card of ``model_dir``.

        Raises:
            RegistryError: the directory has no card (it is not a sagestack model), or the card is damaged.
        """
        path = Path(model_dir) / CARD_FILE
        if not path.is_file():
            raise RegistryError(f"{model_dir} is not a sagestack model directory (no {CARD_FILE}); pass a trained model's output folder")
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:  # bad JSON, or fields this version does not know
            raise RegistryError(f"{path} is not a valid model card ({exc}); retrain the model or restore the file") from None


@runtime_checkable
class Predictor(Protocol):
    """The protocol every model kind's predictor follows."""

    kind: ClassVar[str]
    labels: list[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict(self, texts: Sequence[str], k: int | None = None) -> list[Prediction]: ...

    def save(self, model_dir: Path) -> None: ...

    @classmethod
    def load(cls, model_dir: Path) -> "Predictor": ...


class TextClassifier:
    """Base class of the predictors: ``predict`` and ``predict_labels`` from ``predict_proba``.

    A kind implements ``labels``, ``predict_proba(texts)``, ``save(dir)`` and ``load(dir)``.
    """

    kind: ClassVar[str] = ""
    labels: list[str]
    # Where the predictor was loaded from (set by sagestack.models.load_model and the registry),
    # so an endpoint can tell when its model files are gone.
    source_path: Path | None = None

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape ``(len(texts), len(self.labels))``, for raw texts."""
        raise NotImplementedError

    def predict(self, texts: Sequence[str], k: int | None = None) -> list[Prediction]:
        """Predict raw texts.

        Args:
            texts: review texts as written.
            k: keep only the ``k`` most probable labels in ``probabilities`` (default: all).

        Returns:
            One :class:`Prediction` per text, in order.
        """
        proba = self.predict_proba(texts)
        results = []
        for row in proba:
            order = np.argsort(-row, kind="stable")[: k or len(self.labels)]
            results.append(
                Prediction(
                    label=label_value(self.labels[order[0]]),
                    probabilities={self.labels[i]: round(float(row[i]), 6) for i in order},
                )
            )
        return results

    def predict_labels(self, texts: Sequence[str]) -> list[str]:
        """The top label (as the model names it, e.g. ``"-1"``) of each raw text."""
        if not texts:
            return []
        proba = self.predict_proba(texts)
        return [self.labels[i] for i in proba.argmax(axis=1)]
