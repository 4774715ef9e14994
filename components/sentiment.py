"""Components of the review-sentiment pipeline: each maps KFP inputs to one call of
``sagestack.workflows.sentiment`` and its result back to outputs.

Bodies import inside themselves (KFP ships the function's source to the step's process). In
cluster mode they run on the pinned sagestack image; locally, in this environment through
``SubprocessRunner(use_venv=False)``. A step with a ``Metrics`` output writes a file at
``metrics.path``: without one KFP's local cache never hits.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from sagestack.components.image import GPU_IMAGE, IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest_data(data_path: str, data_sha256: str, include_reviewed: bool, reviewed_sha256: str, settings: str,
                reviews: Output[Dataset]):
    """Resolve and validate the review CSV (with the reviewed labels of human loops, when asked);
    output the validated reviews.

    ``data_sha256`` (set by the local runner) makes the step cache follow the file's content,
    not only its path; a mismatch fails the step. ``reviewed_sha256`` does the same for the
    reviewed labels.
    """
    from sagestack.config import settings_from_parameter
    from sagestack.workflows.sentiment import ingest_step

    settings = settings_from_parameter(settings)
    reviews.metadata.update(ingest_step(data_path, reviews.path, settings, expected_sha256=data_sha256,
                                        include_reviewed=include_reviewed))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def pretraining_bias(reviews: Input[Dataset], facet: str, fail_on: str, report: Output[HTML], analysis: Output[Artifact]):
    """Clarify pre-training bias of the data; fails the run when a ';'-separated fail_on rule holds."""
    from sagestack.workflows.sentiment import pretraining_bias_step

    pretraining_bias_step(reviews.path, report.path, analysis.path, facet=facet, fail_on=fail_on)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def feature_store(reviews: Input[Dataset], settings: str, features: Output[Dataset]):
    """Engineer BERT features and ingest them into the Feast store (feast apply + materialize)."""
    from sagestack.config import settings_from_parameter
    from sagestack.workflows.sentiment import feature_store_step

    reviewed = reviews.metadata.get("reviewed") or {}  # with --include-reviewed: the corrected labels
    result = feature_store_step(reviews.path, features.path, settings_from_parameter(settings),
                                reviewed_snapshot=reviewed.get("path", ""))
    features.metadata.update({"rows": result["rows"], "new_rows": result["new_rows"], "sha256": result["sha256"]})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prepare_data(features: Input[Dataset], settings: str, prepared: Output[Dataset]):
    """Read point-in-time training sets of this run's reviews back through Feast, for every trainer."""
    from sagestack.config import settings_from_parameter
    from sagestack.workflows.sentiment import prepare_step

    result = prepare_step(features.path, prepared.path, settings_from_parameter(settings))
    prepared.metadata.update({"counts": result["counts"], "features_sha256": features.metadata["sha256"]})


def train_model(prepared: Input[Dataset], trainer: str, params: str, seed: int, metric: str, model: Output[Model],
                metrics: Output[Metrics], reports: Output[Artifact]):
    """Train one branch: the kind of ``trainer`` with its parameters (JSON); validation metrics as KFP
    Metrics, the trainer's reports (e.g. BERT's Debugger and Profiler) as files in ``reports``."""
    from sagestack.workflows.sentiment import train_step, write_json

    result = train_step(trainer, prepared.path, model.path, reports.path, params, seed=seed, metric=metric)
    model.metadata.update(result)
    metrics.log_metric("validation_accuracy", result["validation_accuracy"])
    write_json(metrics.path, metrics.metadata)


# One train component per image (each kind's branch names its own copy, see `train_component`).
train_cpu = dsl.component(base_image=IMAGE, install_kfp_package=False)(train_model)
train_gpu = dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)(train_model)


def train_component(trainer: str, gpu: bool):
    """The train component of one branch, named ``train-<trainer>`` (its task's name) and run on
    the GPU image when the kind asks for a GPU: the same function and source whatever the kind."""
    import copy

    base = train_gpu if gpu else train_cpu
    named = copy.copy(base)
    named.component_spec = copy.deepcopy(base.component_spec)
    named.component_spec.name = named.name = f"train-{trainer.replace('_', '-')}"
    return named


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


_SELECT_SOURCE = """def select_champion({inputs}metric: str, champion: Output[Model], evaluation: Output[Artifact],
                    candidates: Output[Artifact]) -> float:
    \"\"\"Pick the best candidate by metric; returns its test accuracy, which the accuracy gate checks.\"\"\"
    from sagestack.workflows.sentiment import select_champion_step

    summary = select_champion_step(
        {{{paths}}},
        champion.path, evaluation.path, candidates.path, metric=metric,
    )
    champion.metadata.update({{"trainer": summary["champion"], "kind": summary["kind"], metric: summary["score"]}})
    return summary["test_accuracy"]
"""


def select_champion(trainers: tuple[str, ...]):
    """The select step for these branches: inputs ``<trainer>_model`` and ``<trainer>_evaluation`` each.

    KFP runs a component by shipping its function's source to the step's process, so a select
    step over any number of branches is a function whose source is written here, from the
    trainers, and kept in ``linecache`` where ``inspect.getsource`` (and so KFP) finds it.
    The same trainers give the same source, so KFP's cache still hits.
    """
    import linecache

    inputs = "".join(f"{t}_model: Input[Model], {t}_evaluation: Input[Artifact], " for t in trainers)
    paths = ", ".join(f'"{t}": ({t}_model.path, {t}_evaluation.path)' for t in trainers)
    source = _SELECT_SOURCE.format(inputs=inputs, paths=paths)
    filename = f"<sagestack select_champion {','.join(trainers)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace = {"Input": Input, "Output": Output, "Model": Model, "Artifact": Artifact}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own template, trainer names are identifiers
    return dsl.component(base_image=IMAGE, install_kfp_package=False)(namespace["select_champion"])


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
    explanations: Input[HTML], settings: str, model_name: str, auto_approve: bool, pipeline_run: str,
) -> str:
    """Register the champion in MLflow with lineage tags tying it to this run, its artifacts and candidates."""
    from sagestack.config import settings_from_parameter
    from sagestack.registry import DatasetRef
    from sagestack.workflows.sentiment import lineage_tags, read_json, register_step, reviewed_reports, reviewed_tags

    artifacts = {"reviews": reviews, "data_bias": data_bias, "features": features, "prepared": prepared,
                 "model": model, "evaluation": evaluation, "model_bias": model_bias, "explanations": explanations}
    registered = register_step(
        settings=settings_from_parameter(settings), model_dir=model.path,
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
                     min_accuracy: float, settings: str, pipeline_run: str) -> str:
    """The else branch: record in MLflow that the champion missed min_accuracy (nothing registered)."""
    from sagestack.config import settings_from_parameter
    from sagestack.registry import DatasetRef
    from sagestack.workflows.sentiment import lineage_tags, read_json, record_rejection_step

    result = record_rejection_step(
        settings=settings_from_parameter(settings), test_accuracy=test_accuracy, min_accuracy=min_accuracy,
        dataset=DatasetRef(reviews.metadata["source"], reviews.metadata["sha256"]),
        lineage=lineage_tags(pipeline_run, {"reviews": reviews.uri, "model": model.uri}, read_json(candidates.path)),
    )
    return result["reason"]
