import json

import pandas as pd
import pytest

from sagestack.data import balance_by_label, prepare_dataset, stratified_split
from sagestack.data.atomic import OUTPUT_MARKER
from sagestack.errors import DataError


def frame(n_per_label=(60, 30, 10)):
    rows = [(lab, f"text {lab} {i}", "Dresses") for lab, n in zip((-1, 0, 1), n_per_label) for i in range(n)]
    return pd.DataFrame(rows, columns=["sentiment", "review_body", "product_category"])


def test_stratified_split_keeps_proportions_and_is_seeded():
    data = frame((200, 100, 100))
    splits = stratified_split(data, validation_fraction=0.1, test_fraction=0.1, seed=7)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (320, 40, 40)
    assert splits.test["sentiment"].value_counts().to_dict() == {-1: 20, 0: 10, 1: 10}
    again = stratified_split(data, validation_fraction=0.1, test_fraction=0.1, seed=7)
    assert again.test["review_body"].tolist() == splits.test["review_body"].tolist()
    other = stratified_split(data, validation_fraction=0.1, test_fraction=0.1, seed=8)
    assert other.test["review_body"].tolist() != splits.test["review_body"].tolist()
    parts = pd.concat([splits.train, splits.validation, splits.test])
    assert sorted(parts["review_body"]) == sorted(data["review_body"])  # a partition


def test_split_rejects_bad_fractions_and_tiny_labels():
    with pytest.raises(DataError, match="must each be in"):
        stratified_split(frame(), validation_fraction=0.6, test_fraction=0.5)
    with pytest.raises(DataError, match=r"label\(s\) \[1\] have fewer than 3 rows"):
        stratified_split(frame((10, 10, 2)))


def test_balance_down_samples_to_rarest_label():
    balanced = balance_by_label(frame((60, 30, 10)), seed=1)
    assert balanced["sentiment"].value_counts().to_dict() == {-1: 10, 0: 10, 1: 10}


def test_prepare_writes_everything(sample_csv, tmp_path):
    out = tmp_path / "prepared"
    result = prepare_dataset(sample_csv, out, seed=3)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json", "train.csv", "validation.csv", "test.csv", "train.txt", "validation.txt", "test.txt",
         OUTPUT_MARKER]
    )
    assert result.counts["test"] == {"-1": 10, "0": 10, "1": 10}
    assert sum(sum(c.values()) for c in result.counts.values()) == 600
    first = (out / "train.txt").read_text(encoding="utf-8").splitlines()[0]
    assert first.split(" ", 1)[0] in {"__label__-1", "__label__0", "__label__1"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source_sha256"] == result.source_sha256 and manifest["parameters"]["seed"] == 3


def test_failed_prepare_leaves_nothing_and_keeps_old_output(tmp_path, sample_csv):
    out = tmp_path / "prepared"
    bad = tmp_path / "bad.csv"
    bad.write_text("sentiment,review_body,product_category\n5,x,y\n", encoding="utf-8")
    with pytest.raises(DataError):
        prepare_dataset(bad, out)
    assert list(tmp_path.iterdir()) == [bad]  # no output, no temp dir
    prepare_dataset(sample_csv, out)
    before = (out / "train.txt").read_bytes()
    with pytest.raises(DataError):
        prepare_dataset(bad, out)
    assert (out / "train.txt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "prepared"]
