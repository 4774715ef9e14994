"""A review flow attached to a real ``bentoml serve``: of 200 requests the low-confidence predictions name a
human loop in their response and the loop lands in the store; confident ones start nothing; an unknown flow
stops `sagestack serve` with one line."""

from __future__ import annotations

import json
import re

import httpx
import pandas as pd
import pytest

from conftest import run_sagestack, wait_until
from sagestack.config import load_settings
from sagestack.errors import DataError
from sagestack.monitor.capture import read_capture
from sagestack.registry import log_model_run
from sagestack.review import UnknownLoop, review_store
from sagestack.text import make_params, train_fasttext
from sagestack.bento.launch import free_port, running_server

FLOW = "reviews-sentiment"


@pytest.fixture(scope="module")
def served(sample_split, sample_csv, tmp_path_factory):
    """A fastText champion served with the flow attached (threshold 0.9, one reviewer)."""
    from sagestack.data import load_reviews
    from sagestack.features import ingest

    root = tmp_path_factory.mktemp("review-endpoint")
    settings = load_settings(cwd=root, environ={}, home=root / "home", review_flow=FLOW)
    ingest(settings, load_reviews(sample_csv).frame.head(20))
    # 25 epochs: sure of some reviews (about 57 % of the sample at 0.9 or above), unsure of the rest.
    train_fasttext(sample_split / "train.txt", root / "model", make_params(threads=1, epochs=25, learning_rate=0.5))
    log_model_run(root / "model", settings=settings, model_name="reviews-sentiment", approval="Approved",
                  aliases=("champion",))
    review_store(settings).create_flow(FLOW, threshold=0.9)
    # Captured too (SAGESTACK_CAPTURE=100): the reviewers' answers are the capture's ground truth.
    served_settings = settings.replace(capture=100.0, workers=1)
    with running_server(served_settings, "reviews-sentiment@champion", timeout=180) as url:
        yield settings, url


def send(url: str, reviews: list[str], review_ids: list[int]) -> dict:
    """One request per review to /predict, a /predict_batch of the first unsure review and a sure one, and
    a /predict_by_id of ``review_ids``; returns the answers and the human loops they name."""
    answers = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for review in reviews:
            reply = http.post("/predict", json={"reviews": [review]})
            assert reply.status_code == 200, reply.text
            answers.append(reply.json())
        predictions = [a["predictions"][0] for a in answers]
        unsure = [(p, a["inference_id"], r) for p, a, r in zip(predictions, answers, reviews)
                  if max(p["probabilities"].values()) < 0.9]
        sure = [p for p in predictions if max(p["probabilities"].values()) >= 0.9]
        assert unsure and sure, "the sample should hold both kinds of prediction"
        batch = http.post("/predict_batch", json={"reviews": [unsure[0][2], "Absolutely love this dress"]}).json()
        by_id = http.post("/predict_by_id", json={"review_ids": review_ids}).json()
    by_id_loops = [p["human_review"]["loop"] for p in by_id["predictions"] if "human_review" in p]
    loops = [p["human_review"]["loop"] for p, _, _ in unsure] + [b["human_review"]["loop"] for b in batch
                                                                   if "human_review" in b] + by_id_loops
    inference_ids = {a["inference_id"] for a in answers} | {b["inference_id"] for b in batch} | {by_id["inference_id"]}
    return {"unsure": unsure, "sure": sure, "batch": batch, "by_id": by_id, "by_id_loops": by_id_loops,
            "loops": loops, "inference_ids": inference_ids}


def wait_for_loops(store, names: list[str]) -> None:
    """Until the endpoint's background starter has written every named loop (it flushes every half second)."""
    def written() -> bool:
        try:
            return all(store.loop(name) for name in names)
        except UnknownLoop:
            return False

    wait_until(written, 30, lambda: f"the endpoint never wrote some of its {len(names)} human loops")


