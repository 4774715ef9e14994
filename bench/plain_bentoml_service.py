"""A plain BentoML service around a fastText model file: the baseline ``bench/serving_http.py``
measures sagestack's endpoint against. No sagestack code: BentoML's defaults, fastText, nothing else.

Run: PLAIN_FASTTEXT_MODEL=/path/model.bin bentoml serve plain_bentoml_service:PlainFastTextService --working-dir bench

``POST /predict`` with ``{"reviews": ["...", ...]}`` answers ``{"predictions": [{"label": 1,
"probabilities": {"-1": 0.1, "0": 0.2, "1": 0.7}}, ...]}``. The same number of workers as
sagestack's service (``workers="cpu_count"``); everything else is BentoML's default, so unlike
sagestack's ``/predict`` this one is a sync api (BentoML's thread pool), is traced, has no request
guard or validation beyond the type, and neither tokenizes the reviews nor names the model.
"""

from __future__ import annotations

import os

import bentoml

MODEL_ENV_VAR = "PLAIN_FASTTEXT_MODEL"
PREFIX = "__label__"


def _label(name: str) -> int | str:
    name = name[len(PREFIX):]
    return int(name) if name.lstrip("-").isdigit() else name


@bentoml.service(name="plain-fasttext", workers="cpu_count")
class PlainFastTextService:
    """fastText's own ``predict`` behind ``/predict``."""

    def __init__(self) -> None:
        import fasttext

        self.model = fasttext.load_model(os.environ[MODEL_ENV_VAR])

    @bentoml.api(route="/predict")
    def predict(self, reviews: list[str]) -> dict:
        """Label and probability of each class for each review."""
        # fastText reads one line per text: no newlines; the model was trained on lower-cased text.
        labels, probabilities = self.model.predict([" ".join(r.lower().split()) for r in reviews], k=-1)
        return {
            "predictions": [
                {"label": _label(names[0]), "probabilities": {n[len(PREFIX):]: round(float(p), 6) for n, p in zip(names, probs)}}
                for names, probs in zip(labels, probabilities)
            ]
        }
