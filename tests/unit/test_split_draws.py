"""stratified_split draws its rows without scikit-learn: the same rows, in the same order, as
scikit-learn's train_test_split(stratify=..., random_state=...) it used before, and no sklearn import."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from sagestack.data import split as split_module
from sagestack.data.split import stratified_split


def _frames():
    rng = random.Random(1)
    for case in range(120):
        labels = rng.choice([[-1, 0, 1], ["a", "b", "c", "d", "e"], ["pos", "neg"], [3, 7]])
        counts = [rng.randint(3, rng.choice([6, 40, 400])) for _ in labels]
        values = [lab for lab, n in zip(labels, counts) for _ in range(n)]
        rng.shuffle(values)
        frame = pd.DataFrame({"sentiment": values, "row": range(len(values))})
        if case % 3 == 0:  # an index that is not 0..n-1, as a filtered frame has
            frame.index = np.arange(len(frame)) * 3 + 5
        fractions = rng.choice([(0.05, 0.05), (0.1, 0.1), (0.0, 0.2), (0.3, 0.0), (0.25, 0.25), (0.01, 0.02)])
        yield frame, fractions, rng.randint(0, 10_000)


def _sklearn_cut(data, label, size, seed):
    return tuple(train_test_split(data, test_size=size, stratify=data[label], random_state=seed))


@pytest.mark.parametrize("frame,fractions,seed", list(_frames()))
def test_same_rows_as_scikit_learn(frame, fractions, seed, monkeypatch):
    validation_fraction, test_fraction = fractions
    ours = stratified_split(frame, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed)
    monkeypatch.setattr(split_module, "_stratified_cut", _sklearn_cut)
    theirs = stratified_split(frame, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed)
    for name in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(getattr(ours, name), getattr(theirs, name))


@pytest.mark.parametrize("labels,size", [(["a", "a", "b", "b", "c"], 3), (["a", "a", "b", "b"], 1),
                                         (["a", "a", "b", "b"], 3), (["a", "a", "b", "b"], 4)])
def test_the_same_errors_as_scikit_learn(labels, size):
    frame = pd.DataFrame({"y": labels})
    with pytest.raises(ValueError) as theirs:
        _sklearn_cut(frame, "y", size, 0)
    with pytest.raises(ValueError) as ours:
        split_module._stratified_cut(frame, "y", size, 0)
    assert str(ours.value) == str(theirs.value)


def test_splitting_does_not_import_scikit_learn():
    code = ("import sys\nimport pandas as pd\nfrom sagestack.data.split import stratified_split\n"
            "stratified_split(pd.DataFrame({'sentiment': [-1, 0, 1] * 20}))\n"
            "assert not any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules), 'sklearn imported'\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
