"""``sagestack serve``: the real command, a real registry, a real server on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sagestack.config import load_settings
from sagestack.registry import get_version, lineage, log_model_run, record_endpoint
from sagestack.registry.provenance import ENDPOINT_TAG
from sagestack.text import make_params, train_fasttext
from sagestack.bento.launch import free_port, stop_process

SAGESTACK = Path(sys.executable).with_name("sagestack")


@pytest.fixture
def registered(sample_split, tmp_path):
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    train_fasttext(sample_split / "train.txt", tmp_path / "model", make_params(threads=1))
    log_model_run(tmp_path / "model", settings=settings, model_name="reviews-sentiment", approval="Approved",
                  aliases=("champion",))
    return settings


def test_serve_records_the_endpoint_only_once_it_answers_and_stops_on_sigterm(registered, tmp_path, sagestack_main):
    """...and once it stopped, lineage names it as the last endpoint, never as the one serving (it did)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGESTACK_", "BENTOML_"))}
    env.update(SAGESTACK_HOME=str(registered.home), BENTOML_HOME=str(tmp_path / "bentoml"), BENTOML_DO_NOT_TRACK="true")
    log = tmp_path / "serve.log"
    process = subprocess.Popen([str(SAGESTACK), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not get_version(registered, "reviews-sentiment", "1").tags.get(ENDPOINT_TAG):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the endpoint was never recorded"
            time.sleep(0.1)
        # The tag appears only after /readyz answered, so the recorded endpoint serves right away.
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        assert get_version(registered, "reviews-sentiment", "1").tags[ENDPOINT_TAG] == url
        answer = httpx.post(f"{url}/predict", json={"reviews": ["Love it"]}, timeout=30).json()
        assert answer["model"]["kind"] == "fasttext" and answer["model"]["version"] == "1"
        assert lineage(registered, "reviews-sentiment@champion")["endpoint"] == url
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/readyz", timeout=2)
    finally:
        if process.poll() is None:
            stop_process(process)
    chain = lineage(registered, "reviews-sentiment/1")
    assert chain["endpoint"] is None and chain["last_endpoint"]["url"] == url and chain["last_endpoint"]["stopped_at"]
    code, out, err = sagestack_main("lineage", "reviews-sentiment/1")
    assert code == 0 and f"endpoint  not serving (last served at {url}, stopped 20" in out, (out, err)

    # An endpoint killed with no chance to say so: its process is gone, so it is not live either.
    gone = subprocess.Popen(["true"])
    gone.wait()
    record_endpoint(registered, "reviews-sentiment/1", "http://127.0.0.1:9", pid=gone.pid)
    assert lineage(registered, "reviews-sentiment/1")["last_endpoint"] == {"url": "http://127.0.0.1:9",
                                                                           "stopped_at": None}
    code, out, err = sagestack_main("lineage", "reviews-sentiment/1", "--json")
    assert json.loads(out)["endpoint"] is None
    record_endpoint(registered, "reviews-sentiment/1", "http://127.0.0.1:9")  # this process: alive
    assert lineage(registered, "reviews-sentiment/1")["endpoint"] == "http://127.0.0.1:9"


def test_a_variant_endpoint_refuses_a_version_that_is_not_approved(registered, sample_split, tmp_path):
    """A production variant never serves a pending version: `bentoml serve` stops at start, saying why."""
    from sagestack.errors import SagestackError
    from sagestack.bento.launch import running_bentoml, serve_command, serve_env

    log_model_run(tmp_path / "model", settings=registered, model_name="reviews-sentiment",
                  approval="PendingManualApproval", aliases=("challenger",))
    port = free_port()
    env = {**serve_env(registered, "reviews-sentiment@challenger"), "SAGESTACK_VARIANT": "B",
           "BENTOML_HOME": str(tmp_path / "bentoml")}
    with pytest.raises(SagestackError) as refused:
        with running_bentoml(serve_command("127.0.0.1", port), env, f"http://127.0.0.1:{port}", tmp_path / "b.log", 120):
            pass
    assert ("variant B would serve reviews-sentiment version 2, which is PendingManualApproval; approve it first"
            in (tmp_path / "b.log").read_text())
    last = (tmp_path / "b.log").read_text().strip().splitlines()[-1]
    assert str(refused.value) == f"the endpoint exited during start-up (log: {tmp_path / 'b.log'}); last line: {last}"


@pytest.mark.parametrize("command", [("serve",), ("features", "serve")])
def test_a_taken_port_is_one_line_before_any_server_starts(sagestack_main, command):
    """BentoML's and Feast's own refusals are tracebacks; the check comes first."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = sagestack_main(*command, "--port", port)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip() == f"error: cannot listen on 127.0.0.1:{port} (Address already in use); pass another --port"
