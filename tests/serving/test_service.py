"""The real ``bentoml serve`` on loopback, serving a model from a real MLflow SQLite registry."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sagestack.config import load_settings
from sagestack.registry import load_predictor, log_model_run
from sagestack.serving.requests import MAX_REQUEST_BYTES, MAX_REVIEW_CHARS, MAX_REVIEWS_PER_REQUEST
from sagestack.text import make_params, train_fasttext
from sagestack.bento.launch import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
BENTOML = Path(sys.executable).with_name("bentoml")
SERVICE = "sagestack.bento.service:SentimentService"
MODEL = {"name": "sentiment", "version": "1", "alias": "champion", "kind": "fasttext", "source": "models:/sentiment/1",
         "variant": None}
REVIEWS = [
    "Love it, fits perfectly and the fabric is soft",
    "It is okay, nothing special",
    "Cheap fabric, fell apart after one wash, sent it back",
]
TOO_LARGE = f"request body is larger than {MAX_REQUEST_BYTES} bytes; send fewer or shorter reviews"


def serve(home: Path, model_ref: str, log: Path, **extra_env: str) -> tuple[subprocess.Popen, str]:
    """Start ``bentoml serve`` in the background (with ``extra_env`` set); returns the process and its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGESTACK_", "BENTOML_"))}
    env.update(
        SAGESTACK_HOME=str(home), SAGESTACK_MODEL=model_ref,
        # One BentoML home per server: a `bentoml serve` empties its home's Prometheus folder when it starts,
        # which would wipe the metrics of a server already running on the same home.
        BENTOML_HOME=str(log.parent / "bentoml"), BENTOML_DO_NOT_TRACK="true", **extra_env,
    )
    cmd = [str(BENTOML), "serve", SERVICE, "--host", "127.0.0.1", "--port", str(port)]
    # A file, not a pipe: a full pipe would block the server's logging.
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def registry(blazingtext_split, tmp_path_factory) -> Path:
    """A SAGESTACK_HOME whose MLflow registry holds ``sentiment`` version 1 (fastText) as ``champion``."""
    train, validation = blazingtext_split
    root = tmp_path_factory.mktemp("serving")
    settings = load_settings(cwd=root, environ={}, home=root / "home")
    result = train_fasttext(train, root / "model", make_params(threads=1), validation_file=validation)
    log_model_run(result.out_dir, settings=settings, model_name="sentiment", approval="Approved", aliases=("champion",))
    return settings.home


@pytest.fixture(scope="module")
def expected(registry):
    """What the library itself predicts for a review, to compare the server's answers with."""
    predictor, _ = load_predictor(load_settings(cwd=registry, environ={}, home=registry), "sentiment@champion")
    return lambda review: predictor.predict([review])[0].to_dict()


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    """Where the module's server writes its output."""
    return tmp_path_factory.mktemp("serve-log") / "serve.log"


@pytest.fixture(scope="module")
def server(registry, server_log):
    """The running server (access log at its default, ``sampled``): ``(process, client)``; started once for the module."""
    log = server_log
    proc, url = serve(registry, "sentiment@champion", log)
    client = httpx.Client(base_url=url, timeout=30)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bentoml serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"bentoml serve not ready after 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc, client
    finally:
        client.close()
        stop_process(proc, timeout=30)


