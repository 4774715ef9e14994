"""The ``fasttext`` model kind: the BlazingText-equivalent classifier (training is in ``sagestack.text``)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sagestack.data.fasttext_format import LABEL_PREFIX
from sagestack.data.tokenize import course_tokenize
from sagestack.errors import RegistryError
from sagestack.models.base import TextClassifier
from sagestack.models.evaluation import Evaluation, evaluate_labels, label_order

MODEL_FILES = ("model.bin", "model.ftz")


class FastTextPredictor(TextClassifier):
    """Predicts review sentiment with a fastText supervised model (``.bin`` or quantized ``.ftz``).

    Raw review text is tokenized exactly as the training data was (the course tokenization),
    so callers pass reviews as users wrote them.
    """

    kind = "fasttext"

    def __init__(self, model) -> None:  # a fasttext.FastText._FastText
        self._model = model
        self.labels: list[str] = [lab[len(LABEL_PREFIX) :] for lab in model.get_labels()]

    @classmethod
    def load(cls, path: Path | str) -> "FastTextPredictor":
        """Load a model directory (``model.bin``/``model.ftz`` inside) or a model file.

        Raises:
            RegistryError: a directory without a fastText model file, or a file fastText cannot load.
        """
        import fasttext

        path = Path(path)
        if path.is_dir():
            files = [path / name for name in MODEL_FILES if (path / name).is_file()]
            if not files:
                raise RegistryError(f"{path} holds no model.bin or model.ftz; pass a fastText model")
            path = files[0]
        try:
            return cls(fasttext.load_model(str(path)))
        except ValueError as exc:  # fastText's "has wrong file format!" for a truncated or foreign file
            raise RegistryError(f"{path} cannot be loaded ({exc}); retrain the model") from None

    def save(self, model_dir: Path) -> None:
        """Save the model as ``model.bin`` in ``model_dir`` (quantized models as ``model.ftz``)."""
        name = "model.ftz" if self._model.f.isQuant() else "model.bin"
        self._model.save_model(str(Path(model_dir) / name))

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

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities per label (columns in ``self.labels`` order) for raw reviews."""
        return self.predict_proba_tokenized([course_tokenize(text) for text in texts])

    def predict_labels_tokenized(self, lines: Sequence[str]) -> list[str]:
        """The top label (as in the model, e.g. ``"-1"``) for each tokenized line."""
        proba = self.predict_proba_tokenized(lines)
        return [self.labels[i] for i in proba.argmax(axis=1)]


def evaluate_fasttext_file(predictor: FastTextPredictor, path: Path) -> Evaluation:
    """Evaluate a fastText predictor on a labelled, already tokenized fastText file."""
    from sagestack.data.fasttext_format import read_fasttext

    y_true, texts = read_fasttext(path)
    return evaluate_labels(y_true, predictor.predict_labels_tokenized(texts), labels=label_order(predictor.labels))
