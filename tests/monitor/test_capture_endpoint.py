"""Data capture on a real ``bentoml serve``: records land in Parquet with the inference ids the
responses named, a killed server keeps what it flushed, capture to an S3-compatible bucket works the same,
and capture off writes nothing."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from sagestack.config import load_settings
from sagestack.monitor.capture import read_capture
from sagestack.registry import log_model_run
from sagestack.text import make_params, train_fasttext
from s3server import BUCKET, s3  # noqa: F401 (s3 is a fixture)
from serving.launch import free_port, serve_command, serve_env, stop_process


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
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.5)


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
        time.sleep(2.5)  # past the writer's one-second flush
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert 'sagestack_capture_records_total{outcome="captured",variant=""} 44.0' in metrics

        # A crash mid-traffic: a client keeps sending while the worker dies with SIGKILL (no shutdown
        # hook runs) and the server starts another.
        answered: list[tuple[float, str]] = []
        sending = threading.Event()
        sending.set()

        def client() -> None:
            with httpx.Client(timeout=5) as http:
                while sending.is_set():
                    try:
                        reply = http.post(f"{url}/predict", json={"reviews": ["Traffic during the crash"]})
                        if reply.status_code == 200:
                            answered.append((time.monotonic(), reply.json()["inference_id"]))
                    except httpx.HTTPError:
                        time.sleep(0.05)

        sender = threading.Thread(target=client, daemon=True)
        sender.start()
        time.sleep(2.0)
        killed_at = time.monotonic()
        for worker in psutil.Process(process.pid).children(recursive=True):
            worker.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 120
        while not any(t > killed_at + 1.0 for t, _ in answered):  # answers in flight at the kill don't count
            assert time.monotonic() < deadline, "no worker came back"
            time.sleep(0.5)
        time.sleep(2.0)
        sending.clear()
        sender.join(timeout=10)
        time.sleep(2.5)  # the new worker's writer flushes what it took
    finally:
        stop_process(process)
    captured, skipped = read_capture(registered.capture_dir)
    assert skipped == []
    stored = set(captured["inference_id"])
    assert set(ids) <= stored  # everything flushed before the crash is still there
    flushed_before = {i for t, i in answered if t < killed_at - 1.5}  # answered over a second before the kill
    after = {i for t, i in answered if t > killed_at + 1.0}  # from the worker the server started anew
    assert flushed_before and after and flushed_before <= stored and after <= stored
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
        time.sleep(2.5)  # past the writer's one-second flush
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
        time.sleep(1.5)
    finally:
        stop_process(process)
    assert not registered.capture_dir.exists()
