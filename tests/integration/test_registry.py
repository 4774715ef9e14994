"""The MLflow registry on a real SQLite store; the model reloads in a fresh process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import sagestack
from sagestack.errors import RegistryError
from sagestack.registry import DatasetRef, list_models, log_model_run, promote, resolve_ref, set_approval
from sagestack.models.fasttext import FastTextPredictor
from sagestack.text import evaluate_fasttext_file, make_params, train_fasttext

REVIEWS = ["Love it, fits perfectly", "It is okay, nothing special", "Cheap fabric, sent it back", "great color"]


def load_registered(settings, name: str, *, version: str | None = None, alias: str | None = None):
    """``mlflow.pyfunc.load_model`` of a registered version, found through a client of this test's registry
    (``mlflow.set_registry_uri`` would point the whole test process at it, for every later test too)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    registry = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    version = version or registry.get_model_version_by_alias(name, alias).version
    return mlflow.pyfunc.load_model(registry.get_model_version_download_uri(name, version))


@pytest.fixture
def result(blazingtext_split, tmp_path):
    train, validation = blazingtext_split
    return train_fasttext(train, tmp_path / "model", make_params(threads=1), validation_file=validation)


def test_logged_run_registers_with_lineage_and_reloads_in_a_fresh_process(result, settings, blazingtext_split):
    test_eval = evaluate_fasttext_file(FastTextPredictor.load(result.model_path), blazingtext_split[1])
    logged = log_model_run(
        result.out_dir, settings=settings, dataset=DatasetRef("/data/reviews.csv", "ab" * 32), test_evaluation=test_eval,
        model_name="sentiment", approval="Approved", aliases=("champion",),
    )
    info = resolve_ref(settings, "sentiment@champion")
    assert info.version == "1" and info.status == "Approved" and info.aliases == ["champion"]
    assert info.tags["dataset.sha256"] == "ab" * 32 and info.tags["dataset.path"] == "/data/reviews.csv"
    assert info.tags["sagestack.version"] == sagestack.__version__ and info.tags["training.run_id"] == logged["run_id"]
    assert info.kind == "fasttext" and logged["kind"] == "fasttext"
    assert len(info.tags["git.commit"]) in (40, len("unknown"))
    assert info.metrics["validation_accuracy"] == pytest.approx(result.validation.accuracy)
    assert info.metrics["test_accuracy"] == pytest.approx(test_eval.accuracy)

    from mlflow.tracking import MlflowClient

    artifacts = {a.path for a in MlflowClient(settings.mlflow_uri).list_artifacts(logged["run_id"], "evaluation")}
    assert artifacts == {"evaluation/classification_report.json", "evaluation/confusion_matrix_validation.png",
                         "evaluation/confusion_matrix_test.png"}

    code = (
        "import json, sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({settings.mlflow_uri!r}); mlflow.set_registry_uri({settings.mlflow_uri!r})\n"
        "model = mlflow.pyfunc.load_model('models:/sentiment@champion')\n"
        f"out = model.predict({REVIEWS!r})\n"  # the README's call: a plain list of reviews
        "print(json.dumps(out['label'].tolist()))\n"
    )
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    in_process = [p.label for p in FastTextPredictor.load(result.model_path).predict(REVIEWS)]
    assert json.loads(fresh.stdout.strip().splitlines()[-1]) == in_process and {type(x) for x in in_process} == {int}


def test_approval_and_aliases_follow_sagemaker_rules(result, settings):
    log_model_run(result.out_dir, settings=settings, model_name="sentiment", approval="Approved", aliases=("champion",))
    log_model_run(result.out_dir, settings=settings, model_name="sentiment", aliases=("challenger",))
    pending = resolve_ref(settings, "sentiment/2")
    assert pending.status == "PendingManualApproval" and pending.aliases == ["challenger"]

    with pytest.raises(RegistryError) as info:
        promote(settings, "sentiment/2", "champion")
    assert str(info.value) == (
        "sentiment version 2 is PendingManualApproval; approve it first with `sagestack models approve sentiment/2`"
    )
    set_approval(settings, "sentiment/2", "Approved")
    # The challenger promoted to champion is no longer the challenger (one version never holds both).
    assert promote(settings, "sentiment/2", "champion").aliases == ["champion"]
    assert resolve_ref(settings, "sentiment/1").aliases == []

    rejected = set_approval(settings, "sentiment@champion", "Rejected")
    assert rejected.status == "Rejected" and "champion" not in rejected.aliases
    listing = list_models(settings)
    assert listing == [{"name": "sentiment", "aliases": {},
                        "versions": [{"version": "1", "kind": "fasttext", "approval_status": "Approved"},
                                     {"version": "2", "kind": "fasttext", "approval_status": "Rejected"}]}]


