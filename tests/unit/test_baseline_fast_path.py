"""The baseline kind's scorer gives the fitted scikit-learn pipeline's probabilities, without calling it."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd
import pytest

from sagestack.models import load_model
from sagestack.models.baseline import BaselineParams, BaselinePredictor, build_pipeline, train_baseline

# What a review's text can hold that the n-gram analyzers treat specially: case, accents, Greek final
# sigma (lowercased by context), runs of mixed and Unicode whitespace, digits, punctuation, one-letter
# words, a word longer than any n-gram, nothing at all.
ODD_TEXTS = [
    "", " ", "\t\n", "a", "I", "OK!", "Love this DRESS", "  love   this\tdress\n\n", "café crème, naïve résumé",
    "ΟΔΥΣΣΕΥΣ ΣΟΦΟΣ σοφος", "size\u00a0small\u2003fits\u3000well", "runs\x1c\x1csmall\x1fbut", "5 stars 10/10 :) :(",
    "x" * 300, "Terrible, returned it.", "It's fine I guess", "fit-and-flare top; A-line skirt...", "über ÜBER ǅemal",
]


@pytest.fixture(scope="module")
def reviews(sample_split) -> tuple[list[str], list[str]]:
    """Every review of the sample split (a few hundred) and its label."""
    frame = pd.concat([pd.read_csv(sample_split / f"{part}.csv") for part in ("train", "validation", "test")])
    return frame["review_body"].astype(str).tolist(), frame["sentiment"].astype(str).tolist()


@pytest.fixture(scope="module")
def trained(sample_split, tmp_path_factory) -> BaselinePredictor:
    """The baseline with its default parameters, trained and loaded back as every caller loads it."""
    out = tmp_path_factory.mktemp("baseline") / "model"
    train_baseline(sample_split / "train.csv", out)
    return load_model(out)


def _assert_same(predictor: BaselinePredictor, texts: list[str]) -> None:
    reference = predictor.pipeline.predict_proba(texts)
    np.testing.assert_allclose(predictor.predict_proba(texts), reference, rtol=0, atol=1e-12)
    for text, expected in zip(texts, reference):
        np.testing.assert_allclose(predictor.predict_proba([text])[0], expected, rtol=0, atol=1e-12)


def test_same_probabilities_as_the_pipeline_one_review_at_a_time_and_in_batches(trained, reviews):
    texts = reviews[0] + ODD_TEXTS
    assert len(reviews[0]) >= 300
    _assert_same(trained, texts)
    _assert_same(trained, texts[::-1])  # again, with every word's n-grams cached
    assert trained.predict_proba([]).shape == (0, 3)
    np.testing.assert_allclose(trained.predict_proba(["", "zzzqqq"]),  # no known n-gram: the intercepts' softmax
                               trained.pipeline.predict_proba(["", "zzzqqq"]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("params", [
    BaselineParams(word_ngrams=1, char_ngrams_min=1, char_ngrams_max=3, min_df=1),
    BaselineParams(word_ngrams=3, char_ngrams_min=4, char_ngrams_max=7),  # words shorter than n count once, whole
])
def test_same_probabilities_for_other_n_gram_ranges(params, reviews):
    texts, labels = reviews
    predictor = BaselinePredictor(build_pipeline(params).fit(texts[:300], labels[:300]))
    _assert_same(predictor, texts[300:] + ODD_TEXTS)


def test_same_probabilities_with_two_labels(reviews):
    texts, labels = reviews
    two = [(text, label) for text, label in zip(texts, labels) if label != "0"]
    predictor = BaselinePredictor(build_pipeline(BaselineParams()).fit(*zip(*two[:250])))
    assert predictor.labels == ["-1", "1"]
    _assert_same(predictor, [text for text, _ in two[250:]] + ODD_TEXTS)


def test_one_review_never_calls_scikit_learn_and_costs_less(trained, reviews, monkeypatch):
    texts = reviews[0][:40]
    pipeline_seconds = []
    for text in texts:
        began = time.perf_counter()
        trained.pipeline.predict_proba([text])
        pipeline_seconds.append(time.perf_counter() - began)
    expected = trained.pipeline.predict_proba(texts)

    def refuse(*args, **kwargs):
        raise AssertionError("the scikit-learn pipeline was called")

    for step in (trained.pipeline, *trained.pipeline.named_steps.values()):
        for method in ("predict_proba", "transform", "decision_function"):
            if hasattr(step, method):
                monkeypatch.setattr(step, method, refuse)
    seconds = []
    for text, probabilities in zip(texts, expected):
        began = time.perf_counter()
        got = trained.predict_proba([text])
        seconds.append(time.perf_counter() - began)
        np.testing.assert_allclose(got[0], probabilities, rtol=0, atol=1e-12)
    # Medians of the same 40 reviews in one process: the scorer is ~10x faster, so a busy machine cannot flip this.
    assert statistics.median(seconds) * 3 < statistics.median(pipeline_seconds)


def test_a_used_predictor_pickles_as_its_pipeline(trained):
    import pickle

    trained.predict_proba(["Love this dress"])  # the word cache is filled
    trained.source_path = "/models/baseline"  # what the registry sets on a loaded predictor
    copy = pickle.loads(pickle.dumps(trained))
    np.testing.assert_allclose(copy.predict_proba(["Love this dress"]), trained.predict_proba(["Love this dress"]))
    assert copy.source_path == "/models/baseline" and copy._scorer is not copy.pipeline


def test_a_pipeline_built_otherwise_is_scored_by_scikit_learn(reviews):
    """A model file whose vectorizers differ from build_pipeline's (here: raw tf, no sublinear log) would get
    other numbers from the fast scorer: it is scored by the pipeline itself, with the pipeline's numbers."""
    texts, labels = reviews
    pipeline = build_pipeline(BaselineParams())
    pipeline.named_steps["features"].transformer_list[1][1].set_params(sublinear_tf=False)
    predictor = BaselinePredictor(pipeline.fit(texts[:300], labels[:300]))
    assert predictor._scorer is predictor.pipeline
    _assert_same(predictor, texts[300:] + ODD_TEXTS)
    as_built = BaselinePredictor(build_pipeline(BaselineParams()).fit(texts[:300], labels[:300]))
    assert as_built._scorer is not as_built.pipeline  # the fast scorer, for what build_pipeline makes


