"""``sagestack pipeline``: run the Kubeflow pipeline locally, list runs, compile, submit to a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sagestack.automl.candidates import DEFAULT_MAX_CANDIDATES
from sagestack.cli.common import (
    JsonOpt, candidate_lines, check_out_file, emit, progress, renamed, settings, split_list, step_lines,
)
from sagestack.registry import DEFAULT_MODEL_NAME
from sagestack.workflows.params import (
    DEFAULT_AUTOML_TIME_LIMIT,
    DEFAULT_FACET,
    DEFAULT_MIN_ACCURACY,
    DEFAULT_SELECT_METRIC,
    DEFAULT_TRAINERS,
    TRAINERS,
)

app = typer.Typer(help="The Kubeflow pipeline: run locally, list runs, compile, submit to a cluster.", no_args_is_help=True)


@app.command("run", context_settings=renamed({"--auto-approve": "--approve"}))
def run(
    data: Optional[Path] = typer.Option(None, "--data", help="Review CSV; default: the resolved reviews_balanced.csv."),
    trainers: Optional[list[str]] = typer.Option(None, "--trainers", help=f"Trainers to run as branches (repeat or comma-separate), of {','.join(TRAINERS)} (default: {','.join(DEFAULT_TRAINERS)})."),
    select_metric: Optional[str] = typer.Option(None, "--select-metric", help=f"How the champion is chosen: accuracy or macro_f1 (default {DEFAULT_SELECT_METRIC})."),
    min_accuracy: Optional[float] = typer.Option(None, help=f"Register only if the champion's test accuracy >= this (default {DEFAULT_MIN_ACCURACY})."),
    approve: bool = typer.Option(False, "--approve", help="Register the champion as Approved and make it @champion."),
    model_name: Optional[str] = typer.Option(None, help=f"Registered model name (default {DEFAULT_MODEL_NAME})."),
    epochs: Optional[int] = typer.Option(None, help="fastText epochs."),
    learning_rate: Optional[float] = typer.Option(None, help="fastText learning rate."),
    min_count: Optional[int] = typer.Option(None, help="fastText min_count."),
    vector_dim: Optional[int] = typer.Option(None, help="fastText vector_dim."),
    word_ngrams: Optional[int] = typer.Option(None, help="fastText word_ngrams."),
    baseline_c: Optional[float] = typer.Option(None, help="Baseline inverse regularization strength."),
    automl_time_limit: Optional[float] = typer.Option(None, help=f"AutoML fit budget in seconds (default {DEFAULT_AUTOML_TIME_LIMIT:g})."),
    automl_max_candidates: Optional[int] = typer.Option(None, help=f"AutoML candidates to try (default {DEFAULT_MAX_CANDIDATES})."),
    automl_embeddings: Optional[bool] = typer.Option(None, "--automl-embeddings/--no-automl-embeddings", help="AutoML: add MiniLM sentence embeddings."),
    bert_model: Optional[str] = typer.Option(None, help="BERT branch: '' the shipped MiniLM BERT, 'tiny' a small random BERT, or a local checkpoint folder."),
    bert_epochs: Optional[int] = typer.Option(None, help="BERT branch epochs."),
    bert_learning_rate: Optional[float] = typer.Option(None, help="BERT branch learning rate."),
    bert_max_steps: Optional[int] = typer.Option(None, help="BERT branch: stop after this many steps (0: no limit)."),
    bert_train_batch_size: Optional[int] = typer.Option(None, help="BERT branch batch size."),
    bert_max_seq_length: Optional[int] = typer.Option(None, help="BERT branch tokens per review."),
    seed: Optional[int] = typer.Option(None, help="Seeds the split and every trainer (default 42)."),
    facet: Optional[str] = typer.Option(None, "--facet", help=f"Bias facet (default {DEFAULT_FACET}; see `sagestack bias`)."),
    bias_fail_on: Optional[list[str]] = typer.Option(None, help="A bias rule that fails the run, e.g. 'CI>0.95' (repeat or comma-separate)."),
    include_reviewed: bool = typer.Option(False, "--include-reviewed", help="Train on the labels of completed human "
                                          "loops too (`sagestack review`): they override the dataset's for the same text."),
    json_output: bool = JsonOpt,
) -> None:
    """Run the whole pipeline on this machine with KFP's local runner (cached steps are reused)."""
    from pipelines.runner import run_local
    from sagestack.workflows.sentiment import pipeline_arguments

    arguments = pipeline_arguments(
        data_path=str(data.resolve()) if data else None, trainers=",".join(split_list(trainers)) or None,
        select_metric=select_metric,
        fasttext=dict(epochs=epochs, learning_rate=learning_rate, min_count=min_count, vector_dim=vector_dim,
                      word_ngrams=word_ngrams),
        baseline=dict(c=baseline_c),
        automl=dict(time_limit=automl_time_limit, max_candidates=automl_max_candidates, embeddings=automl_embeddings),
        bert=dict(model=bert_model, epochs=bert_epochs, learning_rate=bert_learning_rate, max_steps=bert_max_steps,
                  train_batch_size=bert_train_batch_size, max_seq_length=bert_max_seq_length),
        min_accuracy=min_accuracy, auto_approve=approve or None,
        model_name=model_name, seed=seed, facet=facet, bias_fail_on=";".join(split_list(bias_fail_on, ",;")) or None,
        include_reviewed=include_reviewed or None,
    )
    current = settings()
    summary = run_local(arguments, settings=current, progress=progress(json_output))
    lines = [f"pipeline {summary['pipeline']} run {summary['run']}: {summary['status']} in {summary['seconds']:.1f} s",
             *step_lines(summary, artifacts=True), *candidate_lines(summary["selection"])]
    if summary["selection"]:
        lines.append(f"champion: {summary['selection']['champion']}")
    lines.append(f"registered: {summary['registered']}" if summary["registered"] else f"not registered: {summary['rejection']}")
    lines.append(f"log: {summary['log']}")
    emit(summary, json_output, lines)


