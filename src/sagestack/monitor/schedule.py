"""Monitoring on a schedule: the cron expression for ``--every``, and the overlay patch that sets
the ``sagestack-monitor`` CronJob's schedule, window and baseline (``k8s/base/monitor-cronjob.yaml``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sagestack.errors import ConfigError

PATCH_FILE = "monitor-schedule.yaml"
_EVERY = re.compile(r"^(\d+)([mhd])$")


def cron_for(every: str) -> str:
    """``15m`` → ``*/15 * * * *``; ``1h`` → ``5 * * * *``; ``6h`` → ``5 */6 * * *``; ``1d`` → ``5 0 * * *``.

    Hourly and daily runs start at minute 5, after the capture writers' last flush of the hour.

    Raises:
        ConfigError: not a whole number of minutes dividing an hour, hours dividing a day, or days (1).
    """
    match = _EVERY.match(every or "")
    amount, unit = (int(match.group(1)), match.group(2)) if match else (0, "")
    if unit == "m" and amount in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30):
        return f"*/{amount} * * * *"
    if unit == "h" and amount in (1, 2, 3, 4, 6, 8, 12):
        return "5 * * * *" if amount == 1 else f"5 */{amount} * * *"
    if unit in ("h", "d") and amount == (24 if unit == "h" else 1):
        return "5 0 * * *"
    raise ConfigError(f"--every {every!r} is not a schedule sagestack can write; use minutes that divide an hour "
                      "(5m, 15m, 30m), hours that divide a day (1h, 6h, 12h) or 1d")


def patch_text(cron: str, window: str, baseline: str) -> str:
    """The strategic-merge patch of the monitoring CronJob and its ConfigMap."""
    return (
        "# Written by `sagestack monitor schedule`: when the monitoring job runs, over which window, against which\n"
        "# baseline (see k8s/base/monitor-cronjob.yaml).\n"
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: sagestack-monitor\nspec:\n"
        f"  schedule: {json.dumps(cron)}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sagestack-monitor\ndata:\n"
        f"  MONITOR_WINDOW: {json.dumps(window)}\n  MONITOR_BASELINE: {json.dumps(baseline)}\n"  # JSON strings are YAML
    )


def write_overlay_schedule(overlay: Path, cron: str, window: str, baseline: str) -> Path:
    """Write :data:`PATCH_FILE` into a kustomize overlay and list it under its ``patches`` (once).

    Raises:
        ConfigError: the folder has no ``kustomization.yaml``.
    """
    from sagestack.data.atomic import atomic_file

    overlay = Path(overlay)
    kustomization = overlay / "kustomization.yaml"
    if not kustomization.is_file():
        raise ConfigError(f"{overlay} has no kustomization.yaml; pass an overlay folder such as k8s/overlays/local")
    with atomic_file(overlay / PATCH_FILE) as tmp:
        tmp.write_text(patch_text(cron, window, baseline), encoding="utf-8")
    text = kustomization.read_text(encoding="utf-8")
    if PATCH_FILE not in text:
        entry = f"  - path: {PATCH_FILE}\n"
        lines = text.splitlines(keepends=True)
        at = next((i for i, line in enumerate(lines) if line.rstrip() == "patches:"), None)
        if at is None:
            text = text.rstrip("\n") + "\npatches:\n" + entry
        else:
            lines.insert(at + 1, entry)
            text = "".join(lines)
        with atomic_file(kustomization) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return overlay / PATCH_FILE
