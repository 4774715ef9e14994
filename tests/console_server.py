"""A real ``sagestack console`` process on loopback, for the tests that drive one (a plain module beside
conftest.py, imported as ``console_server``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import SAGESTACK
from sagestack.bento.launch import stop_process


class Console:
    """A ``sagestack console`` process on loopback, with a home of its own."""

    def __init__(self, home: Path, port: int, endpoint_port: int, *extra_args: str):
        self.home, self.port, self.endpoint_port = home, port, endpoint_port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None
        self.log = home.parent / "console.log"
        self.extra_args = extra_args

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAGESTACK_")}
        env["SAGESTACK_HOME"] = str(self.home)
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [str(SAGESTACK), "console", "--port", str(self.port), "--endpoint",
                 f"http://127.0.0.1:{self.endpoint_port}", "--max-upload-mb", "5", *self.extra_args],
                env=env, cwd=self.home.parent, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the console exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/jobs", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        pytest.fail("the console did not answer within 60 s")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            stop_process(self.process)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (the system's, driven by Playwright) for the module's tests."""
    import playwright.sync_api as playwright_api  # in the lock: missing, a test fails instead of skipping

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed; `make test` installs it with apt-get (or: apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def check_screenshot(page, path: Path) -> None:
    """Take a full-page screenshot of ``page`` at ``path`` and check that it shows the page: a PNG
    as wide as the viewport and as tall as the document, with the many shades rendered text has
    (a blank or failed render is one flat colour)."""
    from PIL import Image

    height = max(page.viewport_size["height"], page.evaluate("document.documentElement.scrollHeight"))
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    with Image.open(path) as image:
        assert image.size == (page.viewport_size["width"], height), (image.size, page.viewport_size, height)
        shades = sum(1 for count in image.convert("L").histogram() if count)
    assert shades >= 16, f"{path} is nearly uniform ({shades} shades of grey): nothing was rendered"
