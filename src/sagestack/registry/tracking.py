"""Experiment tracking and the model registry on MLflow, SageMaker-style.

Every training run logs its parameters, metrics, artifacts and the model; the model is
registered with lineage tags (dataset path and sha256, sagestack version, git commit, the
run) and an approval status as SageMaker's Model Registry has (``PendingManualApproval``,
``Approved``, ``Rejected``). Aliases (``champion``, ``challenger``) point at versions;
``champion`` may only point at an ``Approved`` version, and a ``Rejected`` version holds no alias
at all: every alias is something a deployment can follow (an A/B variant follows ``@champion`` or
``@challenger``, ``sagestack serve --model NAME@ALIAS`` any alias), and SageMaker does not deploy a
rejected model package.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sagestack import __version__
from sagestack.config import Settings
from sagestack.errors import RegistryError
from sagestack.models.base import CARD_FILE
from sagestack.registry import DEFAULT_MODEL_NAME

ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
APPROVAL_TAG = "approval_status"
DEFAULT_EXPERIMENT = "sagestack"
KIND_TAG = "model.kind"
# The metrics a version carries as tags ("metric.<name>"), for tables of every version.
HEADLINE_METRICS = ("test_accuracy", "test_macro_f1", "validation_accuracy")
METRIC_TAG_PREFIX = "metric."
# Aliases that serve traffic and therefore need an approved version.
SERVING_ALIASES = ("champion",)


def registration_status(approve: bool) -> tuple[ApprovalStatus, tuple[str, ...]]:
    """How a new version is registered: ``Approved`` + ``@champion`` when ``approve``, else
    ``PendingManualApproval`` + ``@challenger`` (SageMaker's manual approval)."""
    return ("Approved", ("champion",)) if approve else ("PendingManualApproval", ("challenger",))


@dataclass(frozen=True)
class DatasetRef:
    """A dataset used by a run: where it was and its content hash."""

    path: str
    sha256: str


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered model version as sagestack reports it."""

    name: str
    version: str
    run_id: str
    status: str
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, float]
    source: str

    @property
    def uri(self) -> str:
        """The ``models:/`` URI of this version."""
        return f"models:/{self.name}/{self.version}"

    @property
    def kind(self) -> str | None:
        """The model kind (``fasttext``, ``baseline``, ...) from the version's ``model.kind`` tag."""
        return self.tags.get(KIND_TAG)

    def to_dict(self) -> dict:
        """A JSON-serialisable form."""
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "kind": self.kind,
            "run_id": self.run_id,
            "approval_status": self.status,
            "aliases": self.aliases,
            "tags": self.tags,
            "metrics": self.metrics,
            "source": self.source,
        }


