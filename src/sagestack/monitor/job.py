"""The monitoring job: a window of captured traffic (plus ground truth, when it has arrived)
against a baseline → ``violations.json``, ``result.json``, ``report.html`` and MLflow metrics."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

from sagestack.errors import DataError
from sagestack.monitor.baseline import Baseline, load_baseline
from sagestack.monitor.capture import read_capture
from sagestack.monitor.run import PREDICTED, check_window

MONITOR_EXPERIMENT = "sagestack-monitor"


class EmptyWindow(DataError):
    """The window holds no captured record (no traffic, or capture is off)."""


def window_from_capture(captured: pd.DataFrame, baseline: Baseline) -> pd.DataFrame:
    """Captured rows as a window: the review under the baseline's text column, the prediction as ``predicted_label``."""
    return captured.rename(columns={"review": baseline.statistics["text"]["column"], "label": PREDICTED})


def join_ground_truth(window: pd.DataFrame, truth_csv: Path) -> tuple[pd.DataFrame, int]:
    """Add the ground truth's columns (the true label, a facet, …) to the window by ``inference_id``
    (and ``item``, the review's place in its request, 0 when the file has no such column).

    Returns:
        ``(window with the truth's columns, number of ground-truth rows whose id is not in the window)``.

    Raises:
        DataError: the file has no ``inference_id`` column, or none of its ids is in the window.
    """
    from sagestack.data.reviews import read_csv_checked

    truth = read_csv_checked(Path(truth_csv))
    if "inference_id" not in truth.columns:
        raise DataError(f"{truth_csv} has no inference_id column; ground truth is joined to captured predictions by it")
    if "item" in truth.columns:
        items = pd.to_numeric(truth["item"], errors="coerce")
        if items.isna().any() or (items % 1 != 0).any() or (items < 0).any():
            bad = truth["item"][items.isna() | (items % 1 != 0) | (items < 0)].iloc[0]
            raise DataError(f"{truth_csv}: item {bad!r} is not a review's place in its request (0, 1, 2, ...)")
        truth = truth.assign(item=items.astype(int))
    else:
        truth = truth.assign(item=0)
    truth = truth.assign(inference_id=truth["inference_id"].astype(str))
    duplicated = truth.duplicated(["inference_id", "item"])
    if duplicated.any():
        first = truth[duplicated].iloc[0]
        raise DataError(f"{truth_csv} labels inference {first['inference_id']} item {first['item']} more than once "
                        f"({int(duplicated.sum())} repeated row(s)); keep one label per review")
    keys = set(zip(window["inference_id"].astype(str), window["item"].astype(int)))
    known = [(i, n) in keys for i, n in zip(truth["inference_id"], truth["item"])]
    unknown = len(truth) - sum(known)
    if not any(known):
        raise DataError(f"none of the {len(truth)} inference ids in {truth_csv} is in this window "
                        f"(e.g. {truth['inference_id'].iloc[0] if len(truth) else '-'}); check the file or --since/--until")
    extra = [c for c in truth.columns if c not in ("inference_id", "item") and c not in window.columns]
    joined = window.assign(item=window["item"].astype(int), inference_id=window["inference_id"].astype(str)).merge(
        truth[["inference_id", "item", *extra]], on=["inference_id", "item"], how="left", validate="many_to_one")
    return joined, unknown


