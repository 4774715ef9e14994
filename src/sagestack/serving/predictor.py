"""Predictors: one class per model kind, shared by the MLflow pyfunc and the HTTP service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sagestack.data.fasttext_format import LABEL_PREFIX
from sagestack.data.tokenize import course_tokenize


def _label_value(label: str) -> int | str:
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


class FastTextPredictor:
    """Predicts review sentiment with a fastText supervised model (``.bin`` or quantized ``.ftz``).

    Raw review text is tokenized exactly as the training data was (the course tokenization),
    so callers pass reviews as users wrote them.
    """

    def __init__(self, model) -> None:  # a fasttext.FastText._FastText
        self._model = model
        self.labels: list[str] = [lab[len(LABEL_PREFIX) :] for lab in model.get_labels()]

    @classmethod
    def load(cls, path: Path | str) -> "FastTextPredictor":
        """Load a saved fastText model file."""
        import fasttext

        return cls(fasttext.load_model(str(path)))

    def predict_proba_tokenized(self, lines: Sequence[str]) -> np.ndarray:
        """Probabilities, shape ``(len(lines), len(self.labels))``, for already tokenized lines."""
        if not lines:
            return np.zeros((0, len(self.labels)))
        label_lists, prob_lists = self._model.predict(list(lines), k=-1)
        index = {f"{LABEL_PREFIX}{lab}": i for i, lab in enumerate(self.labels)}
        out = np.zeros((len(lines), len(self.labels)))
        for row, (labs, probs) in enumerate(zip(label_lists, prob_lists)):
            for lab, prob in zip(labs, probs):
                out[row, index[lab]] = prob
        # fastText clips probabilities at 1e-5 each; renormalise so every row sums to 1.
        return out / out.sum(axis=1, keepdims=True)

    def predict_proba(self, reviews: Sequence[str]) -> np.ndarray:
        """Probabilities per label (columns in ``self.labels`` order) for raw reviews."""
        return self.predict_proba_tokenized([course_tokenize(text) for text in reviews])

    def predict(self, reviews: Sequence[str], k: int | None = None) -> list[Prediction]:
        """Predict raw reviews.

        Args:
            reviews: review texts as written.
            k: keep only the ``k`` most probable labels in ``probabilities`` (default: all).

        Returns:
            One :class:`Prediction` per review, in order.
        """
        proba = self.predict_proba(reviews)
        results = []
        for row in proba:
            order = np.argsort(-row)[: k or len(self.labels)]
            results.append(
                Prediction(
                    label=_label_value(self.labels[order[0]]),
                    probabilities={self.labels[i]: round(float(row[i]), 6) for i in order},
                )
            )
        return results

    def predict_labels_tokenized(self, lines: Sequence[str]) -> list[str]:
        """The top label (as in the model, e.g. ``"-1"``) for each tokenized line."""
        proba = self.predict_proba_tokenized(lines)
        return [self.labels[i] for i in proba.argmax(axis=1)]