def git_commit() -> str:
    """The git commit of the sagestack checkout (``SAGESTACK_GIT_COMMIT`` wins), or ``unknown``."""
    if os.environ.get("SAGESTACK_GIT_COMMIT"):
        return os.environ["SAGESTACK_GIT_COMMIT"]
    checkout = Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def client(settings: Settings):
    """An ``MlflowClient`` for the configured tracking/registry store (creating ``home`` if needed)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if settings.mlflow_uri.startswith("sqlite:"):
        settings.home.mkdir(parents=True, exist_ok=True)
    uri = settings.mlflow_uri
    try:
        # MLflow opens the store here and refuses a database of another version with a long
        # exception; the fix (a backup, then `mlflow db upgrade`) is the user's to run, never ours.
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    except MlflowException as exc:
        if "out-of-date database schema" not in str(exc):
            raise
        raise RegistryError(f"the MLflow database {uri} was made by an older MLflow; back it up, then run "
                            f"`mlflow db upgrade {uri}` (or pass another --home)") from None


def registry_exists(settings: Settings) -> bool:
    """Whether the configured store can hold anything yet: False only for a local SQLite store whose
    file was never created (opening it through :func:`client` would create it, and take seconds)."""
    uri = settings.mlflow_uri
    if not uri.startswith("sqlite:///"):
        return True
    return Path(uri.removeprefix("sqlite:///")).is_file()


def ensure_experiment(settings: Settings, name: str = DEFAULT_EXPERIMENT) -> str:
    """Return the id of experiment ``name``, creating it (artifacts under ``home``) if needed."""
    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A local store keeps artifacts under SAGESTACK_HOME, not in ./mlruns of the working directory.
    location = settings.artifacts_dir.as_uri() if settings.mlflow_uri.startswith("sqlite:") else None
    return mlflow_client.create_experiment(name, artifact_location=location)


def log_model_run(
    model_dir: Path | str,
    *,
    settings: Settings,
    dataset: DatasetRef | None = None,
    test_evaluation=None,
    experiment: str = DEFAULT_EXPERIMENT,
    model_name: str | None = DEFAULT_MODEL_NAME,
    approval: ApprovalStatus = "PendingManualApproval",
    aliases: tuple[str, ...] = (),
    extra_tags: dict[str, str] | None = None,
    extra_artifacts: dict[str, Path] | None = None,
    parent_run_id: str | None = None,
    run_name: str | None = None,
) -> dict:
    """Log a trained model of any kind to MLflow and (unless ``model_name`` is None) register it.

    The model directory's card names the kind; the run gets the card's parameters and
    metrics, the evaluations, and the directory as one pyfunc model that dispatches by kind.

    Args:
        model_dir: a trained model's output directory (with its ``sagestack-model.json``).
            Word-vector outputs (not classifiers) are logged as files and not registered.
        settings: where the tracking store is.
        dataset: the source dataset, for lineage tags.
        test_evaluation: an optional held-out :class:`~sagestack.models.Evaluation`.
        experiment: the MLflow experiment name.
        model_name: registered model name; ``None`` logs without registering.
        approval: the approval status of the new version.
        aliases: aliases to point at the new version (``champion`` needs ``Approved``).
        extra_tags: more lineage tags for the run and the version.
        extra_artifacts: more files or folders to log, ``{artifact folder: path}`` (e.g. bias reports).
        parent_run_id: make the run a child of this one (an AutoML job's best candidate).
        run_name: the run's name (default: MLflow's).

    Returns:
        ``{"run_id", "model_uri", "kind", "registered": ModelVersionInfo dict or None}``.

    Raises:
        RegistryError: an unknown approval status, a serving alias without approval, an alias
            for a rejected version, or a directory that is not a sagestack model.
    """
    import mlflow

    from sagestack.models import Evaluation, ModelCard, get_kind, load_model
    from sagestack.registry.pyfunc import INPUT_EXAMPLE, SagestackPyfunc, model_signature

    if approval not in APPROVAL_STATUSES:
        raise RegistryError(f"unknown approval status {approval!r}; use one of {', '.join(APPROVAL_STATUSES)}")
    if approval == "Rejected" and aliases:
        raise RegistryError(f"a Rejected version takes no alias ('{aliases[0]}'); register it without aliases")
    for alias in aliases:
        if alias in SERVING_ALIASES and approval != "Approved":
            raise RegistryError(f"alias '{alias}' needs an Approved version; register with approval Approved")
    model_dir = Path(model_dir)
    card = ModelCard.load(model_dir)
    kind = get_kind(card.kind)
    validation = Evaluation.from_dict(card.validation) if card.validation else None

    tags = {
        "sagestack.version": __version__,
        "git.commit": git_commit(),
        KIND_TAG: card.kind,
        **({"dataset.path": dataset.path, "dataset.sha256": dataset.sha256} if dataset else {}),
        **(extra_tags or {}),
    }
    metrics = dict(card.metrics)
    if validation is not None:
        metrics.update(validation.flat_metrics("validation"))
    if test_evaluation is not None:
        metrics.update(test_evaluation.flat_metrics("test"))

    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    experiment_id = ensure_experiment(settings, experiment)

    with mlflow.start_run(experiment_id=experiment_id, parent_run_id=parent_run_id, run_name=run_name) as run, \
            tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags(tags)
        mlflow.log_params(card.params)
        mlflow.log_metrics(metrics)
        for folder, path in (extra_artifacts or {}).items():
            if Path(path).is_dir():
                mlflow.log_artifacts(str(path), folder)
            else:
                mlflow.log_artifact(str(path), folder)
        run_id = run.info.run_id
        if not card.servable:
            # Word vectors are an artifact of the run, not a servable classifier: nothing to register.
            mlflow.log_artifacts(str(model_dir), "vectors")
            return {"run_id": run_id, "model_uri": None, "kind": card.kind, "registered": None}
        _log_evaluation(Path(tmp), validation, test_evaluation)
        predictor = load_model(model_dir)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SagestackPyfunc(),
            artifacts={"model": str(model_dir)},
            pip_requirements=kind.pip_requirements(card.requirements),
            signature=model_signature(predictor),  # a list of reviews or a frame with review_body: see pyfunc
            input_example=INPUT_EXAMPLE,
        )

    registered = None
    if model_name:
        registered = register_version(
            settings, model_name, info.model_uri, run_id, approval=approval, aliases=aliases, tags=tags,
            model_id=info.model_id,
        ).to_dict()
    return {"run_id": run_id, "model_uri": info.model_uri, "kind": card.kind, "registered": registered}


def _log_evaluation(tmp: Path, validation, test) -> None:
    """Log the classification report (JSON) and a confusion-matrix PNG per evaluated split."""
    import mlflow

    from sagestack.models.evaluation import plot_confusion_matrix

    evaluations = {split: ev for split, ev in (("validation", validation), ("test", test)) if ev is not None}
    report_path = tmp / "classification_report.json"
    report_path.write_text(json.dumps({s: ev.to_dict() for s, ev in evaluations.items()}, indent=2), encoding="utf-8")
    mlflow.log_artifact(str(report_path), "evaluation")
    for split, evaluation in evaluations.items():
        png = plot_confusion_matrix(evaluation, tmp / f"confusion_matrix_{split}.png", split)
        mlflow.log_artifact(str(png), "evaluation")


def register_version(
    settings: Settings,
    name: str,
    model_uri: str,
    run_id: str,
    *,
    approval: ApprovalStatus = "PendingManualApproval",
    aliases: tuple[str, ...] = (),
    tags: dict[str, str] | None = None,
    model_id: str | None = None,
) -> ModelVersionInfo:
    """Register ``model_uri`` as a new version of ``name`` with tags, approval status and aliases.

    ``model_id`` is the logged model's id (MLflow 3's ``models:/m-…`` URIs): an MLflow tracking
    server refuses such a source without it (the SQLite store accepts it either way).
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        mlflow_client.create_registered_model(name, description="Review sentiment (-1/0/1) classifier")
    # The headline metrics travel with the version (as SageMaker's model package carries its
    # ModelMetrics), so a table of every version needs no query of every training run.
    run_metrics = mlflow_client.get_run(run_id).data.metrics
    metric_tags = {f"{METRIC_TAG_PREFIX}{k}": repr(run_metrics[k]) for k in HEADLINE_METRICS if k in run_metrics}
    version = mlflow_client.create_model_version(
        name, model_uri, run_id=run_id,
        tags={**(tags or {}), **metric_tags, "training.run_id": run_id, APPROVAL_TAG: approval},
        model_id=model_id,
    )
    for alias in aliases:
        mlflow_client.set_registered_model_alias(name, alias, version.version)
    return get_version(settings, name, str(version.version))


