"""Experiment tracking on MLflow: experiments, runs, their parameters, metrics and artifacts.

Every training run logs its parameters, metrics, artifacts and the model; :func:`log_model_run`
then registers the model as a version (:mod:`sagestack.registry.models`) with lineage tags
(dataset path and sha256, sagestack version, git commit, the run). Two ways to write a run, as
MLflow has: :func:`start_run` for a run whose block logs as it goes (MLflow's fluent API, a
parent with child runs, the pyfunc model), and :class:`Runs` for runs written after the fact
with their own times and statuses (tuning trials, monitoring, Debugger recordings).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sagestack import __version__
from sagestack.config import Settings
from sagestack.errors import RegistryError
from sagestack.registry import DEFAULT_MODEL_NAME
from sagestack.registry.models import APPROVAL_STATUSES, KIND_TAG, SERVING_ALIASES, ApprovalStatus, register_version
from sagestack.registry.store import client, using_store

DEFAULT_EXPERIMENT = "sagestack"
BATCH = 1000  # MLflow's log_batch takes at most 1,000 values (metrics, params and tags) per call


@dataclass(frozen=True)
class DatasetRef:
    """A dataset used by a run: where it was and its content hash."""

    path: str
    sha256: str


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


def ensure_experiment(settings: Settings, name: str = DEFAULT_EXPERIMENT) -> str:
    """Return the id of experiment ``name``, creating it (artifacts under ``home``) if needed."""
    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A local store keeps artifacts under SAGESTACK_HOME, not in ./mlruns of the working directory.
    location = settings.artifacts_dir.as_uri() if settings.mlflow_uri.startswith("sqlite:") else None
    return mlflow_client.create_experiment(name, artifact_location=location)


class ActiveRun:
    """The run a :func:`start_run` block logs to. Its methods log to the innermost active run:
    call them in the run's own block (a child's block logs through the child)."""

    def __init__(self, run_id: str, experiment_id: str) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set the run's tags."""
        import mlflow

        mlflow.set_tags(tags)

    def log_params(self, params: dict) -> None:
        """Log the run's parameters."""
        import mlflow

        mlflow.log_params(params)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Log metrics (step 0, now)."""
        import mlflow

        mlflow.log_metrics(metrics)

    def log_artifact(self, path: Path | str, folder: str | None = None) -> None:
        """Log one file (into artifact ``folder``, default the run's root)."""
        import mlflow

        mlflow.log_artifact(str(path), folder)

    def log_artifacts(self, directory: Path | str, folder: str | None = None) -> None:
        """Log a directory's files (into artifact ``folder``, default the run's root)."""
        import mlflow

        mlflow.log_artifacts(str(directory), folder)

    @contextmanager
    def child(self, run_name: str) -> Iterator[ActiveRun]:
        """A child run of this one, in the same experiment, for the block."""
        import mlflow

        with mlflow.start_run(experiment_id=self.experiment_id, run_name=run_name, nested=True) as run:
            yield ActiveRun(run.info.run_id, self.experiment_id)


@contextmanager
def start_run(settings: Settings, *, experiment: str = DEFAULT_EXPERIMENT, run_name: str | None = None,
              parent_run_id: str | None = None) -> Iterator[ActiveRun]:
    """A run of ``experiment`` in the settings' store for the block (ended FINISHED, or FAILED when the
    block raises), with MLflow's fluent API pointed at that store meanwhile (:func:`using_store`).

    Args:
        settings: where the tracking store is.
        experiment: the experiment, created if needed.
        run_name: the run's name (default: MLflow's).
        parent_run_id: make the run a child of this one.
    """
    import mlflow

    experiment_id = ensure_experiment(settings, experiment)
    with using_store(settings), \
            mlflow.start_run(experiment_id=experiment_id, parent_run_id=parent_run_id, run_name=run_name) as run:
        yield ActiveRun(run.info.run_id, experiment_id)


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

    with start_run(settings, experiment=experiment, run_name=run_name, parent_run_id=parent_run_id) as run, \
            tempfile.TemporaryDirectory() as tmp:
        run.set_tags(tags)
        run.log_params(card.params)
        run.log_metrics(metrics)
        for folder, path in (extra_artifacts or {}).items():
            if Path(path).is_dir():
                run.log_artifacts(path, folder)
            else:
                run.log_artifact(path, folder)
        run_id = run.run_id
        if not card.servable:
            # Word vectors are an artifact of the run, not a servable classifier: nothing to register.
            run.log_artifacts(model_dir, "vectors")
            return {"run_id": run_id, "model_uri": None, "kind": card.kind, "registered": None}
        _log_evaluation(run, Path(tmp), validation, test_evaluation)
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


def _log_evaluation(run: ActiveRun, tmp: Path, validation, test) -> None:
    """Log the classification report (JSON) and a confusion-matrix PNG per evaluated split."""
    from sagestack.models.evaluation import plot_confusion_matrix

    evaluations = {split: ev for split, ev in (("validation", validation), ("test", test)) if ev is not None}
    report_path = tmp / "classification_report.json"
    report_path.write_text(json.dumps({s: ev.to_dict() for s, ev in evaluations.items()}, indent=2), encoding="utf-8")
    run.log_artifact(report_path, "evaluation")
    for split, evaluation in evaluations.items():
        png = plot_confusion_matrix(evaluation, tmp / f"confusion_matrix_{split}.png", split)
        run.log_artifact(png, "evaluation")


def record_rejection(settings: Settings, *, reason: str, dataset: DatasetRef, tags: dict[str, str],
                     metrics: dict[str, float]) -> str:
    """Log a run recording that a pipeline's model was rejected (nothing is registered); returns its id."""
    with start_run(settings) as run:
        run.set_tags({
            **tags, "pipeline.decision": "rejected", "pipeline.reason": reason,
            "dataset.path": dataset.path, "dataset.sha256": dataset.sha256,
        })
        run.log_metrics(metrics)
    return run.run_id


class Runs:
    """Runs of the settings' store written through MLflow's client (explicit URIs, no active run),
    each value with its own time and step: for records made after the fact (tuning trials,
    monitoring, Debugger recordings)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = client(settings)

    def experiment_id(self, name: str = DEFAULT_EXPERIMENT) -> str:
        """The id of experiment ``name``, created if needed."""
        return ensure_experiment(self._settings, name)

    def create(self, experiment_id: str, *, run_name: str, tags: dict[str, str] | None = None,
               parent_run_id: str | None = None, start_time: int | None = None) -> str:
        """Start a run (``start_time`` in ms since the epoch, default now), a child of ``parent_run_id``
        if given; returns its id."""
        tags = {**(tags or {}), **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})}
        return self._client.create_run(experiment_id, start_time=start_time, run_name=run_name, tags=tags).info.run_id

    def exists(self, run_id: str) -> bool:
        """Whether this store holds run ``run_id``."""
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_run(run_id)
        except MlflowException:
            return False
        return True

    def children_tags(self, experiment_id: str, parent_run_id: str, tag: str) -> list[dict[str, str]]:
        """The tags of every child run of ``parent_run_id`` that carries a non-empty ``tag``."""
        runs = self._client.search_runs(
            [experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`{tag}` != ''", max_results=10_000)
        return [dict(run.data.tags) for run in runs]

    def log(self, run_id: str, *, metrics: Iterable[tuple[str, float, int, int]] = (), params: dict | None = None,
            tags: dict[str, str] | None = None) -> None:
        """Log metric values ``(key, value, timestamp_ms, step)``, parameters and tags to a run, in as few
        calls as MLflow's batch limit allows."""
        from mlflow.entities import Metric, Param, RunTag

        params_ = [Param(k, str(v)) for k, v in (params or {}).items()]
        tags_ = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        metrics_ = [Metric(*point) for point in metrics]
        first = max(BATCH - len(params_) - len(tags_), 0)
        if params_ or tags_ or metrics_:
            self._client.log_batch(run_id, metrics=metrics_[:first], params=params_, tags=tags_)
        for start in range(first, len(metrics_), BATCH):
            self._client.log_batch(run_id, metrics=metrics_[start:start + BATCH])

    def log_artifact(self, run_id: str, path: Path | str, folder: str | None = None) -> None:
        """Log one file to a run (into artifact ``folder``, default the run's root)."""
        self._client.log_artifact(run_id, str(path), folder)

    def end(self, run_id: str, status: str = "FINISHED", end_time: int | None = None) -> None:
        """End a run: ``FINISHED``, ``KILLED`` or ``FAILED`` (``end_time`` in ms, default now)."""
        self._client.set_terminated(run_id, status=status, end_time=end_time)
