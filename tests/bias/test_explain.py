"""SHAP explanations on a real fastText model and on a real tree model."""

import json

import numpy as np
import pandas as pd
import pytest

from sagestack.explain import explain_tabular, explain_texts, write_explanations
from sagestack.models.fasttext import FastTextPredictor
from sagestack.text import make_params, train_fasttext


@pytest.fixture(scope="module")
def predictor(blazingtext_split, tmp_path_factory):
    result = train_fasttext(blazingtext_split[0], tmp_path_factory.mktemp("m") / "model", make_params(threads=1))
    return FastTextPredictor.load(result.model_path)


def test_text_explanations_attribute_sentiment_words(predictor, tmp_path):
    texts = ["I love this dress, it is beautiful and perfect.", "Terrible fabric, cheap and it ripped. Returned.",
             "Love the color, perfect fit."]
    explanations = explain_texts(predictor, texts, max_evals=100, top=10)
    positive = explanations["kernel_shap"]["1"]["global_top_shap_text"]
    assert len(positive) == 10 and list(positive.values()) == sorted(positive.values(), reverse=True)
    assert {"love", "perfect"} & set(list(positive)[:5])
    first = explanations["local"][0]
    assert first["predicted_label"] == "1"
    love = next(i for i, t in enumerate(first["tokens"]) if t.strip().lower() == "love")
    assert first["shap_values"]["1"][love] > 0  # "love" pushes toward positive
    # SHAP's efficiency property: base value + sum of attributions = the model's probability.
    total = first["expected_value"]["1"] + sum(first["shap_values"]["1"])
    assert total == pytest.approx(first["probabilities"]["1"], abs=0.02)

    paths = write_explanations(explanations, tmp_path / "explain")
    document = json.loads(paths["analysis"].read_text())
    assert set(document["explanations"]["kernel_shap"]) == {"-1", "0", "1"}
    assert "data:image/png;base64," in paths["report"].read_text()


def test_tabular_tree_explainer():
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(0)
    features = pd.DataFrame({"signal": rng.normal(size=300), "noise": rng.normal(size=300)})
    target = (features["signal"] > 0).astype(int)
    model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(features, target)
    result = explain_tabular(model, features)
    assert result["explainer"] == "tree"
    [importance] = [v["global_shap_values"] for v in result["kernel_shap"].values()]
    assert list(importance) == ["signal", "noise"] and importance["signal"] > 5 * importance["noise"]


def test_explain_cli(cli, tmp_path, predictor, shared_data, blazingtext_split):
    model = train_fasttext(blazingtext_split[0], tmp_path / "model", make_params(threads=1))
    out = cli("explain", "--model", str(model.out_dir), "--data", str(shared_data / "reviews_clarify_lab.csv"),
              "--samples", "3", "--max-evals", "60", "--out", str(tmp_path / "x"), "--json", check=True).json
    assert set(out["top_words"]) == {"-1", "0", "1"} and (tmp_path / "x" / "report.html").is_file()
    bad = cli("explain", "--model", str(model.out_dir), "--data", str(shared_data / "reviews_clarify_lab.csv"),
              "--text-column", "body", "--out", str(tmp_path / "y"))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "error: text column 'body' is not in ")
    assert not (tmp_path / "y").exists()


def test_texts_shap_cannot_explain_are_counted_not_crashed_on(predictor):
    from sagestack.errors import DataError

    explanations = explain_texts(predictor, ["ok", "", "Love the color, perfect fit."], max_evals=50)
    assert [entry["text"] for entry in explanations["local"]] == ["Love the color, perfect fit."]
    assert explanations["skipped_short_texts"] == 2
    with pytest.raises(DataError, match="^no text with at least two words to explain"):
        explain_texts(predictor, ["ok", "nan"], max_evals=50)