def _split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``name``, ``name@alias`` or ``name/version`` (optionally ``models:/``-prefixed) -> (name, alias, version)."""
    ref = ref.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, alias, None
    if "/" in ref:
        name, version = ref.rsplit("/", 1)
        return name, None, version
    return ref, None, None


def get_version(settings: Settings, name: str, version: str | None = None, alias: str | None = None) -> ModelVersionInfo:
    """Look up one model version by number or alias (default: the latest version).

    Raises:
        RegistryError: the model, version or alias does not exist.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    try:
        registered = mlflow_client.get_registered_model(name)
    except MlflowException:
        raise RegistryError(f"no registered model named '{name}'; see `sagestack models list`") from None
    try:
        if alias:
            mv = mlflow_client.get_model_version_by_alias(name, alias)
        elif version:
            mv = mlflow_client.get_model_version(name, version)
        else:
            versions = mlflow_client.search_model_versions(f"name='{name}'")
            mv = max(versions, key=lambda v: int(v.version))
    except (MlflowException, ValueError):
        what = f"alias '{alias}'" if alias else f"version '{version}'"
        raise RegistryError(f"model '{name}' has no {what}; see `sagestack models show {name}`") from None
    aliases = sorted(a for a, v in registered.aliases.items() if str(v) == str(mv.version))
    metrics = mlflow_client.get_run(mv.run_id).data.metrics if mv.run_id else {}
    return ModelVersionInfo(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id or "",
        status=mv.tags.get(APPROVAL_TAG, "PendingManualApproval"),
        aliases=aliases,
        tags=dict(mv.tags),
        metrics=dict(metrics),
        source=mv.source,
    )


