"""The ``baseline`` model kind: TF-IDF word and character n-grams + logistic regression (scikit-learn).

What Autopilot's text candidates were built from, and the yardstick every other kind must
beat. It reads raw review text (no course tokenization: the character n-grams see the text
as written) and trains in seconds on a CPU.
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from array import array
from pathlib import Path
from typing import Sequence

import numpy as np

from sagestack.data.atomic import atomic_dir
from sagestack.data.reviews import REVIEW_BODY, SENTIMENT, load_reviews
from sagestack.errors import DataError, RegistryError
from sagestack.models.base import RESULT_FILE, ModelCard, TextClassifier
from sagestack.models.baseline_params import BaselineParams, make_baseline_params  # noqa: F401 (re-exported)
from sagestack.models.evaluation import Evaluation, evaluate_predictor

# The fitted pipeline, pickled (protocol 5, the C pickler: saved in 0.3 s and loaded in 0.1 s where joblib's
# Python-level pickler took 1.9 s and 0.9 s, in every pipeline step that loads the model). Models saved before
# are model.joblib files and still load.
MODEL_FILE = "model.pkl"
JOBLIB_FILE = "model.joblib"


class BaselinePredictor(TextClassifier):
    """Predicts with a fitted scikit-learn pipeline (vectorizers + logistic regression).

    ``predict_proba`` computes the pipeline's own probabilities through :class:`_LinearTfidf`, without
    scikit-learn's per-call validation, dispatch and sparse matrices (most of one review's ~3 ms
    there; ~0.2 ms here, ``bench/baseline_latency.py``); the fitted pipeline stays what is saved and
    is the reference (:attr:`pipeline`).
    """

    kind = "baseline"

    def __init__(self, pipeline) -> None:  # a sklearn.pipeline.Pipeline
        self._pipeline = pipeline
        # A pipeline built otherwise than build_pipeline builds it (an older model file, say) is
        # scored by scikit-learn itself: slower, never different.
        self._scorer = _LinearTfidf(pipeline) if _LinearTfidf.computes(pipeline) else pipeline
        self.labels: list[str] = [str(c) for c in pipeline.classes_]

    def __getstate__(self) -> dict:
        # The scorer (its word cache cannot be pickled) is rebuilt from the pipeline on unpickling.
        return {name: value for name, value in self.__dict__.items() if name != "_scorer"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._scorer = _LinearTfidf(self._pipeline) if _LinearTfidf.computes(self._pipeline) else self._pipeline

    @property
    def pipeline(self):
        """The fitted scikit-learn pipeline (what ``model.pkl`` holds; its ``predict_proba`` is the reference)."""
        return self._pipeline

    @classmethod
    def load(cls, model_dir: Path | str) -> "BaselinePredictor":
        """Load ``model.pkl`` (or, saved by an earlier sagestack, ``model.joblib``) from a model directory.

        Raises:
            RegistryError: the file is missing or cannot be read back.
        """
        import pickle

        path = Path(model_dir) / MODEL_FILE
        if not path.is_file() and (Path(model_dir) / JOBLIB_FILE).is_file():
            path = Path(model_dir) / JOBLIB_FILE
        if not path.is_file():
            raise RegistryError(f"{model_dir} holds no {MODEL_FILE}; pass a trained baseline's folder")
        try:
            if path.name == JOBLIB_FILE:
                import joblib

                return cls(joblib.load(path))
            with path.open("rb") as file:
                return cls(pickle.load(file))
        except Exception as exc:  # truncated or foreign pickles raise many types (EOFError, UnpicklingError, ...)
            raise RegistryError(f"{path} cannot be loaded ({type(exc).__name__}: {exc}); retrain the model") from None

    def save(self, model_dir: Path) -> None:
        """Save the fitted pipeline as ``model.pkl`` in ``model_dir``."""
        import pickle

        with (Path(model_dir) / MODEL_FILE).open("wb") as file:
            pickle.dump(self._pipeline, file, protocol=5)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities per label (columns in ``self.labels`` order) for raw reviews."""
        if not len(texts):
            return np.zeros((0, len(self.labels)))
        return self._scorer.predict_proba(texts)


