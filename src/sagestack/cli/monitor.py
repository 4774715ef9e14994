"""``sagestack monitor``: baselines and monitoring runs over captured traffic (Model Monitor)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List, Optional

import typer

from sagestack.cli.common import JsonOpt, OverwriteOpt, check_out, emit, renamed, settings, split_list

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


def _duration(value: str) -> timedelta:
    """``30m``, ``1h``, ``2d`` → a timedelta."""
    from sagestack.errors import ConfigError

    units = {"m": "minutes", "h": "hours", "d": "days"}
    number, unit = value[:-1], value[-1:]
    try:
        amount = float(number)
        if unit in units and 0 < amount and math.isfinite(amount):
            return timedelta(**{units[unit]: amount})
    except (ValueError, OverflowError):
        pass
    raise ConfigError(f"{value!r} is not a duration; use a number and m, h or d, e.g. 30m, 1h, 1d")


@app.command("baseline")
def baseline(
    data: Path = typer.Option(..., "--data", help="Labelled CSV the model did not train on (its validation split)."),
    model: str = typer.Option("reviews-sentiment@champion", "--model", help="NAME@ALIAS, NAME/VERSION or a model path."),
    text_column: str = typer.Option("review_body", "--text-column", help="The text column the model reads."),
    label: str = typer.Option("sentiment", "--label", help="The true label column."),
    positive: Optional[List[str]] = typer.Option(None, "--positive", help="Positive label value(s) for bias metrics (repeat or comma-separate; default 1)."),
    facet: str = typer.Option("product_category", "--facet", help="Facet of the bias metrics."),
    column: Optional[List[str]] = typer.Option(None, "--column", help="Categorical column(s) to watch (repeat or comma-separate; default: the facet)."),
    numeric_column: Optional[List[str]] = typer.Option(None, "--numeric-column", help="Numeric column(s) to watch (repeat or comma-separate)."),
    out: Path = typer.Option(..., "--out", help="Output folder: statistics.json, constraints.json."),
    overwrite: bool = OverwriteOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Statistics and constraints of the data and of the model's predictions on it."""
    from sagestack.data import resolve_dataset
    from sagestack.data.reviews import read_csv_checked
    from sagestack.monitor import make_baseline
    from sagestack.registry import load_predictor

    data = resolve_dataset(data, settings=settings()).path  # a file, or a name from `sagestack data list`
    check_out(out, "monitor baseline", overwrite, data, model)
    predictor, _ = load_predictor(settings(), model)
    made = make_baseline(read_csv_checked(data), predictor, text_column=text_column, label=label,
                         positive=tuple(split_list(positive) or ["1"]), facet=facet,
                         columns=tuple(split_list(column) or [facet]), numeric_columns=tuple(split_list(numeric_column)))
    paths = made.write(out, overwrite=overwrite)
    emit({k: str(v) for k, v in paths.items()}, json_output,
         [f"baseline of {made.statistics['rows']} rows ({made.statistics['model']['kind']}): {out}"])


