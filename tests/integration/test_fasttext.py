"""Real fastText training on the course's BlazingText split (each run takes about a second)."""

import json
import time

import pytest

from sagestack.errors import DataError
from sagestack.models.fasttext import FastTextPredictor
from sagestack.text import make_params, train_fasttext


@pytest.fixture(scope="module")
def trained_with_cpu(blazingtext_split, tmp_path_factory):
    """The default model, and the CPU seconds its training took (fastText's threads are this process's)."""
    train, validation = blazingtext_split
    out = tmp_path_factory.mktemp("ft") / "model"
    cpu = time.process_time()
    result = train_fasttext(train, out, make_params(threads=1), validation_file=validation)
    return result, time.process_time() - cpu


@pytest.fixture(scope="module")
def trained(trained_with_cpu):
    return trained_with_cpu[0]


def test_supervised_model_is_saved_evaluated_and_small(trained_with_cpu):
    trained, cpu_seconds = trained_with_cpu
    assert trained.model_path.name == "model.bin" and trained.model_path.is_file()
    assert trained.validation.count == 711
    # Issue 2's acceptance: sagestack's defaults reach >= 0.62 on the course split (0.634 with one
    # thread, which makes fastText deterministic), in well under 10 s; bench/ has the multi-thread figures.
    # Counted in CPU seconds: wall time on a machine shared with other jobs measures them too.
    assert trained.validation.accuracy >= 0.62
    assert cpu_seconds < 10
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


def test_early_stopping_stops_when_validation_accuracy_stops_improving(blazingtext_split, tmp_path):
    """At learning rate 1.0 validation accuracy peaks after 2-3 epochs and then falls (20 epochs
    overfit), so with patience 1 the search must stop long before its 20-epoch maximum."""
    train, validation = blazingtext_split
    settings = dict(threads=1, learning_rate=1.0, epochs=20, min_epochs=1)  # one thread: deterministic
    stopped = train_fasttext(train, tmp_path / "es", make_params(early_stopping=True, patience=1, **settings),
                             validation_file=validation)
    epochs, accuracies = map(list, zip(*stopped.history))
    # One run per epoch count from min_epochs on, stopped before the maximum ...
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) < 20
    assert stopped.epochs_run == sum(epochs)
    # ... with patience 1 exactly at the first count that is no better than the best so far.
    assert all(a < b for a, b in zip(accuracies[:-2], accuracies[1:-1])), stopped.history
    assert accuracies[-1] <= accuracies[-2], stopped.history
    # The model kept is the best one: its epoch count, and its accuracy measured again after training.
    assert stopped.params.epochs == epochs[-2]
    assert stopped.validation.accuracy == accuracies[-2] == max(accuracies)
    saved = json.loads((stopped.out_dir / "result.json").read_text())
    assert saved["params"]["epochs"] == epochs[-2] and saved["validation_accuracy"] == max(accuracies)

    # The same settings without early stopping train all 20 epochs, and overfit.
    full = train_fasttext(train, tmp_path / "full", make_params(**settings), validation_file=validation)
    assert full.history == [] and full.epochs_run == full.params.epochs == 20
    assert full.validation.accuracy < stopped.validation.accuracy


def test_early_stopping_with_fewer_epochs_than_min_epochs_trains_those_epochs(blazingtext_split, tmp_path):
    train, validation = blazingtext_split
    params = make_params(threads=1, early_stopping=True, epochs=3)  # min_epochs: BlazingText's default 5
    assert params.min_epochs == 5
    result = train_fasttext(train, tmp_path / "es", params, validation_file=validation)
    assert result.params.epochs == 3 and [e for e, _ in result.history] == [3] and result.epochs_run == 3
    assert result.validation.accuracy == result.history[0][1]


def test_autotune_respects_its_budget(blazingtext_split, tmp_path):
    train, validation = blazingtext_split
    budget = 3
    start = time.perf_counter()
    result = train_fasttext(train, tmp_path / "auto", make_params(threads=2), validation_file=validation,
                            autotune_seconds=budget)
    elapsed = time.perf_counter() - start
    # fastText searches for the whole budget, then trains once more with the best arguments found:
    # a run that finished inside the budget, so at most `budget` again, plus evaluating and saving
    # (measured 3.6-4.8 s in all on 2 busy cores). The upper bound leaves room for a machine shared with
    # other jobs and still catches a search that ignores its budget (fastText's default is 300 s).
    assert budget <= elapsed <= budget + 30, elapsed
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