def resolve_ref(settings: Settings, ref: str) -> ModelVersionInfo:
    """Look up ``name``, ``name@alias`` or ``name/version``."""
    name, alias, version = _split_ref(ref)
    return get_version(settings, name, version=version, alias=alias)


def list_models(settings: Settings) -> list[dict]:
    """Every registered model with its versions, approval statuses and aliases."""
    mlflow_client = client(settings)
    out = []
    for registered in mlflow_client.search_registered_models():
        versions = mlflow_client.search_model_versions(f"name='{registered.name}'")
        out.append(
            {
                "name": registered.name,
                "aliases": {alias: str(v) for alias, v in registered.aliases.items()},
                "versions": [
                    {"version": str(v.version), "kind": v.tags.get(KIND_TAG),
                     "approval_status": v.tags.get(APPROVAL_TAG, "PendingManualApproval")}
                    for v in sorted(versions, key=lambda v: int(v.version))
                ],
            }
        )
    return out


def version_table(settings: Settings, name: str = DEFAULT_MODEL_NAME) -> dict:
    """Every version of one registered model, newest first, for a page that lists them all.

    Two store queries whatever the number of versions: the model, then its versions with their
    tags, which carry their headline metrics (:func:`register_version` copies them there). A
    version registered before that came in has its metrics read from its run, all such runs in
    one search.

    Returns:
        ``{"name", "exists", "aliases": {alias: version}, "versions": [{"version", "kind",
        "approval_status", "aliases", "created", "metrics", "dataset", "pipeline_run", "trainer",
        "run_id", "source"}]}``; ``exists`` is False (and ``versions`` empty) before the first
        registration.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    try:
        registered = mlflow_client.get_registered_model(name)
    except MlflowException:
        return {"name": name, "exists": False, "aliases": {}, "versions": []}
    versions = sorted(mlflow_client.search_model_versions(f"name='{name}'", max_results=10000),
                      key=lambda v: int(v.version), reverse=True)
    metrics = {v.run_id: {k[len(METRIC_TAG_PREFIX):]: float(value) for k, value in v.tags.items()
                          if k.startswith(METRIC_TAG_PREFIX)} for v in versions if v.run_id}
    run_ids = sorted(run_id for run_id, found in metrics.items() if not found)
    if run_ids:
        experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
        quoted = ", ".join(f"'{run_id}'" for run_id in run_ids)
        for run in mlflow_client.search_runs(experiments, f"attributes.run_id IN ({quoted})", max_results=len(run_ids)):
            metrics[run.info.run_id] = {k: v for k, v in run.data.metrics.items() if k in HEADLINE_METRICS}
    aliases = {alias: str(v) for alias, v in registered.aliases.items()}
    return {
        "name": name,
        "exists": True,
        "aliases": aliases,
        "versions": [
            {
                "version": str(v.version),
                "kind": v.tags.get(KIND_TAG),
                "approval_status": v.tags.get(APPROVAL_TAG, "PendingManualApproval"),
                "aliases": sorted(a for a, number in aliases.items() if number == str(v.version)),
                "created": v.creation_timestamp / 1000 if v.creation_timestamp else None,
                "metrics": metrics.get(v.run_id, {}),
                "dataset": {"path": v.tags.get("dataset.path"), "sha256": v.tags.get("dataset.sha256")},
                "pipeline_run": v.tags.get("pipeline.run"),
                "trainer": v.tags.get(CHAMPION_TAGS[0]),
                "run_id": v.run_id,
                "source": v.source,
            }
            for v in versions
        ],
    }


def set_approval(settings: Settings, ref: str, status: ApprovalStatus) -> ModelVersionInfo:
    """Set a version's approval status, and take away the aliases it may no longer hold.

    ``Rejected`` removes every alias of the version (``@champion``, ``@challenger`` and any other):
    each one routes traffic to it wherever a variant or ``sagestack serve --model NAME@ALIAS``
    follows it, and a rejected version must not be deployed. ``PendingManualApproval`` removes
    only ``@champion`` (a pending version may stay the ``@challenger``, as it was registered).

    Raises:
        RegistryError: an unknown status, or a version that does not exist.
    """
    if status not in APPROVAL_STATUSES:
        raise RegistryError(f"unknown approval status {status!r}; use one of {', '.join(APPROVAL_STATUSES)}")
    info = resolve_ref(settings, ref)
    mlflow_client = client(settings)
    mlflow_client.set_model_version_tag(info.name, info.version, APPROVAL_TAG, status)
    for alias in info.aliases:
        if status == "Rejected" or (status != "Approved" and alias in SERVING_ALIASES):
            mlflow_client.delete_registered_model_alias(info.name, alias)
    return get_version(settings, info.name, info.version)


def promote(settings: Settings, ref: str, alias: str = "champion") -> ModelVersionInfo:
    """Point ``alias`` at a version (``champion`` needs an Approved version; a Rejected one takes none).

    A challenger promoted to champion stops being the challenger: variant B (``@challenger``)
    is the version competing *with* the champion, so one version never holds both.

    Raises:
        RegistryError: the version is rejected, not approved for a serving alias, or does not exist.
    """
    info = resolve_ref(settings, ref)
    if info.status == "Rejected":
        raise RegistryError(
            f"{info.name} version {info.version} is Rejected and cannot be deployed; approve it first with "
            f"`sagestack models approve {info.name}/{info.version}` or promote another version")
    if alias in SERVING_ALIASES and info.status != "Approved":
        raise RegistryError(
            f"{info.name} version {info.version} is {info.status}; approve it first with "
            f"`sagestack models approve {info.name}/{info.version}`"
        )
    mlflow_client = client(settings)
    mlflow_client.set_registered_model_alias(info.name, alias, info.version)
    if alias == "champion" and "challenger" in info.aliases:
        mlflow_client.delete_registered_model_alias(info.name, "challenger")
    return get_version(settings, info.name, info.version)


def load_predictor(settings: Settings, ref: str):
    """Load the predictor of a registered version, or of a local model, whatever its kind.

    Args:
        settings: where the registry is.
        ref: ``NAME@ALIAS``, ``NAME/VERSION``, ``NAME`` (latest version), a trained model's
            output directory, or a model file a kind loads directly (its ``file_suffixes``).

    Returns:
        ``(predictor, ModelVersionInfo | None)``; the info is ``None`` for a local path. The
        predictor's ``kind`` names its kind (see :func:`sagestack.models.get_kind`).

    Raises:
        RegistryError: the reference does not resolve, or names no loadable model.
    """
    from sagestack.models import get_kind, kind_for_file, load_model

    path = Path(ref)
    if path.is_dir():
        return load_model(path), None
    file_kind = kind_for_file(path)
    if path.is_file() and file_kind is not None:
        predictor = file_kind.predictor.load(path)
        predictor.source_path = path
        return predictor, None
    if path.is_file() or file_kind is not None:
        raise RegistryError(f"no model at {path}; pass a trained model's folder, a model file or NAME@ALIAS")

    import mlflow

    info = resolve_ref(settings, ref)
    kind = info.tags.get(KIND_TAG)
    if not kind:
        raise RegistryError(f"{info.name} version {info.version} has no {KIND_TAG} tag; it was not registered by sagestack")
    get_kind(kind)  # an unknown kind fails here, before any download
    # models:/ URIs resolve through the process-wide registry URI, so point it at our store.
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.uri))
    cards = sorted(local.rglob(CARD_FILE))
    if not cards:
        raise RegistryError(f"{info.name} version {info.version} holds no sagestack model in {info.source}")
    predictor = load_model(cards[0].parent)
    if predictor.kind != kind:
        raise RegistryError(f"{info.name} version {info.version} is tagged {kind} but holds a {predictor.kind} model")
    return predictor, info


ENDPOINT_TAG = "endpoint.url"  # the URL of the endpoint serving the version now
ENDPOINT_PROCESS_TAG = "endpoint.process"  # HOST:PID of the command serving it (lineage checks it still runs)
LAST_ENDPOINT_TAG = "endpoint.last_url"  # once it stopped: where it served, and when it stopped
ENDPOINT_STOPPED_TAG = "endpoint.stopped_at"
STEP_TAG_PREFIX = "pipeline.step."


def pipeline_lineage_tags(run: str, steps: list[tuple[str, str, str]]) -> dict[str, str]:
    """Tags tying a model version to a pipeline run and its upstream artifacts.

    Args:
        run: the pipeline run's name.
        steps: ``(step, artifact, uri)`` in pipeline order.

    Returns:
        ``{"pipeline.run": run, "pipeline.step.<n>.<step>.<artifact>": uri, ...}``, which
        :func:`lineage` reads back in the same order.
    """
    tags = {"pipeline.run": run}
    for number, (step, artifact, uri) in enumerate(steps, start=1):
        tags[f"{STEP_TAG_PREFIX}{number}.{step}.{artifact}"] = uri
    return tags


CANDIDATE_TAG_PREFIX = "pipeline.candidate."
CHAMPION_TAGS = ("pipeline.champion", "pipeline.select_metric")


def candidate_tags(selection: dict) -> dict[str, str]:
    """Tags recording a pipeline's champion selection: the winner, the metric and every candidate's scores.

    Args:
        selection: ``{"champion", "metric", "candidates": {trainer: {"kind", "test_accuracy", ...}}}``.

    Returns:
        ``{"pipeline.champion": trainer, "pipeline.select_metric": metric,
        "pipeline.candidate.<trainer>.<field>": value, ...}``, which :func:`lineage` reads back.
    """
    tags = {CHAMPION_TAGS[0]: selection["champion"], CHAMPION_TAGS[1]: selection["metric"]}
    for trainer, scores in selection["candidates"].items():
        for field, value in scores.items():
            tags[f"{CANDIDATE_TAG_PREFIX}{trainer}.{field}"] = str(value)
    return tags


def _candidates_from_tags(tags: dict[str, str]) -> dict[str, dict]:
    candidates: dict[str, dict] = {}
    for key, value in tags.items():
        if key.startswith(CANDIDATE_TAG_PREFIX):
            trainer, field = key[len(CANDIDATE_TAG_PREFIX):].split(".", 1)
            try:
                candidates.setdefault(trainer, {})[field] = float(value)
            except ValueError:
                candidates.setdefault(trainer, {})[field] = value
    return candidates


def record_rejection(settings: Settings, *, reason: str, dataset: DatasetRef, tags: dict[str, str],
                     metrics: dict[str, float]) -> str:
    """Log a run recording that a pipeline's model was rejected (nothing is registered); returns its id."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_uri)
    experiment_id = ensure_experiment(settings)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags({
            **tags, "pipeline.decision": "rejected", "pipeline.reason": reason,
            "dataset.path": dataset.path, "dataset.sha256": dataset.sha256,
        })
        mlflow.log_metrics(metrics)
    return run.info.run_id


