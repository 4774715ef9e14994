"""The review-sentiment pipeline: ingest → data bias → feature store → prepare (read back from
Feast) → trainers as parallel branches, each evaluated on the same test split → select the
champion → model bias, SHAP → (accuracy gate) → register.

SageMaker Pipelines' processing → training → evaluation → ConditionStep → RegisterModel, on
Kubeflow Pipelines. Wiring only: all logic is in the components and the sagestack library.
Each trainer runs when its ``trainer_<name>`` parameter is true (a KFP condition on a
parameter); a left-out trainer is stood in for by ``skip-trainer`` so the selection sees
every branch through ``dsl.OneOf``.
"""

from kfp import dsl

from components.sentiment import (
    evaluate_model,
    explain_model,
    feature_store,
    ingest_data,
    posttraining_bias,
    prepare_data,
    pretraining_bias,
    record_rejection,
    register_model,
    select_champion,
    skip_trainer,
    train_automl,
    train_baseline,
    train_bert,
    train_fasttext,
)
from sagestack.bert.params import BertParams
from sagestack.automl.candidates import DEFAULT_MAX_CANDIDATES
from sagestack.models.baseline import BaselineParams
from sagestack.registry.tracking import DEFAULT_MODEL_NAME
from sagestack.text.params import SAGESTACK_DEFAULTS
from sagestack.workflows import params as defaults

PIPELINE_NAME = "sagestack-sentiment"
_BASELINE = BaselineParams()
_BERT = BertParams()
# Cluster mode gives the BERT step one GPU (the local runner accepts and ignores the request).
BERT_ACCELERATOR = "nvidia.com/gpu"
# Per-step resources on a cluster: (cpu request, memory request, cpu limit, memory limit). Sized from
# the steps' measured use on the 7,110 reviews, with room: AutoML and BERT hold the most in memory.
STEP_RESOURCES = {
    "light": ("250m", "512M", "1", "2G"),        # select-champion, skip-trainer, record-rejection
    "data": ("500m", "2G", "2", "4G"),           # ingest, bias, feature store, prepare, register
    "train": ("1", "2G", "2", "8G"),             # fastText, baseline, evaluate, explain
    "heavy": ("2", "8G", "4", "16G"),            # AutoGluon, BERT
}


# On a cluster the steps run in the deployment's namespace (k8s/, a Kubeflow profile named sagestack) and
# read what its pods read: the ConfigMap, the Secrets and the shared home volume. The local runner
# ignores these Kubernetes settings.
CONFIG_MAP = "sagestack-config"
CONFIG_MAP_ENV = ("SAGESTACK_HOME", "SAGESTACK_OFFLINE_STORE", "HOME", "MPLCONFIGDIR", "HF_HOME")
SECRET_ENV = {"sagestack-online-store": {"url": "SAGESTACK_ONLINE_STORE"},
              "sagestack-feast-registry": {"uri": "SAGESTACK_FEAST_REGISTRY"},
              # Human review's loops and answers (`--include-reviewed` reads them in the ingest step); optional:
              # a cluster without human review has no such Secret.
              "sagestack-review-db": {"uri": "SAGESTACK_REVIEW_DB"}}
OPTIONAL_SECRETS = {"sagestack-review-db"}
HOME_VOLUME, HOME_PATH = "sagestack-home", "/var/lib/sagestack"
RUN_AS = 10001  # the image's unprivileged user


def _sized(task, size: str):
    """Configure a task for a cluster: CPU and memory requests and limits (see ``STEP_RESOURCES``),
    the deployment's settings and home volume, and an unprivileged user."""
    from kfp import kubernetes

    cpu, memory, cpu_limit, memory_limit = STEP_RESOURCES[size]
    task.set_cpu_request(cpu).set_memory_request(memory).set_cpu_limit(cpu_limit).set_memory_limit(memory_limit)
    kubernetes.use_config_map_as_env(task, CONFIG_MAP, {key: key for key in CONFIG_MAP_ENV})
    for secret, keys in SECRET_ENV.items():
        kubernetes.use_secret_as_env(task, secret, keys, optional=secret in OPTIONAL_SECRETS)
    kubernetes.mount_pvc(task, HOME_VOLUME, HOME_PATH)
    kubernetes.set_security_context(task, run_as_user=RUN_AS, run_as_group=RUN_AS, run_as_non_root=True)
    return task


def _candidate(enabled, trainer: str, prepared, train_task_factory):
    """One trainer's branch: train + evaluate when ``enabled``, else a stand-in; returns (model, evaluation)."""
    with dsl.If(enabled == True, name=f"{trainer}-selected"):  # noqa: E712 (a KFP condition, not Python)
        trained = train_task_factory()
        evaluated = _sized(evaluate_model(prepared=prepared, model=trained.outputs["model"]), "train")
    with dsl.Else(name=f"{trainer}-left-out"):
        skipped = _sized(skip_trainer(trainer=trainer), "light")
    return (
        dsl.OneOf(trained.outputs["model"], skipped.outputs["model"]),
        dsl.OneOf(evaluated.outputs["evaluation"], skipped.outputs["evaluation"]),
    )


