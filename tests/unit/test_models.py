"""Model kinds: the registry of kinds, the shared predictor logic, the baseline kind, champion selection."""

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from sagestack.errors import ConfigError, RegistryError
from sagestack.models import (
    KIND_MODULES,
    Evaluation,
    ModelCard,
    ModelKind,
    Predictor,
    TextClassifier,
    evaluate_labels,
    get_kind,
    kind_names,
    load_model,
)
from sagestack.workflows.sentiment import parse_trainers, select_champion_step


class Fixed(TextClassifier):
    """A kind whose probabilities are given: the shared predict/predict_labels logic on its own."""

    kind = "fixed"

    def __init__(self, proba) -> None:
        self.labels = ["-1", "0", "1"]
        self._proba = np.asarray(proba, dtype=float)

    def predict_proba(self, texts):
        return self._proba[: len(texts)]

    def save(self, model_dir: Path) -> None:
        np.save(Path(model_dir) / "proba.npy", self._proba)

    @classmethod
    def load(cls, model_dir):
        return cls(np.load(Path(model_dir) / "proba.npy"))


def test_predict_orders_probabilities_and_names_the_top_label():
    model = Fixed([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])
    first, second = model.predict(["a", "b"])
    assert (first.label, list(first.probabilities)) == (1, ["1", "0", "-1"])
    assert second.to_dict() == {"label": -1, "probabilities": {"-1": 0.5, "0": 0.3, "1": 0.2}}
    assert model.predict(["a"], k=1)[0].probabilities == {"1": 0.7}
    assert model.predict_labels(["a", "b"]) == ["1", "-1"] and model.predict_labels([]) == []
    assert isinstance(model, Predictor)


def test_the_registry_of_kinds():
    assert kind_names() == ["fasttext", "baseline", "autogluon", "bert"]
    fasttext, baseline = get_kind("fasttext"), get_kind("baseline")
    assert (fasttext.heavy, baseline.heavy) == (False, True)
    assert fasttext.predictor.kind == "fasttext" and baseline.predictor.kind == "baseline"
    assert any(r.startswith("scikit-learn==") for r in baseline.pip_requirements())
    assert all("==" in r for r in fasttext.pip_requirements())
    assert get_kind("bert").heavy and any(r.startswith("transformers==") for r in get_kind("bert").pip_requirements())
    with pytest.raises(RegistryError, match="^unknown model kind 'xgb'; known kinds: fasttext, baseline, autogluon, bert$"):
        get_kind("xgb")


def test_a_new_kind_is_one_module_and_one_registry_entry(monkeypatch, tmp_path, settings):
    """The seam: a kind the rest of sagestack has never heard of is registered, loaded and predicted."""
    from sagestack.registry import load_predictor, log_model_run

    module = types.ModuleType("fixed_kind")
    module.KIND = ModelKind(name="fixed", predictor=Fixed, requirements=(), heavy=False, description="test kind")
    monkeypatch.setitem(sys.modules, "fixed_kind", module)
    monkeypatch.setitem(KIND_MODULES, "fixed", "fixed_kind")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    Fixed([[0.2, 0.2, 0.6]]).save(model_dir)
    ModelCard(kind="fixed", labels=["-1", "0", "1"], params={"p": 1}).save(model_dir)

    assert load_model(model_dir).predict(["x"])[0].label == 1
    logged = log_model_run(model_dir, settings=settings, model_name="sentiment")
    predictor, info = load_predictor(settings, f"sentiment/{logged['registered']['version']}")
    assert (predictor.kind, info.kind) == ("fixed", "fixed")
    assert predictor.predict(["x"])[0].probabilities == {"1": 0.6, "-1": 0.2, "0": 0.2}


