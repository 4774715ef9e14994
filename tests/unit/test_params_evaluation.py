import pytest

from sagestack.errors import ConfigError
from sagestack.text import BlazingTextParams, evaluate_labels, make_params


def test_blazingtext_defaults_and_names():
    p = make_params("blazingtext")
    assert (p.mode, p.epochs, p.learning_rate, p.min_count, p.vector_dim, p.word_ngrams, p.buckets) == (
        "supervised", 5, 0.05, 5, 100, 2, 2_000_000)
    assert (p.early_stopping, p.patience, p.min_epochs) == (False, 4, 5)
    kwargs = make_params("blazingtext", epochs=10, learning_rate=0.01, word_ngrams=3, threads=1).fasttext_kwargs()
    assert {k: kwargs[k] for k in ("epoch", "lr", "wordNgrams", "dim", "minCount", "bucket", "thread")} == {
        "epoch": 10, "lr": 0.01, "wordNgrams": 3, "dim": 100, "minCount": 5, "bucket": 2_000_000, "thread": 1}


def test_word2vec_kwargs():
    kwargs = BlazingTextParams(mode="cbow", subwords=True, threads=2).fasttext_kwargs()
    assert (kwargs["model"], kwargs["minn"], kwargs["maxn"], kwargs["ws"]) == ("cbow", 3, 6, 5)
    assert "wordNgrams" not in kwargs and "seed" not in kwargs


def test_invalid_hyperparameters_have_clear_errors():
    with pytest.raises(ConfigError, match="^invalid hyperparameter 'epochs': Input should be greater than or equal to 1$"):
        make_params(epochs=0)
    with pytest.raises(ConfigError, match="^invalid hyperparameter 'mode': "):
        make_params(mode="batch_skipgram_x")
    with pytest.raises(ConfigError, match="^unknown preset 'aws'"):
        make_params("aws")


def test_evaluation_against_hand_computed_values():
    # true:  a a a b b c ; pred: a a b b c c
    ev = evaluate_labels(list("aaabbc"), list("aabbcc"), labels=["a", "b", "c"])
    assert ev.accuracy == pytest.approx(4 / 6)
    assert ev.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert ev.per_class["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8), "support": 3}
    assert ev.per_class["b"]["precision"] == pytest.approx(0.5) and ev.per_class["b"]["recall"] == pytest.approx(0.5)
    assert ev.per_class["c"]["precision"] == pytest.approx(0.5) and ev.per_class["c"]["recall"] == 1.0
    assert ev.flat_metrics("validation")["validation_f1_a"] == pytest.approx(0.8)


def test_label_never_predicted_has_zero_precision():
    ev = evaluate_labels(["-1", "0", "1"], ["1", "1", "1"])
    assert ev.labels == ["-1", "0", "1"]
    assert ev.per_class["-1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
