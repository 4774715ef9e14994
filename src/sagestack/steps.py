"""Pipeline steps as plain functions: what each KFP component calls (one call per component).

Each step reads its inputs from paths, writes its outputs to paths (atomically) and returns a
small JSON-serialisable dict; none of them knows about KFP, so they are tested without it.
"""

from __future__ import annotations

import json
from pathlib import Path

from sagestack.config import Settings
from sagestack.data import load_reviews, resolve_dataset
from sagestack.data.atomic import atomic_file, sha256_file
from sagestack.errors import DataError
from sagestack.registry import DatasetRef, log_fasttext_run
from sagestack.text import BlazingTextParams, TrainResult, evaluate_fasttext_file

APPROVED, PENDING = "Approved", "PendingManualApproval"


def ingest_step(data_path: str | None, out_csv: Path, settings: Settings, *, expected_sha256: str = "") -> dict:
    """Resolve the dataset, validate it and write the validated reviews (course layout) to ``out_csv``.

    Returns:
        ``{"source", "sha256", "layout", "rows", "dropped_empty"}``.
    """
    resolved = resolve_dataset(data_path or None, settings=settings)
    actual = sha256_file(resolved.path)
    if expected_sha256 and actual != expected_sha256:
        raise DataError(f"{resolved.path} changed while the pipeline ran (sha256 {actual}); run it again")
    loaded = load_reviews(resolved.path)
    with atomic_file(Path(out_csv)) as tmp:
        loaded.frame.to_csv(tmp, index=False)
    return {
        "source": str(resolved.path.resolve()),
        "sha256": actual,
        "layout": loaded.layout,
        "rows": len(loaded.frame),
        "dropped_empty": loaded.dropped_empty,
    }


def evaluate_step(model_dir: Path, test_file: Path, report_path: Path) -> dict:
    """Evaluate a trained model on the held-out test file; write a Markdown report.

    Returns:
        The evaluation as a dict (``accuracy``, ``per_class``, ``confusion_matrix``, ...).
    """
    from sagestack.serving import FastTextPredictor

    result = TrainResult.load(model_dir)
    evaluation = evaluate_fasttext_file(FastTextPredictor.load(result.model_path), Path(test_file))
    lines = [
        "# Evaluation on the held-out test split",
        "",
        f"Test accuracy: **{evaluation.accuracy:.4f}** on {evaluation.count} reviews"
        + (f" (validation accuracy {result.validation.accuracy:.4f})" if result.validation else ""),
        "",
        "| label | precision | recall | f1 | support |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
            for label, m in evaluation.per_class.items()
        ),
        "",
        "Confusion matrix (rows: true, columns: predicted, order " + ", ".join(evaluation.labels) + "):",
        "",
        *("    " + " ".join(f"{v:5d}" for v in row) for row in evaluation.confusion),
    ]
    with atomic_file(Path(report_path)) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return evaluation.to_dict()


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
    """Log the pipeline's model to MLflow and register it (``Approved`` + ``@champion`` with
    ``auto_approve``, else ``PendingManualApproval`` + ``@challenger``), tagged with ``lineage``;
    ``reports`` (artifact folder -> file, e.g. the bias and SHAP reports) are logged with the run.
    """
    from sagestack.text import Evaluation

    logged = log_fasttext_run(
        TrainResult.load(model_dir),
        settings=settings,
        dataset=dataset,
        test_evaluation=Evaluation.from_dict(evaluation),
        model_name=model_name,
        approval=APPROVED if auto_approve else PENDING,
        aliases=("champion",) if auto_approve else ("challenger",),
        extra_tags=lineage,
        extra_artifacts=reports,
    )
    return logged["registered"]


def record_rejection(
    *, settings: Settings, evaluation: dict, min_accuracy: float, dataset: DatasetRef, lineage: dict[str, str]
) -> dict:
    """Record in MLflow that a pipeline's model missed ``min_accuracy`` and was not registered."""
    import mlflow

    from sagestack.registry.tracking import ensure_experiment

    mlflow.set_tracking_uri(settings.mlflow_uri)
    experiment_id = ensure_experiment(settings)
    reason = f"test accuracy {evaluation['accuracy']:.4f} < min_accuracy {min_accuracy}"
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags({
            **lineage, "pipeline.decision": "rejected", "pipeline.reason": reason,
            "dataset.path": dataset.path, "dataset.sha256": dataset.sha256,
        })
        mlflow.log_metrics({"test_accuracy": evaluation["accuracy"], "min_accuracy": min_accuracy})
    return {"decision": "rejected", "reason": reason, "run_id": run.info.run_id}


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    with atomic_file(Path(path)) as tmp:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")


