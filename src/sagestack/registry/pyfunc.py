"""One MLflow pyfunc for every model kind: the model directory's card says which predictor loads it.

``mlflow.pyfunc.load_model(uri).predict(...)`` takes what a user has at hand: a list of review
texts (``["Love this dress"]``), one text, a pandas Series, or a DataFrame with a ``review_body``
column (other columns are ignored). The model is logged with an output schema only: MLflow's
input enforcement would turn a list into a frame with a column named ``0`` and refuse it for a
named ``review_body`` schema, while an unnamed one-column schema silently keeps a frame's *first*
column (``sentiment`` in the course's CSV). This module checks the input itself instead.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from sagestack.data.reviews import REVIEW_BODY
from sagestack.errors import DataError
from sagestack.models import label_order, load_model
from sagestack.models.base import label_value

# What the logged model's input example shows a user: a plain list of reviews.
INPUT_EXAMPLE = ["I love this dress, it fits perfectly."]


def review_texts(model_input) -> list[str]:
    """The review texts of a pyfunc input.

    Args:
        model_input: a list/tuple/array/Series of texts, one text, or a DataFrame with a
            ``review_body`` column (or a single column).

    Raises:
        DataError: a DataFrame with several columns and none named ``review_body``, or an input of
            another type.
    """
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        if REVIEW_BODY in model_input.columns:
            column = model_input[REVIEW_BODY]
        elif len(model_input.columns) == 1:
            column = model_input.iloc[:, 0]
        else:
            raise DataError(f"the input frame has columns {', '.join(map(str, model_input.columns))} and none named "
                            f"{REVIEW_BODY}; pass a list of reviews or a frame with a {REVIEW_BODY} column")
        return column.astype(str).tolist()
    if isinstance(model_input, (list, tuple, pd.Series, np.ndarray)):
        return [str(text) for text in np.asarray(model_input, dtype=object).ravel()]
    raise DataError(f"cannot predict a {type(model_input).__name__}; pass a list of reviews, e.g. ['Love this dress']")


def predictions_frame(predictor, model_input) -> pd.DataFrame:
    """Predict the reviews of ``model_input`` (see :func:`review_texts`).

    Returns:
        A frame with ``label`` (the class as the model was trained on it: ``-1``, ``0`` or ``1``
        for the sentiment task) and one ``prob_<label>`` column per class, in label order.
    """
    texts = review_texts(model_input)
    proba = np.asarray(predictor.predict_proba(texts), dtype=float).reshape(len(texts), len(predictor.labels))
    out = pd.DataFrame(proba, columns=[f"prob_{label}" for label in predictor.labels])
    out.insert(0, "label", [label_value(predictor.labels[i]) for i in proba.argmax(axis=1)])
    # Columns in one order whatever the kind (fastText orders labels by training frequency), so
    # the schema of reviews-sentiment stays the same when @champion changes kind.
    return out[["label", *(f"prob_{label}" for label in label_order(predictor.labels))]]


def model_signature(predictor):
    """The signature the pyfunc is logged with: the output schema only (see the module docstring).

    Written out rather than inferred: inferring from an int column makes MLflow warn about
    missing values, which a predicted label never has.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    labels = label_order(predictor.labels)
    label_type = "long" if all(isinstance(label_value(label), int) for label in labels) else "string"
    return ModelSignature(outputs=Schema([ColSpec(label_type, "label"),
                                          *(ColSpec("double", f"prob_{label}") for label in labels)]))


class SagestackPyfunc(mlflow.pyfunc.PythonModel):
    """``mlflow.pyfunc`` model of any kind: reviews in, ``label`` + ``prob_<label>`` columns out."""

    def load_context(self, context) -> None:
        self._predictor = load_model(context.artifacts["model"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        return predictions_frame(self._predictor, model_input)
