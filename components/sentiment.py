"""Components of the review-sentiment pipeline.

Each body imports inside itself (KFP ships the function's source to the step's process) and
calls one function of ``sagestack.steps`` or the library. In cluster mode they run on the
pinned sagestack image; locally, in this environment through ``SubprocessRunner(use_venv=False)``.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest_data(data_path: str, data_sha256: str, home: str, tracking_uri: str, reviews: Output[Dataset]):
    """Resolve and validate the review CSV; output the validated reviews.

    ``data_sha256`` (set by the local runner) makes the step cache follow the file's content,
    not only its path; a mismatch fails the step.
    """
    from sagestack.config import settings_from_parameters
    from sagestack.steps import ingest_step

    settings = settings_from_parameters(home, tracking_uri)
    info = ingest_step(data_path, reviews.path, settings, expected_sha256=data_sha256)
    reviews.metadata.update(info)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def pretraining_bias(
    reviews: Input[Dataset], facet: str, fail_on: str, report: Output[HTML], analysis: Output[Artifact]
):
    """Clarify pre-training bias of the data; fails the run when a ';'-separated fail_on rule holds."""
    import os
    import shutil

    from sagestack.steps import pretraining_bias_step

    out = os.path.join(os.path.dirname(report.path), "bias")
    try:
        pretraining_bias_step(reviews.path, out, facet=facet, fail_on=fail_on)
    finally:  # keep the report that explains a failed gate (there is none if the input was bad)
        if os.path.isdir(out):
            shutil.copy(os.path.join(out, "report.html"), report.path)
            shutil.copy(os.path.join(out, "analysis.json"), analysis.path)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def posttraining_bias(
    prepared: Input[Dataset], model: Input[Model], facet: str, fail_on: str, report: Output[HTML], analysis: Output[Artifact]
):
    """Clarify post-training bias of the model's predictions on the test split."""
    import os
    import shutil

    from sagestack.steps import posttraining_bias_step

    out = os.path.join(os.path.dirname(report.path), "bias")
    try:
        posttraining_bias_step(os.path.join(prepared.path, "test.csv"), model.path, out, facet=facet, fail_on=fail_on)
    finally:
        if os.path.isdir(out):
            shutil.copy(os.path.join(out, "report.html"), report.path)
            shutil.copy(os.path.join(out, "analysis.json"), analysis.path)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def explain_model(prepared: Input[Dataset], model: Input[Model], samples: int, report: Output[HTML], analysis: Output[Artifact]):
    """SHAP explanations (word level) of the model on test reviews."""
    import os
    import shutil

    from sagestack.steps import explain_step

    out = os.path.join(os.path.dirname(report.path), "explain")
    explain_step(os.path.join(prepared.path, "test.csv"), model.path, out, samples=samples)
    shutil.copy(os.path.join(out, "report.html"), report.path)
    shutil.copy(os.path.join(out, "analysis.json"), analysis.path)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def feature_store(reviews: Input[Dataset], home: str, tracking_uri: str, features: Output[Dataset]):
    """Engineer BERT features and ingest them into the Feast store (feast apply + materialize)."""
    from sagestack.config import settings_from_parameters
    from sagestack.steps import feature_store_step, write_json

    result = feature_store_step(reviews.path, settings_from_parameters(home, tracking_uri))
    write_json(features.path, result)
    features.metadata.update({"rows": result["rows"], "new_rows": result["new_rows"], "sha256": result["sha256"]})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prepare_data(features: Input[Dataset], home: str, tracking_uri: str, prepared: Output[Dataset]):
    """Read point-in-time training sets of this run's reviews back through Feast, for fastText."""
    import json

    from sagestack.config import settings_from_parameters
    from sagestack.steps import prepare_from_feature_store

    review_ids = json.loads(open(features.path).read())["review_ids"]
    result = prepare_from_feature_store(
        settings_from_parameters(home, tracking_uri), prepared.path, review_ids=review_ids
    )
    prepared.metadata.update({"counts": result["counts"], "features_sha256": features.metadata["sha256"]})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_fasttext(
    prepared: Input[Dataset],
    epochs: int,
    learning_rate: float,
    min_count: int,
    vector_dim: int,
    word_ngrams: int,
    seed: int,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Train the BlazingText-equivalent fastText classifier; validation metrics as KFP Metrics."""
    import os

    from sagestack.steps import write_json
    from sagestack.text import make_params, train_fasttext

    params = make_params(
        epochs=epochs, learning_rate=learning_rate, min_count=min_count, vector_dim=vector_dim,
        word_ngrams=word_ngrams, seed=seed,
    )
    split = os.path.join(prepared.path, "{}.txt")
    result = train_fasttext(split.format("train"), model.path, params, validation_file=split.format("validation"))
    model.metadata.update({"framework": "fasttext", "model_size_mb": result.model_size_mb})
    metrics.log_metric("validation_accuracy", result.validation.accuracy)
    metrics.log_metric("train_seconds", round(result.train_seconds, 3))
    write_json(metrics.path, metrics.metadata)  # KFP's local cache needs a file at metrics.path


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_model(
    prepared: Input[Dataset], model: Input[Model], metrics: Output[Metrics], report: Output[Markdown],
    evaluation: Output[Artifact],
) -> float:
    """Evaluate on the held-out test split; returns the test accuracy the condition checks."""
    import os

    from sagestack.steps import evaluate_step, write_json

    result = evaluate_step(model.path, os.path.join(prepared.path, "test.txt"), report.path)
    metrics.log_metric("test_accuracy", result["accuracy"])
    for label, values in result["per_class"].items():
        metrics.log_metric(f"test_f1_{label}", values["f1"])
    write_json(metrics.path, metrics.metadata)
    write_json(evaluation.path, result)
    return result["accuracy"]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register_model(
    reviews: Input[Dataset],
    features: Input[Dataset],
    prepared: Input[Dataset],
    model: Input[Model],
    report: Input[Markdown],
    evaluation: Input[Artifact],
    data_bias: Input[HTML],
    model_bias: Input[HTML],
    explanations: Input[HTML],
    home: str,
    tracking_uri: str,
    model_name: str,
    auto_approve: bool,
    pipeline_run: str,
) -> str:
    """Register the model in MLflow with lineage tags tying it to this run and its artifacts."""
    import json

    from sagestack.config import settings_from_parameters
    from sagestack.registry import DatasetRef
    from sagestack.registry.tracking import pipeline_lineage_tags
    from sagestack.steps import register_step

    registered = register_step(
        settings=settings_from_parameters(home, tracking_uri),
        model_dir=model.path,
        evaluation=json.loads(open(evaluation.path).read()),
        dataset=DatasetRef(reviews.metadata["source"], reviews.metadata["sha256"]),
        model_name=model_name,
        auto_approve=auto_approve,
        lineage=pipeline_lineage_tags(pipeline_run, [
            ("ingest-data", "reviews", reviews.uri),
            ("pretraining-bias", "report", data_bias.uri),
            ("feature-store", "features", features.uri),
            ("prepare-data", "prepared", prepared.uri),
            ("train-fasttext", "model", model.uri),
            ("evaluate-model", "report", report.uri),
            ("posttraining-bias", "report", model_bias.uri),
            ("explain-model", "report", explanations.uri),
        ]),
        reports={"bias/pretraining": data_bias.path, "bias/posttraining": model_bias.path, "explain": explanations.path},
    )
    return f"{registered['name']}/{registered['version']}"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def record_rejection(
    reviews: Input[Dataset],
    model: Input[Model],
    test_accuracy: float,
    min_accuracy: float,
    home: str,
    tracking_uri: str,
    pipeline_run: str,
) -> str:
    """The else branch: record in MLflow that the model missed min_accuracy (nothing registered)."""
    from sagestack.config import settings_from_parameters
    from sagestack.registry import DatasetRef
    from sagestack.steps import record_rejection as record

    result = record(
        settings=settings_from_parameters(home, tracking_uri),
        evaluation={"accuracy": test_accuracy},
        min_accuracy=min_accuracy,
        dataset=DatasetRef(reviews.metadata["source"], reviews.metadata["sha256"]),
        lineage={"pipeline.run": pipeline_run, "pipeline.step.5.train-fasttext.model": model.uri},
    )
    return result["reason"]
