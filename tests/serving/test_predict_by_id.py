"""/predict_by_id: the endpoint reads the review from the real Feast online store and predicts it."""

import httpx
import pytest

from sagestack.config import load_settings
from sagestack.data import load_reviews
from sagestack.features import ingest, read_features
from sagestack.registry import log_model_run
from sagestack.models.fasttext import FastTextPredictor
from sagestack.text import make_params, train_fasttext
from serving.launch import running_server


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory, sample_csv, blazingtext_split):
    home = tmp_path_factory.mktemp("home")
    settings = load_settings(cwd=home, environ={}, home=home)
    ingest(settings, load_reviews(sample_csv).frame)
    result = train_fasttext(blazingtext_split[0], settings.home / "model", make_params(threads=1))
    log_model_run(result.out_dir, settings=settings, model_name="sentiment", approval="Approved", aliases=("champion",))
    with running_server(settings, "sentiment@champion") as url:
        yield url, settings, FastTextPredictor.load(result.model_path)


def test_predict_by_id_matches_predicting_the_stored_text(endpoint):
    url, settings, predictor = endpoint
    table = read_features(settings).set_index("review_id")
    answer = httpx.post(f"{url}/predict_by_id", json={"review_ids": [3, 11]}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"]["version"] == "1"
    expected = predictor.predict([table.loc[3, "review_body"], table.loc[11, "review_body"]])
    assert [(p["review_id"], p["label"]) for p in body["predictions"]] == [(3, expected[0].label), (11, expected[1].label)]


@pytest.mark.parametrize("ids, status, message", [
    ([3, 10**9], 404, "review id(s) 1000000000 not found in the feature store; ingest them with `sagestack features ingest`"),
    ([], 400, "review_ids is empty; send at least one id"),
    (["x"], 400, "review_ids[0] must be a non-negative integer, got 'x'"),
    (list(range(65)), 400, "too many review_ids: 65 (at most 64 per request); split the request"),
])
def test_bad_or_unknown_ids_are_4xx(endpoint, ids, status, message):
    url, _, _ = endpoint
    answer = httpx.post(f"{url}/predict_by_id", json={"review_ids": ids}, timeout=30)
    assert answer.status_code == status
    assert message in answer.text
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
