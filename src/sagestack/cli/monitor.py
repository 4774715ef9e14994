"""``sagestack monitor``: baselines and monitoring runs over captured traffic (Model Monitor)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

import typer

from sagestack.cli.common import JsonOpt, emit, settings

app = typer.Typer(help="Model monitoring: a baseline, then runs over captured traffic.", no_args_is_help=True)


def _when(value: Optional[str], option: str) -> Optional[datetime]:
    from sagestack.errors import ConfigError

    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not a time; use ISO 8601, e.g. 2026-11-26T14:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@app.command("baseline")
def baseline(
    data: Path = typer.Option(..., "--data", help="Labelled CSV the model did not train on (its validation split)."),
    model: str = typer.Option("reviews-sentiment@champion", "--model", help="NAME@ALIAS, NAME/VERSION or a model path."),
    text_column: str = typer.Option("review_body", "--text-column"),
    label: str = typer.Option("sentiment", "--label", help="The true label column."),
    positive: Optional[List[str]] = typer.Option(None, "--positive", help="Positive label value(s) for bias metrics (default 1)."),
    facet: str = typer.Option("product_category", "--facet", help="Facet of the bias metrics."),
    column: Optional[List[str]] = typer.Option(None, "--column", help="Categorical column to watch (default: the facet)."),
    out: Path = typer.Option(..., "--out", help="Output folder: statistics.json, constraints.json."),
    json_output: bool = JsonOpt,
) -> None:
    """Statistics and constraints of the data and of the model's predictions on it."""
    from sagestack.data.reviews import read_csv_checked
    from sagestack.monitor import make_baseline
    from sagestack.registry import load_predictor

    predictor, _ = load_predictor(settings(), model)
    made = make_baseline(read_csv_checked(data), predictor, text_column=text_column, label=label,
                         positive=tuple(positive or ["1"]), facet=facet, columns=tuple(column or [facet]))
    paths = made.write(out)
    emit({k: str(v) for k, v in paths.items()}, json_output,
         [f"baseline of {made.statistics['rows']} rows ({made.statistics['model']['kind']}): {out}"])


@app.command("run")
def run(
    baseline_dir: Path = typer.Option(..., "--baseline", help="A folder made by `sagestack monitor baseline`."),
    capture: Optional[Path] = typer.Option(None, "--capture", help="Capture folder (default: HOME/capture)."),
    since: Optional[str] = typer.Option(None, "--since", help="Window start, ISO 8601 (UTC unless it says)."),
    until: Optional[str] = typer.Option(None, "--until", help="Window end, ISO 8601."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="CSV: inference_id[, item], the true label, the facet."),
    out: Path = typer.Option(..., "--out", help="Output folder: violations.json, result.json, report.html."),
    json_output: bool = JsonOpt,
) -> None:
    """Compare a window of captured traffic with the baseline; log the figures to MLflow."""
    from sagestack.monitor.job import run_monitor

    current = settings()
    result = run_monitor(baseline_dir, capture or current.home.resolve() / "capture", out,
                         since=_when(since, "--since"), until=_when(until, "--until"), ground_truth=ground_truth,
                         settings=current)
    lines = [f"{result['window']['rows']} records: {result['status']}", *(f"  violation: {v}" for v in result["violations"]),
             *(f"  skipped {s}" for s in result["skipped_files"]),
             *([f"  {result['unknown_ground_truth']} ground-truth row(s) name no captured inference id"]
               if result["unknown_ground_truth"] else []),
             f"report: {out}/report.html"]
    emit(result, json_output, lines)
