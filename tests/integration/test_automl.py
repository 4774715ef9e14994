"""The real AutoML job (``sagestack automl``): a real AutoGluon fit on a small real sample, its
reports, a generated retrain.py run in a subprocess, MLflow runs, the registered model served over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from sagestack.config import load_settings
from sagestack.registry import load_predictor, resolve_ref

MODEL = "reviews-sentiment"
REVIEWS = ["Love it, fits perfectly and the fabric is soft", "Cheap fabric, fell apart after one wash, sent it back"]


@pytest.fixture(scope="module")
def job(sagestack, sample_csv, tmp_path_factory):
    """One AutoML job on the 600-review sample: two candidates, a 30-second budget."""
    root = tmp_path_factory.mktemp("automl")
    out = root / "job"
    proc = sagestack(root / "home", "automl", "--data", str(sample_csv), "--target", "sentiment",
                     "--max-candidates", "2", "--time-limit", "30", "--approve", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "home": root / "home", "summary": json.loads(proc.stdout), "stderr": proc.stderr}


def test_json_result_and_leaderboard(job):
    summary, out = job["summary"], job["out"]
    best, board = summary["best"], summary["leaderboard"]
    assert set(best) >= {"name", "model_family", "validation_accuracy", "test_accuracy"}
    assert [row["name"] for row in board] and best["name"] == board[0]["name"]
    assert [row["rank"] for row in board] == list(range(1, len(board) + 1))
    validation = [row["validation_accuracy"] for row in board]
    assert validation == sorted(validation, reverse=True)
    assert {row["name"] for row in board} <= {"TfidfLinear", "LightGBM"}
    # Each candidate asked for is fitted or said not to be, and why (the time limit, or its error).
    assert {row["name"] for row in board} | set(summary["not_fitted"]) == {"TfidfLinear", "LightGBM"}
    assert summary["time_limit_cut"] == ("time limit" in summary["not_fitted"].values())
    assert all(0.4 < row["test_accuracy"] <= 1 for row in board)  # three balanced classes: chance is 1/3
    assert summary["registered"]["name"] == MODEL and summary["seconds"] < 30 + 90
    # The registered model is the best candidate refit on fit + validation rows; the leaderboard
    # keeps every candidate's figures from before (all trained on the same rows).
    assert best["refit"] is True and best["test_accuracy_before_refit"] == board[0]["test_accuracy"]
    assert 0.4 < best["test_accuracy"] <= 1
    card = json.loads((out / "model" / "sagestack-model.json").read_text())
    assert card["params"]["candidate"] == f"{best['name']}_FULL" and card["params"]["candidate_name"] == best["name"]
    # Every trainer's result.json, with the same keys (train fasttext's).
    result = json.loads((out / "result.json").read_text())
    assert result["kind"] == "autogluon" and result["model_path"] == str(out / "model")
    assert result["model_bytes"] == sum(p.stat().st_size for p in (out / "model").rglob("*") if p.is_file()) > 0
    assert result["params"] == card["params"] and result["validation"] == card["validation"]
    csv = pd.read_csv(out / "leaderboard.csv")
    assert csv["name"].tolist() == [row["name"] for row in board]
    assert csv["test_accuracy"].tolist() == [row["test_accuracy"] for row in board]
    page = (out / "leaderboard.html").read_text()
    assert all(row["name"] in page for row in board)


def test_exploration_report(job):
    report = json.loads((job["out"] / "exploration.json").read_text())
    assert report["rows"] == {"train": 480, "test": 120}  # the seeded stratified 80/20 split of 600 reviews
    assert report["columns"]["review_body"]["type"] == "text"
    assert set(report["target"]["distribution"]["train"]) == {"-1", "0", "1"}
    assert report["columns"]["review_body"]["prediction"]["prediction_power"] > 0
    assert not [w for w in report["warnings"] if w["kind"] == "class_imbalance"]  # the sample is balanced
    page = (job["out"] / "exploration.html").read_text()
    assert "review_body" in page and "prediction power" in page.lower()


def test_every_candidate_has_a_definition_and_a_retrain_script(job):
    for row in job["summary"]["leaderboard"]:
        folder = job["out"] / "candidates" / row["name"]
        definition = yaml.safe_load((folder / "definition.yaml").read_text())
        assert definition["name"] == row["name"] and definition["features"]["text_column"] == "review_body"
        assert definition["training"] == {"bagging": False, "stacking": False, "weighted_ensemble": False,
                                          "random_seed": "AutoGluon's default (0)"}
        assert definition["scores"]["test_accuracy"] == row["test_accuracy"]
        assert (folder / "retrain.py").is_file()


def test_retrain_script_rebuilds_its_candidate(job, tmp_path):
    """retrain.py, run alone, fits the same candidate from the saved split; its model loads and predicts."""
    name = "TfidfLinear"
    row = {r["name"]: r for r in job["summary"]["leaderboard"]}[name]
    proc = subprocess.run([sys.executable, str(job["out"] / "candidates" / name / "retrain.py"), "--out",
                           str(tmp_path / "model")], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["candidate"] == name
    assert result["test_accuracy"] == pytest.approx(row["test_accuracy"], abs=0.01)  # deterministic fit, same data
    from autogluon.tabular import TabularPredictor

    predictor = TabularPredictor.load(str(tmp_path / "model"), verbosity=0)
    labels = predictor.predict(pd.DataFrame({"review_body": REVIEWS})).astype(str).tolist()
    assert set(labels) <= {"-1", "0", "1"} and labels[0] == "1"


def test_explainability_outputs(job):
    importance = job["summary"]["importance"]
    assert set(importance) == {"review_body"} and importance["review_body"]["importance"] > 0
    analysis = json.loads((job["out"] / "explain" / "shap" / "analysis.json").read_text())
    assert set(analysis["explanations"]["kernel_shap"]) == {"-1", "0", "1"}
    assert analysis["sagestack"]["local"] and all(entry["tokens"] for entry in analysis["sagestack"]["local"])


def test_mlflow_parent_child_runs_and_registered_version(job):
    from mlflow.tracking import MlflowClient

    settings = load_settings(cwd=job["home"], environ={}, home=job["home"])
    info = resolve_ref(settings, f"{MODEL}@champion")
    assert info.kind == "autogluon" and info.version == job["summary"]["registered"]["version"]
    assert {"dataset.path", "dataset.sha256", "git.commit", "sagestack.version"} <= set(info.tags)
    parent = job["summary"]["mlflow"]["parent_run_id"]
    assert info.tags["automl.parent_run_id"] == parent and info.tags["automl.candidate"] == job["summary"]["best"]["name"]
    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    children = client.search_runs([client.get_run(parent).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    names = {run.info.run_name for run in children}
    assert names == {row["name"] for row in job["summary"]["leaderboard"]} | {f"best: {job['summary']['best']['name']}"}
    for run in children:
        if run.info.run_name in names - {f"best: {job['summary']['best']['name']}"}:
            assert {"validation_accuracy", "test_accuracy", "test_macro_f1", "fit_seconds"} <= set(run.data.metrics)
    predictor, _ = load_predictor(settings, f"{MODEL}@champion")
    assert predictor.kind == "autogluon" and predictor.predict(REVIEWS)[0].label == 1


def test_the_registered_model_is_served_over_http(job):
    """The same BentoML service serves the AutoML champion (a heavy kind: predictions off the event loop)."""
    from sagestack.bento.launch import running_server

    settings = load_settings(cwd=job["home"], environ={}, home=job["home"])
    predictor, _ = load_predictor(settings, f"{MODEL}@champion")
    with running_server(settings, f"{MODEL}@champion", timeout=180) as url, httpx.Client(base_url=url, timeout=60) as client:
        body = client.post("/predict", json={"reviews": REVIEWS}).json()
        assert body["model"]["kind"] == "autogluon" and body["model"]["alias"] == "champion"
        assert body["predictions"] == [p.to_dict() for p in predictor.predict(REVIEWS)]
        batch = client.post("/predict_batch", json={"reviews": [REVIEWS[1]]}).json()
        assert batch[0]["label"] == predictor.predict([REVIEWS[1]])[0].label
        assert client.post("/predict", json={"reviews": []}).status_code == 400


def test_extra_columns_train_but_are_not_registered(sagestack, sample_csv, tmp_path):
    out = tmp_path / "job"
    proc = sagestack(tmp_path / "home", "automl", "--data", str(sample_csv), "--columns", "product_category",
                     "--max-candidates", "1", "--time-limit", "20", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["registered"] is None and "product_category" in summary["not_registered"]
    assert summary["shap_skipped"] and set(summary["importance"]) == {"review_body", "product_category"}
    card = json.loads((out / "model" / "sagestack-model.json").read_text())
    assert card["params"]["columns"] == ["product_category"]
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    from sagestack.registry import list_models

    assert list_models(settings) == []


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case, message", [
    ("no-target", "the training data has no column(s) label; columns are text, other"),
    ("one-class", "target 'label' has a single class ('a'); AutoML needs at least two"),
    ("empty-text", "text column 'text' is empty in every training row; pass the column that holds the text"),
    ("few-rows", "too few rows for the split: class 'b' has 4; AutoML needs at least 10 per class"),
    ("metric", "--metric must be one of accuracy, macro_f1, f1, got 'auc'"),
    ("time", "--time-limit must be at least 5 s, got 1"),
    ("embeddings-budget", "--time-limit 5 s is used up by the sentence embeddings"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(sagestack, tmp_path, sample_csv, case, message):
    words = [f"word{i} and more text here" for i in range(60)]
    frames = {
        "no-target": pd.DataFrame({"text": words, "other": "x"}),
        "one-class": pd.DataFrame({"text": words, "label": "a"}),
        "empty-text": pd.DataFrame({"text": [""] * 60, "label": ["a", "b"] * 30}),
        "few-rows": pd.DataFrame({"text": words[:24], "label": ["a"] * 20 + ["b"] * 4}),
    }
    args = ["--target", "label", "--text-column", "text"]
    if case in frames:
        data = _write(tmp_path / "data.csv", frames[case])
    else:
        data, args = sample_csv, []
    extra = {"metric": ["--metric", "auc"], "time": ["--time-limit", "1"],
             "embeddings-budget": ["--embeddings", "--time-limit", "5"]}.get(case, [])
    out = tmp_path / "job"
    proc = sagestack(tmp_path / "home", "automl", "--data", str(data), *args, *extra, "--out", str(out))
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.strip().splitlines() if not line.startswith("... ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert {p.name for p in tmp_path.iterdir()} <= {"data.csv", "home"}  # no output folder, not even a partial one
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    from sagestack.registry import list_models

    assert list_models(settings) == []


def test_the_refit_of_a_best_autogluon_did_not_pick_exports(sample_csv, tmp_path):
    """Ranked first by sagestack but not AutoGluon's own best (a tie in validation score that AutoGluon breaks
    by predict time, as with 7 candidates on few rows): the refit is exported and predicts (it was a TypeError in
    AutoGluon's clone_for_deployment). Two classes, ranked by --metric f1 (Autopilot's binary default)."""
    from sagestack.automl.search import AutoMLSpec, export_best, fit_candidates, positive_f1, rank, refit_best
    from sagestack.models import load_model

    frame = pd.read_csv(sample_csv)
    frame = frame[frame["sentiment"] != 0].groupby("sentiment").head(40)
    spec = AutoMLSpec(max_candidates=2, time_limit=30, metric="f1")
    fit = fit_candidates(frame.iloc[::2], frame.iloc[1::2], spec, tmp_path / "autogluon")
    rank(fit, None, spec)
    truth = fit.frames["validation"]["sentiment"].tolist()
    for row in fit.leaderboard:  # the F1 of AutoGluon's positive label, 1
        assert row["validation_f1"] == round(positive_f1(truth, fit.predicted("validation", spec)[row["name"]]
                                                         .astype(str).tolist(), 1), 4)
    fit.leaderboard.sort(key=lambda row: row["name"] == fit.tabular.model_best)  # AutoGluon's best last
    name = fit.best["name"]
    assert refit_best(fit, spec) == f"{name}_FULL"
    card, _ = export_best(fit, spec, tmp_path / "model")
    assert card.params["candidate"] == f"{name}_FULL"
    (prediction,) = load_model(tmp_path / "model").predict(REVIEWS[:1])
    assert set(prediction.probabilities) == {"-1", "1"} and card.labels == ["-1", "1"]