@pytest.mark.parametrize("change", ["a step between", "float32 features"])
def test_other_pipeline_shapes_are_scored_by_scikit_learn(reviews, change):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MaxAbsScaler

    texts, labels = reviews
    pipeline = build_pipeline(BaselineParams())
    if change == "a step between":
        pipeline = Pipeline([pipeline.steps[0], ("scale", MaxAbsScaler()), pipeline.steps[1]])
    else:
        for _, vectorizer in pipeline.named_steps["features"].transformer_list:
            vectorizer.set_params(dtype=np.float32)
    predictor = BaselinePredictor(pipeline.fit(texts[:300], labels[:300]))
    assert predictor._scorer is predictor.pipeline
    _assert_same(predictor, texts[300:340])


def test_long_words_are_scored_but_not_cached(trained):
    """The word cache holds short words only: requests full of long distinct tokens (URLs, base64) cannot grow it."""
    scorer = trained._scorer
    scorer._cached_char_ids.cache_clear()
    long_words = [f"{i:04d}" + "qwertyuiopasdfghjkl" * 30 for i in range(50)]
    texts = [f"love it {word} fits" for word in long_words]
    _assert_same(trained, texts)
    assert scorer._cached_char_ids.cache_info().currsize == len({"love", "it", "fits"})


def test_a_model_saved_as_model_joblib_by_an_earlier_sagestack_still_loads(trained, reviews, tmp_path):
    import joblib

    joblib.dump(trained.pipeline, tmp_path / "model.joblib")  # how sagestack saved the baseline before model.pkl
    old = BaselinePredictor.load(tmp_path)
    np.testing.assert_allclose(old.predict_proba(reviews[0][:50]), trained.predict_proba(reviews[0][:50]), rtol=0, atol=0)
    trained.save(tmp_path)  # a model.pkl beside it is the one loaded
    assert (tmp_path / "model.pkl").is_file()
    np.testing.assert_allclose(BaselinePredictor.load(tmp_path).predict_proba(reviews[0][:50]),
                               trained.predict_proba(reviews[0][:50]), rtol=0, atol=0)


@pytest.mark.parametrize("params", [BaselineParams(), BaselineParams(word_ngrams=1, char_ngrams_min=1, char_ngrams_max=3, min_df=1)])
def test_training_with_per_word_n_grams_fits_the_plain_fit_exactly(reviews, params):
    """train_baseline computes each word's character n-grams once (baseline._fit): the same vocabulary, idf and
    coefficients as scikit-learn's own fit, also on odd whitespace, case and accents, and the saved pipeline is as built."""
    from threadpoolctl import threadpool_limits

    from sagestack.models.baseline import _fit

    texts, labels = reviews
    texts, labels = texts[:300] + ODD_TEXTS, labels[:300] + labels[:len(ODD_TEXTS)]
    with threadpool_limits(1):  # as _fit runs (two BLAS threads sum in another order: ~1e-8 apart)
        plain = build_pipeline(params).fit(texts, labels)
    fast = _fit(build_pipeline(params), texts, labels)
    for (_, expected), (_, got) in zip(plain.named_steps["features"].transformer_list,
                                       fast.named_steps["features"].transformer_list):
        assert got.vocabulary_ == expected.vocabulary_ and np.array_equal(got.idf_, expected.idf_)
        assert got.get_params() == expected.get_params()  # analyzer="char_wb" again: what is saved is unchanged
    assert np.array_equal(fast.named_steps["classifier"].coef_, plain.named_steps["classifier"].coef_)
    assert BaselinePredictor(fast)._scorer is not fast  # still the fast scorer's shape
