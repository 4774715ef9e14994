"""/readyz tells the truth in the scaled-out configuration: a real redis-server as the online store
is stopped and started again, the model's files are moved away and back, and the real ``bentoml
serve`` reports each with the reason, then recovers by itself."""

import shutil
import time

import httpx
import pytest

from conftest import start_redis
from sagestack.config import load_settings
from sagestack.data import load_reviews
from sagestack.features import ingest, read_features
from sagestack.text import make_params, train_fasttext
from sagestack.bento.launch import free_port, running_server


def wait_for(url: str, status: int, timeout: float = 30.0) -> httpx.Response:
    """Poll ``/readyz`` until it answers ``status``; the probe's checks are re-run once a second."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{url}/readyz", timeout=10)
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory, sample_csv, blazingtext_split):
    """One worker serving a local fastText model over a Redis online store that persists to disk."""
    root = tmp_path_factory.mktemp("readiness")
    port = free_port()
    redis = start_redis(port, root, persist=True)
    settings = load_settings(cwd=root, environ={}, home=root / "home", workers=1,
                             online_store=f"redis://127.0.0.1:{port}")
    ingest(settings, load_reviews(sample_csv).frame.head(60), max_seq_length=32)
    model = train_fasttext(blazingtext_split[0], root / "model", make_params(threads=1)).out_dir
    state = {"redis": redis}
    try:
        with running_server(settings, str(model)) as url:
            yield {"url": url, "settings": settings, "model": model, "port": port, "root": root, "state": state}
    finally:
        state["redis"].terminate()
        state["redis"].wait(timeout=10)


def test_redis_down_makes_readyz_503_with_the_reason_and_it_recovers_when_redis_returns(endpoint):
    url, state = endpoint["url"], endpoint["state"]
    review_id = int(read_features(endpoint["settings"])["review_id"].iloc[3])
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    assert httpx.post(f"{url}/predict_by_id", json={"review_ids": [review_id]}, timeout=30).status_code == 200

    state["redis"].terminate()
    state["redis"].wait(timeout=10)
    down = wait_for(url, 503)
    assert down.status_code == 503
    location = f"redis://127.0.0.1:{endpoint['port']}"
    assert down.text == f"the online feature store at {location} is unreachable (ConnectionError); try again when it is back"
    by_id = httpx.post(f"{url}/predict_by_id", json={"review_ids": [review_id]}, timeout=30)
    assert by_id.status_code == 503 and by_id.headers["retry-after"] == "5"
    assert by_id.json() == {"error": down.text}
    # What does not need the store keeps working, and the worker stays alive.
    assert httpx.post(f"{url}/predict", json={"reviews": ["fits well"]}, timeout=30).status_code == 200
    assert httpx.get(f"{url}/livez", timeout=10).status_code == 200

    state["redis"] = start_redis(endpoint["port"], endpoint["root"], persist=True)
    assert wait_for(url, 200).status_code == 200
    answer = httpx.post(f"{url}/predict_by_id", json={"review_ids": [review_id]}, timeout=30)
    assert answer.status_code == 200 and answer.json()["predictions"][0]["review_id"] == review_id


def test_model_files_gone_make_readyz_503_until_they_are_back(endpoint):
    url, model = endpoint["url"], endpoint["model"]
    moved = model.with_name("model-moved-away")
    shutil.move(model, moved)
    try:
        gone = wait_for(url, 503)
        assert gone.status_code == 503
        assert gone.text == f"the model files at {model} are gone; restore them or restart the endpoint on another model"
    finally:
        shutil.move(moved, model)
    assert wait_for(url, 200).status_code == 200