SENTIMENT_LABEL, POSITIVE_SENTIMENT = "sentiment", "1"


def _split_rules(fail_on: str) -> list[str]:
    """Pipeline parameters are strings: rules come ';'-separated (e.g. 'CI>0.95;abs(DPL)>0.2')."""
    return [rule.strip() for rule in fail_on.split(";") if rule.strip()]


def pretraining_bias_step(reviews_csv: Path, out_dir: Path, *, facet: str, fail_on: str = "") -> dict:
    """Clarify pre-training bias of the validated reviews (label sentiment, positive 1).

    Raises:
        BiasGateFailed: a ``fail_on`` rule holds (the report is written first).
    """
    import pandas as pd

    from sagestack.bias import BiasConfig, LabelSpec
    from sagestack.bias.job import parse_facet, run_bias_job

    config = BiasConfig(label=SENTIMENT_LABEL, positive=LabelSpec(values=(POSITIVE_SENTIMENT,)), facets=[parse_facet(facet)])
    return run_bias_job(pd.read_csv(reviews_csv), config, Path(out_dir), fail_on=_split_rules(fail_on),
                        title="Pre-training bias")


def posttraining_bias_step(test_csv: Path, model_dir: Path, out_dir: Path, *, facet: str, fail_on: str = "") -> dict:
    """Clarify post-training bias of the model's predictions on the held-out test split."""
    import pandas as pd

    from sagestack.bias import BiasConfig, LabelSpec
    from sagestack.bias.job import PREDICTED_COLUMN, add_model_predictions, parse_facet, run_bias_job
    from sagestack.serving import FastTextPredictor

    predictor = FastTextPredictor.load(TrainResult.load(model_dir).model_path)
    frame = add_model_predictions(pd.read_csv(test_csv), predictor, "review_body")
    config = BiasConfig(label=SENTIMENT_LABEL, positive=LabelSpec(values=(POSITIVE_SENTIMENT,)), facets=[parse_facet(facet)],
                        predicted=PREDICTED_COLUMN)
    return run_bias_job(frame, config, Path(out_dir), fail_on=_split_rules(fail_on), title="Post-training bias")


def explain_step(test_csv: Path, model_dir: Path, out_dir: Path, *, samples: int = 10, max_evals: int = 100) -> dict:
    """SHAP explanations of the model on the first ``samples`` test reviews."""
    import pandas as pd

    from sagestack.explain import explain_texts, write_explanations
    from sagestack.serving import FastTextPredictor

    predictor = FastTextPredictor.load(TrainResult.load(model_dir).model_path)
    texts = pd.read_csv(test_csv)["review_body"].head(samples).tolist()
    paths = write_explanations(explain_texts(predictor, texts, max_evals=max_evals), Path(out_dir), "Explanations")
    return {k: str(v) for k, v in paths.items()}


def feature_store_step(reviews_csv: Path, settings: Settings) -> dict:
    """Engineer features for the validated reviews and ingest them into this home's Feast store."""
    import pandas as pd

    from sagestack.features import ingest

    result = ingest(settings, pd.read_csv(reviews_csv))
    result["sha256"] = sha256_file(Path(result["path"]))
    return result


def prepare_from_feature_store(
    settings: Settings, out_dir: Path, *, review_ids: list[int] | None = None, seed: int = 42
) -> dict:
    """Write train/validation/test (CSV + fastText) from point-in-time training sets read through Feast.

    Training reads exactly what serving reads (the feature store), not the CSV. Rows are
    shuffled (seeded): the store returns them by review id, and data sorted by label (as
    reviews_balanced.csv is) makes fastText's SGD learn one class after another. With
    ``review_ids`` only those reviews are used (the pipeline's own input, not the whole store).
    """
    from sagestack.data.atomic import atomic_dir
    from sagestack.data.fasttext_format import write_fasttext
    from sagestack.features import training_set
    from sagestack.features.store import SPLITS

    counts = {}
    with atomic_dir(Path(out_dir)) as tmp:
        for split in SPLITS:
            frame = training_set(settings, split)[["review_id", "sentiment", "review_body", "product_category"]]
            if review_ids is not None:
                frame = frame[frame["review_id"].isin(set(review_ids))]
            frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
            frame.to_csv(tmp / f"{split}.csv", index=False)
            write_fasttext(frame, tmp / f"{split}.txt")
            counts[split] = {str(k): int(v) for k, v in sorted(frame["sentiment"].value_counts().items())}
        write_json(tmp / "manifest.json", {"source": "feast:sentiment_training_v1", "counts": counts})
    return {"counts": counts}