def test_load_model_needs_a_card(tmp_path):
    with pytest.raises(RegistryError, match="is not a sagestack model directory"):
        load_model(tmp_path)
    (tmp_path / "sagestack-model.json").write_text("{not json")
    with pytest.raises(RegistryError, match="is not a valid model card"):
        load_model(tmp_path)
    (tmp_path / "sagestack-model.json").write_text('{"kind": "baseline", "labels": [], "colour": "red"}')
    with pytest.raises(RegistryError, match="is not a valid model card"):
        load_model(tmp_path)
    ModelCard(kind="baseline", labels=["-1", "0", "1"]).save(tmp_path)
    with pytest.raises(RegistryError, match="holds no model.pkl"):
        load_model(tmp_path)
    (tmp_path / "model.joblib").write_bytes(b"\x80\x04truncated")  # an earlier sagestack's file name
    with pytest.raises(RegistryError, match="model.joblib cannot be loaded"):
        load_model(tmp_path)
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04truncated")
    with pytest.raises(RegistryError, match="model.pkl cannot be loaded"):
        load_model(tmp_path)
    vectors = tmp_path / "vectors"
    vectors.mkdir()
    ModelCard(kind="fasttext", labels=[], servable=False).save(vectors)
    with pytest.raises(RegistryError, match="word vectors, not a classifier"):
        load_model(vectors)


def test_macro_f1_and_metric_by_name():
    # true -1 -1 0 1; predicted -1 0 0 1: F1(-1) = 2/3, F1(0) = 2/3, F1(1) = 1.
    evaluation = evaluate_labels(["-1", "-1", "0", "1"], ["-1", "0", "0", "1"], labels=["-1", "0", "1"])
    assert evaluation.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert evaluation.metric("accuracy") == 0.75 and evaluation.metric("macro_f1") == evaluation.macro_f1
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        evaluation.metric("auc")


def _evaluation_file(tmp_path: Path, name: str, y_true, y_pred, kind: str) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"kind": kind, **evaluate_labels(y_true, y_pred, labels=["-1", "0", "1"]).to_dict()}))
    return path


