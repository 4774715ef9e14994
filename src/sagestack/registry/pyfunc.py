"""One MLflow pyfunc for every model kind: the model directory's card says which predictor loads it."""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from sagestack.data.reviews import REVIEW_BODY
from sagestack.models import label_order, load_model


def predictions_frame(predictor, model_input) -> pd.DataFrame:
    """Predict a frame (``review_body`` column, else the first) or a list of texts.

    Returns:
        A frame with ``label`` and one ``prob_<label>`` column per class, in label order (``-1, 0, 1``).
    """
    if isinstance(model_input, pd.DataFrame):
        column = REVIEW_BODY if REVIEW_BODY in model_input.columns else model_input.columns[0]
        texts = model_input[column].astype(str).tolist()
    else:
        texts = [str(text) for text in model_input]
    proba = predictor.predict_proba(texts)
    out = pd.DataFrame(proba, columns=[f"prob_{label}" for label in predictor.labels])
    out.insert(0, "label", [predictor.labels[i] for i in proba.argmax(axis=1)])
    # Columns in one order whatever the kind (fastText orders labels by training frequency), so
    # the schema of reviews-sentiment stays the same when @champion changes kind.
    return out[["label", *(f"prob_{label}" for label in label_order(predictor.labels))]]


class SagestackPyfunc(mlflow.pyfunc.PythonModel):
    """``mlflow.pyfunc`` model of any kind: reviews in, ``label`` + ``prob_<label>`` columns out."""

    def load_context(self, context) -> None:
        self._predictor = load_model(context.artifacts["model"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        return predictions_frame(self._predictor, model_input)
