"""Registered model versions, SageMaker-style: registration, approval, aliases, loading a predictor.

A version carries lineage tags (dataset, sagestack version, git commit, its training run) and an
approval status as SageMaker's Model Registry has (``PendingManualApproval``, ``Approved``,
``Rejected``). Aliases (``champion``, ``challenger``) point at versions; ``champion`` may only point
at an ``Approved`` version, and a ``Rejected`` version holds no alias at all: every alias is
something a deployment can follow (an A/B variant follows ``@champion`` or ``@challenger``,
``sagestack serve --model NAME@ALIAS`` any alias), and SageMaker does not deploy a rejected model
package. Runs (what a version was trained by) are :mod:`sagestack.registry.tracking`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sagestack.config import Settings
from sagestack.errors import RegistryError
from sagestack.models.base import CARD_FILE
from sagestack.registry import DEFAULT_MODEL_NAME
from sagestack.registry.store import client, using_store

ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
APPROVAL_TAG = "approval_status"
KIND_TAG = "model.kind"
# The metrics a version carries as tags ("metric.<name>"), for tables of every version.
HEADLINE_METRICS = ("test_accuracy", "test_macro_f1", "validation_accuracy")
METRIC_TAG_PREFIX = "metric."
# Aliases that serve traffic and therefore need an approved version.
SERVING_ALIASES = ("champion",)

# The pipeline's champion selection on a version: the trainer that won, and the metric it won on.
CHAMPION_TAGS = ("pipeline.champion", "pipeline.select_metric")


def registration_status(approve: bool) -> tuple[ApprovalStatus, tuple[str, ...]]:
    """How a new version is registered: ``Approved`` + ``@champion`` when ``approve``, else
    ``PendingManualApproval`` + ``@challenger`` (SageMaker's manual approval)."""
    return ("Approved", ("champion",)) if approve else ("PendingManualApproval", ("challenger",))


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
    # The SQL registry store looks a models:/m-… source up through a default MlflowClient, i.e. the
    # process-wide tracking URI: point it at our store meanwhile.
    with using_store(settings):
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


def kind_of(settings: Settings, ref: str) -> str:
    """The kind of the model ``ref`` names, as :func:`load_predictor` resolves it, without loading it: a model
    folder's card, a model file's suffix, a registered version's ``model.kind`` tag.

    Raises:
        RegistryError: the reference does not resolve, or names no sagestack model.
    """
    from sagestack.models.base import ModelCard

    local = _local_model(ref)
    if local is None:
        return _tagged_kind(resolve_ref(settings, ref))
    path, file_kind = local
    return file_kind.name if file_kind is not None else ModelCard.load(path).kind


def _local_model(ref: str):
    """``(path, kind)`` of the local model ``ref`` names (the kind of a model file, ``None`` for a model folder),
    or ``None`` when ``ref`` is no local path (a registry reference).

    Raises:
        RegistryError: ``ref`` is a file no kind loads, or a model file's name that is not there.
    """
    from sagestack.models import kind_for_file

    path = Path(ref)
    if path.is_dir():
        return path, None
    file_kind = kind_for_file(path)
    if path.is_file() and file_kind is not None:
        return path, file_kind
    if path.is_file() or file_kind is not None:
        raise RegistryError(f"no model at {path}; pass a trained model's folder, a model file or NAME@ALIAS")
    return None


def _tagged_kind(info: ModelVersionInfo) -> str:
    """The ``model.kind`` tag of a registered version.

    Raises:
        RegistryError: the version has none (sagestack did not register it).
    """
    kind = info.tags.get(KIND_TAG)
    if not kind:
        raise RegistryError(f"{info.name} version {info.version} has no {KIND_TAG} tag; it was not registered by sagestack")
    return kind


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
    from sagestack.models import get_kind, load_model

    local = _local_model(ref)
    if local is not None:
        path, file_kind = local
        if file_kind is None:
            return load_model(path), None
        predictor = file_kind.predictor.load(path)
        predictor.source_path = path
        return predictor, None

    import mlflow

    info = resolve_ref(settings, ref)
    kind = _tagged_kind(info)
    get_kind(kind)  # an unknown kind fails here, before any download
    # models:/ URIs resolve through the process-wide registry URI: point it at our store meanwhile.
    with using_store(settings):
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.uri))
    cards = sorted(local.rglob(CARD_FILE))
    if not cards:
        raise RegistryError(f"{info.name} version {info.version} holds no sagestack model in {info.source}")
    predictor = load_model(cards[0].parent)
    if predictor.kind != kind:
        raise RegistryError(f"{info.name} version {info.version} is tagged {kind} but holds a {predictor.kind} model")
    return predictor, info
