"""Real fastText training on the course's BlazingText split (each run takes about a second)."""

import json

import pytest

from sagestack.errors import DataError
from sagestack.serving import FastTextPredictor
from sagestack.text import make_params, train_fasttext


@pytest.fixture(scope="module")
def trained(blazingtext_split, tmp_path_factory):
    train, validation = blazingtext_split
    out = tmp_path_factory.mktemp("ft") / "model"
    return train_fasttext(train, out, make_params(threads=1), validation_file=validation)


def test_supervised_model_is_saved_evaluated_and_small(trained):
    assert trained.model_path.name == "model.bin" and trained.model_path.is_file()
    assert trained.validation.count == 711
    # Issue 2's acceptance: sagestack's defaults reach >= 0.62 on the course split (0.634 with one
    # thread, which makes fastText deterministic), in well under 10 s; bench/ has the multi-thread figures.
    assert trained.validation.accuracy >= 0.62
    assert trained.train_seconds < 10
    assert trained.model_size_mb < 100
    assert sum(map(sum, trained.validation.confusion)) == 711
    saved = json.loads((trained.out_dir / "result.json").read_text())
    assert saved["validation_accuracy"] == trained.validation.accuracy


def test_predict_top_k_and_probabilities(trained):
    predictor = FastTextPredictor.load(trained.model_path)
    assert predictor.labels and sorted(predictor.labels) == ["-1", "0", "1"]
    best, worst = predictor.predict(
        ["I absolutely love this dress, it fits perfectly and looks great!",
         "Terrible quality, it ripped and looks cheap. Returning it."],
    )
    assert best.label == 1 and worst.label == -1
    assert sum(best.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    top2 = predictor.predict(["nice top"], k=2)[0]
    assert len(top2.probabilities) == 2


def test_quantized_model_is_smaller_and_still_accurate(blazingtext_split, tmp_path, trained):
    train, validation = blazingtext_split
    result = train_fasttext(train, tmp_path / "q", make_params(threads=1, quantize=True), validation_file=validation)
    assert result.model_path.suffix == ".ftz"
    assert result.model_bytes < trained.model_bytes
    assert result.validation.accuracy > 0.5


def test_early_stopping_keeps_the_best_epoch_count(blazingtext_split, tmp_path):
    train, validation = blazingtext_split
    params = make_params(threads=1, early_stopping=True, min_epochs=2, epochs=8, patience=2)
    result = train_fasttext(train, tmp_path / "es", params, validation_file=validation)
    epochs, accuracies = zip(*result.history)
    assert epochs[0] == 2 and len(epochs) <= 7
    assert result.validation.accuracy == pytest.approx(max(accuracies))
    assert result.params.epochs == epochs[accuracies.index(max(accuracies))]


def test_autotune_respects_its_budget(blazingtext_split, tmp_path):
    train, validation = blazingtext_split
    result = train_fasttext(train, tmp_path / "auto", make_params(threads=2), validation_file=validation, autotune_seconds=3)
    assert result.autotuned and result.validation.accuracy > 0.45


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_word2vec_modes_write_vectors(blazingtext_split, tmp_path, mode):
    train, _ = blazingtext_split
    result = train_fasttext(train, tmp_path / mode, make_params(mode=mode, epochs=1, vector_dim=16, threads=2, min_count=5))
    header, first = result.vectors_path.read_text(encoding="utf-8").splitlines()[:2]
    count, dim = map(int, header.split())
    assert dim == 16 and count > 1000
    assert len(first.split()) == 17 and not first.startswith("__label__")


def test_bad_training_input_leaves_no_output(tmp_path):
    unlabelled = tmp_path / "train.txt"
    unlabelled.write_text("__label__1 good\njust text\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        train_fasttext(unlabelled, tmp_path / "out", make_params())
    assert str(info.value) == (
        f"training file {unlabelled}: line 2 has no __label__ label (1 such line(s)); "
        "write lines as '__label__<label> <text>'"
    )
    unlabelled.write_text("__label__1 good\n__label__0 fine\n", encoding="utf-8")
    with pytest.raises(DataError, match="^early_stopping needs a validation file; pass --validation FILE$"):
        train_fasttext(unlabelled, tmp_path / "out", make_params(early_stopping=True))
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["train.txt"]
