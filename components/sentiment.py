"""Components of the review-sentiment pipeline: each maps KFP inputs to one call of
``sagestack.workflows.sentiment`` and its result back to outputs.

Bodies import inside themselves (KFP ships the function's source to the step's process). In
cluster mode they run on the pinned sagestack image; locally, in this environment through
``SubprocessRunner(use_venv=False)``. A step with a ``Metrics`` output writes a file at
``metrics.path``: without one KFP's local cache never hits.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import GPU_IMAGE, IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest_data(data_path: str, data_sha256: str, include_reviewed: bool, reviewed_sha256: str, home: str,
                tracking_uri: str, reviews: Output[Dataset]):
    """Resolve and validate the review CSV (with the reviewed labels of human loops, when asked);
    output the validated reviews.

    ``data_sha256`` (set by the local runner) makes the step cache follow the file's content,
    not only its path; a mismatch fails the step. ``reviewed_sha256`` does the same for the
    reviewed labels.
    """
    from sagestack.config import settings_from_parameters
    from sagestack.workflows.sentiment import ingest_step

    settings = settings_from_parameters(home, tracking_uri)
    reviews.metadata.update(ingest_step(data_path, reviews.path, settings, expected_sha256=data_sha256,
                                        include_reviewed=include_reviewed))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def pretraining_bias(reviews: Input[Dataset], facet: str, fail_on: str, report: Output[HTML], analysis: Output[Artifact]):
    """Clarify pre-training bias of the data; fails the run when a ';'-separated fail_on rule holds."""
    from sagestack.workflows.sentiment import pretraining_bias_step

    pretraining_bias_step(reviews.path, report.path, analysis.path, facet=facet, fail_on=fail_on)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def feature_store(reviews: Input[Dataset], home: str, tracking_uri: str, features: Output[Dataset]):
    """Engineer BERT features and ingest them into the Feast store (feast apply + materialize)."""
    from sagestack.config import settings_from_parameters
    from sagestack.workflows.sentiment import feature_store_step

    reviewed = reviews.metadata.get("reviewed") or {}  # with --include-reviewed: the corrected labels
    result = feature_store_step(reviews.path, features.path, settings_from_parameters(home, tracking_uri),
                                reviewed_snapshot=reviewed.get("path", ""))
    features.metadata.update({"rows": result["rows"], "new_rows": result["new_rows"], "sha256": result["sha256"]})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prepare_data(features: Input[Dataset], home: str, tracking_uri: str, prepared: Output[Dataset]):
    """Read point-in-time training sets of this run's reviews back through Feast, for every trainer."""
    from sagestack.config import settings_from_parameters
    from sagestack.workflows.sentiment import prepare_step

    result = prepare_step(features.path, prepared.path, settings_from_parameters(home, tracking_uri))
    prepared.metadata.update({"counts": result["counts"], "features_sha256": features.metadata["sha256"]})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_fasttext(
    prepared: Input[Dataset], epochs: int, learning_rate: float, min_count: int, vector_dim: int, word_ngrams: int,
    seed: int, model: Output[Model], metrics: Output[Metrics],
):
    """Train the BlazingText-equivalent fastText classifier; validation metrics as KFP Metrics."""
    from sagestack.workflows.sentiment import train_fasttext_step, write_json

    result = train_fasttext_step(prepared.path, model.path, epochs=epochs, learning_rate=learning_rate,
                                 min_count=min_count, vector_dim=vector_dim, word_ngrams=word_ngrams, seed=seed)
    model.metadata.update(result)
    metrics.log_metric("validation_accuracy", result["validation_accuracy"])
    write_json(metrics.path, metrics.metadata)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_baseline(prepared: Input[Dataset], word_ngrams: int, c: float, seed: int, model: Output[Model],
                   metrics: Output[Metrics]):
    """Train the TF-IDF (word + character n-grams) + logistic-regression baseline."""
    from sagestack.workflows.sentiment import train_baseline_step, write_json

    result = train_baseline_step(prepared.path, model.path, word_ngrams=word_ngrams, c=c, seed=seed)
    model.metadata.update(result)
    metrics.log_metric("validation_accuracy", result["validation_accuracy"])
    write_json(metrics.path, metrics.metadata)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_automl(prepared: Input[Dataset], time_limit: float, max_candidates: int, embeddings: bool, metric: str,
                 seed: int, model: Output[Model], metrics: Output[Metrics]):
    """AutoML (AutoGluon): fit the candidates within time_limit; the best by the metric on validation is the model."""
    from sagestack.workflows.sentiment import train_automl_step, write_json

    result = train_automl_step(prepared.path, model.path, time_limit=time_limit, max_candidates=max_candidates,
                               embeddings=embeddings, metric=metric, seed=seed)
    model.metadata.update(result)
    metrics.log_metric("validation_accuracy", result["validation_accuracy"])
    write_json(metrics.path, metrics.metadata)


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def train_bert(prepared: Input[Dataset], bert_model: str, epochs: int, learning_rate: float, train_batch_size: int,
               max_steps: int, max_seq_length: int, seed: int, model: Output[Model], metrics: Output[Metrics],
               debugger_report: Output[HTML], profiler_report: Output[HTML]):
    """Fine-tune BERT on the prepared splits, watched by the Debugger's default rules and the Profiler."""
    from sagestack.workflows.sentiment import train_bert_step, write_json

    result = train_bert_step(prepared.path, model.path, debugger_report.path, profiler_report.path, model=bert_model,
                             epochs=epochs, learning_rate=learning_rate, train_batch_size=train_batch_size,
                             max_steps=max_steps, max_seq_length=max_seq_length, seed=seed)
    model.metadata.update(result)
    metrics.log_metric("validation_accuracy", result["validation_accuracy"])
    write_json(metrics.path, metrics.metadata)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_model(prepared: Input[Dataset], model: Input[Model], evaluation: Output[Artifact],
                   report: Output[Markdown], metrics: Output[Metrics]):
    """Evaluate a candidate of any kind on the held-out test split."""
    from sagestack.workflows.sentiment import evaluate_step, write_json

    result = evaluate_step(prepared.path, model.path, evaluation.path, report.path)
    metrics.log_metric("test_accuracy", result["accuracy"])
    metrics.log_metric("test_macro_f1", result["macro_f1"])
    write_json(metrics.path, metrics.metadata)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def skip_trainer(trainer: str, evaluation: Output[Artifact], model: Output[Model]):
    """Stands in for a trainer left out by --trainers, so the selection sees every branch."""
    import os

    from sagestack.workflows.sentiment import skip_step

    skip_step(trainer, evaluation.path)
    os.makedirs(model.path, exist_ok=True)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def select_champion(
    fasttext_model: Input[Model], fasttext_evaluation: Input[Artifact],
    baseline_model: Input[Model], baseline_evaluation: Input[Artifact],
    automl_model: Input[Model], automl_evaluation: Input[Artifact],
    bert_model: Input[Model], bert_evaluation: Input[Artifact],
    metric: str, champion: Output[Model], evaluation: Output[Artifact], candidates: Output[Artifact],
) -> float:
    """Pick the best candidate by metric; returns its test accuracy, which the accuracy gate checks."""
    from sagestack.workflows.sentiment import select_champion_step

    summary = select_champion_step(
        {"fasttext": (fasttext_model.path, fasttext_evaluation.path),
         "baseline": (baseline_model.path, baseline_evaluation.path),
         "automl": (automl_model.path, automl_evaluation.path),
         "bert": (bert_model.path, bert_evaluation.path)},
        champion.path, evaluation.path, candidates.path, metric=metric,
    )
    champion.metadata.update({"trainer": summary["champion"], "kind": summary["kind"], metric: summary["score"]})
    return summary["test_accuracy"]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def posttraining_bias(prepared: Input[Dataset], model: Input[Model], facet: str, fail_on: str, report: Output[HTML],
                      analysis: Output[Artifact]):
    """Clarify post-training bias of the champion's predictions on the test split."""
    from sagestack.workflows.sentiment import posttraining_bias_step

    posttraining_bias_step(prepared.path, model.path, report.path, analysis.path, facet=facet, fail_on=fail_on)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def explain_model(prepared: Input[Dataset], model: Input[Model], samples: int, report: Output[HTML],
                  analysis: Output[Artifact]):
    """SHAP explanations (word level) of the champion on test reviews."""
    from sagestack.workflows.sentiment import explain_step

    explain_step(prepared.path, model.path, report.path, analysis.path, samples=samples)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register_model(
    reviews: Input[Dataset], features: Input[Dataset], prepared: Input[Dataset], model: Input[Model],
    evaluation: Input[Artifact], candidates: Input[Artifact], data_bias: Input[HTML], model_bias: Input[HTML],
    explanations: Input[HTML], home: str, tracking_uri: str, model_name: str, auto_approve: bool, pipeline_run: str,
) -> str:
    """Register the champion in MLflow with lineage tags tying it to this run, its artifacts and candidates."""
    from sagestack.config import settings_from_parameters
    from sagestack.registry import DatasetRef
    from sagestack.workflows.sentiment import lineage_tags, read_json, register_step, reviewed_reports, reviewed_tags

    artifacts = {"reviews": reviews, "data_bias": data_bias, "features": features, "prepared": prepared,
                 "model": model, "evaluation": evaluation, "model_bias": model_bias, "explanations": explanations}
    registered = register_step(
        settings=settings_from_parameters(home, tracking_uri), model_dir=model.path,
        evaluation=read_json(evaluation.path), dataset=DatasetRef(reviews.metadata["source"], reviews.metadata["sha256"]),
        model_name=model_name, auto_approve=auto_approve,
        lineage={**lineage_tags(pipeline_run, {k: a.uri for k, a in artifacts.items()}, read_json(candidates.path)),
                 **reviewed_tags(reviews.metadata.get("reviewed"))},
        reports={"bias/pretraining": data_bias.path, "bias/posttraining": model_bias.path, "explain": explanations.path,
                 **reviewed_reports(reviews.metadata.get("reviewed"))},
    )
    return f"{registered['name']}/{registered['version']}"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def record_rejection(reviews: Input[Dataset], model: Input[Model], candidates: Input[Artifact], test_accuracy: float,
                     min_accuracy: float, home: str, tracking_uri: str, pipeline_run: str) -> str:
    """The else branch: record in MLflow that the champion missed min_accuracy (nothing registered)."""
    from sagestack.config import settings_from_parameters
    from sagestack.registry import DatasetRef
    from sagestack.workflows.sentiment import lineage_tags, read_json, record_rejection_step

    result = record_rejection_step(
        settings=settings_from_parameters(home, tracking_uri), test_accuracy=test_accuracy, min_accuracy=min_accuracy,
        dataset=DatasetRef(reviews.metadata["source"], reviews.metadata["sha256"]),
        lineage=lineage_tags(pipeline_run, {"reviews": reviews.uri, "model": model.uri}, read_json(candidates.path)),
    )
    return result["reason"]