def test_a_rejected_version_loses_every_alias_that_could_route_traffic_to_it(result, settings, sagestack_main):
    """SageMaker does not deploy a rejected package: `models approve --reject` takes @challenger (variant B's
    alias) and any other alias off the version, and no alias can be pointed at it again until it is approved."""
    from mlflow.tracking import MlflowClient

    log_model_run(result.out_dir, settings=settings, model_name="sentiment", approval="Approved", aliases=("champion",))
    log_model_run(result.out_dir, settings=settings, model_name="sentiment", aliases=("challenger",))
    MlflowClient(settings.mlflow_uri, settings.mlflow_uri).set_registered_model_alias("sentiment", "staging", "2")
    assert resolve_ref(settings, "sentiment/2").aliases == ["challenger", "staging"]

    code, out, _ = sagestack_main("models", "approve", "sentiment@challenger", "--reject")
    assert code == 0 and out.strip() == "sentiment version 2 is now Rejected"
    assert resolve_ref(settings, "sentiment/2").aliases == []
    assert list_models(settings)[0]["aliases"] == {"champion": "1"}

    code, out, err = sagestack_main("models", "promote", "sentiment/2", "--alias", "challenger")
    assert code == 2 and err.strip().splitlines()[-1] == (
        "error: sentiment version 2 is Rejected and cannot be deployed; approve it first with "
        "`sagestack models approve sentiment/2` or promote another version")
    with pytest.raises(RegistryError, match="^a Rejected version takes no alias \\('challenger'\\); register it"):
        log_model_run(result.out_dir, settings=settings, model_name="sentiment", approval="Rejected",
                      aliases=("challenger",))
    # Back to pending: the version may be the challenger again.
    set_approval(settings, "sentiment/2", "PendingManualApproval")
    assert promote(settings, "sentiment/2", "challenger").aliases == ["challenger"]
    # Pending keeps @challenger (a new version is registered that way) but never @champion.
    set_approval(settings, "sentiment/2", "Approved")
    promote(settings, "sentiment/2", "champion")
    promote(settings, "sentiment/1", "challenger")
    assert set_approval(settings, "sentiment/1", "PendingManualApproval").aliases == ["challenger"]
    assert set_approval(settings, "sentiment/2", "PendingManualApproval").aliases == []


def test_unknown_model_and_alias(settings, result):
    with pytest.raises(RegistryError, match="^no registered model named 'nope'; see `sagestack models list`$"):
        resolve_ref(settings, "nope@champion")
    log_model_run(result.out_dir, settings=settings, model_name="sentiment")
    with pytest.raises(RegistryError, match="^model 'sentiment' has no alias 'champion'"):
        resolve_ref(settings, "sentiment@champion")
    with pytest.raises(RegistryError, match="^alias 'champion' needs an Approved version"):
        log_model_run(result.out_dir, settings=settings, model_name="sentiment", aliases=("champion",))


def test_load_predictor_from_registry_or_path(result, settings, tmp_path):
    from sagestack.registry import load_predictor

    log_model_run(result.out_dir, settings=settings, model_name="sentiment", approval="Approved", aliases=("champion",))
    predictor, info = load_predictor(settings, "sentiment@champion")
    assert info.version == "1"
    local, none = load_predictor(settings, str(result.out_dir))
    assert none is None
    assert [p.label for p in predictor.predict(REVIEWS)] == [p.label for p in local.predict(REVIEWS)]
    with pytest.raises(RegistryError, match="^no model at .*missing.bin; pass a trained model's folder"):
        load_predictor(settings, str(tmp_path / "missing.bin"))
    with pytest.raises(RegistryError, match="is not a sagestack model directory"):
        load_predictor(settings, str(tmp_path))