def lineage(settings: Settings, ref: str) -> dict:
    """The chain dataset → pipeline steps → model version → endpoint of a registered version.

    Read back from the version's tags (written by the pipeline's register step and by
    ``sagestack serve``) and from its training run.

    Returns:
        ``{"dataset": {...}, "pipeline": {...}, "steps": [{"order", "step", "artifact", "uri"}],
        "candidates": {trainer: {"kind", "test_accuracy", ...}}, "champion": {"trainer", "metric"},
        "training_run", "model": {...}, "endpoint", "last_endpoint"}``: ``endpoint`` is the URL of the
        endpoint serving the version now (``None`` when none does); ``last_endpoint`` is
        ``{"url", "stopped_at"}`` of one that served it and stopped (``stopped_at`` is ``None``
        when its process ended without saying so), or ``None``.
    """
    info = resolve_ref(settings, ref)
    tags = info.tags
    # Tags "pipeline.step.<n>.<step>.<artifact>" = URI, numbered in pipeline order.
    steps = []
    for key in sorted(k for k in tags if k.startswith(STEP_TAG_PREFIX)):
        _, _, number, step, artifact = key.split(".", 4)
        steps.append({"order": int(number), "step": step, "artifact": artifact, "uri": tags[key]})
    steps.sort(key=lambda s: s["order"])
    return {
        "dataset": {"path": tags.get("dataset.path"), "sha256": tags.get("dataset.sha256")},
        "pipeline": {"run": tags.get("pipeline.run"), "git_commit": tags.get("git.commit"),
                     "sagestack_version": tags.get("sagestack.version")},
        "steps": steps,
        "candidates": _candidates_from_tags(tags),
        "champion": {"trainer": tags.get(CHAMPION_TAGS[0]), "metric": tags.get(CHAMPION_TAGS[1])},
        "training_run": info.run_id,
        "model": {"name": info.name, "version": info.version, "kind": tags.get(KIND_TAG),
                  "approval_status": info.status, "aliases": info.aliases, "uri": info.uri,
                  "test_accuracy": info.metrics.get("test_accuracy")},
        **_endpoint(tags),
        # The human-reviewed labels it trained on (``pipeline run --include-reviewed``), if any.
        "reviewed": ({key[len("reviewed."):]: value for key, value in tags.items() if key.startswith("reviewed.")}
                     or None),
    }