def _candidates(tmp_path: Path) -> dict:
    truth = ["-1", "-1", "-1", "0", "1", "1"]
    # a: 4/6 right but never predicts 0 (macro F1 0.5); b: 3/6 right over every class (macro F1 ~0.52).
    a = _evaluation_file(tmp_path, "a", truth, ["-1", "-1", "-1", "1", "1", "-1"], "fasttext")
    b = _evaluation_file(tmp_path, "b", truth, ["-1", "0", "1", "0", "1", "0"], "baseline")
    out = {}
    for name, evaluation in (("fasttext", a), ("baseline", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights").write_text(name)
        out[name] = (tmp_path / name, evaluation)
    return out


@pytest.mark.parametrize(("metric", "winner"), [("accuracy", "fasttext"), ("macro_f1", "baseline")])
def test_select_champion_by_metric(tmp_path, metric, winner):
    candidates = _candidates(tmp_path)
    accuracy_a = Evaluation.from_dict(json.loads(candidates["fasttext"][1].read_text()))
    assert accuracy_a.accuracy == pytest.approx(4 / 6) and accuracy_a.macro_f1 < 0.52
    out = tmp_path / "out"
    summary = select_champion_step(candidates, out / "champion", out / "evaluation.json", out / "candidates.json",
                                   metric=metric)
    assert summary["champion"] == winner and summary["metric"] == metric
    assert (out / "champion" / "weights").read_text() == winner
    assert json.loads((out / "evaluation.json").read_text())["kind"] == winner
    assert json.loads((out / "candidates.json").read_text()) == summary
    assert set(summary["candidates"]) == {"fasttext", "baseline"}


def test_select_champion_skips_left_out_trainers_breaks_ties_by_order_and_needs_one(tmp_path):
    candidates = _candidates(tmp_path)
    skipped = tmp_path / "skipped.json"
    skipped.write_text(json.dumps({"kind": "fasttext", "skipped": True}))
    out = tmp_path / "out"
    only = select_champion_step({"fasttext": (tmp_path, skipped), "baseline": candidates["baseline"]},
                                out / "c1", out / "e1.json", out / "s1.json")
    assert only["champion"] == "baseline" and set(only["candidates"]) == {"baseline"}
    tie = select_champion_step({"fasttext": candidates["fasttext"], "baseline": candidates["fasttext"]},
                               out / "c2", out / "e2.json", out / "s2.json")
    assert tie["champion"] == "fasttext"
    with pytest.raises(ConfigError, match="^no trainer ran"):
        select_champion_step({"fasttext": (tmp_path, skipped)}, out / "c3", out / "e3.json", out / "s3.json")
    with pytest.raises(ConfigError, match="^unknown selection metric 'auc'"):
        select_champion_step(candidates, out / "c4", out / "e4.json", out / "s4.json", metric="auc")
    assert not (out / "c3").exists() and not (out / "c4").exists()


def test_parse_trainers():
    assert parse_trainers("baseline, fasttext") == ["fasttext", "baseline"]
    assert parse_trainers("fasttext") == ["fasttext"]
    assert parse_trainers("bert,automl") == ["automl", "bert"]
    with pytest.raises(ConfigError, match="^unknown trainer\\(s\\) roberta; choose from fasttext, baseline, automl, bert$"):
        parse_trainers("fasttext,roberta")
    with pytest.raises(ConfigError, match="^no trainer selected"):
        parse_trainers(" , ")


def test_baseline_trains_saves_and_reloads(sample_split, tmp_path):
    from sagestack.models.baseline import BaselineParams, BaselinePredictor, train_baseline

    card, validation = train_baseline(sample_split / "train.csv", tmp_path / "m", BaselineParams(),
                                      validation_csv=sample_split / "validation.csv")
    assert card.kind == "baseline" and card.labels == ["-1", "0", "1"]
    assert validation.accuracy > 0.4  # chance is 1/3 on this balanced sample (480 training reviews)
    assert card.params == BaselineParams().model_dump() and card.metrics["vocabulary"] > 1000
    reloaded = load_model(tmp_path / "m")
    assert isinstance(reloaded, BaselinePredictor)
    texts = ["Love this dress", "Terrible, returned it", "It's fine I guess"]
    np.testing.assert_allclose(reloaded.predict_proba(texts).sum(axis=1), 1.0)
    assert ModelCard.load(tmp_path / "m").validation["accuracy"] == validation.accuracy


def test_baseline_bad_input_is_one_clear_error(tmp_path):
    from sagestack.errors import DataError
    from sagestack.models.baseline import train_baseline

    cases = {
        "no_text.csv": ("sentiment,text,product_category\n1,a,Dresses\n0,b,Dresses\n", r"missing column\(s\) review_body"),
        "one_label.csv": ("sentiment,review_body,product_category\n1,good,Dresses\n1,great,Dresses\n",
                          "needs at least two sentiment labels, found 1"),
        "bad_label.csv": ("sentiment,review_body,product_category\n1,good,Dresses\n5,great,Dresses\n",
                          r"values outside \[-1, 0, 1\] \('5'\) in 1 row\(s\) \(data row 2\)"),
        "blank_label.csv": ("sentiment,review_body,product_category\n1,good,Dresses\n,great,Dresses\n",
                            r"column 'sentiment' has values outside \[-1, 0, 1\] \(''\)"),
        "empty.csv": ("", "is empty"),
        "tiny.csv": ("sentiment,review_body,product_category\n1,a,Dresses\n0,b,Dresses\n",
                     "cannot train the baseline on .* add reviews or lower --min-df"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(DataError, match=message):
            train_baseline(tmp_path / name, tmp_path / "out")
    (tmp_path / "latin1.csv").write_bytes("sentiment,review_body,product_category\n1,caf\xe9,Tops\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8"):
        train_baseline(tmp_path / "latin1.csv", tmp_path / "out")
    with pytest.raises(DataError, match="data file not found"):
        train_baseline(tmp_path / "missing.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()