@app.command("run")
def run(
    baseline_dir: Path = typer.Option(..., "--baseline", help="A folder made by `sagestack monitor baseline`."),
    capture: Optional[str] = typer.Option(None, "--capture", help="Capture folder or s3://BUCKET/PREFIX "
                                          "(default: SAGESTACK_CAPTURE_URI, else HOME/capture)."),
    since: Optional[str] = typer.Option(None, "--since", help="Window start, ISO 8601 (UTC unless it says)."),
    until: Optional[str] = typer.Option(None, "--until", help="Window end, ISO 8601."),
    last: Optional[str] = typer.Option(None, "--last", help="The window is the last 30m / 1h / 1d (instead of --since)."),
    allow_empty: bool = typer.Option(False, "--allow-empty", help="A window without records is a 'no_data' result, "
                                     "not an error (for scheduled runs)."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="CSV: inference_id[, item], the true label, the facet."),
    out: str = typer.Option(..., "--out", help="Output folder: violations.json, result.json, report.html; "
                            "strftime fields are filled in (UTC), e.g. monitoring/%Y%m%dT%H%M."),
    overwrite: bool = OverwriteOpt,
    json_output: bool = JsonOpt,
) -> None:
    """Compare a window of captured traffic with the baseline; log the figures to MLflow."""
    from sagestack.errors import ConfigError
    from sagestack.monitor.job import run_monitor

    if last and since:
        raise ConfigError("pass --since or --last, not both")
    now = datetime.now(timezone.utc)
    start = now - _duration(last) if last else _when(since, "--since")
    out_dir = Path(now.strftime(out) if "%" in out else out)
    current = settings()
    check_out(out_dir, "monitor run", overwrite, baseline_dir, ground_truth, capture or current.capture_location)
    result = run_monitor(baseline_dir, capture or current.capture_location, out_dir, since=start,
                         until=_when(until, "--until"), ground_truth=ground_truth, settings=current,
                         allow_empty=allow_empty, overwrite=overwrite)
    lines = [f"{result['window']['rows']} records: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else ""),
             *(f"  violation: {v}" for v in result["violations"]),
             *(f"  skipped {s}" for s in result["skipped_files"]),
             *([f"  {result['unknown_ground_truth']} ground-truth row(s) name no captured inference id"]
               if result["unknown_ground_truth"] else []),
             f"report: {out_dir}/report.html"]
    emit(result, json_output, lines)


@app.command("schedule", context_settings=renamed({"--host": "--kfp-url", "--tracking-uri": "--cluster-tracking-uri"}))
def schedule(
    every: str = typer.Option("1h", "--every", help="How often: 15m, 30m, 1h, 6h, 1d, …"),
    window: Optional[str] = typer.Option(None, "--window", help="How much traffic each run looks at (default: --every)."),
    baseline_dir: str = typer.Option("/var/lib/sagestack/monitoring/baseline", "--baseline",
                                     help="The baseline as the cluster's pods see it."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="A kustomize overlay to patch, e.g. k8s/overlays/local."),
    kfp_url: Optional[str] = typer.Option(None, "--kfp-url", help="A Kubeflow Pipelines API URL: also create a KFP recurring run."),
    cluster_tracking_uri: Optional[str] = typer.Option(None, "--cluster-tracking-uri",
                                                       help="MLflow server URL as the cluster's pods see it (with --kfp-url)."),
    json_output: bool = JsonOpt,
) -> None:
    """Run monitoring on a schedule: patch the monitoring CronJob in an overlay and/or create a KFP recurring run."""
    from sagestack.errors import ConfigError
    from sagestack.monitor.schedule import cron_for, write_overlay_schedule

    if overlay is None and kfp_url is None:
        raise ConfigError("pass --overlay (the CronJob in a kustomize overlay), --kfp-url (a KFP recurring run), or both")
    cron = cron_for(every)
    window = window or every
    _duration(window)
    result: dict = {"cron": cron, "window": window, "baseline": baseline_dir}
    lines = [f"every {every} ({cron}), the last {window} against {baseline_dir}"]
    if overlay is not None:
        result["patch"] = str(write_overlay_schedule(overlay, cron, window, baseline_dir))
        lines.append(f"wrote {result['patch']} (apply with: kubectl apply -k {overlay})")
    if kfp_url is not None:
        from sagestack.config import cluster_settings_parameter
        from sagestack.pipelines.runner import schedule as kfp_schedule

        hours = _duration(window).total_seconds() / 3600
        result["kfp"] = kfp_schedule(kfp_url, {"baseline": baseline_dir, "window_hours": hours,
                                               "settings": cluster_settings_parameter(tracking_uri=cluster_tracking_uri)},
                                     cron, pipeline="monitoring")
        lines.append(f"KFP recurring run {result['kfp']['recurring_run_id']} on {kfp_url}")
    emit(result, json_output, lines)
