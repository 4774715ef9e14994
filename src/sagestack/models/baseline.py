"""The ``baseline`` model kind: TF-IDF word and character n-grams + logistic regression (scikit-learn).

What Autopilot's text candidates were built from, and the yardstick every other kind must
beat. It reads raw review text (no course tokenization: the character n-grams see the text
as written) and trains in seconds on a CPU.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from sagestack.data.atomic import atomic_dir
from sagestack.data.reviews import REVIEW_BODY, SENTIMENT, load_reviews
from sagestack.errors import DataError, RegistryError
from sagestack.models.base import RESULT_FILE, ModelCard, TextClassifier
from sagestack.models.baseline_params import BaselineParams, make_baseline_params  # noqa: F401 (re-exported)
from sagestack.models.evaluation import Evaluation, evaluate_predictor

MODEL_FILE = "model.joblib"


class BaselinePredictor(TextClassifier):
    """Predicts with a fitted scikit-learn pipeline (vectorizers + logistic regression)."""

    kind = "baseline"

    def __init__(self, pipeline) -> None:  # a sklearn.pipeline.Pipeline
        self._pipeline = pipeline
        self.labels: list[str] = [str(c) for c in pipeline.classes_]

    @classmethod
    def load(cls, model_dir: Path | str) -> "BaselinePredictor":
        """Load ``model.joblib`` from a model directory.

        Raises:
            RegistryError: the file is missing or cannot be read back.
        """
        import joblib

        path = Path(model_dir) / MODEL_FILE
        if not path.is_file():
            raise RegistryError(f"{model_dir} holds no {MODEL_FILE}; pass a trained baseline's folder")
        try:
            return cls(joblib.load(path))
        except Exception as exc:  # truncated or foreign pickles raise many types (EOFError, UnpicklingError, ...)
            raise RegistryError(f"{path} cannot be loaded ({type(exc).__name__}: {exc}); retrain the model") from None

    def save(self, model_dir: Path) -> None:
        """Save the fitted pipeline as ``model.joblib`` in ``model_dir``."""
        import joblib

        joblib.dump(self._pipeline, Path(model_dir) / MODEL_FILE)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities per label (columns in ``self.labels`` order) for raw reviews."""
        if not len(texts):
            return np.zeros((0, len(self.labels)))
        return self._pipeline.predict_proba(list(texts))


def build_pipeline(params: BaselineParams):
    """The unfitted scikit-learn pipeline: word + character TF-IDF, then logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    words = TfidfVectorizer(
        ngram_range=(1, params.word_ngrams), min_df=params.min_df, max_features=params.max_features,
        sublinear_tf=True, lowercase=True,
    )
    chars = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(params.char_ngrams_min, params.char_ngrams_max), min_df=params.min_df,
        max_features=params.max_features, sublinear_tf=True, lowercase=True,
    )
    return Pipeline([
        ("features", FeatureUnion([("words", words), ("chars", chars)])),
        ("classifier", LogisticRegression(C=params.c, max_iter=params.max_iter, random_state=params.seed)),
    ])


def _read_labelled(path: Path, role: str) -> tuple[list[str], list[str]]:
    """Texts and labels of a review CSV, validated as every sagestack input is (one-line errors)."""
    frame = load_reviews(path).frame  # course or raw layout; labels checked against -1/0/1
    if frame[SENTIMENT].nunique() < 2:
        raise DataError(f"{role} file {path} needs at least two sentiment labels, found {frame[SENTIMENT].nunique()}")
    return frame[REVIEW_BODY].astype(str).tolist(), frame[SENTIMENT].astype(int).astype(str).tolist()


def train_baseline(
    train_csv: Path | str,
    out_dir: Path | str,
    params: BaselineParams | None = None,
    *,
    validation_csv: Path | str | None = None,
    overwrite: bool = False,
) -> tuple[ModelCard, Evaluation | None]:
    """Fit the baseline on a review CSV (``sentiment``, ``review_body``) and save it atomically.

    Args:
        train_csv: training reviews (e.g. ``train.csv`` of ``sagestack data prepare``).
        out_dir: the model directory (``model.joblib`` + ``sagestack-model.json``; replaced).
        params: hyperparameters (defaults: :class:`BaselineParams`).
        validation_csv: reviews to evaluate on after training.

    Returns:
        ``(card, validation evaluation or None)``.

    Raises:
        DataError: a missing, empty or malformed file, missing columns, labels outside -1/0/1,
            a single label, or too little text to learn from.
    """
    params = params or BaselineParams()
    texts, labels = _read_labelled(Path(train_csv), "training")
    validation_data = _read_labelled(Path(validation_csv), "validation") if validation_csv else None
    start = time.perf_counter()
    try:
        pipeline = build_pipeline(params).fit(texts, labels)
    except ValueError as exc:  # scikit-learn: "After pruning, no terms remain", ...
        raise DataError(f"cannot train the baseline on {train_csv} ({exc}); add reviews or lower --min-df") from None
    seconds = time.perf_counter() - start
    predictor = BaselinePredictor(pipeline)
    validation = evaluate_predictor(predictor, *validation_data) if validation_data else None
    with atomic_dir(Path(out_dir), command="train baseline", overwrite=overwrite) as tmp:
        predictor.save(tmp)
        card = ModelCard(
            kind=BaselinePredictor.kind,
            labels=predictor.labels,
            params=params.model_dump(),
            metrics={
                "train_seconds": round(seconds, 3),
                "model_size_mb": round((tmp / MODEL_FILE).stat().st_size / 1e6, 3),
                "vocabulary": float(sum(len(v.vocabulary_) for _, v in pipeline.named_steps["features"].transformer_list)),
            },
            validation=validation.to_dict() if validation else None,
        )
        card.save(tmp)
        result = {**card.result(Path(out_dir), Path(out_dir) / MODEL_FILE, model_bytes=(tmp / MODEL_FILE).stat().st_size),
                  "vocabulary": int(card.metrics["vocabulary"])}
        (tmp / RESULT_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return card, validation


def train_prepared(prepared_dir: Path, model_dir: Path, params, context) -> dict:
    """The baseline kind's trainer: fit on ``prepared_dir/train.csv``, score ``validation.csv``.

    Returns:
        ``{"kind", "validation_accuracy", "train_seconds", "model_size_mb"}``.
    """
    split = Path(prepared_dir)
    card, validation = train_baseline(split / "train.csv", model_dir, BaselineParams(**params.model_dump(), seed=context.seed),
                                      validation_csv=split / "validation.csv")
    return {"kind": "baseline", "validation_accuracy": validation.accuracy,
            "train_seconds": card.metrics["train_seconds"], "model_size_mb": card.metrics["model_size_mb"]}
