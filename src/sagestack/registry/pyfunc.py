"""The MLflow pyfunc flavour of the fastText classifier: a thin wrapper over FastTextPredictor."""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from sagestack.serving.predictor import FastTextPredictor

TEXT_COLUMN = "review_body"


def predictions_frame(predictor: FastTextPredictor, model_input) -> pd.DataFrame:
    """Predict a frame (``review_body`` column, else the first) or a list of texts.

    Returns:
        A frame with ``label`` and one ``prob_<label>`` column per class.
    """
    if isinstance(model_input, pd.DataFrame):
        column = TEXT_COLUMN if TEXT_COLUMN in model_input.columns else model_input.columns[0]
        texts = model_input[column].astype(str).tolist()
    else:
        texts = [str(text) for text in model_input]
    proba = predictor.predict_proba(texts)
    out = pd.DataFrame(proba, columns=[f"prob_{label}" for label in predictor.labels])
    out.insert(0, "label", [predictor.labels[i] for i in proba.argmax(axis=1)])
    return out


class FastTextPyfunc(mlflow.pyfunc.PythonModel):
    """``mlflow.pyfunc`` model: reviews in, ``label`` + ``prob_<label>`` columns out."""

    def load_context(self, context) -> None:
        self._predictor = FastTextPredictor.load(context.artifacts["model"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        return predictions_frame(self._predictor, model_input)