class _LinearTfidf:
    """The ``predict_proba`` of a pipeline :func:`build_pipeline` made, from its fitted tables with dicts and numpy.

    Same features, same numbers (tested against the pipeline): the vectorizers' own analyzers and
    vocabularies, sublinear tf (``1 + log count``) times idf, an l2 norm per vectorizer, the
    logistic regression's decision function and softmax (or logistic for two labels). Character
    n-grams (``char_wb``) never cross whitespace, so a review's are the sum of its words': each
    word's vocabulary ids are cached, which turns most of a review's n-gram work into dict lookups.
    """

    _WORD_CACHE = 1 << 15  # distinct words whose n-gram ids are kept (the 7,110 reviews have 18k)
    # Only words up to this length are cached, so the cache stays ~30 MB at most whatever the requests hold (a
    # 5,000-character token would keep ~40 KB); longer words are rare and computed each time.
    _CACHED_WORD_LENGTH = 48

    @staticmethod
    def computes(pipeline) -> bool:
        """Whether ``pipeline`` is one this class reproduces: word + ``char_wb`` TF-IDF vectorizers with sublinear
        tf, idf and l2 norms, unweighted, then a logistic regression (what :func:`build_pipeline` makes)."""
        try:
            if [name for name, _ in pipeline.steps] != ["features", "classifier"]:
                return False
            features, classifier = pipeline.named_steps["features"], pipeline.named_steps["classifier"]
            (_, words), (_, chars) = features.transformer_list
        except (AttributeError, KeyError, TypeError, ValueError):
            return False
        vectorizers_as_built = all(
            type(v).__name__ == "TfidfVectorizer" and v.sublinear_tf and v.use_idf and v.norm == "l2"
            and not v.binary and v.preprocessor is None and v.tokenizer is None and v.vocabulary is None
            and v.input == "content" and np.dtype(v.dtype) == np.float64
            for v in (words, chars))
        return (vectorizers_as_built and type(features).__name__ == "FeatureUnion"
                and words.analyzer == "word" and chars.analyzer == "char_wb"
                and not features.transformer_weights and type(classifier).__name__ == "LogisticRegression"
                and hasattr(classifier, "coef_"))

    def __init__(self, pipeline) -> None:
        (_, words), (_, chars) = pipeline.named_steps["features"].transformer_list
        classifier = pipeline.named_steps["classifier"]
        self._idf = np.concatenate([words.idf_, chars.idf_])
        self._weights = np.ascontiguousarray((classifier.coef_ * self._idf).T)  # (features, classes or 1): idf folded in
        self._intercept = classifier.intercept_
        self._features = len(self._idf)
        self._word_vocabulary, self._char_vocabulary = words.vocabulary_, chars.vocabulary_
        self._char_offset = len(words.vocabulary_)
        self._word_ngrams, self._char_ngrams = words.build_analyzer(), chars.build_analyzer()
        self._cached_char_ids = cached = functools.lru_cache(maxsize=self._WORD_CACHE)(self._char_ids_of_word)
        uncached, longest = self._char_ids_of_word, self._CACHED_WORD_LENGTH
        self._char_ids = lambda word: cached(word) if len(word) <= longest else uncached(word)

    def _char_ids_of_word(self, word: str) -> bytes:
        """Column ids (int64 bytes, with repeats) of one whitespace-free word's character n-grams."""
        vocabulary, offset = self._char_vocabulary, self._char_offset
        return array("q", [offset + j for j in map(vocabulary.get, self._char_ngrams(word)) if j is not None]).tobytes()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities per class (the pipeline's ``classes_`` order) for a non-empty list of raw texts."""
        word_id, char_ids, unknown = self._word_vocabulary.get, self._char_ids, itertools.repeat(-1)
        parts: list[np.ndarray] = []  # column ids per (text, vectorizer) block: text i's words are block 2i, its characters 2i+1
        for text in texts:
            grams = self._word_ngrams(text)
            parts.append(np.fromiter(map(word_id, grams, unknown), np.int64, len(grams)))  # -1: not in the vocabulary
            # Any split at whitespace is exact: the analyzer splits each word again and pads it alone.
            parts.append(np.frombuffer(b"".join(map(char_ids, text.split())), np.int64))
        lengths = [len(part) for part in parts]
        blocks = len(lengths)
        ids = np.concatenate(parts)
        keys = np.repeat(np.arange(blocks, dtype=np.int64), lengths) * self._features + ids
        keys, counts = np.unique(keys[ids >= 0], return_counts=True)
        block, column = np.divmod(keys, self._features)
        tf = 1.0 + np.log(counts)
        tfidf = tf * self._idf[column]
        norms = np.sqrt(np.bincount(block, tfidf * tfidf, minlength=blocks))
        scaled = tf / norms[block]  # every block with an entry has a positive norm (tf >= 1, idf >= 1)
        text_of = block // 2
        decision = np.empty((len(texts), self._weights.shape[1]))
        for c in range(self._weights.shape[1]):
            decision[:, c] = np.bincount(text_of, scaled * self._weights[column, c], minlength=len(texts))
        decision += self._intercept
        if decision.shape[1] == 1:  # two labels: scikit-learn's logistic of the one decision
            positive = 1.0 / (1.0 + np.exp(-decision[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        decision -= decision.max(axis=1, keepdims=True)
        np.exp(decision, out=decision)
        decision /= decision.sum(axis=1, keepdims=True)
        return decision


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


def _fit(pipeline, texts: list[str], labels: list[str]):
    """Fit a pipeline :func:`build_pipeline` made, with each distinct word's character n-grams computed once.

    ``char_wb`` n-grams never cross whitespace, so a review's are its words' (what :class:`_LinearTfidf`
    relies on too): during the fit the character vectorizer's analyzer is scikit-learn's own ``char_wb``
    analyzer applied per word through a dict, which fits the same vocabulary and idf as the plain
    fit with a third of its n-gram work (the 6,400 training reviews hold 18k distinct words).
    The fitted pipeline is left with ``analyzer="char_wb"``, as built: what is saved does not change.
    The fit runs on one BLAS thread.
    """
    import warnings

    from threadpoolctl import threadpool_limits

    chars = pipeline.named_steps["features"].transformer_list[1][1]
    per_word, known = chars.build_analyzer(), {}

    def analyze(text: str) -> list[str]:
        grams: list[str] = []
        for word in text.split():
            ngrams = known.get(word)
            if ngrams is None:
                ngrams = known[word] = per_word(word)
            grams += ngrams
        return grams

    chars.set_params(analyzer=analyze)
    try:
        # One BLAS thread: the solver's dense products are small, and OpenBLAS's threads spin-wait between
        # them (on 2 cores: 11-16 s and 16 s of CPU for this fit with two threads, 7 s and 6.4 s with one).
        with threadpool_limits(1), warnings.catch_warnings():  # the n-gram range is what `per_word` applies
            warnings.filterwarnings("ignore", message="The parameter 'ngram_range' will not be used")
            return pipeline.fit(texts, labels)
    finally:
        chars.set_params(analyzer="char_wb")


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
        out_dir: the model directory (``model.pkl`` + ``sagestack-model.json``; replaced).
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
        pipeline = _fit(build_pipeline(params), texts, labels)
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