def started_total(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    found = re.search(r'^sagestack_human_loops_total\{outcome="started",variant=""\} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def test_low_confidence_predictions_start_loops_and_name_them(served, sample_csv):
    settings, url = served
    store = review_store(settings)
    loops_before, started_before = len(store.loops(flow=FLOW)), started_total(url)
    reviews = pd.read_csv(sample_csv)["review_body"].sample(200, random_state=1).tolist()
    sent = send(url, reviews, list(range(20)))
    unsure, batch, by_id = sent["unsure"], sent["batch"], sent["by_id"]
    assert all("human_review" not in p for p in sent["sure"])
    assert all(p["human_review"]["loop"].startswith("loop-") for p, _, _ in unsure)
    assert "review" not in by_id["predictions"][0]
    wait_for_loops(store, sent["loops"])
    for prediction, inference_id, review in unsure:
        loop = store.loop(prediction["human_review"]["loop"])
        assert (loop.status, loop.inference_id, loop.initial_value, loop.source) == (
            "InProgress", inference_id, str(prediction["label"]), "endpoint")
        assert loop.review == " ".join(review.split()) and loop.model["kind"] == "fasttext"
        assert loop.confidence == pytest.approx(max(prediction["probabilities"].values()))
    assert store.loop(batch[0]["human_review"]["loop"]).inference_id == batch[0]["inference_id"]
    assert all(store.loop(name).inference_id == by_id["inference_id"] for name in sent["by_id_loops"])
    started = len(unsure) + 1 + len(sent["by_id_loops"]) + ("human_review" in batch[1])
    assert started == len(sent["loops"]) and len(store.loops(flow=FLOW)) - loops_before == started
    assert started_total(url) - started_before == started


def test_reviewed_answers_are_the_monitoring_ground_truth(served, sample_csv, sample_split, tmp_path):
    """Answered loops export as `monitor run --ground-truth` reads them, joined to the captured records by
    inference id and item; the product category comes from the feature store for reviews it holds."""
    settings, url = served
    store = review_store(settings)
    answered_before = len(store.loops(flow=FLOW, status="Completed"))
    # Traffic of its own: loops this test answers, whatever other tests left in the flow.
    reviews = pd.read_csv(sample_csv)["review_body"].sample(60, random_state=2).tolist()
    sent = send(url, reviews, list(range(20)))
    wait_for_loops(store, sent["loops"])

    def captured() -> bool:
        try:
            frame, _ = read_capture(settings.capture_dir)
        except DataError:  # no capture folder yet
            return False
        return sent["inference_ids"] <= set(frame["inference_id"])

    wait_until(captured, 30, "the endpoint never captured this test's requests")
    for name in sent["loops"]:
        store.answer(name, "ann", store.loop(name).initial_value or "1")
    exported = run_sagestack(settings.home, "review", "export", "--format", "ground-truth", "--out",
                             str(tmp_path / "truth.csv"))
    assert exported.returncode == 0, exported.stderr
    truth = pd.read_csv(tmp_path / "truth.csv", dtype=str, keep_default_na=False)
    assert len(truth) == answered_before + len(sent["loops"])
    assert list(truth.columns) == ["inference_id", "item", "sentiment", "product_category"]
    assert {store.loop(name).inference_id for name in sent["loops"]} <= set(truth["inference_id"])
    by_id = truth[truth["inference_id"] == sent["by_id"]["inference_id"]]
    assert len(by_id) == len(sent["by_id_loops"]) and (by_id["product_category"] != "").all()
    from sagestack.features import read_features

    stored = read_features(settings)
    assert set(by_id["product_category"]) <= set(stored["product_category"])
    made = run_sagestack(settings.home, "monitor", "baseline", "--data", str(sample_split / "validation.csv"),
                         "--model", "reviews-sentiment@champion", "--out", str(tmp_path / "baseline"))
    assert made.returncode == 0, made.stderr
    ran = run_sagestack(settings.home, "monitor", "run", "--baseline", str(tmp_path / "baseline"), "--ground-truth",
                        str(tmp_path / "truth.csv"), "--out", str(tmp_path / "run"), "--json")
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["window"]["with_ground_truth"] == len(truth) and result["unknown_ground_truth"] == 0


def test_an_unknown_flow_stops_serve_with_one_line(served, tmp_path):
    settings, _ = served
    result = run_sagestack(settings.home, "serve", "--port", str(free_port()),
                           env={"SAGESTACK_REVIEW_FLOW": "no-such-flow"}, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
        "error: no flow named 'no-such-flow' (flows: reviews-sentiment)"), result.stderr
