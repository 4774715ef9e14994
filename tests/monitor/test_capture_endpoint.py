"""Data capture on a real ``bentoml serve``: records land in Parquet with the inference ids the
responses named, a killed server keeps what it flushed, capture to an S3-compatible bucket works the same,
and capture off writes nothing."""

from __future__ import annotations

import re
import signal
import threading
import time

import httpx
import pytest

from conftest import wait_until
from sagestack.config import load_settings
from sagestack.errors import DataError
from sagestack.monitor.capture import read_capture
from sagestack.registry import log_model_run
from sagestack.text import make_params, train_fasttext
from s3server import BUCKET, s3  # noqa: F401 (s3 is a fixture)
from sagestack.bento.launch import free_port, serve_command, serve_env, stop_process


@pytest.fixture(scope="module")
def registered(sample_split, sample_csv, tmp_path_factory):
    """A fastText champion, and a feature store holding the sample's reviews (for /predict_by_id)."""
    from sagestack.data import load_reviews
    from sagestack.features import ingest

    root = tmp_path_factory.mktemp("capture")
    settings = load_settings(cwd=root, environ={}, home=root / "home")
    ingest(settings, load_reviews(sample_csv).frame.head(50))
    train_fasttext(sample_split / "train.txt", root / "model", make_params(threads=1))
    log_model_run(root / "model", settings=settings, model_name="reviews-sentiment", approval="Approved",
                  aliases=("champion",))
    return settings


def start(settings, capture: str | None, log_path, extra_env: dict | None = None):
    import subprocess

    port = free_port()
    env = serve_env(settings, "reviews-sentiment@champion")
    env.pop("SAGESTACK_CAPTURE", None)
    env.update(SAGESTACK_WORKERS="1", BENTOML_HOME=str(settings.home / "bentoml"))
    if capture is not None:
        env["SAGESTACK_CAPTURE"] = capture
    env.update(extra_env or {})
    process = subprocess.Popen(serve_command("127.0.0.1", port), env=env, stdout=log_path.open("ab"),
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 180, lambda: log_path.read_text()[-3000:], interval=0.5)
    return process, url


