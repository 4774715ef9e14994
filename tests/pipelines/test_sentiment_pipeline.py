"""The real pipeline on KFP's local runner, on a small real sample of reviews_balanced.csv."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.runner import PipelineFailed, compile_pipeline, pipeline_tasks, run_local
from pipelines.sentiment import sentiment_pipeline
from sagestack import __version__
from sagestack.registry import lineage, list_models, resolve_ref

STEPS = ["ingest-data", "pretraining-bias", "feature-store", "prepare-data", "train-fasttext", "evaluate-model",
         "posttraining-bias", "explain-model"]


def statuses(summary):
    return {step["name"]: step["status"] for step in summary["steps"]}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("pipeline-home")


@pytest.fixture(scope="module")
def first_run(home, sample_csv):
    return run_local({"data_path": str(sample_csv), "min_accuracy": 0.0, "auto_approve": True}, home=home)


def test_training_data_comes_back_from_the_feature_store(first_run, home):
    from sagestack.config import load_settings
    from sagestack.features import read_features

    steps = {s["name"]: s for s in first_run["steps"]}
    prepared = Path(steps["prepare-data"]["artifacts"]["prepared"])
    train_ids = set(pd.read_csv(prepared / "train.csv")["review_id"])
    table = read_features(load_settings(home=home))
    assert train_ids == set(table.loc[table["split_type"] == "train", "review_id"])
    assert json.loads((prepared / "manifest.json").read_text())["source"] == "feast:sentiment_training_v1"


def test_first_run_executes_every_step_and_registers(first_run, home):
    assert statuses(first_run) == {**dict.fromkeys(STEPS + ["register-model"], "SUCCESS"), "record-rejection": "SKIPPED"}
    steps = {s["name"]: s for s in first_run["steps"]}
    assert (Path(steps["train-fasttext"]["artifacts"]["model"]) / "model.bin").is_file()
    prepared = Path(steps["prepare-data"]["artifacts"]["prepared"])
    assert sorted(p.name for p in prepared.iterdir()) == [
        "manifest.json", "test.csv", "test.txt", "train.csv", "train.txt", "validation.csv", "validation.txt"]
    report = open(steps["evaluate-model"]["artifacts"]["report"]).read()
    assert report.startswith("# Evaluation on the held-out test split")
    assert 0.0 <= steps["evaluate-model"]["outputs"]["Output"] <= 1.0
    assert first_run["registered"] == "reviews-sentiment-fasttext/1"


def test_registered_version_carries_the_pipeline_lineage(first_run, home, sample_csv):
    from sagestack.config import load_settings

    settings = load_settings(home=home)
    info = resolve_ref(settings, "reviews-sentiment-fasttext@champion")
    assert info.status == "Approved" and info.tags["pipeline.run"] == first_run["run"]
    chain = lineage(settings, "reviews-sentiment-fasttext@champion")
    assert chain["dataset"]["path"] == str(sample_csv.resolve())
    assert [(s["step"], s["artifact"]) for s in chain["steps"]] == [
        ("ingest-data", "reviews"), ("pretraining-bias", "report"), ("feature-store", "features"),
        ("prepare-data", "prepared"), ("train-fasttext", "model"), ("evaluate-model", "report"),
        ("posttraining-bias", "report"), ("explain-model", "report")]
    from mlflow.tracking import MlflowClient

    logged = {a.path for a in MlflowClient(settings.mlflow_uri).list_artifacts(info.run_id, "bias")}
    assert logged == {"bias/pretraining", "bias/posttraining"}
    assert all(first_run["run"] in s["uri"] for s in chain["steps"])


def test_identical_rerun_hits_the_cache_and_a_changed_parameter_reruns_only_its_dependents(first_run, home, sample_csv):
    again = run_local({"data_path": str(sample_csv), "min_accuracy": 0.0, "auto_approve": True}, home=home)
    assert set(statuses(again).values()) <= {"CACHED", "SKIPPED"}
    assert statuses(again)["train-fasttext"] == "CACHED" and again["seconds"] < first_run["seconds"]
    assert again["registered"] == "reviews-sentiment-fasttext/1"  # replayed, no duplicate version
    first_model = {s["name"]: s for s in first_run["steps"]}["train-fasttext"]["artifacts"]["model"]
    assert {s["name"]: s for s in again["steps"]}["train-fasttext"]["artifacts"]["model"] == first_model

    changed = run_local({"data_path": str(sample_csv), "min_accuracy": 0.0, "auto_approve": True, "epochs": 3}, home=home)
    assert [statuses(changed)[s] for s in STEPS] == ["CACHED"] * 4 + ["SUCCESS"] * 4
    assert changed["registered"] == "reviews-sentiment-fasttext/2"
    # A later default run replays the first run's model, not the newer 3-epoch one.
    default_again = run_local({"data_path": str(sample_csv), "min_accuracy": 0.0, "auto_approve": True}, home=home)
    assert {s["name"]: s for s in default_again["steps"]}["train-fasttext"]["artifacts"]["model"] == first_model


def test_accuracy_below_threshold_records_a_rejection(first_run, home, sample_csv):
    from sagestack.config import load_settings

    before = list_models(load_settings(home=home))
    rejected = run_local({"data_path": str(sample_csv), "min_accuracy": 0.999}, home=home)
    assert statuses(rejected)["record-rejection"] == "SUCCESS"
    assert statuses(rejected)["register-model"] == "SKIPPED"
    assert rejected["registered"] is None and rejected["rejection"].endswith("< min_accuracy 0.999")
    assert list_models(load_settings(home=home)) == before


def test_a_failing_step_fails_the_run_with_its_error(tmp_path):
    missing = tmp_path / "missing.csv"
    with pytest.raises(PipelineFailed) as info:
        run_local({"data_path": str(missing)}, home=tmp_path / "home")
    assert str(info.value).startswith(
        f"pipeline sagestack-sentiment step 'ingest-data' failed: DataError: data file not found: {missing}; "
        "pass an existing CSV or set SAGESTACK_DATA; log: "
    )
    from sagestack.config import load_settings

    assert list_models(load_settings(home=tmp_path / "home")) == []


def test_a_failed_bias_gate_stops_the_pipeline_before_training(tmp_path, sample_csv):
    with pytest.raises(PipelineFailed) as info:
        run_local({"data_path": str(sample_csv), "bias_fail_on": "CI>0.5"}, home=tmp_path / "home")
    message = str(info.value)
    assert message.startswith("pipeline sagestack-sentiment step 'pretraining-bias' failed: BiasGateFailed: "
                              "bias check failed: CI>0.5: CI = ")
    reports = list((tmp_path / "home" / "pipelines" / "runs").glob("*/pretraining-bias/report"))
    assert len(reports) == 1 and "Pre-training bias" in reports[0].read_text()
    assert not list((tmp_path / "home" / "pipelines" / "runs").glob("*/feature-store"))
    assert not list((tmp_path / "home" / "pipelines" / "runs").glob("*/train-fasttext"))


def test_compiled_yaml_pins_the_image_and_exposes_parameters(tmp_path):
    path = compile_pipeline(tmp_path / "pipeline.yaml")
    spec = yaml.safe_load(path.read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"data_path", "min_accuracy", "auto_approve", "epochs", "learning_rate", "tracking_uri"} <= set(params)
    assert params["min_accuracy"]["defaultValue"] == 0.55
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"ghcr.io/sagestack/sagestack:{__version__}"}
    commands = json.dumps(spec["deploymentSpec"]["executors"])
    assert "pip install" not in commands  # the image brings everything; nothing installs at run time
    assert set(pipeline_tasks(sentiment_pipeline)) == set(STEPS + ["register-model", "record-rejection"])
    assert {"facet", "bias_fail_on", "explain_samples"} <= set(params)
