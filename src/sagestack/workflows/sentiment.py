"""The review-sentiment workflow: one function per pipeline step, each called by one KFP component.

ingest → pre-training bias → feature store → prepare → trainers (parallel branches: one per
model kind) → evaluate each on the same test split → select the champion → post-training
bias and SHAP of the champion → accuracy gate → register (or record the rejection).

Every step reads its inputs from paths and writes its outputs straight to the paths it is
given (atomically); none knows about KFP, so each is tested without it. Which kind a model
is comes from its directory's card: no step here names a kind except the trainers'.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sagestack.data.atomic import atomic_dir, atomic_file, sha256_file
from sagestack.errors import ConfigError, DataError
from sagestack.workflows.params import DEFAULT_EXPLAIN_SAMPLES, DEFAULT_SELECT_METRIC

if TYPE_CHECKING:  # each step imports what it uses: select-champion and skip-trainer load no pandas
    from sagestack.config import Settings
    from sagestack.registry import DatasetRef

POSITIVE_SENTIMENT = "1"
# What a registered model's lineage records, in pipeline order: the register step's input
# name -> (the task that produced it, its output artifact); a test checks each against the
# compiled pipeline.
LINEAGE_STEPS = {
    "reviews": ("ingest-data", "reviews"),
    "data_bias": ("pretraining-bias", "report"),
    "features": ("feature-store", "features"),
    "prepared": ("prepare-data", "prepared"),
    "model": ("select-champion", "champion"),
    "evaluation": ("select-champion", "evaluation"),
    "model_bias": ("posttraining-bias", "report"),
    "explanations": ("explain-model", "report"),
}


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    with atomic_file(Path(path)) as tmp:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")


def read_json(path: Path) -> dict:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def __getattr__(name: str):
    if name == "TRAINERS":  # the pipeline's branches: every trainable kind registered now
        from sagestack.models.kinds import trainer_names

        return tuple(trainer_names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_trainers(text: str) -> list[str]:
    """The trainers of a comma-separated list (``"fasttext,baseline"``), in the registry's order.

    A kind's name stands for its trainer too (``autogluon`` for ``automl``).

    Raises:
        ConfigError: empty, or a name that is not a trainer.
    """
    from sagestack.models.kinds import trainer_kinds

    kinds = trainer_kinds()
    trainers = [kind.trainer_name for kind in kinds]
    aliases = {kind.name: kind.trainer_name for kind in kinds}
    names = [aliases.get(name.strip(), name.strip()) for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in trainers]
    if unknown:
        raise ConfigError(f"unknown trainer(s) {', '.join(unknown)}; choose from {', '.join(trainers)}")
    if not names:
        raise ConfigError(f"no trainer selected; pass --trainers with one or more of {', '.join(trainers)}")
    return [name for name in trainers if name in names]


_OPTION = re.compile(r"(?<![\w-])--(?=[a-z])")


def pipeline_arguments(
    *,
    data_path: str | None = None,
    trainers: str | None = None,
    select_metric: str | None = None,
    params: dict[str, dict] | None = None,
    **others: object,
) -> dict:
    """The sentiment pipeline's parameters from user options, checked before anything runs.

    Args:
        data_path: the dataset (as the steps will see it).
        trainers: comma-separated trainers (``--trainers``); ``None`` keeps the pipeline's defaults
            (:data:`~sagestack.workflows.params.DEFAULT_TRAINERS`).
        select_metric: ``accuracy`` or ``macro_f1``.
        params: trainer name -> its parameters by field name (``None`` values keep defaults);
            they become the pipeline parameters ``<param_prefix><field>``.
        **others: further pipeline parameters passed as they are (``None`` values dropped).

    Returns:
        ``{parameter: value}`` with only the values given; unset ones keep the pipeline's defaults.

    Raises:
        ConfigError: an unknown trainer or metric, or a parameter out of range (named by the
            pipeline's option, e.g. ``--bert-max-steps``).
    """
    from sagestack.models import SELECT_METRICS
    from sagestack.models.kinds import kind_for_trainer, trainer_kinds

    if select_metric is not None and select_metric not in SELECT_METRICS:
        raise ConfigError(f"--select-metric must be one of {', '.join(SELECT_METRICS)}, got {select_metric!r}")
    arguments: dict = {"data_path": data_path, "select_metric": select_metric}
    for trainer, values in (params or {}).items():
        kind = kind_for_trainer(trainer)
        given = {name: value for name, value in values.items() if value is not None}
        try:  # checked minutes before the trainer would
            kind.make_params(given)
        except ConfigError as exc:  # name the pipeline's option, not `train <kind>`'s
            prefix = kind.param_prefix.replace("_", "-")
            raise ConfigError(_OPTION.sub(f"--{prefix}", str(exc))) from None
        arguments.update({f"{kind.param_prefix}{name}": value for name, value in given.items()})
    arguments.update(others)
    if trainers is not None:
        chosen = parse_trainers(trainers)
        arguments.update({f"trainer_{kind.trainer_name}": kind.trainer_name in chosen for kind in trainer_kinds()})
    return {name: value for name, value in arguments.items() if value is not None}


def ingest_step(data_path: str | None, out_csv: Path, settings: Settings, *, expected_sha256: str = "",
                include_reviewed: bool = False) -> dict:
    """Resolve the dataset, validate it and write the validated reviews (course layout) to ``out_csv``.

    With ``include_reviewed`` the labels of completed human loops (``sagestack review``) override
    the dataset's for the same review text, and reviewed texts it lacks are added (see
    :mod:`sagestack.review.training`); what was used is snapshotted under ``HOME/review/snapshots``.

    Returns:
        ``{"source", "origin", "sha256", "layout", "rows", "dropped_empty"}``, plus ``"reviewed"``
        (the counts, the snapshot's path and sha256, reviewers, the model versions that asked)
        with ``include_reviewed``.
    """
    from sagestack.data import load_reviews, resolve_dataset

    resolved = resolve_dataset(data_path or None, settings=settings)
    actual = sha256_file(resolved.path)
    if expected_sha256 and actual != expected_sha256:
        raise DataError(f"{resolved.path} changed while the pipeline ran (sha256 {actual}); run it again")
    loaded = load_reviews(resolved.path)
    frame, reviewed = loaded.frame, None
    if include_reviewed:
        from sagestack.review.store import review_store
        from sagestack.review.training import apply_reviewed, reviewed_labels, write_snapshot

        store = review_store(settings)
        frame, snapshot, counts = apply_reviewed(frame, reviewed_labels(store))
        reviewed = {**counts, **write_snapshot(snapshot, store.folder / "snapshots")}
    with atomic_file(Path(out_csv)) as tmp:
        frame.to_csv(tmp, index=False)
    result = {
        "source": str(resolved.path.resolve()),
        "origin": resolved.source,
        "sha256": actual,
        "layout": loaded.layout,
        "rows": len(frame),
        "dropped_empty": loaded.dropped_empty,
    }
    if reviewed is not None:
        result["reviewed"] = reviewed
    return result


def _bias_config(facet: str, predicted: str | None = None):
    from sagestack.bias import BiasConfig, LabelSpec
    from sagestack.bias.job import parse_facet
    from sagestack.data.reviews import SENTIMENT

    return BiasConfig(label=SENTIMENT, positive=LabelSpec(values=(POSITIVE_SENTIMENT,)), facets=[parse_facet(facet)],
                      predicted=predicted)


def _bias_to_paths(frame, config, report_path: Path, analysis_path: Path, *, fail_on: str, title: str) -> dict:
    """Run a bias job and put its report and analysis at the given paths (also when a rule fails)."""
    from sagestack.bias.job import run_bias_job
    from sagestack.bias.rules import split_rules

    with tempfile.TemporaryDirectory() as tmp:
        try:
            return run_bias_job(frame, config, Path(tmp), fail_on=split_rules(fail_on), title=title)
        finally:  # keep the report that explains a failed gate (there is none if the input was bad)
            for name, target in (("report.html", report_path), ("analysis.json", analysis_path)):
                if (Path(tmp) / name).is_file():
                    with atomic_file(Path(target)) as staged:
                        shutil.copyfile(Path(tmp) / name, staged)


def pretraining_bias_step(reviews_csv: Path, report_path: Path, analysis_path: Path, *, facet: str, fail_on: str = "") -> dict:
    """Clarify pre-training bias of the validated reviews (label sentiment, positive 1).

    ``fail_on`` holds ';'-separated rules (pipeline parameters are strings), e.g. ``CI>0.95``.

    Raises:
        BiasGateFailed: a ``fail_on`` rule holds (the report is written first).
    """
    import pandas as pd

    return _bias_to_paths(pd.read_csv(reviews_csv), _bias_config(facet), report_path, analysis_path,
                          fail_on=fail_on, title="Pre-training bias")


def feature_store_step(reviews_csv: Path, out_json: Path, settings: Settings, *, reviewed_snapshot: str = "") -> dict:
    """Engineer features for the validated reviews, ingest them into this home's Feast store,
    and write what was ingested (rows, review ids, the offline table's sha256) to ``out_json``.

    ``reviewed_snapshot`` (the ingest step's, with ``--include-reviewed``) names the reviews whose
    label people corrected: the store records the correction as a new label version of each.
    """
    import pandas as pd

    from sagestack.data.reviews import REVIEW_BODY
    from sagestack.features import ingest

    texts = (pd.read_csv(reviewed_snapshot, dtype=str, keep_default_na=False)[REVIEW_BODY].tolist()
             if reviewed_snapshot else [])
    result = ingest(settings, pd.read_csv(reviews_csv), relabel_texts=texts)
    result["sha256"] = sha256_file(Path(result["path"]))
    write_json(out_json, result)
    return result


def prepare_step(features_json: Path, out_dir: Path, settings: Settings) -> dict:
    """Write this run's train/validation/test splits, read back from the feature store."""
    from sagestack.features.splits import write_training_splits

    return write_training_splits(settings, Path(out_dir), review_ids=read_json(features_json)["review_ids"])


def train_step(trainer: str, prepared_dir: Path, model_dir: Path, reports_dir: Path, params: str, *, seed: int,
               metric: str = DEFAULT_SELECT_METRIC) -> dict:
    """Train one branch on the prepared splits with its kind's trainer.

    Args:
        trainer: the branch's trainer name (or kind name).
        params: the kind's parameters as the pipeline passes them (see
            :meth:`~sagestack.models.kinds.ModelKind.params_template`).
        reports_dir: where the trainer's reports go (a folder, made here).

    Returns:
        What the kind's trainer returns: at least ``{"kind", "validation_accuracy"}``.
    """
    from sagestack.models.kinds import TrainContext, kind_for_trainer

    kind = kind_for_trainer(trainer)
    Path(reports_dir).mkdir(parents=True, exist_ok=True)
    return kind.trainer(Path(prepared_dir), Path(model_dir), kind.decode_params(params),
                        TrainContext(seed=seed, metric=metric, reports_dir=Path(reports_dir)))


def evaluate_step(prepared_dir: Path, model_dir: Path, evaluation_path: Path, report_path: Path) -> dict:
    """Evaluate a trained model of any kind on the held-out test split.

    Writes the evaluation as JSON to ``evaluation_path`` and a Markdown report to ``report_path``.

    Returns:
        The evaluation as a dict (``accuracy``, ``macro_f1``, ``per_class``, ...) plus ``kind``.
    """
    import pandas as pd

    from sagestack.data.reviews import REVIEW_BODY, SENTIMENT
    from sagestack.models import ModelCard, evaluate_predictor, evaluation_markdown, load_model

    card = ModelCard.load(Path(model_dir))
    test = pd.read_csv(Path(prepared_dir) / "test.csv")
    evaluation = evaluate_predictor(load_model(model_dir), test[REVIEW_BODY].astype(str).tolist(), test[SENTIMENT])
    validation = card.validation["accuracy"] if card.validation else None
    with atomic_file(Path(report_path)) as tmp:
        tmp.write_text(evaluation_markdown(evaluation, title=f"{card.kind}: evaluation on the held-out test split",
                                           validation_accuracy=validation), encoding="utf-8")
    result = {"kind": card.kind, **evaluation.to_dict(), "macro_f1": evaluation.macro_f1}
    write_json(evaluation_path, result)
    return result


def skip_step(trainer: str, evaluation_path: Path) -> dict:
    """The placeholder of a trainer left out by ``--trainers``: an evaluation marked skipped."""
    result = {"kind": trainer, "skipped": True}
    write_json(evaluation_path, result)
    return result


def select_champion_step(
    candidates: dict[str, tuple[Path, Path]],
    champion_dir: Path,
    evaluation_path: Path,
    candidates_path: Path,
    *,
    metric: str = DEFAULT_SELECT_METRIC,
) -> dict:
    """Pick the best candidate by ``metric`` on the test split; copy its model to ``champion_dir``.

    Args:
        candidates: trainer -> (model directory, evaluation JSON); skipped trainers' evaluations
            say ``"skipped": true`` and are left out. Ties go to the trainer listed first.
        champion_dir: where the winning model directory is copied.
        evaluation_path: where the winner's evaluation is written.
        candidates_path: where every candidate's scores and the winner are written.
        metric: ``accuracy`` or ``macro_f1``.

    Returns:
        ``{"champion", "kind", "metric", "score", "test_accuracy", "candidates": {trainer: {...}}}``.

    Raises:
        ConfigError: an unknown metric, or no candidate was trained.
    """
    from sagestack.models import SELECT_METRICS, Evaluation

    if metric not in SELECT_METRICS:
        raise ConfigError(f"unknown selection metric {metric!r}; use one of {', '.join(SELECT_METRICS)}")
    scores, evaluations = {}, {}
    for trainer, (_, evaluation_file) in candidates.items():
        data = read_json(evaluation_file)
        if data.get("skipped"):
            continue
        evaluations[trainer] = data
        evaluation = Evaluation.from_dict(data)
        scores[trainer] = {"kind": data["kind"], "test_accuracy": evaluation.accuracy, "test_macro_f1": evaluation.macro_f1,
                           "score": evaluation.metric(metric), "model": str(candidates[trainer][0])}
    if not scores:
        raise ConfigError("no trainer ran, so there is no candidate to select; pass --trainers with at least one trainer")
    champion = max(scores, key=lambda name: scores[name]["score"])  # max keeps the first of equal scores
    with atomic_dir(Path(champion_dir), command="pipeline select") as tmp:
        shutil.copytree(candidates[champion][0], tmp, dirs_exist_ok=True)
    write_json(evaluation_path, evaluations[champion])
    summary = {"champion": champion, "kind": scores[champion]["kind"], "metric": metric,
               "score": scores[champion]["score"], "test_accuracy": scores[champion]["test_accuracy"],
               "candidates": scores}
    write_json(candidates_path, summary)
    return summary


def posttraining_bias_step(
    prepared_dir: Path, model_dir: Path, report_path: Path, analysis_path: Path, *, facet: str, fail_on: str = ""
) -> dict:
    """Clarify post-training bias of a model's predictions (any kind) on the held-out test split."""
    import pandas as pd

    from sagestack.bias.job import PREDICTED_COLUMN, add_model_predictions
    from sagestack.data.reviews import REVIEW_BODY
    from sagestack.models import load_model

    frame = add_model_predictions(pd.read_csv(Path(prepared_dir) / "test.csv"), load_model(model_dir), REVIEW_BODY)
    return _bias_to_paths(frame, _bias_config(facet, PREDICTED_COLUMN), report_path, analysis_path,
                          fail_on=fail_on, title="Post-training bias")


def explain_step(
    prepared_dir: Path, model_dir: Path, report_path: Path, analysis_path: Path, *, samples: int = DEFAULT_EXPLAIN_SAMPLES,
    max_evals: int = 100
) -> dict:
    """SHAP explanations of a model (any kind) on the first ``samples`` test reviews."""
    import pandas as pd

    from sagestack.data.reviews import REVIEW_BODY
    from sagestack.explain import explain_texts, write_explanations
    from sagestack.models import load_model

    texts = pd.read_csv(Path(prepared_dir) / "test.csv")[REVIEW_BODY].head(samples).tolist()
    explanations = explain_texts(load_model(model_dir), texts, max_evals=max_evals)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_explanations(explanations, Path(tmp), "Explanations")
        for produced, target in ((paths["report"], report_path), (paths["analysis"], analysis_path)):
            with atomic_file(Path(target)) as staged:
                shutil.copyfile(produced, staged)
    return {"report": str(report_path), "analysis": str(analysis_path)}


def lineage_tags(run: str, uris: dict[str, str], selection: dict) -> dict[str, str]:
    """The lineage tags of a pipeline's model: its steps' artifacts and every candidate's score.

    Args:
        run: the pipeline run's name.
        uris: input name of :data:`LINEAGE_STEPS` -> URI, for the artifacts the run produced.
        selection: what :func:`select_champion_step` returned.

    Raises:
        KeyError: an input name that :data:`LINEAGE_STEPS` does not declare.
    """
    from sagestack.registry.provenance import candidate_tags, pipeline_lineage_tags

    unknown = set(uris) - set(LINEAGE_STEPS)
    if unknown:
        raise KeyError(f"not lineage inputs: {sorted(unknown)}")
    steps = [(step, artifact, uris[name]) for name, (step, artifact) in LINEAGE_STEPS.items() if name in uris]
    return {**pipeline_lineage_tags(run, steps), **candidate_tags(selection)}


REVIEWED_TAG_PREFIX = "reviewed."


def reviewed_tags(reviewed: dict | None) -> dict[str, str]:
    """The tags that tie a model version to the human-reviewed labels it trained on (none without them)."""
    if not reviewed:
        return {}
    # KFP's artifact metadata turns numbers into floats (a protobuf Struct): counts go back to integers.
    counts = {f"{REVIEWED_TAG_PREFIX}{name}": str(int(reviewed[name])) for name in ("loops", "relabelled", "confirmed", "added")}
    return {**counts, f"{REVIEWED_TAG_PREFIX}sha256": reviewed["sha256"],
            f"{REVIEWED_TAG_PREFIX}reviewers": ",".join(reviewed["reviewers"])[:4000],
            f"{REVIEWED_TAG_PREFIX}asked_by": ",".join(reviewed["asked_by"])[:4000]}


def reviewed_reports(reviewed: dict | None) -> dict[str, Path]:
    """The snapshot of reviewed labels (loop, reviewers, model version that asked), as a model artifact."""
    if not reviewed or not Path(reviewed["path"]).is_file():
        return {}
    return {"reviewed": Path(reviewed["path"])}


def register_step(
    *,
    settings: Settings,
    model_dir: Path,
    evaluation: dict,
    dataset: DatasetRef,
    model_name: str,
    auto_approve: bool,
    lineage: dict[str, str],
    reports: dict[str, Path] | None = None,
) -> dict:
    """Log the champion to MLflow and register it (``Approved`` + ``@champion`` with
    ``auto_approve``, else ``PendingManualApproval`` + ``@challenger``), tagged with ``lineage``;
    ``reports`` (artifact folder -> file, e.g. the bias and SHAP reports) are logged with the run.
    """
    from sagestack.models import Evaluation
    from sagestack.registry import log_model_run, registration_status

    approval, aliases = registration_status(auto_approve)
    logged = log_model_run(
        model_dir,
        settings=settings,
        dataset=dataset,
        test_evaluation=Evaluation.from_dict(evaluation),
        model_name=model_name,
        approval=approval,
        aliases=aliases,
        extra_tags=lineage,
        extra_artifacts=reports,
    )
    return logged["registered"]


def record_rejection_step(
    *, settings: Settings, test_accuracy: float, min_accuracy: float, dataset: DatasetRef, lineage: dict[str, str]
) -> dict:
    """Record in MLflow that the champion missed ``min_accuracy`` and was not registered."""
    from sagestack.registry.tracking import record_rejection

    reason = f"test accuracy {test_accuracy:.4f} < min_accuracy {min_accuracy}"
    run_id = record_rejection(settings, reason=reason, dataset=dataset, tags=lineage,
                              metrics={"test_accuracy": test_accuracy, "min_accuracy": min_accuracy})
    return {"decision": "rejected", "reason": reason, "run_id": run_id}