def run_monitor(
    baseline_dir: Path,
    capture: str | Path,
    out_dir: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    ground_truth: Path | None = None,
    settings=None,
    seed: int = 0,
    allow_empty: bool = False,
    overwrite: bool = False,
) -> dict:
    """One monitoring run (see the module docstring); outputs land in ``out_dir`` atomically.

    Args:
        capture: the capture folder or ``s3://BUCKET/PREFIX``.
        settings: sagestack settings; when given, the run's figures are logged to MLflow
            (experiment ``sagestack-monitor``).
        allow_empty: a window without records is a result (status ``no_data``, its report says so),
            not an error: a scheduled run over a quiet hour, or a local capture folder that does
            not exist yet (nothing was ever captured).
        overwrite: replace ``out_dir`` even if sagestack did not write it (``--overwrite``).

    Returns:
        ``{"status": "completed" | "completed_with_violations", "window": {...}, "checks",
        "bias", "violations", "skipped_files", "unknown_ground_truth", "out_dir", "mlflow_run"}``.

    Raises:
        DataError: no baseline, no capture folder, an empty window, bad ground truth, or a
            window whose predictions are not the baseline model's labels.
    """
    from sagestack.data.atomic import atomic_dir
    from sagestack.monitor.report import write_report

    baseline = load_baseline(baseline_dir)
    if allow_empty and "://" not in str(capture) and not Path(capture).exists():
        # A fresh home (or an endpoint that never captured): nothing to read is a quiet window too.
        message = (f"no capture folder at {Path(capture).resolve()}: nothing was captured yet "
                   "(turn capture on with SAGESTACK_CAPTURE, or pass --capture)")
        return _no_data(Path(out_dir), message, since, until, [], overwrite=overwrite)
    captured, skipped = read_capture(capture, since=since, until=until)
    if captured.empty:
        where = f" between {since or 'the start'} and {until or 'now'}" if since or until else ""
        message = (f"no captured records in {capture}{where}"
                   + (f" ({len(skipped)} unreadable file(s) skipped)" if skipped else ""))
        if not allow_empty:
            raise EmptyWindow(message)
        return _no_data(Path(out_dir), message, since, until, skipped, overwrite=overwrite)
    window = window_from_capture(captured, baseline)
    unknown = 0
    label = baseline.statistics["labels"]["column"]
    if ground_truth is not None:
        window, unknown = join_ground_truth(window, ground_truth)
        if label not in window.columns:
            raise DataError(f"{ground_truth} has no '{label}' column (the true label the baseline was made with)")
    result = check_window(window, baseline, seed=seed)
    labelled = int((window[label].notna() & (window[label].astype(str) != "")).sum()) if label in window.columns else 0
    result.update({
        "status": "completed_with_violations" if result["violations"] else "completed",
        "window": {"rows": int(len(window)), "first": str(captured["time"].min()), "last": str(captured["time"].max()),
                   "since": str(since) if since else None, "until": str(until) if until else None,
                   "with_ground_truth": labelled},
        "skipped_files": skipped,
        "unknown_ground_truth": unknown,
    })
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, command="monitor run", overwrite=overwrite) as tmp:
        (tmp / "violations.json").write_text(json.dumps({"violations": _sagemaker_violations(result)}, indent=2),
                                             encoding="utf-8")
        (tmp / "result.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        write_report(tmp / "report.html", result, captured)
    result["out_dir"] = str(out_dir)
    result["mlflow_run"] = _log_to_mlflow(settings, result) if settings is not None else None
    return result


def _no_data(out_dir: Path, message: str, since, until, skipped: list[str], *, overwrite: bool = False) -> dict:
    """The outputs of a run over a window without records: no violations, a report that says so."""
    from sagestack.data.atomic import atomic_dir
    from sagestack.monitor.report import render_no_data

    result = {"status": "no_data", "reason": message, "checks": [], "bias": [], "violations": [],
              "window": {"rows": 0, "first": None, "last": None, "since": str(since) if since else None,
                         "until": str(until) if until else None, "with_ground_truth": 0},
              "skipped_files": skipped, "unknown_ground_truth": 0}
    with atomic_dir(out_dir, command="monitor run", overwrite=overwrite) as tmp:
        (tmp / "violations.json").write_text(json.dumps({"violations": []}), encoding="utf-8")
        (tmp / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        (tmp / "report.html").write_text(render_no_data(message), encoding="utf-8")
    return {**result, "out_dir": str(out_dir), "mlflow_run": None}


def _sagemaker_violations(result: dict) -> list[dict]:
    """The violations in the shape of SageMaker Model Monitor's ``constraint_violations.json``."""
    out = [{"feature_name": c["name"], "constraint_check_type": f"{c['test']}_drift_check",
            "description": f"{c['test']} {c['value']:.4g} beyond {c['threshold']:.4g} on {c['samples']} records"}
           for c in result["checks"] if c["drift"]]
    out += [{"feature_name": f"bias.{b['facet_value']}.{b['metric']}", "constraint_check_type": "bias_drift_check",
             "description": f"95% interval [{b['interval'][0]:.4f}, {b['interval'][1]:.4f}] outside "
                            f"[{b['band'][0]:.4f}, {b['band'][1]:.4f}] on {b['samples']} records"}
            for b in result["bias"] if b["status"] == "drift"]
    return out


def _log_to_mlflow(settings, result: dict) -> str:
    import time

    from sagestack.registry import Runs

    runs = Runs(settings)
    run_id = runs.create(runs.experiment_id(MONITOR_EXPERIMENT), run_name="monitor",
                         tags={"monitor.status": result["status"]})
    values = {"window_rows": result["window"]["rows"], "violations": len(result["violations"]),
              "bias_violations": sum(b["status"] == "drift" for b in result["bias"])}
    for b in result["bias"]:
        if b["status"] != "insufficient data":
            name = re.sub(r"[^\w\-. /]", "_", f"bias.{b['facet_value']}.{b['metric']}")  # MLflow's metric names
            values[f"{name}.value"] = float(b["value"])
            values[f"{name}.interval_low"] = float(b["interval"][0])
            values[f"{name}.interval_high"] = float(b["interval"][1])
    for check in result["checks"]:
        if check["value"] is not None:
            values[f"{check['name']}.{check['test']}"] = min(float(check["value"]), 1e300)
    now = int(time.time() * 1000)
    runs.log(run_id, metrics=[(key, value, now, 0) for key, value in values.items()])
    runs.end(run_id)
    return run_id


def list_monitoring(root: Path, limit: int = 100) -> dict:
    """The baselines and the monitoring runs under ``root`` (``HOME/monitoring``), newest runs first.

    Returns:
        ``{"baselines": [relative folder], "runs": [{"folder", "status", "rows", "violations", "first", "last"}]}``.
    """
    root = Path(root)
    if not root.is_dir():
        return {"baselines": [], "runs": []}
    def visible(path: Path) -> bool:  # not inside a folder being written (atomic_dir's ".name.*.tmp")
        return not any(part.startswith(".") for part in path.relative_to(root).parts)

    baselines = sorted(str(p.parent.relative_to(root)) for p in root.glob("**/statistics.json") if visible(p))
    runs = []
    for path in root.glob("**/result.json"):
        if not visible(path):
            continue
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            continue  # replaced meanwhile, or not JSON
        if not isinstance(result, dict) or not isinstance(result.get("window") or {}, dict):
            continue  # some other result.json
        window = result.get("window") or {}
        runs.append({"folder": str(path.parent.relative_to(root)), "status": result.get("status"),
                     "rows": window.get("rows"), "violations": len(result.get("violations") or []),
                     "first": window.get("first"), "last": window.get("last"), "mtime": mtime})
    runs.sort(key=lambda r: r["mtime"], reverse=True)
    return {"baselines": baselines, "runs": runs[:limit]}
