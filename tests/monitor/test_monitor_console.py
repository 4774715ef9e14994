"""The console's Monitoring page on a real ``sagestack console``: a run started there reads the
home's captured traffic against a baseline under HOME/monitoring, and scheduled runs are listed."""

from __future__ import annotations

import os
import re
import subprocess
import time

import httpx
import pytest

from conftest import SAGESTACK
from sagestack.config import load_settings
from sagestack.monitor.job import run_monitor
from sagestack.bento.launch import free_port, stop_process
from traffic import capture, window, world  # noqa: F401 (world is a fixture)


@pytest.fixture
def console(world, tmp_path):
    home = tmp_path / "home"
    settings = load_settings(cwd=tmp_path, environ={}, home=home)
    world["baseline"].write(home / "monitoring" / "baseline")
    capture(settings.capture_dir, window(world["test"], 30), world["predictor"])
    run_monitor(home / "monitoring" / "baseline", settings.capture_dir, home / "monitoring" / "20261126T1405")  # as the CronJob does
    (home / "monitoring" / "stray").mkdir()
    (home / "monitoring" / "stray" / "result.json").write_text("[]")  # someone else's file: not listed, no error
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGESTACK_")}
    env["SAGESTACK_HOME"] = str(home)
    process = subprocess.Popen([str(SAGESTACK), "console", "--port", str(port)], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/jobs", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.3)
    yield url
    stop_process(process)


def test_the_monitoring_page_lists_runs_and_starts_one(console):
    with httpx.Client(base_url=console, follow_redirects=True, timeout=30) as browser:
        page = browser.get("/monitoring")
        assert page.status_code == 200 and "20261126T1405" in page.text and ">completed</span>" in page.text
        report = browser.get("/monitoring/files", params={"path": "20261126T1405/report.html"})
        assert report.status_code == 200 and "Monitoring report" in report.text
        assert report.headers["content-security-policy"] == "sandbox"
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        for bad in ("../..", "a\x00b", "x" * 300):
            refused = browser.post("/monitoring", data={"csrf_token": token, "baseline": bad, "last": "24h"})
            assert refused.status_code == 400 and "is not a baseline under" in refused.text, bad
        assert browser.get("/monitoring/files", params={"path": "\x00"}).status_code == 404
        started = browser.post("/monitoring", data={"csrf_token": token, "baseline": "baseline", "last": "24h"})
        job = started.url.path.rsplit("/", 1)[1]
        deadline = time.monotonic() + 120
        while (status := browser.get(f"/api/jobs/{job}").json())["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(1)
        assert status["status"] == "succeeded", status["error"]
        assert status["result"]["window"]["rows"] == 600 and status["result"]["violations"] == []
        shown = browser.get(f"/jobs/{job}")
        assert 'id="violations"' in shown.text and "Monitoring report" in browser.get(
            f"/jobs/{job}/files/out/report.html").text