def captured_total(url: str) -> float:
    """The worker's count of records it has queued for writing (captured) so far."""
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    found = re.search(r'^sagestack_capture_records_total\{outcome="captured",variant=""\} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def stored_ids(settings) -> set[str]:
    """The inference ids the capture folder holds now (none before the first file is written)."""
    try:
        captured, _ = read_capture(settings.capture_dir)
    except DataError:  # no capture folder yet
        return set()
    return set(captured["inference_id"]) if len(captured) else set()


def test_capture_writes_what_the_responses_name_and_survives_a_killed_worker(registered, tmp_path):
    import psutil

    process, url = start(registered, "100", tmp_path / "serve.log")
    try:
        ids = []
        for i in range(20):
            answer = httpx.post(f"{url}/predict", json={"reviews": [f"Lovely dress number {i}", "Too small"]},
                                timeout=30).json()
            ids.append(answer["inference_id"])
        batch = httpx.post(f"{url}/predict_batch", json={"reviews": ["Great fit", "Awful"]}, timeout=30).json()
        ids += [item["inference_id"] for item in batch]
        by_id = httpx.post(f"{url}/predict_by_id", json={"review_ids": [1, 2]}, timeout=30).json()
        assert set(by_id["predictions"][0]) == {"review_id", "label", "probabilities"}  # the stored text stays inside
        ids.append(by_id["inference_id"])
        assert captured_total(url) == 44  # 20 x 2 + 2 + 2 records queued
        # Written by the worker's writer on its own (it flushes once a second), not by a shutdown.
        wait_until(lambda: set(ids) <= stored_ids(registered), 30, "the writer never flushed the 44 records")

        # A crash mid-traffic: a client keeps sending while the worker dies with SIGKILL (no shutdown
        # hook runs) and the server starts another.
        answered: list[tuple[float, float, str]] = []  # (sent, answered, inference id)
        sending = threading.Event()
        sending.set()

        def client() -> None:
            with httpx.Client(timeout=5) as http:
                while sending.is_set():
                    sent = time.monotonic()
                    try:
                        reply = http.post(f"{url}/predict", json={"reviews": ["Traffic during the crash"]})
                        if reply.status_code == 200:
                            answered.append((sent, time.monotonic(), reply.json()["inference_id"]))
                    except httpx.HTTPError:
                        time.sleep(0.05)

        sender = threading.Thread(target=client, daemon=True)
        sender.start()
        wait_until(lambda: len(answered) >= 5, 30, "the client's requests were not answered")
        # Kill only once these answers' records are on disk.
        flushed = {i for _, _, i in answered}
        wait_until(lambda: flushed <= stored_ids(registered), 30, "the writer never flushed the traffic")
        workers = psutil.Process(process.pid).children(recursive=True)
        for worker in workers:
            worker.send_signal(signal.SIGKILL)
        # The old worker answers in about a millisecond: until it is gone it still serves the client.
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, alive
        killed_at = time.monotonic()
        # Requests sent once it is gone can only be the new worker's.
        after = lambda: {i for sent, _, i in answered if sent > killed_at}  # noqa: E731
        wait_until(lambda: len(after()) >= 3, 120, "no worker came back")
        sending.clear()
        sender.join(timeout=10)
        new_worker = after()
    finally:
        stop_process(process)  # graceful: the new worker's writer writes what it still holds
    captured, skipped = read_capture(registered.capture_dir)
    assert skipped == []
    stored = set(captured["inference_id"])
    assert set(ids) <= stored  # everything flushed before the crash is still there
    assert flushed <= stored and new_worker <= stored  # what was flushed before the kill survived it
    first = captured[captured["inference_id"] == ids[0]].sort_values("item")
    assert first["review"].tolist() == ["Lovely dress number 0", "Too small"] and first["item"].tolist() == [0, 1]
    assert set(captured["model_kind"]) == {"fasttext"}
    assert set(captured["route"]) == {"/predict", "/predict_batch", "/predict_by_id"}
    from sagestack.features import read_features

    stored = read_features(registered).set_index("review_id")["review_body"]
    by_id_rows = captured[captured["route"] == "/predict_by_id"].sort_values("item")
    assert by_id_rows["review"].tolist() == [stored[1], stored[2]]  # the text the store held


def test_capture_to_an_s3_bucket(registered, s3, tmp_path):
    uri = f"s3://{BUCKET}/endpoint"
    local_files = sorted(registered.capture_dir.rglob("*.parquet"))
    process, url = start(registered, "100", tmp_path / "serve.log", {**s3, "SAGESTACK_CAPTURE_URI": uri})
    try:
        ids = [httpx.post(f"{url}/predict", json={"reviews": [f"Soft fabric {i}", "Runs large"]},
                          timeout=30).json()["inference_id"] for i in range(10)]
        wait_until(lambda: captured_total(url) >= 20, 30, "the writer never flushed the 20 records to the bucket")
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert 'sagestack_capture_records_total{outcome="captured",variant=""} 20.0' in metrics
        assert 'outcome="failed"' not in metrics
    finally:
        stop_process(process)
    captured, skipped = read_capture(uri)
    assert skipped == [] and set(captured["inference_id"]) == set(ids) and len(captured) == 20
    assert sorted(registered.capture_dir.rglob("*.parquet")) == local_files  # nothing went to the home's folder


def test_capture_off_writes_nothing(registered, tmp_path):
    import shutil

    shutil.rmtree(registered.capture_dir, ignore_errors=True)
    process, url = start(registered, None, tmp_path / "serve.log")
    try:
        answer = httpx.post(f"{url}/predict", json={"reviews": ["Nice"]}, timeout=30).json()
        assert answer["inference_id"]  # always named, captured or not
    finally:
        stop_process(process)  # a graceful stop: a writer, had there been one, would have flushed by now
    assert not registered.capture_dir.exists()
