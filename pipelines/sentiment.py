"""The review-sentiment pipeline: ingest → data bias → feature store → prepare (read back from
Feast) → trainers as parallel branches, each evaluated on the same test split → select the
champion → model bias, SHAP → (accuracy gate) → register.

SageMaker Pipelines' processing → training → evaluation → ConditionStep → RegisterModel, on
Kubeflow Pipelines. Wiring only: all logic is in the components and the sagestack library.
The branches come from the registry of model kinds (every trainable kind, in its order): each
runs when its ``trainer_<name>`` parameter is true (a KFP condition on a parameter) and takes
its kind's parameters as pipeline parameters ``<param_prefix><field>``; a left-out trainer is
stood in for by ``skip-trainer`` so the selection sees every branch through ``dsl.OneOf``.
``sentiment_pipeline`` is built on first use for the kinds registered then.
"""

import inspect

from kfp import dsl

from sagestack.components.sentiment import (
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
    train_component,
)
from sagestack.registry.tracking import DEFAULT_MODEL_NAME
from sagestack.workflows import params as defaults

PIPELINE_NAME = "sagestack-sentiment"
# Cluster mode gives a GPU kind's step one GPU (the local runner accepts and ignores the request).
GPU_ACCELERATOR = "nvidia.com/gpu"
# Per-step resources on a cluster: (cpu request, memory request, cpu limit, memory limit). Sized from
# the steps' measured use on the 7,110 reviews, with room: AutoML and BERT hold the most in memory.
STEP_RESOURCES = {
    "light": ("250m", "512M", "1", "2G"),        # select-champion, skip-trainer, record-rejection
    "data": ("500m", "2G", "2", "4G"),           # ingest, bias, feature store, prepare, register
    "train": ("1", "2G", "2", "8G"),             # fastText, baseline, evaluate, explain (a kind's size "train")
    "heavy": ("2", "8G", "4", "16G"),            # AutoGluon, BERT (a kind's size "heavy")
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


def _train(kind, prepared, parameters: dict):
    """The train task of ``kind``'s branch, its parameters interpolated into one JSON input."""
    values = {name: parameters[f"{kind.param_prefix}{name}"] for name in kind.param_fields()}
    task = train_component(kind.trainer_name, kind.gpu)(
        prepared=prepared, trainer=kind.trainer_name, params=kind.params_template(values), seed=parameters["seed"],
        metric=parameters["select_metric"])
    task = _sized(task, kind.size)
    if kind.gpu:
        task.set_accelerator_type(GPU_ACCELERATOR).set_accelerator_limit(1)
    return task


def _parameters(kinds) -> list[inspect.Parameter]:
    """The pipeline's parameters: the run's, then ``trainer_<name>`` and each kind's own (typed, with defaults)."""
    def param(name, annotation, default):
        return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)

    found = [param("data_path", str, ""), param("data_sha256", str, ""), param("include_reviewed", bool, False),
             param("reviewed_sha256", str, ""), param("settings", str, ""),
             param("model_name", str, DEFAULT_MODEL_NAME), param("min_accuracy", float, defaults.DEFAULT_MIN_ACCURACY),
             param("auto_approve", bool, False)]
    found += [param(f"trainer_{kind.trainer_name}", bool, kind.trainer_name in defaults.DEFAULT_TRAINERS) for kind in kinds]
    found += [param("select_metric", str, defaults.DEFAULT_SELECT_METRIC), param("seed", int, defaults.DEFAULT_SEED)]
    for kind in kinds:
        found += [param(f"{kind.param_prefix}{name}", field.annotation, field.default)
                  for name, field in kind.param_fields().items()]
    found += [param("facet", str, defaults.DEFAULT_FACET), param("bias_fail_on", str, ""),
              param("explain_samples", int, defaults.DEFAULT_EXPLAIN_SAMPLES)]
    names = [p.name for p in found]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ValueError(f"pipeline parameters declared twice (two kinds' parameters clash): {', '.join(clash)}")
    return found


def build_pipeline(kinds):
    """The sentiment pipeline with one branch per kind in ``kinds`` (trainable :class:`ModelKind` s)."""
    parameters = _parameters(kinds)
    names = [p.name for p in parameters]
    select_step = select_champion(tuple(kind.trainer_name for kind in kinds))

    def sentiment_pipeline(*values):
        p = dict(zip(names, values))
        ingest = _sized(ingest_data(data_path=p["data_path"], data_sha256=p["data_sha256"],
                                    include_reviewed=p["include_reviewed"], reviewed_sha256=p["reviewed_sha256"],
                                    settings=p["settings"]), "data")
        data_bias = _sized(pretraining_bias(reviews=ingest.outputs["reviews"], facet=p["facet"],
                                            fail_on=p["bias_fail_on"]), "data")
        features = _sized(feature_store(reviews=ingest.outputs["reviews"], settings=p["settings"]).after(
            data_bias  # a failed bias gate stops the pipeline before features and training
        ), "data")
        # Every trainer reads its data back from the feature store: what serving reads, by construction.
        prepare = _sized(prepare_data(features=features.outputs["features"], settings=p["settings"]), "data")
        prepared = prepare.outputs["prepared"]
        candidates = {}
        for kind in kinds:
            model, evaluation = _candidate(p[f"trainer_{kind.trainer_name}"], kind.trainer_name, prepared,
                                           lambda kind=kind: _train(kind, prepared, p))
            candidates[f"{kind.trainer_name}_model"], candidates[f"{kind.trainer_name}_evaluation"] = model, evaluation
        select = _sized(select_step(**candidates, metric=p["select_metric"]), "light")
        champion = select.outputs["champion"]
        model_bias = _sized(posttraining_bias(prepared=prepared, model=champion, facet=p["facet"],
                                              fail_on=p["bias_fail_on"]), "train")
        explain = _sized(explain_model(prepared=prepared, model=champion, samples=p["explain_samples"]), "train")
        with dsl.If(select.outputs["Output"] >= p["min_accuracy"], name="accuracy-met"):
            _sized(register_model(
                reviews=ingest.outputs["reviews"], features=features.outputs["features"], prepared=prepared,
                model=champion, evaluation=select.outputs["evaluation"], candidates=select.outputs["candidates"],
                data_bias=data_bias.outputs["report"], model_bias=model_bias.outputs["report"],
                explanations=explain.outputs["report"], settings=p["settings"],
                model_name=p["model_name"], auto_approve=p["auto_approve"],
                pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            ), "data")
        with dsl.Else(name="accuracy-missed"):
            _sized(record_rejection(
                reviews=ingest.outputs["reviews"], model=champion, candidates=select.outputs["candidates"],
                test_accuracy=select.outputs["Output"], min_accuracy=p["min_accuracy"], settings=p["settings"], pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            ), "light")

    sentiment_pipeline.__signature__ = inspect.Signature(parameters)
    return dsl.pipeline(name=PIPELINE_NAME, description="Review sentiment: data → trainers → champion → gated registration")(
        sentiment_pipeline)


_built: dict[tuple, object] = {}


def __getattr__(name: str):
    if name == "sentiment_pipeline":  # built for the kinds registered now, once per set of kinds
        from sagestack.models.kinds import trainer_kinds

        kinds = trainer_kinds()
        key = tuple(kind.name for kind in kinds)
        if key not in _built:
            _built[key] = build_pipeline(kinds)
        return _built[key]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