@dsl.pipeline(name=PIPELINE_NAME, description="Review sentiment: data → trainers → champion → gated registration")
def sentiment_pipeline(
    data_path: str = "",
    data_sha256: str = "",
    include_reviewed: bool = False,
    reviewed_sha256: str = "",
    home: str = "",
    tracking_uri: str = "",
    model_name: str = DEFAULT_MODEL_NAME,
    min_accuracy: float = defaults.DEFAULT_MIN_ACCURACY,
    auto_approve: bool = False,
    trainer_fasttext: bool = "fasttext" in defaults.DEFAULT_TRAINERS,
    trainer_baseline: bool = "baseline" in defaults.DEFAULT_TRAINERS,
    trainer_automl: bool = "automl" in defaults.DEFAULT_TRAINERS,
    trainer_bert: bool = "bert" in defaults.DEFAULT_TRAINERS,
    select_metric: str = defaults.DEFAULT_SELECT_METRIC,
    seed: int = defaults.DEFAULT_SEED,
    epochs: int = SAGESTACK_DEFAULTS["epochs"],
    learning_rate: float = SAGESTACK_DEFAULTS["learning_rate"],
    min_count: int = SAGESTACK_DEFAULTS["min_count"],
    vector_dim: int = SAGESTACK_DEFAULTS["vector_dim"],
    word_ngrams: int = SAGESTACK_DEFAULTS["word_ngrams"],
    baseline_word_ngrams: int = _BASELINE.word_ngrams,
    baseline_c: float = _BASELINE.c,
    automl_time_limit: float = defaults.DEFAULT_AUTOML_TIME_LIMIT,
    automl_max_candidates: int = DEFAULT_MAX_CANDIDATES,
    automl_embeddings: bool = False,
    bert_model: str = "",
    bert_epochs: int = _BERT.epochs,
    bert_learning_rate: float = _BERT.learning_rate,
    bert_train_batch_size: int = _BERT.train_batch_size,
    bert_max_steps: int = _BERT.max_steps,
    bert_max_seq_length: int = _BERT.max_seq_length,
    facet: str = defaults.DEFAULT_FACET,
    bias_fail_on: str = "",
    explain_samples: int = defaults.DEFAULT_EXPLAIN_SAMPLES,
):
    ingest = _sized(ingest_data(data_path=data_path, data_sha256=data_sha256, include_reviewed=include_reviewed,
                                reviewed_sha256=reviewed_sha256, home=home, tracking_uri=tracking_uri), "data")
    data_bias = _sized(pretraining_bias(reviews=ingest.outputs["reviews"], facet=facet, fail_on=bias_fail_on), "data")
    features = _sized(feature_store(reviews=ingest.outputs["reviews"], home=home, tracking_uri=tracking_uri).after(
        data_bias  # a failed bias gate stops the pipeline before features and training
    ), "data")
    # Every trainer reads its data back from the feature store: what serving reads, by construction.
    prepare = _sized(prepare_data(features=features.outputs["features"], home=home, tracking_uri=tracking_uri), "data")
    prepared = prepare.outputs["prepared"]

    fasttext_model, fasttext_evaluation = _candidate(trainer_fasttext, "fasttext", prepared, lambda: _sized(train_fasttext(
        prepared=prepared, epochs=epochs, learning_rate=learning_rate, min_count=min_count, vector_dim=vector_dim,
        word_ngrams=word_ngrams, seed=seed,
    ), "train"))
    baseline_model, baseline_evaluation = _candidate(trainer_baseline, "baseline", prepared, lambda: _sized(train_baseline(
        prepared=prepared, word_ngrams=baseline_word_ngrams, c=baseline_c, seed=seed,
    ), "train"))
    automl_model, automl_evaluation = _candidate(trainer_automl, "automl", prepared, lambda: _sized(train_automl(
        prepared=prepared, time_limit=automl_time_limit, max_candidates=automl_max_candidates,
        embeddings=automl_embeddings, metric=select_metric, seed=seed,
    ), "heavy"))
    bert_model_out, bert_evaluation = _candidate(trainer_bert, "bert", prepared, lambda: _sized(train_bert(
        prepared=prepared, bert_model=bert_model, epochs=bert_epochs, learning_rate=bert_learning_rate,
        train_batch_size=bert_train_batch_size, max_steps=bert_max_steps, max_seq_length=bert_max_seq_length, seed=seed,
    ), "heavy").set_accelerator_type(BERT_ACCELERATOR).set_accelerator_limit(1))
    select = _sized(select_champion(
        fasttext_model=fasttext_model, fasttext_evaluation=fasttext_evaluation,
        baseline_model=baseline_model, baseline_evaluation=baseline_evaluation,
        automl_model=automl_model, automl_evaluation=automl_evaluation,
        bert_model=bert_model_out, bert_evaluation=bert_evaluation, metric=select_metric,
    ), "light")
    champion = select.outputs["champion"]
    model_bias = _sized(posttraining_bias(prepared=prepared, model=champion, facet=facet, fail_on=bias_fail_on), "train")
    explain = _sized(explain_model(prepared=prepared, model=champion, samples=explain_samples), "train")
    with dsl.If(select.outputs["Output"] >= min_accuracy, name="accuracy-met"):
        _sized(register_model(
            reviews=ingest.outputs["reviews"], features=features.outputs["features"], prepared=prepared,
            model=champion, evaluation=select.outputs["evaluation"], candidates=select.outputs["candidates"],
            data_bias=data_bias.outputs["report"], model_bias=model_bias.outputs["report"],
            explanations=explain.outputs["report"], home=home, tracking_uri=tracking_uri, model_name=model_name,
            auto_approve=auto_approve, pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        ), "data")
    with dsl.Else(name="accuracy-missed"):
        _sized(record_rejection(
            reviews=ingest.outputs["reviews"], model=champion, candidates=select.outputs["candidates"],
            test_accuracy=select.outputs["Output"], min_accuracy=min_accuracy, home=home, tracking_uri=tracking_uri,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        ), "light")
