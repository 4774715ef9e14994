"""`--json` on the long-running commands (`serve`, `console`, `features serve`): one JSON line on stdout
once the server answers, the server keeps running, and the printed pid stops it."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sagestack.config import load_settings
from sagestack.bento.launch import free_port, stop_process

SAGESTACK = Path(sys.executable).with_name("sagestack")


def start_with_json(home: Path, *args: str, timeout: float = 180) -> tuple[subprocess.Popen, dict]:
    """Start ``sagestack ARGS --json``; returns the process and the JSON line it printed once ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGESTACK_", "BENTOML_"))}
    env.update(SAGESTACK_HOME=str(home), BENTOML_HOME=str(home / "bentoml"), BENTOML_DO_NOT_TRACK="true")
    log = (home.parent / "stderr.log").open("wb")
    process = subprocess.Popen([str(SAGESTACK), *args, "--json"], env=env, cwd=home.parent, stdout=subprocess.PIPE,
                               stderr=log)
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while not selector.select(timeout=1):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            pytest.fail(f"no JSON line from sagestack {' '.join(args)}: {(home.parent / 'stderr.log').read_text()[-3000:]}")
    return process, json.loads(process.stdout.readline())


def stop_by_pid(process: subprocess.Popen, document: dict, url: str) -> None:
    """The printed pid is the one to signal: SIGTERM stops the server (and the command) gracefully."""
    assert document["pid"] == process.pid
    os.kill(document["pid"], signal.SIGTERM)
    process.wait(timeout=60)
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=2)
    assert process.stdout.read() == b""  # nothing after the one line


def test_serve_json_prints_the_url_and_pid_once_the_endpoint_answers(sample_split, tmp_path):
    from sagestack.registry import log_model_run
    from sagestack.text import make_params, train_fasttext

    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    train_fasttext(sample_split / "train.txt", tmp_path / "model", make_params(threads=1))
    log_model_run(tmp_path / "model", settings=settings, model_name="reviews-sentiment", approval="Approved",
                  aliases=("champion",))
    port = free_port()
    process, document = start_with_json(settings.home, "serve", "--port", str(port))
    try:
        assert document == {"url": f"http://127.0.0.1:{port}", "pid": process.pid, "model": "reviews-sentiment@champion",
                            "kind": "fasttext"}
        assert httpx.get(f"{document['url']}/readyz", timeout=5).status_code == 200  # ready when printed
        stop_by_pid(process, document, f"{document['url']}/readyz")
    finally:
        if process.poll() is None:
            stop_process(process)


def test_console_json_prints_the_url_and_pid_once_it_listens(tmp_path):
    port = free_port()
    process, document = start_with_json(tmp_path / "home", "console", "--port", str(port))
    try:
        assert document == {"url": f"http://127.0.0.1:{port}/", "pid": process.pid,
                            "home": str((tmp_path / "home").resolve())}
        assert httpx.get(document["url"], timeout=30, follow_redirects=True).status_code == 200
        stop_by_pid(process, document, document["url"])
    finally:
        if process.poll() is None:
            stop_process(process)


def test_features_serve_json_prints_the_url_and_pid_once_feast_answers(sample_csv, tmp_path):
    from sagestack.data import load_reviews
    from sagestack.features import ingest

    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    ingest(settings, load_reviews(sample_csv).frame.head(60))
    port = free_port()
    process, document = start_with_json(settings.home, "features", "serve", "--port", str(port))
    try:
        assert document == {"url": f"http://127.0.0.1:{port}", "pid": process.pid}
        body = {"features": ["reviews_text:product_category"], "entities": {"review_id": [3]}}
        assert httpx.post(f"{document['url']}/get-online-features", json=body, timeout=30).status_code == 200
        stop_by_pid(process, document, f"{document['url']}/health")
    finally:
        if process.poll() is None:
            stop_process(process)


def test_serve_a_model_folder_by_its_path(sample_split, tmp_path):
    """`sagestack serve --model PATH` (a trained model's folder, relative to where the command runs): no
    registry involved, the path is passed on absolute to the server, which runs elsewhere."""
    from sagestack.models import load_model
    from sagestack.text import make_params, train_fasttext

    train_fasttext(sample_split / "train.txt", tmp_path / "model", make_params(threads=1))
    port = free_port()
    process, document = start_with_json(tmp_path / "home", "serve", "--model", "model", "--port", str(port))
    try:
        assert document == {"url": f"http://127.0.0.1:{port}", "pid": process.pid, "model": str(tmp_path / "model"),
                            "kind": "fasttext"}
        answer = httpx.post(f"{document['url']}/predict", json={"reviews": ["Love it, fits perfectly"]}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"]["kind"] == "fasttext" and body["model"]["version"] is None
        expected = load_model(tmp_path / "model").predict(["Love it, fits perfectly"])[0].to_dict()
        assert {k: body["predictions"][0][k] for k in ("label", "probabilities")} == expected
        assert not (tmp_path / "home" / "mlflow.db").exists()  # nothing was registered or tagged
        stop_by_pid(process, document, f"{document['url']}/readyz")
    finally:
        if process.poll() is None:
            stop_process(process)
