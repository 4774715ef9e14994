import json

import numpy as np
import pandas as pd
import pytest

from sagestack.automl.exploration import explore, render_exploration_html, write_exploration
from sagestack.data.embedded import embedded_dataset
from sagestack.data.reviews import load_reviews
from sagestack.data.split import stratified_split
from sagestack.errors import DataError

CATEGORIES = ["Casual Summer Maxi Dresses", "Warm Winter Knit Sweaters", "Light Cotton Tank Tops", "Slim Denim Pants"]
WORDS = ["soft", "tight", "lovely", "itchy", "bright", "faded", "warm", "thin", "cute", "boxy"]


def profile_frame(n=40):
    """One column of every type; the target does not follow any single column."""
    return pd.DataFrame({
        "label": ["pos" if i % 3 else "neg" for i in range(n)],
        "review": [f"this top is {WORDS[i % 10]} and {WORDS[(i * 7) % 10]} number {i}" for i in range(n)],
        # Multi-word values, but only four of them: categorical, not text.
        "category": [CATEGORIES[i % 4] for i in range(n)],
        "price": [f"{10 + i * 0.5}" for i in range(n)],
        "row_id": [str(1000 + i) for i in range(n)],
        "user": [f"user-{i}" for i in range(n)],
        "constant": ["same"] * n,
    })


def kinds(report, kind):
    return [w for w in report["warnings"] if w["kind"] == kind]


def test_infers_each_column_type():
    train = profile_frame()
    report = explore(train, None, target="label", text_column="review",
                     columns=["category", "price", "row_id", "user", "constant"])
    types = {name: column["type"] for name, column in report["columns"].items()}
    assert types == {"review": "text", "category": "categorical", "price": "numeric", "row_id": "identifier",
                     "user": "identifier", "constant": "constant"}
    assert list(report["columns"]) == ["review", "category", "price", "row_id", "user", "constant"]
    assert report["columns"]["category"]["unique"] == 4
    assert report["columns"]["constant"]["prediction"]["prediction_power"] == 0.0
    assert {w["column"] for w in kinds(report, "identifier_column")} == {"row_id", "user"}
    assert [w["column"] for w in kinds(report, "constant_column")] == ["constant"]
    assert kinds(report, "target_leakage") == []
    assert report["rows"] == {"train": 40, "test": 0}
    assert report["near_duplicates"] is None


def test_numbers_as_numbers_and_as_strings_agree():
    train = profile_frame()
    numeric = train.assign(price=train["price"].astype(float), row_id=train["row_id"].astype(int))
    as_text = explore(train, None, target="label", text_column=None, columns=["price", "row_id"])
    as_numbers = explore(numeric, None, target="label", text_column=None, columns=["price", "row_id"])
    assert as_numbers["columns"] == as_text["columns"]


def test_missing_counts_empty_and_whitespace_strings_and_nan():
    train = pd.DataFrame({
        "label": ["a", "b", None, "a", "b", "a", "b", "a", "b", "a"],
        "review": ["fine dress for me", "", "  ", np.nan, None, "nice and warm knit", "too small for me",
                   "great colour and cut", "bad seams all over", "love it so much"],
        "size": ["S", "M", "L", "S", "M", "L", "S", "M", "L", "S"],
    })
    report = explore(train, None, target="label", text_column="review", columns=["size"])
    assert report["columns"]["review"]["missing"] == {"count": 4, "share": 0.4}
    assert report["columns"]["size"]["missing"] == {"count": 0, "share": 0.0}
    assert report["target"]["missing"] == {"count": 1, "share": 0.1}
    sparse = kinds(report, "missing_values")
    assert [w["column"] for w in sparse] == ["review"]  # 40% > 20%; the target's 10% is not
    assert "review" in sparse[0]["message"]


def test_duplicate_rows_over_used_columns_and_target():
    train = pd.DataFrame({
        "label": ["a", "a", "b", "a", "b", "a"],
        "review": ["same old words here", "same old words here", "same old words here", "other words in here",
                   "other words in here", "other words in here"],
        "ignored": [1, 2, 3, 4, 5, 6],  # not examined, so it does not make rows distinct
    })
    report = explore(train, None, target="label", text_column="review")
    # Row 1 repeats row 0 and row 5 repeats row 3; row 2 differs in its label.
    assert report["duplicate_rows"] == {"count": 2, "share": 0.3333}
    assert kinds(report, "duplicate_rows")[0]["count"] == 2


def test_target_distribution_in_train_and_test_as_strings():
    train = pd.DataFrame({"sentiment": [1.0, -1.0, 0.0, 1.0, np.nan, 1.0],
                          "review_body": ["quite a good dress", "not good at all", "it is ok i guess",
                                          "love the colour so", "runs a bit small", "fits me really well"]})
    test = pd.DataFrame({"sentiment": ["1", "-1", "-1"], "review_body": ["good one here", "bad one here", "meh"]})
    report = explore(train, test, target="sentiment", text_column="review_body")
    assert report["target"]["distribution"] == {
        "train": {"-1": {"count": 1, "share": 0.2}, "0": {"count": 1, "share": 0.2}, "1": {"count": 3, "share": 0.6}},
        "test": {"-1": {"count": 2, "share": 0.6667}, "1": {"count": 1, "share": 0.3333}},
    }
    assert report["rows"] == {"train": 6, "test": 3}