def test_every_kind_registers_under_one_name_and_reloads_through_the_generic_pyfunc(result, settings, sample_split):
    """fastText and the baseline are versions of one model; the pyfunc dispatches by the model's kind."""
    import pandas as pd

    from sagestack.models.baseline import train_baseline
    from sagestack.registry import load_predictor

    train_baseline(sample_split / "train.csv", settings.home / "baseline", validation_csv=sample_split / "validation.csv")
    log_model_run(result.out_dir, settings=settings, model_name="sentiment", approval="Approved", aliases=("champion",))
    logged = log_model_run(settings.home / "baseline", settings=settings, model_name="sentiment")
    assert logged["kind"] == "baseline" and logged["registered"]["kind"] == "baseline"
    assert [v["kind"] for v in list_models(settings)[0]["versions"]] == ["fasttext", "baseline"]
    baseline, info = load_predictor(settings, "sentiment/2")
    assert baseline.kind == "baseline" and info.tags["model.kind"] == "baseline"
    out = load_registered(settings, "sentiment", version="2").predict(pd.DataFrame({"review_body": REVIEWS}))
    assert out["label"].tolist() == [p.label for p in baseline.predict(REVIEWS)]
    assert list(out.columns) == ["label", "prob_-1", "prob_0", "prob_1"]


@pytest.mark.parametrize("kind", ["fasttext", "baseline"])
def test_the_pyfunc_takes_a_list_of_reviews_and_returns_the_trained_classes(kind, result, settings, sample_split):
    """`mlflow.pyfunc.load_model(...).predict(["Love this dress"])`, as the README shows, for every cheap kind;
    a frame with review_body (and other columns, in any order) gives the same labels: ints -1/0/1."""
    import pandas as pd

    from sagestack.errors import DataError
    from sagestack.models import load_model
    from sagestack.models.baseline import train_baseline

    model_dir = result.out_dir
    if kind == "baseline":
        model_dir = settings.home / "baseline"
        train_baseline(sample_split / "train.csv", model_dir, validation_csv=sample_split / "validation.csv")
    log_model_run(model_dir, settings=settings, model_name="sentiment", approval="Approved", aliases=("champion",))
    model = load_registered(settings, "sentiment", alias="champion")
    expected = [p.label for p in load_model(model_dir).predict(REVIEWS)]

    listed = model.predict(REVIEWS)
    assert listed["label"].tolist() == expected and all(type(label) is int for label in listed["label"].tolist())
    assert set(expected) <= {-1, 0, 1}
    assert model.predict(REVIEWS[0])["label"].tolist() == expected[:1]
    framed = model.predict(pd.DataFrame({"product_category": ["Dresses"] * len(REVIEWS), "review_body": REVIEWS}))
    assert framed.equals(listed)
    assert list(listed.columns) == ["label", "prob_-1", "prob_0", "prob_1"]
    with pytest.raises(DataError, match="^the input frame has columns a, b and none named review_body; pass a list"):
        model.predict(pd.DataFrame({"a": ["x"], "b": ["y"]}))


def test_a_version_of_an_unknown_kind_is_refused_before_download(result, settings):
    from mlflow.tracking import MlflowClient

    from sagestack.registry import load_predictor

    log_model_run(result.out_dir, settings=settings, model_name="sentiment")
    MlflowClient(settings.mlflow_uri, settings.mlflow_uri).set_model_version_tag("sentiment", "1", "model.kind", "xgb")
    with pytest.raises(RegistryError, match="^unknown model kind 'xgb'; known kinds: fasttext, baseline"):
        load_predictor(settings, "sentiment/1")


def test_a_model_folder_that_does_not_load_is_not_registered(result, settings):
    """Registration loads the model first: a damaged model file is refused with the loader's one line, and no
    version appears (MLflow alone would only warn that the input example failed)."""
    Path(result.model_path).write_bytes(b"not a fastText model")
    with pytest.raises(RegistryError) as refused:
        log_model_run(result.out_dir, settings=settings, model_name="damaged", approval="Approved")
    assert str(refused.value) == (f"{result.model_path} cannot be loaded ({result.model_path} has wrong file "
                                  "format!); retrain the model")
    with pytest.raises(RegistryError, match="no registered model named 'damaged'"):
        resolve_ref(settings, "damaged@champion")
