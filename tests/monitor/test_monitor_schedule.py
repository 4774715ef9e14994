"""Monitoring on a schedule: the CronJob patch in a real kustomize overlay, and the monitoring
pipeline on KFP's local runner (what a KFP recurring run executes)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_sagestack
from sagestack.config import load_settings
from sagestack.errors import ConfigError
from sagestack.monitor.schedule import cron_for
from traffic import window, world  # noqa: F401 (world is a fixture)

KUBECTL = Path(sys.executable).with_name("kubectl")


def test_every_becomes_a_cron_expression():
    assert [cron_for(e) for e in ("15m", "30m", "1h", "6h", "24h", "1d")] == [
        "*/15 * * * *", "*/30 * * * *", "5 * * * *", "5 */6 * * *", "5 0 * * *", "5 0 * * *"]
    for bad in ("7m", "5h", "2d", "hourly", ""):
        with pytest.raises(ConfigError, match="is not a schedule sagestack can write"):
            cron_for(bad)


def test_schedule_patches_the_overlay_and_it_renders_and_validates(tmp_path):
    import kubernetes_validate

    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / "local"
    for _ in range(2):  # twice: the overlay lists the patch once
        done = run_sagestack(tmp_path / "home", "monitor", "schedule", "--every", "30m", "--window", "2h",
                             "--baseline", "/var/lib/sagestack/monitoring/v7", "--overlay", str(overlay), "--json")
        assert done.returncode == 0, done.stderr
    assert (overlay / "kustomization.yaml").read_text().count("monitor-schedule.yaml") == 1
    rendered = subprocess.run([str(KUBECTL), "kustomize", str(overlay)], capture_output=True, text=True, check=True)
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(rendered.stdout) if o}
    cronjob, config = objects["CronJob", "sagestack-monitor"], objects["ConfigMap", "sagestack-monitor"]
    assert cronjob["spec"]["schedule"] == "*/30 * * * *"
    assert config["data"] == {"MONITOR_BASELINE": "/var/lib/sagestack/monitoring/v7", "MONITOR_WINDOW": "2h"}
    assert cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "sagestack", "monitor", "run"]
    kubernetes_validate.validate(cronjob, "1.37.0", strict=True)

    refused = run_sagestack(tmp_path / "home", "monitor", "schedule", "--every", "1h", "--host", "http://127.0.0.1:9")
    assert refused.returncode == 2 and "error: could not schedule on http://127.0.0.1:9" in refused.stderr
    nowhere = run_sagestack(tmp_path / "home", "monitor", "schedule", "--overlay", str(tmp_path))
    assert nowhere.returncode == 2 and "has no kustomization.yaml" in nowhere.stderr


def test_the_monitoring_pipeline_runs_on_kfps_local_runner(world, tmp_path):
    from sagestack.pipelines.runner import run_local
    from traffic import capture

    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    capture(settings.capture_dir, window(world["test"], 20), world["predictor"])
    summary = run_local({"baseline": str(world["out"] / "baseline"), "window_hours": 1.0}, settings=settings,
                        pipeline="monitoring")
    step = next(s for s in summary["steps"] if s["name"] == "monitor-window")
    assert summary["status"] == "SUCCESS" and step["status"] == "SUCCESS"
    assert json.loads(Path(step["artifacts"]["violations"]).read_text()) == {"violations": []}
    assert "Monitoring report" in Path(step["artifacts"]["report"]).read_text()

    # An hour without traffic is no failure for a scheduled run: its report says so.
    (tmp_path / "empty").mkdir()
    quiet = run_local({"baseline": str(world["out"] / "baseline"), "window_hours": 1.0,
                       "capture": str(tmp_path / "empty")}, settings=settings, pipeline="monitoring")
    step = next(s for s in quiet["steps"] if s["name"] == "monitor-window")
    assert quiet["status"] == "SUCCESS" and step["status"] == "SUCCESS"
    assert "no captured records" in Path(step["artifacts"]["report"]).read_text()


def test_the_monitoring_pipeline_compiles_on_the_pinned_image_without_caching(tmp_path):
    from sagestack.components.image import IMAGE
    from sagestack.pipelines.runner import compile_pipeline

    compiled = yaml.safe_load(compile_pipeline(tmp_path / "monitoring.yaml", "monitoring").read_text())
    executors = compiled["deploymentSpec"]["executors"]
    assert [e["container"]["image"] for e in executors.values()] == [IMAGE]
    task = compiled["root"]["dag"]["tasks"]["monitor-window"]
    assert task["cachingOptions"] == {}  # KFP writes enableCache only when it is on
    assert set(compiled["root"]["inputDefinitions"]["parameters"]) == {"baseline", "capture", "window_hours", "settings"}
