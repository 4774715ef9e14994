"""Model predictors shared by the MLflow pyfunc and the HTTP service (no web framework here)."""

from sagestack.serving.predictor import FastTextPredictor, Prediction

__all__ = ["FastTextPredictor", "Prediction"]