def check_prediction(item: dict, review: str, expected) -> None:
    assert item["label"] in (-1, 0, 1)
    assert set(item["probabilities"]) == {"-1", "0", "1"}
    assert sum(item["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert str(item["label"]) == max(item["probabilities"], key=item["probabilities"].get)
    assert {"label": item["label"], "probabilities": item["probabilities"]} == expected(review)


@pytest.mark.parametrize("reviews", [REVIEWS[:1], REVIEWS], ids=["one", "three"])
def test_predict_answers_labels_probabilities_and_the_model_version(server, expected, reviews):
    _, client = server
    response = client.post("/predict", json={"reviews": reviews})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == MODEL
    assert len(body["predictions"]) == len(reviews)
    for item, review in zip(body["predictions"], reviews):
        check_prediction(item, review, expected)


def test_predict_accepts_the_largest_allowed_request(server):
    _, client = server
    reviews = ["fits well " * (MAX_REVIEW_CHARS // 10)] * MAX_REVIEWS_PER_REQUEST
    response = client.post("/predict", json={"reviews": reviews})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == MAX_REVIEWS_PER_REQUEST


def test_predict_batch_keeps_each_answer_with_its_request(server, expected):
    _, client = server
    # Distinct reviews sent concurrently are batched together; each must get its own answer.
    reviews = [f"{text} {i}" for i in range(8) for text in REVIEWS]

    def post(review: str) -> httpx.Response:
        return client.post("/predict_batch", json={"reviews": [review]})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, reviews))
    for review, response in zip(reviews, responses):
        assert response.status_code == 200, response.text
        [item] = response.json()
        assert item["model"] == MODEL
        check_prediction({k: item[k] for k in ("label", "probabilities")}, review, expected)

    several = client.post("/predict_batch", json={"reviews": REVIEWS})
    assert several.status_code == 200 and len(several.json()) == len(REVIEWS)


def access_lines(log: Path, route: str, status: int) -> int:
    """How many access-log lines the server wrote for answers of ``status`` on ``route``."""
    return sum(f"path={route}," in line and f"(status={status}," in line
               for line in log.read_text(errors="replace").splitlines())


def test_the_default_access_log_keeps_a_sample_of_requests_and_every_error(server, server_log):
    """SAGESTACK_ACCESS_LOG=sampled: one successful request in 100 per worker (the first included), every
    4xx; and no Pydantic deprecation warning from BentoML's request handling."""
    _, client = server
    before = access_lines(server_log, "/predict_batch", 200), access_lines(server_log, "/predict_batch", 400)
    for i in range(220):
        assert client.post("/predict_batch", json={"reviews": [f"{REVIEWS[0]} {i}"]}).status_code == 200
    for _ in range(2):
        assert client.post("/predict_batch", json={"reviews": []}).status_code == 400
    time.sleep(1)  # the workers' log lines reach the file
    ok = access_lines(server_log, "/predict_batch", 200) - before[0]
    errors = access_lines(server_log, "/predict_batch", 400) - before[1]
    assert 1 <= ok <= 4, ok  # at most 220 // 100 + one first line per worker
    assert errors == 2
    text = server_log.read_text(errors="replace")
    assert "PydanticDeprecatedSince211" not in text and "model_fields" not in text


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_probes(server, path):
    _, client = server
    assert client.get(path).status_code == 200


def test_metrics_are_prometheus_text(server):
    _, client = server
    client.post("/predict", json={"reviews": REVIEWS[:1]})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE bentoml_service_request_total counter" in response.text
    assert 'bentoml_service_request_total{endpoint="/predict",http_response_code="200"' in response.text
    # sagestack's own per-variant series (no variant configured here: an empty label).
    assert 'sagestack_invocations_total{model_version="1",outcome="ok",route="/predict",variant=""}' in response.text
    assert 'sagestack_request_duration_seconds_count{route="/predict",variant=""}' in response.text


def test_openapi_documents_both_routes_and_the_limits(server):
    _, client = server
    spec = client.get("/docs.json").json()
    assert {"/predict", "/predict_batch"} <= set(spec["paths"])
    reviews = spec["components"]["schemas"]["predict__Input"]["properties"]["reviews"]
    assert reviews["maxItems"] == MAX_REVIEWS_PER_REQUEST and reviews["minItems"] == 1
    assert reviews["items"]["maxLength"] == MAX_REVIEW_CHARS


def oversized_chunks():
    chunk = b" " * 65536
    for _ in range(MAX_REQUEST_BYTES // len(chunk) + 2):
        yield chunk


BAD_INPUTS = [
    # (id, request kwargs, status, error type or None, message)
    ("invalid-json", {"content": b'{"reviews": ["a"'}, 400, "json_invalid",
     "Invalid JSON: EOF while parsing a list at line 1 column 16"),
    ("not-an-object", {"json": ["a"]}, 400, "model_type", "Input should be an object"),
    ("no-reviews", {"json": {"review": ["a"]}}, 400, "missing", "Field required"),
    ("empty-body", {"content": b""}, 400, "missing", "Field required"),
    ("reviews-not-a-list", {"json": {"reviews": "great"}}, 400, "invalid_reviews",
     "reviews must be a list of strings, got str"),
    ("item-not-a-string", {"json": {"reviews": ["ok", 5]}}, 400, "invalid_reviews",
     "reviews[1] must be a string, got int"),
    ("empty-list", {"json": {"reviews": []}}, 400, "invalid_reviews", "reviews is empty; send at least one review"),
    ("empty-string", {"json": {"reviews": [""]}}, 400, "invalid_reviews", "reviews[0] is empty; send the review text"),
    ("blank-string", {"json": {"reviews": ["ok", "  \n"]}}, 400, "invalid_reviews",
     "reviews[1] is empty; send the review text"),
    ("too-long", {"json": {"reviews": ["x" * (MAX_REVIEW_CHARS + 1)]}}, 400, "invalid_reviews",
     "reviews[0] is too long: 5001 characters (at most 5000)"),
    ("too-many", {"json": {"reviews": ["ok"] * (MAX_REVIEWS_PER_REQUEST + 1)}}, 400, "invalid_reviews",
     "too many reviews: 65 (at most 64 per request); split the request"),
    ("oversized-body", {"content": b" " * (MAX_REQUEST_BYTES + 1)}, 413, None, TOO_LARGE),
    ("oversized-chunked-body", {"content": oversized_chunks}, 413, None, TOO_LARGE),
    ("form-body", {"data": {"reviews": "a"}}, 415, None,
     "unsupported Content-Type 'application/x-www-form-urlencoded'; send application/json"),
    ("multipart-body", {"content": b"{}", "headers": {"Content-Type": "multipart/form-data"}}, 415, None,
     "unsupported Content-Type 'multipart/form-data'; send application/json"),
]


@pytest.mark.parametrize("route", ["/predict", "/predict_batch"])
@pytest.mark.parametrize(("kwargs", "status", "error_type", "message"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_a_clear_4xx(server, expected, route, kwargs, status, error_type, message):
    """Each bad request gets its 4xx, and the server survives it: the next good request is answered right."""
    proc, client = server
    kwargs = dict(kwargs)
    if callable(kwargs.get("content")):
        kwargs["content"] = kwargs["content"]()
    if "content" in kwargs and "headers" not in kwargs:
        kwargs["headers"] = {"Content-Type": "application/json"}
    response = client.post(route, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    if error_type is None:
        assert body == {"error": message}
    else:
        assert body["error"] == "1 validation error for Input"
        [detail] = body["detail"]
        assert (detail["type"], detail["msg"]) == (error_type, message)
    assert proc.poll() is None
    response = client.post("/predict", json={"reviews": REVIEWS[:1]})
    assert response.status_code == 200
    check_prediction(response.json()["predictions"][0], REVIEWS[0], expected)


def test_an_unknown_model_stops_startup_with_the_registry_message(registry, tmp_path):
    proc, _ = serve(registry, "sentiment@nope", tmp_path / "serve.log")
    try:
        returncode = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        stop_process(proc, timeout=30)
        pytest.fail("bentoml serve kept running with a model that does not exist")
    output = (tmp_path / "serve.log").read_text()
    assert returncode != 0
    assert "model 'sentiment' has no alias 'nope'; see `sagestack models show sentiment`" in output


def test_a_baseline_champion_is_served_by_the_same_service(sample_split, tmp_path):
    """A second kind, served by the same code: heavy kinds predict in a worker thread, concurrent
    requests share model calls; with SAGESTACK_ACCESS_LOG=on every request is logged."""
    from sagestack.models.baseline import train_baseline

    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    train_baseline(sample_split / "train.csv", tmp_path / "baseline", validation_csv=sample_split / "validation.csv")
    log_model_run(tmp_path / "baseline", settings=settings, model_name="sentiment", approval="Approved",
                  aliases=("champion",))
    predictor, info = load_predictor(settings, "sentiment@champion")
    assert (predictor.kind, info.kind, info.version) == ("baseline", "baseline", "1")
    proc, url = serve(settings.home, "sentiment@champion", tmp_path / "serve.log", SAGESTACK_ACCESS_LOG="on")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            deadline = time.monotonic() + 90
            while not _ready(client):
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "bentoml serve not ready after 90 s"
                time.sleep(0.3)
            body = client.post("/predict", json={"reviews": REVIEWS}).json()
            assert body["model"] == {"name": "sentiment", "version": "1", "alias": "champion", "kind": "baseline",
                                     "source": "models:/sentiment/1", "variant": None}
            assert [p for p in body["predictions"]] == [p.to_dict() for p in predictor.predict(REVIEWS)]
            with ThreadPoolExecutor(8) as pool:
                batch = list(pool.map(lambda r: client.post("/predict_batch", json={"reviews": [r]}), REVIEWS * 4))
            for review, response in zip(REVIEWS * 4, batch):
                [item] = response.json()
                assert item["model"]["kind"] == "baseline"
                assert {"label": item["label"], "probabilities": item["probabilities"]} == predictor.predict([review])[0].to_dict()
            assert client.post("/predict", json={"reviews": []}).status_code == 400
            check_concurrent_requests_share_model_calls(client, predictor)
        time.sleep(1)  # the workers' log lines reach the file
        # SAGESTACK_ACCESS_LOG=on: a line for every request (1 + 48 answered /predict, the refused one).
        assert access_lines(tmp_path / "serve.log", "/predict", 200) == 49
        assert access_lines(tmp_path / "serve.log", "/predict", 400) == 1
    finally:
        stop_process(proc, timeout=30)


def model_call_figures(client: httpx.Client) -> tuple[float, float]:
    """(model calls, requests they answered) of /predict and /predict_batch so far, every worker together."""
    text = client.get("/metrics").text
    figures = [float(re.search(rf'^sagestack_model_call_requests_{name}{{variant=""}} (\S+)$', text, re.M).group(1))
               for name in ("count", "sum")]
    return figures[0], figures[1]


def check_concurrent_requests_share_model_calls(client: httpx.Client, predictor) -> None:
    """Adaptive batching over HTTP: 48 concurrent one-review requests to a heavy kind's server take fewer
    model calls than requests (those arriving while a call runs share the next), each answered right."""
    calls_before, requests_before = model_call_figures(client)
    reviews = [f"{REVIEWS[i % 3]} " * 40 + str(i) for i in range(48)]  # long: a call lasts while others arrive
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda r: client.post("/predict", json={"reviews": [r]}), reviews))
    for review, response in zip(reviews, answers):
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == [p.to_dict() for p in predictor.predict([review])]
    calls, requests = model_call_figures(client)
    assert requests - requests_before == len(reviews)
    assert calls - calls_before < len(reviews), "no two concurrent requests shared a model call"


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


BAD_ID_INPUTS = [
    # (id, request kwargs, status, error type or None, message): /predict_by_id's body is {"review_ids": [...]}
    ("invalid-json", {"content": b'{"review_ids": [1'}, 400, "json_invalid",
     "Invalid JSON: EOF while parsing a list at line 1 column 17"),
    ("not-an-object", {"json": [1]}, 400, "model_type", "Input should be an object"),
    ("no-review-ids", {"json": {"ids": [1]}}, 400, "missing", "Field required"),
    ("ids-not-a-list", {"json": {"review_ids": 3}}, 400, "invalid_review_ids",
     "review_ids must be a list of integers, got int"),
    ("string-id", {"json": {"review_ids": [1, "3"]}}, 400, "invalid_review_ids",
     "review_ids[1] must be a non-negative integer, got '3'"),
    ("negative-id", {"json": {"review_ids": [-1]}}, 400, "invalid_review_ids",
     "review_ids[0] must be a non-negative integer, got -1"),
    ("boolean-id", {"json": {"review_ids": [True]}}, 400, "invalid_review_ids",
     "review_ids[0] must be a non-negative integer, got True"),
    ("fractional-id", {"json": {"review_ids": [1.5]}}, 400, "invalid_review_ids",
     "review_ids[0] must be a non-negative integer, got 1.5"),
    ("too-large-id", {"json": {"review_ids": [2**63]}}, 400, "invalid_review_ids",
     f"review_ids[0] is too large: {2**63} (at most {2**63 - 1})"),
    ("empty-list", {"json": {"review_ids": []}}, 400, "invalid_review_ids", "review_ids is empty; send at least one id"),
    ("too-many", {"json": {"review_ids": list(range(MAX_REVIEWS_PER_REQUEST + 1))}}, 400, "invalid_review_ids",
     "too many review_ids: 65 (at most 64 per request); split the request"),
    ("oversized-body", {"content": b" " * (MAX_REQUEST_BYTES + 1)}, 413, None, TOO_LARGE),
    ("form-body", {"data": {"review_ids": "1"}}, 415, None,
     "unsupported Content-Type 'application/x-www-form-urlencoded'; send application/json"),
]


@pytest.mark.parametrize(("kwargs", "status", "error_type", "message"), [case[1:] for case in BAD_ID_INPUTS],
                         ids=[case[0] for case in BAD_ID_INPUTS])
def test_predict_by_id_bad_input_is_a_clear_4xx(server, expected, kwargs, status, error_type, message):
    """The same checks as /predict's, on /predict_by_id: refused before the feature store is asked."""
    test_bad_input_is_a_clear_4xx(server, expected, "/predict_by_id", kwargs, status, error_type, message)


def test_predict_by_id_without_a_feature_store_then_after_an_ingest(server, registry, expected, sample_csv):
    """Started before any ingest, the endpoint says the store is empty; a store filled after its warm-up is
    opened on the next request (no restart), and the stored reviews are predicted as their text is. Its 404s
    are {"error": ...} as every other error (a raised 404 was BentoML's [{"error": ...}])."""
    from sagestack.data import load_reviews
    from sagestack.features import ingest, read_features

    proc, client = server
    settings = load_settings(cwd=registry, environ={}, home=registry)
    if read_features(settings) is None:  # the module's server is shared: only the first run sees no store
        empty = client.post("/predict_by_id", json={"review_ids": [1]})
        assert empty.status_code == 404 and empty.json() == {
            "error": "the feature store is empty; run `sagestack features ingest` for this SAGESTACK_HOME"}
        ingest(settings, load_reviews(sample_csv).frame.head(30))
    table = read_features(settings).set_index("review_id")
    ids = [int(i) for i in table.index[:3]]
    for _ in range(4):  # each worker opens the store on its first request
        answer = client.post("/predict_by_id", json={"review_ids": ids})
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert [p["review_id"] for p in predictions] == ids
        for item, review_id in zip(predictions, ids):
            check_prediction(item, table.loc[review_id, "review_body"], expected)
    unknown = client.post("/predict_by_id", json={"review_ids": [ids[0], 10**9]})
    assert unknown.status_code == 404 and unknown.json() == {"error": "review id(s) 1000000000 not found in the "
                                                             "feature store; ingest them with `sagestack features ingest`"}
    assert client.get("/readyz").status_code == 200 and proc.poll() is None
