"""``sagestack automl``: Autopilot's white-box AutoML job on AutoGluon."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from sagestack.automl.candidates import CANDIDATES, DEFAULT_MAX_CANDIDATES
from sagestack.automl.spec import DEFAULT_TIME_LIMIT, METRICS, AutoMLSpec
from sagestack.cli.common import JsonOpt, OverwriteOpt, check_out, emit, progress, settings
from sagestack.registry import DEFAULT_MODEL_NAME


def leaderboard_lines(rows: list[dict], metric: str) -> list[str]:
    """The leaderboard as a table, one candidate a line."""
    lines = [f"  {'rank':>4}  {'candidate':14} {'validation ' + metric:>22} {'test accuracy':>14} {'test macro-F1':>14} {'fit s':>7}"]
    for row in rows:
        lines.append(f"  {row['rank']:>4}  {row['name']:14} {row[f'validation_{metric}']:>22.4f} "
                     f"{row['test_accuracy']:>14.4f} {row['test_macro_f1']:>14.4f} {row['fit_seconds']:>7.1f}")
    return lines


def automl(
    out: Path = typer.Option(..., "--out", help="Output folder, written whole; a previous automl output there is replaced."),
    overwrite: bool = OverwriteOpt,
    data: Optional[Path] = typer.Option(None, "--data", help="CSV to learn from (default: the resolved review dataset)."),
    test: Optional[Path] = typer.Option(None, "--test", help="Test CSV (default: a seeded stratified 80/20 split of --data)."),
    target: str = typer.Option("sentiment", "--target", help="The label column."),
    text_column: str = typer.Option("review_body", "--text-column", help="The text column."),
    columns: Optional[List[str]] = typer.Option(None, "--columns", help="More input columns (repeat or comma-separate). "
                                                "The endpoint sends text only: such a model is not registered."),
    max_candidates: int = typer.Option(DEFAULT_MAX_CANDIDATES, "--max-candidates",
                                       help=f"How many candidates to try (1-{len(CANDIDATES)}, in a fixed order)."),
    time_limit: float = typer.Option(DEFAULT_TIME_LIMIT, "--time-limit", help="Seconds for fitting (embeddings included)."),
    metric: str = typer.Option(AutoMLSpec.metric, "--metric", help=f"Ranks the leaderboard: {' or '.join(METRICS)}."),
    embeddings: bool = typer.Option(False, "--embeddings", help="Add MiniLM sentence-embedding features."),
    refit: bool = typer.Option(True, "--refit/--no-refit", help="Refit the best candidate on the fit and validation parts together before registering it."),
    seed: int = typer.Option(AutoMLSpec.seed, "--seed", help="Seeds the splits."),
    export_candidates: bool = typer.Option(False, "--export-candidates", help="Also write every candidate's model to "
                                           "candidates/<name>/model/, so any of them can be served."),
    register: bool = typer.Option(True, "--register/--no-register", help="Log to MLflow and register the best model."),
    model_name: str = typer.Option(DEFAULT_MODEL_NAME, help="Registered model name."),
    approve: bool = typer.Option(False, "--approve", help="Register as Approved and make it @champion."),
    json_output: bool = JsonOpt,
) -> None:
    """AutoML (Autopilot): explore the data, fit candidates, rank them, write each candidate's
    definition and retrain.py, explain and register the best."""
    from sagestack.automl.job import run_automl

    check_out(out, "automl", overwrite, data, test)

    extra = tuple(c.strip() for value in columns or [] for c in value.split(",") if c.strip())
    spec = AutoMLSpec(target=target, text_column=text_column, columns=extra, metric=metric,
                      max_candidates=max_candidates, time_limit=time_limit, embeddings=embeddings, seed=seed,
                      refit=refit)
    summary = run_automl(spec, out, settings=settings(), data=data, test_data=test, register=register,
                         approve=approve, model_name=model_name, progress=progress(json_output),
                         overwrite=overwrite, export_candidates=export_candidates)
    best = summary["best"]
    lines = [f"leaderboard ({len(summary['leaderboard'])} candidates, ranked by validation {metric}):",
             *leaderboard_lines(summary["leaderboard"], metric),
             f"best: {best['name']} ({best['model_family']})"
             + (f", refit on the fit and validation parts: test accuracy {best['test_accuracy']:.4f} "
                f"(before the refit {best['test_accuracy_before_refit']:.4f})" if best["refit"] else
                f": test accuracy {best['test_accuracy']:.4f}") + f", macro-F1 {best['test_macro_f1']:.4f}",
             *([f"not refit: {best['refit_skipped']}"] if best.get("refit_skipped") else []),
             *(f"warning: {message}" for message in summary["warnings"])]
    if summary["registered"]:
        lines.append(f"registered: {summary['registered']['name']} version {summary['registered']['version']} (kind autogluon)")
    if summary["not_registered"]:
        lines.append(f"not registered: {summary['not_registered']}")
    lines.append(f"reports: {out}/exploration.html, {out}/leaderboard.html, {out}/candidates/, {out}/explain/ "
                 f"({summary['seconds']:.0f} s)")
    emit(summary, json_output, lines)