def test_copy_of_target_is_flagged_as_leakage_with_full_power():
    train = profile_frame(60).assign(leak=lambda f: f["label"])
    report = explore(train, None, target="label", text_column="review", columns=["category", "leak"])
    assert report["columns"]["leak"]["prediction"]["prediction_power"] == pytest.approx(1.0)
    assert report["columns"]["leak"]["prediction"]["accuracy"] == 1.0
    leaks = kinds(report, "target_leakage")
    assert [w["column"] for w in leaks] == ["leak"]
    assert "it equals the target" in leaks[0]["reasons"]
    assert report["columns"]["category"]["prediction"]["prediction_power"] < 0.5


def test_column_that_maps_each_value_to_one_class_is_flagged():
    train = profile_frame(60)
    train["tier"] = train["label"].map({"pos": "gold", "neg": "tin"})
    report = explore(train, None, target="label", text_column=None, columns=["tier"])
    reasons = kinds(report, "target_leakage")[0]["reasons"]
    assert "each of its values occurs with only one class" in reasons
    assert "it equals the target" not in reasons


def test_class_imbalance_warning_present_and_absent():
    def frame(neg, pos):
        labels = ["neg"] * neg + ["pos"] * pos
        return pd.DataFrame({"label": labels, "review": [f"some words for review {i}" for i in range(len(labels))]})

    skewed = explore(frame(10, 30), None, target="label", text_column="review")
    warning = kinds(skewed, "class_imbalance")[0]
    assert (warning["rarest"], warning["most_common"], warning["ratio"]) == ("neg", "pos", 0.3333)
    assert kinds(explore(frame(20, 20), None, target="label", text_column="review"), "class_imbalance") == []
    assert kinds(explore(frame(15, 30), None, target="label", text_column="review"), "class_imbalance") == []


def test_near_duplicate_text_across_splits():
    train = pd.DataFrame({"label": ["a", "b", "a", "b"],
                          "review": ["Great dress!!", "Awful   fit, sadly.", "runs small on me", "lovely soft knit"]})
    test = pd.DataFrame({"label": ["a", "b", "a"], "review": ["great dress", "a different review", "AWFUL fit sadly"]})
    report = explore(train, test, target="label", text_column="review")
    near = report["near_duplicates"]
    assert (near["count"], near["share"]) == (2, 0.6667)
    assert near["examples"] == [{"test": "great dress", "train": "Great dress!!"},
                                {"test": "AWFUL fit sadly", "train": "Awful   fit, sadly."}]
    assert kinds(report, "near_duplicates")[0]["count"] == 2


def test_errors_for_empty_text_and_absent_target():
    train = pd.DataFrame({"label": ["a", "b"], "review": ["", "   "], "other": ["x", "y"]})
    with pytest.raises(DataError, match="text column 'review' is empty in every training row"):
        explore(train, None, target="label", text_column="review")
    with pytest.raises(DataError, match="target column 'sentiment' is not in the training data"):
        explore(train, None, target="sentiment", text_column="other")
    with pytest.raises(DataError, match=r"column\(s\) \['size'\] are not in the training data"):
        explore(train, None, target="label", text_column="other", columns=["size"])


def test_html_escapes_values_and_is_self_contained():
    evil = "<script>alert(1)</script> great dress"
    train = pd.DataFrame({"label": ["a", "b", "a", "b", "a", "b"],
                          "review": [evil, "fine fit for me", "nice soft knit", "too small sadly", "love it a lot",
                                     "it is fine"],
                          "<b>col</b>": ["x", "y", "x", "y", "z", "z"]})
    test = pd.DataFrame({"label": ["a"], "review": [evil]})
    page = render_exploration_html(explore(train, test, target="label", text_column="review", columns=["<b>col</b>"]))
    assert "<script>" not in page and "<b>col</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; great dress" in page
    assert "&lt;b&gt;col&lt;/b&gt;" in page
    assert "Prediction power = max(0" in page
    assert "http" not in page and "<link" not in page and "src=" not in page


def test_write_exploration_writes_both_files_and_json_round_trips(tmp_path):
    report = explore(profile_frame(), profile_frame(10), target="label", text_column="review", columns=["category"])
    paths = write_exploration(report, tmp_path / "out")
    assert paths == {"html": tmp_path / "out" / "exploration.html", "json": tmp_path / "out" / "exploration.json"}
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == report
    assert paths["html"].read_text(encoding="utf-8").startswith("<!doctype html>")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["exploration.html", "exploration.json"]


def test_real_reviews_text_beats_category(tmp_path):
    path = embedded_dataset("reviews_balanced.csv", tmp_path)
    frame = load_reviews(path).frame.sample(n=1500, random_state=0).reset_index(drop=True)
    splits = stratified_split(frame, validation_fraction=0, test_fraction=0.2)
    report = explore(splits.train, splits.test, target="sentiment", text_column="review_body",
                     columns=["product_category"])
    columns = report["columns"]
    assert columns["review_body"]["type"] == "text"
    assert columns["product_category"]["type"] == "categorical"
    assert (columns["review_body"]["prediction"]["prediction_power"]
            > columns["product_category"]["prediction"]["prediction_power"])
    assert report["rows"] == {"train": 1200, "test": 300}
    assert set(report["target"]["distribution"]["train"]) == {"-1", "0", "1"}
    assert kinds(report, "class_imbalance") == []
    assert kinds(report, "target_leakage") == []