@app.command("runs")
def runs(
    limit: int = typer.Option(20, "--limit", min=1, help="How many recent runs to list."),
    json_output: bool = JsonOpt,
) -> None:
    """List recent local pipeline runs (from each run's summary.json), newest first."""
    from sagestack.pipeline_runs import list_runs

    found = list_runs(settings(), limit=limit)
    lines = [
        f"{r['started_at']}  {r['run']}  {r['status']:8} {r['seconds']:7.1f} s  champion {r['champion'] or '-'}  "
        + (f"registered {r['registered']}" if r["registered"] else (r["rejection"] or r["error"] or ""))
        for r in found
    ] or ["no pipeline runs yet; start one with `sagestack pipeline run`"]
    emit({"runs": found}, json_output, lines)


@app.command("compile", context_settings=renamed({"--output": "--out", "-o": "--out"}))
def compile_(
    out: Path = typer.Option(..., "--out", help="Where to write the KFP IR YAML."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if the file exists."),
    json_output: bool = JsonOpt,
) -> None:
    """Compile the pipeline to the KFP IR YAML a Kubeflow Pipelines cluster accepts."""
    from pipelines.runner import compile_pipeline

    check_out_file(out, overwrite)
    path = compile_pipeline(out)
    emit({"path": str(path)}, json_output, [f"wrote {path}"])


@app.command("submit", context_settings=renamed({"--host": "--kfp-url", "--tracking-uri": "--cluster-tracking-uri",
                                                  "--auto-approve": "--approve"}))
def submit(
    kfp_url: str = typer.Option(..., "--kfp-url", help="Kubeflow Pipelines API URL, e.g. http://ml-pipeline-ui.kubeflow:80."),
    data: str = typer.Option(..., "--data", help="Dataset path or URL as the cluster's pods see it."),
    cluster_tracking_uri: str = typer.Option(..., "--cluster-tracking-uri", help="MLflow server URL as the cluster's pods see it."),
    trainers: Optional[list[str]] = typer.Option(None, "--trainers", help="Trainers to run (repeat or comma-separate; default: all)."),
    min_accuracy: Optional[float] = typer.Option(None, help=f"Register only if the champion's test accuracy >= this (default {DEFAULT_MIN_ACCURACY})."),
    approve: bool = typer.Option(False, "--approve", help="Register the champion as Approved and make it @champion."),
    experiment: str = typer.Option("sagestack", help="KFP experiment name."),
    json_output: bool = JsonOpt,
) -> None:
    """Submit the pipeline to a Kubeflow Pipelines cluster (kfp.Client)."""
    from pipelines.runner import submit as submit_run
    from sagestack.workflows.sentiment import pipeline_arguments

    arguments = pipeline_arguments(data_path=data, trainers=",".join(split_list(trainers)) or None,
                                   tracking_uri=cluster_tracking_uri, min_accuracy=min_accuracy,
                                   auto_approve=approve or None)
    result = submit_run(kfp_url, arguments, experiment=experiment)
    emit(result, json_output, [f"submitted run {result['run_id']} to {kfp_url}"])
