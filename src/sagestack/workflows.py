"""End-to-end jobs composed from the library: what `sagestack demo` runs.

The KFP pipeline (a later issue) wires the same library functions as separate steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sagestack.config import Settings
from sagestack.data import prepare_dataset, resolve_dataset
from sagestack.registry import DEFAULT_MODEL_NAME, DatasetRef, log_fasttext_run
from sagestack.text import BlazingTextParams, evaluate_fasttext_file, train_fasttext


def train_and_register(
    *,
    settings: Settings,
    params: BlazingTextParams,
    input_path: Path | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    approve: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Prepare the reviews, train fastText, evaluate on validation and test, log and register.

    Runs under ``settings.home``: ``runs/<n>/data`` (prepared splits) and ``runs/<n>/model``.
    With ``approve`` the new version is ``Approved`` and becomes ``@champion`` (the demo's
    embedded default); otherwise it is ``PendingManualApproval`` and ``@challenger``.

    Returns:
        A summary: data counts, metrics, model path, run id and registered version.
    """
    say = progress or (lambda message: None)
    resolved = resolve_dataset(input_path, settings=settings)
    say(f"dataset: {resolved.path} ({resolved.source})")
    runs = settings.home / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = runs / f"{len([p for p in runs.iterdir() if p.is_dir() and not p.name.startswith('.')]) + 1:04d}"
    say("preparing data (validate, tokenize, stratified 90/5/5 split)")
    prepared = prepare_dataset(resolved.path, run_dir / "data")
    result = train_fasttext(
        prepared.files["train"]["fasttext"],
        run_dir / "model",
        params,
        validation_file=prepared.files["validation"]["fasttext"],
        progress=say,
    )
    from sagestack.serving import FastTextPredictor

    say("evaluating on the held-out test split")
    test = evaluate_fasttext_file(FastTextPredictor.load(result.model_path), prepared.files["test"]["fasttext"])
    say("logging the run and registering the model in MLflow")
    logged = log_fasttext_run(
        result,
        settings=settings,
        dataset=DatasetRef(str(prepared.source), prepared.source_sha256),
        test_evaluation=test,
        model_name=model_name,
        approval="Approved" if approve else "PendingManualApproval",
        aliases=("champion",) if approve else ("challenger",),
    )
    return {
        "dataset": str(prepared.source),
        "dataset_sha256": prepared.source_sha256,
        "counts": prepared.counts,
        "validation_accuracy": result.validation.accuracy if result.validation else None,
        "test_accuracy": test.accuracy,
        "train_seconds": round(result.train_seconds, 3),
        "model_path": str(result.model_path),
        "model_size_mb": round(result.model_size_mb, 3),
        "tracking_uri": settings.mlflow_uri,
        **logged,
    }
