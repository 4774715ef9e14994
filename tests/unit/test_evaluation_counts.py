"""evaluate_labels counts without scikit-learn: the same numbers as its precision_recall_fscore_support
(zero_division=0) and confusion_matrix, float for float, and no sklearn import."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from sagestack.models import evaluate_labels


def _cases():
    rng = random.Random(0)
    for case in range(300):
        pool = rng.choice([["-1", "0", "1"], ["a", "b", "c", "d"], [0, 1, 2], ["x", "y"]])
        n = rng.choice([1, 2, 5, 37, 400])
        y_true = [rng.choice(pool) for _ in range(n)]
        y_pred = [rng.choice(pool[: rng.randint(1, len(pool))]) for _ in range(n)]  # some labels never predicted
        labels = rng.choice([None, list(pool), list(reversed(pool)), pool[:-1] if len(pool) > 2 else pool])
        if labels is not None and not set(labels) & set(y_true):
            labels = None
        if case % 7 == 0 and labels is not None:
            labels = [*labels, "never-seen" if isinstance(pool[0], str) else 99]  # a label with no rows at all
        yield y_true, y_pred, labels


@pytest.mark.parametrize("y_true,y_pred,labels", list(_cases()))
def test_same_numbers_as_scikit_learn(y_true, y_pred, labels):
    evaluation = evaluate_labels(y_true, y_pred, labels=labels)
    order = evaluation.labels
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=order, zero_division=0)
    for i, label in enumerate(order):
        got = evaluation.per_class[label]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == (
            float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
        assert type(got["support"]) is int and type(got["f1"]) is float
    assert evaluation.confusion == confusion_matrix(y_true, y_pred, labels=order).tolist()
    assert evaluation.count == len(y_true)


def test_no_true_label_among_the_labels_is_an_error():
    with pytest.raises(ValueError, match="none of the labels"):
        evaluate_labels(["a", "b"], ["a", "b"], labels=["c"])


def test_evaluating_does_not_import_scikit_learn():
    code = ("import sys\nfrom sagestack.models import evaluate_labels\nevaluate_labels(['1', '0'], ['1', '1'])\n"
            "assert not any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules), 'sklearn imported'\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
