"""The monitoring pipeline's step: one monitoring run over the last hours of captured traffic."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path


def monitor_step(baseline: str, capture: str, window_hours: float, report_path: str, violations_path: str,
                 settings) -> dict:
    """Run :func:`sagestack.monitor.job.run_monitor` over the last ``window_hours`` and copy its
    report and violations to the step's outputs.

    A window without traffic is not a failure of a scheduled run: its report says so and it has
    no violations (status ``no_data``).

    Returns:
        ``{"status", "rows", "violations"}``.
    """
    from sagestack.monitor.job import run_monitor

    since = datetime.now(timezone.utc) - timedelta(hours=window_hours)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_monitor(Path(baseline), capture or settings.capture_location, Path(tmp) / "run",
                             since=since, settings=settings, allow_empty=True)
        shutil.copyfile(Path(tmp) / "run" / "report.html", report_path)
        shutil.copyfile(Path(tmp) / "run" / "violations.json", violations_path)
    return {"status": result["status"], "rows": result["window"]["rows"], "violations": len(result["violations"])}
