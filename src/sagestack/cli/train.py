"""``sagestack train``: train one model of a kind and register it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sagestack.cli.common import JsonOpt, emit, progress, settings
from sagestack.registry import DEFAULT_MODEL_NAME

app = typer.Typer(help="Train models.", no_args_is_help=True)

RegisterOpt = typer.Option(True, "--register/--no-register", help="Log the run to MLflow and register the model.")
ModelNameOpt = typer.Option(DEFAULT_MODEL_NAME, help="Registered model name (one per task, whatever the kind).")
ApproveOpt = typer.Option(False, "--approve", help="Register as Approved and make it @champion.")


def _register(summary: dict, lines: list[str], model_dir: Path, train_data: Path, model_name: str, approve: bool) -> None:
    from sagestack.workflows.training import register_trained_model

    logged = register_trained_model(model_dir, settings=settings(), train_data=train_data, approve=approve,
                                    model_name=model_name)
    summary.update(logged)
    if logged.get("registered"):
        lines.append(f"registered: {model_name} version {logged['registered']['version']} (kind {logged['kind']})")


@app.command("fasttext")
def fasttext(
    train: Path = typer.Option(..., "--train", help="Training file in fastText format."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Labelled validation file."),
    out: Path = typer.Option(..., "--out", help="Model output directory (written atomically)."),
    preset: str = typer.Option("sagestack", help="Defaults to start from: 'sagestack' or 'blazingtext'."),
    mode: Optional[str] = typer.Option(None, help="supervised, skipgram or cbow."),
    epochs: Optional[int] = typer.Option(None),
    learning_rate: Optional[float] = typer.Option(None),
    min_count: Optional[int] = typer.Option(None),
    vector_dim: Optional[int] = typer.Option(None),
    word_ngrams: Optional[int] = typer.Option(None),
    buckets: Optional[int] = typer.Option(None),
    early_stopping: Optional[bool] = typer.Option(None, "--early-stopping/--no-early-stopping"),
    patience: Optional[int] = typer.Option(None),
    min_epochs: Optional[int] = typer.Option(None),
    window_size: Optional[int] = typer.Option(None, help="word2vec modes."),
    negative_samples: Optional[int] = typer.Option(None, help="word2vec modes."),
    subwords: Optional[bool] = typer.Option(None, "--subwords/--no-subwords", help="word2vec modes."),
    threads: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    quantize: bool = typer.Option(False, "--quantize", help="Store a quantized .ftz model."),
    autotune_seconds: Optional[int] = typer.Option(None, help="Search hyperparameters on --validation for N seconds."),
    register: bool = RegisterOpt,
    model_name: str = ModelNameOpt,
    approve: bool = ApproveOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Train the BlazingText-equivalent fastText model (supervised or word2vec; word vectors are logged, not registered)."""
    from sagestack.text import make_params, train_fasttext

    params = make_params(
        preset, mode=mode, epochs=epochs, learning_rate=learning_rate, min_count=min_count, vector_dim=vector_dim,
        word_ngrams=word_ngrams, buckets=buckets, early_stopping=early_stopping, patience=patience,
        min_epochs=min_epochs, window_size=window_size, negative_samples=negative_samples, subwords=subwords,
        threads=threads, seed=seed, quantize=quantize or None,
    )
    result = train_fasttext(train, out, params, validation_file=validation, autotune_seconds=autotune_seconds,
                            progress=progress(json_output))
    summary = result.to_dict()
    lines = [f"model: {result.model_path} ({result.model_size_mb:.1f} MB, trained in {result.train_seconds:.2f} s)"]
    if result.validation is not None:
        lines.append(f"validation_accuracy: {result.validation.accuracy:.4f}")
    if register:
        _register(summary, lines, out, train, model_name, approve)
    emit(summary, json_output, lines)


@app.command("baseline")
def baseline(
    train: Path = typer.Option(..., "--train", help="Training reviews: a CSV with sentiment and review_body (e.g. train.csv of `data prepare`)."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Labelled validation CSV."),
    out: Path = typer.Option(..., "--out", help="Model output directory (written atomically)."),
    word_ngrams: Optional[int] = typer.Option(None, help="Word n-grams 1..N."),
    c: Optional[float] = typer.Option(None, "--c", help="Inverse regularization strength."),
    min_df: Optional[int] = typer.Option(None, help="Ignore n-grams seen in fewer reviews."),
    seed: Optional[int] = typer.Option(None),
    register: bool = RegisterOpt,
    model_name: str = ModelNameOpt,
    approve: bool = ApproveOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Train the TF-IDF (word + character n-grams) + logistic-regression baseline."""
    from sagestack.models.baseline import make_baseline_params, train_baseline

    params = make_baseline_params(word_ngrams=word_ngrams, c=c, min_df=min_df, seed=seed)
    say = progress(json_output)
    if say:
        say(f"training the TF-IDF + logistic-regression baseline on {train}")
    card, evaluation = train_baseline(train, out, params, validation_csv=validation)
    summary = {"out_dir": str(out), "kind": card.kind, "params": card.params, "metrics": card.metrics,
               "validation_accuracy": evaluation.accuracy if evaluation else None}
    lines = [f"model: {out} ({card.metrics['model_size_mb']:.1f} MB, trained in {card.metrics['train_seconds']:.2f} s)"]
    if evaluation is not None:
        lines.append(f"validation_accuracy: {evaluation.accuracy:.4f}")
    if register:
        _register(summary, lines, out, train, model_name, approve)
    emit(summary, json_output, lines)