def record_endpoint(settings: Settings, ref: str, url: str, *, pid: int | None = None) -> ModelVersionInfo:
    """Tag a version with the URL of the endpoint that serves it (the end of its lineage) and the
    process serving it (``pid``, default this one), so that lineage can tell when it is gone.
    Call :func:`record_endpoint_stopped` when it stops."""
    import socket

    info = resolve_ref(settings, ref)
    mlflow_client = client(settings)
    mlflow_client.set_model_version_tag(info.name, info.version, ENDPOINT_TAG, url)
    mlflow_client.set_model_version_tag(info.name, info.version, ENDPOINT_PROCESS_TAG,
                                        f"{socket.gethostname()}:{pid or os.getpid()}")
    return get_version(settings, info.name, info.version)


def record_endpoint_stopped(settings: Settings, ref: str, url: str) -> ModelVersionInfo:
    """Record that the endpoint at ``url`` stopped serving the version ``ref`` names (pass
    ``NAME/VERSION``: an alias may have moved while it served): lineage then names it as the last
    endpoint, not as a live one. An endpoint recorded since at another URL stays recorded."""
    from datetime import datetime, timezone

    info = resolve_ref(settings, ref)
    mlflow_client = client(settings)
    if info.tags.get(ENDPOINT_TAG) == url:
        for tag in (ENDPOINT_TAG, ENDPOINT_PROCESS_TAG):
            if tag in info.tags:
                mlflow_client.delete_model_version_tag(info.name, info.version, tag)
    mlflow_client.set_model_version_tag(info.name, info.version, LAST_ENDPOINT_TAG, url)
    mlflow_client.set_model_version_tag(info.name, info.version, ENDPOINT_STOPPED_TAG,
                                        datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return get_version(settings, info.name, info.version)


def _endpoint(tags: dict[str, str]) -> dict:
    """Lineage's ``endpoint`` (live) and ``last_endpoint`` (stopped) read from a version's tags: a
    recorded endpoint whose process on this machine has ended (killed, no chance to say so) is not live."""
    import socket

    from sagestack.processes import alive

    url = tags.get(ENDPOINT_TAG)
    if url:
        host, _, pid = tags.get(ENDPOINT_PROCESS_TAG, "").rpartition(":")
        if not (host == socket.gethostname() and pid.isdigit() and not alive(int(pid))):
            return {"endpoint": url, "last_endpoint": None}
        return {"endpoint": None, "last_endpoint": {"url": url, "stopped_at": None}}
    last = tags.get(LAST_ENDPOINT_TAG)
    return {"endpoint": None,
            "last_endpoint": {"url": last, "stopped_at": tags.get(ENDPOINT_STOPPED_TAG)} if last else None}
