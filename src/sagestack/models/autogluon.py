"""The ``autogluon`` model kind: the best candidate of an AutoML job (an AutoGluon TabularPredictor).

A model directory holds ``autogluon/`` (AutoGluon's predictor, cloned for deployment with
only the chosen candidate) and the card, whose ``params`` say which column is the text, which
other columns the model reads and whether it adds sentence embeddings. From raw texts the
predictor builds the frame the model was trained on (text, plus embeddings when it used them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from sagestack.errors import RegistryError
from sagestack.models.base import ModelCard, TextClassifier

PREDICTOR_DIR = "autogluon"


def input_frame(frame: pd.DataFrame, text_column: str, columns: Sequence[str] = (), embeddings: bool = False,
                deadline: float | None = None) -> pd.DataFrame:
    """What an AutoGluon candidate reads: the text (missing as ""), the other columns, and the
    sentence-embedding columns when it was trained with them (computed before ``deadline``, a
    ``time.monotonic()`` time, or :class:`~sagestack.models.embeddings.EmbeddingDeadline`)."""
    from sagestack.models.embeddings import with_embeddings

    inputs = frame[[text_column, *columns]].reset_index(drop=True).copy()
    inputs[text_column] = inputs[text_column].fillna("").astype(str)
    return with_embeddings(inputs, text_column, deadline) if embeddings else inputs


class AutoGluonPredictor(TextClassifier):
    """Predicts with one AutoGluon model (the candidate the AutoML job chose)."""

    kind = "autogluon"

    def __init__(self, tabular, *, text_column: str, columns: Sequence[str] = (), embeddings: bool = False,
                 model: str | None = None) -> None:
        self._tabular = tabular
        self.text_column = text_column
        self.columns = list(columns)
        self.embeddings = embeddings
        self.model = model or tabular.model_best
        self.labels: list[str] = [str(label) for label in tabular.class_labels]

    @classmethod
    def load(cls, model_dir: Path | str) -> "AutoGluonPredictor":
        """Load the AutoGluon predictor of a model directory and keep its model in memory.

        Raises:
            RegistryError: the folder is missing or AutoGluon cannot read it back.
        """
        from autogluon.tabular import TabularPredictor

        model_dir = Path(model_dir)
        card = ModelCard.load(model_dir)
        path = model_dir / PREDICTOR_DIR
        if not path.is_dir():
            raise RegistryError(f"{model_dir} holds no {PREDICTOR_DIR}/ folder; pass the model folder of an AutoML job")
        try:
            tabular = TabularPredictor.load(str(path), verbosity=0)
            tabular.persist(models=[card.params["candidate"]])  # in memory: no disk read per request
        except Exception as exc:  # damaged pickles raise many types
            raise RegistryError(f"{path} cannot be loaded ({type(exc).__name__}: {exc}); retrain the model") from None
        return cls(tabular, text_column=card.params["text_column"], columns=card.params.get("columns", ()),
                   embeddings=bool(card.params.get("embeddings")), model=card.params["candidate"])

    def save(self, model_dir: Path) -> None:
        """Clone the chosen model (only it) into ``model_dir/autogluon``."""
        self._tabular.clone_for_deployment(str(Path(model_dir) / PREDICTOR_DIR), model=self.model)

    def predict_frame_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities per label (columns in ``self.labels`` order) for rows with every input column."""
        if not len(frame):
            return np.zeros((0, len(self.labels)))
        inputs = input_frame(frame, self.text_column, self.columns, self.embeddings)
        proba = self._tabular.predict_proba(inputs, model=self.model, as_pandas=True)
        proba.columns = [str(c) for c in proba.columns]
        return proba[self.labels].to_numpy()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities per label for raw reviews.

        Raises:
            RegistryError: the model also reads other columns than the text.
        """
        if self.columns:
            raise RegistryError(
                f"this AutoGluon model also reads {', '.join(self.columns)}; it cannot predict from text alone"
            )
        return self.predict_frame_proba(pd.DataFrame({self.text_column: [str(t) for t in texts]}))
