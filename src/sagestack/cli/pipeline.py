"""``sagestack pipeline``: run the Kubeflow pipeline locally, list runs, compile, submit to a cluster."""

from __future__ import annotations

from pathlib import Path
import inspect
import typing
from typing import Optional

import typer

from sagestack.cli.common import (
    JsonOpt, candidate_lines, check_out_file, emit, progress, renamed, settings, split_list, step_lines,
)
from sagestack.registry import DEFAULT_MODEL_NAME
from sagestack.workflows.params import DEFAULT_FACET, DEFAULT_MIN_ACCURACY, DEFAULT_SELECT_METRIC, DEFAULT_TRAINERS

app = typer.Typer(help="The Kubeflow pipeline: run locally, list runs, compile, submit to a cluster.", no_args_is_help=True)


def run(
    data: Optional[Path] = typer.Option(None, "--data", help="Review CSV; default: the resolved reviews_balanced.csv."),
    trainers: Optional[list[str]] = typer.Option(None, "--trainers", help="Trainers to run as branches (repeat or comma-separate), of {trainers} (default: " + ",".join(DEFAULT_TRAINERS) + ")."),
    select_metric: Optional[str] = typer.Option(None, "--select-metric", help=f"How the champion is chosen: accuracy or macro_f1 (default {DEFAULT_SELECT_METRIC})."),
    min_accuracy: Optional[float] = typer.Option(None, help=f"Register only if the champion's test accuracy >= this (default {DEFAULT_MIN_ACCURACY})."),
    approve: bool = typer.Option(False, "--approve", help="Register the champion as Approved and make it @champion."),
    model_name: Optional[str] = typer.Option(None, help=f"Registered model name (default {DEFAULT_MODEL_NAME})."),
    seed: Optional[int] = typer.Option(None, help="Seeds the split and every trainer (default 42)."),
    facet: Optional[str] = typer.Option(None, "--facet", help=f"Bias facet (default {DEFAULT_FACET}; see `sagestack bias`)."),
    bias_fail_on: Optional[list[str]] = typer.Option(None, help="A bias rule that fails the run, e.g. 'CI>0.95' (repeat or comma-separate)."),
    include_reviewed: bool = typer.Option(False, "--include-reviewed", help="Train on the labels of completed human "
                                          "loops too (`sagestack review`): they override the dataset's for the same text."),
    json_output: bool = JsonOpt,
    **trainer_params: object,
) -> None:
    """Run the whole pipeline on this machine with KFP's local runner (cached steps are reused)."""
    from sagestack.pipelines.runner import run_local
    from sagestack.cli.train import split_kind_options
    from sagestack.workflows.sentiment import pipeline_arguments

    arguments = pipeline_arguments(
        data_path=str(data.resolve()) if data else None, trainers=",".join(split_list(trainers)) or None,
        select_metric=select_metric, params=split_kind_options(trainer_params, pipeline=True),
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


def _run_signature() -> inspect.Signature:
    """``run``'s options: its own, then every trainable kind's parameters as ``--<prefix><field>``."""
    from sagestack.cli.train import kind_options
    from sagestack.models.kinds import trainer_kinds, trainer_names

    hints = typing.get_type_hints(run)
    fixed = [p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
             for p in inspect.signature(run).parameters.values()
             if p.kind is not inspect.Parameter.VAR_KEYWORD]
    trainers = fixed[1]
    help_text = trainers.default.help.replace("{trainers}", ",".join(trainer_names()))
    fixed[1] = trainers.replace(default=typer.Option(None, "--trainers", help=help_text))
    generated = [option for kind in trainer_kinds() for option in kind_options(kind, pipeline=True)]
    *head, json_output = fixed
    return inspect.Signature([*head, *generated, json_output])


class _Run:
    """``pipeline run`` with options read from the registry of kinds when the command tree is built
    (typer reads ``__signature__``), so a kind registered at run time brings its options."""

    __name__ = "run"
    __doc__ = run.__doc__

    @property
    def __signature__(self) -> inspect.Signature:
        return _run_signature()

    @property
    def __annotations__(self) -> dict:
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **options):
        return run(**options)


app.command("run", context_settings=renamed({"--auto-approve": "--approve"}))(_Run())


@app.command("runs")
def runs(
    limit: int = typer.Option(20, "--limit", min=1, help="How many recent runs to list."),
    json_output: bool = JsonOpt,
) -> None:
    """List recent local pipeline runs (from each run's summary.json), newest first."""
    from sagestack.pipeline_runs import list_runs

    found = list_runs(settings(), limit=limit)
    lines = [
        f"{r['started_at']}  {r['run']}  {r['status']:8} {r['seconds']:7.1f} s  trainers {','.join(r['trainers']) or '-'}  "
        f"champion {r['champion'] or '-'}  "
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
    from sagestack.pipelines.runner import compile_pipeline

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
    from sagestack.config import cluster_settings_parameter
    from sagestack.pipelines.runner import submit as submit_run
    from sagestack.workflows.sentiment import pipeline_arguments

    arguments = pipeline_arguments(data_path=data, trainers=",".join(split_list(trainers)) or None,
                                   settings=cluster_settings_parameter(tracking_uri=cluster_tracking_uri),
                                   min_accuracy=min_accuracy,
                                   auto_approve=approve or None)
    result = submit_run(kfp_url, arguments, experiment=experiment)
    emit(result, json_output, [f"submitted run {result['run_id']} to {kfp_url}"])
