"""Adaptive batching in the library endpoint (no web server): concurrent /predict and /predict_batch
requests share one model call, a lone request is predicted at once, and a review the model fails on
fails only its own request. The model is a test kind whose ``predict_proba`` counts its calls."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time

import numpy as np
import pytest

from sagestack.config import load_settings
from sagestack.models.base import ModelCard, TextClassifier
from sagestack.models.kinds import KINDS, ModelKind
from sagestack.serving.endpoint import Endpoint
from sagestack.serving.threads import model_thread


class CountingPredictor(TextClassifier):
    """A deterministic model that records each ``predict_proba`` call (its texts, thread and start time),
    takes ``delay`` seconds a call and refuses any text that contains "poison"."""

    kind = "counting"
    delay = 0.0

    def __init__(self):
        self.labels = ["-1", "0", "1"]
        self.calls: list[list[str]] = []
        self.starts: list[float] = []
        self.threads: list[threading.Thread] = []
        self.torch_threads: list[int | None] = []  # PyTorch's intra-op threads for each call, when torch is loaded

    def predict_proba(self, texts):
        self.starts.append(time.perf_counter())
        self.calls.append(list(texts))
        self.threads.append(threading.current_thread())
        torch = sys.modules.get("torch")
        self.torch_threads.append(torch.get_num_threads() if torch else None)
        if any("poison" in text for text in texts):
            raise ValueError("this model cannot read poison")
        time.sleep(self.delay)
        rows = np.full((len(texts), 3), 0.1)
        for row, text in zip(rows, texts):
            row[len(text) % 3] = 0.8
        return rows

    @classmethod
    def load(cls, model_dir):
        return cls()


def expected(text: str) -> dict:
    """What the counting model answers for one text on its own."""
    label = ["-1", "0", "1"][len(text) % 3]
    return {"label": int(label), "probabilities": {label: 0.8, **{other: 0.1 for other in ["-1", "0", "1"] if other != label}}}


def answer(item) -> dict:
    return {"label": item.label, "probabilities": item.probabilities}


@pytest.fixture(params=[False, True], ids=["cheap", "heavy"])
def model_dir(request, tmp_path, monkeypatch):
    """A model folder of the counting kind, registered as a cheap (on the loop) or heavy (model thread) kind."""
    monkeypatch.setitem(KINDS, "counting", ModelKind("counting", CountingPredictor, heavy=request.param))
    monkeypatch.setattr(CountingPredictor, "delay", 0.0)
    (tmp_path / "model").mkdir()
    ModelCard(kind="counting", labels=["-1", "0", "1"]).save(tmp_path / "model")
    return tmp_path / "model"


def serve(model_dir, scenario, environ: dict | None = None, **options):
    """Run ``scenario(endpoint, predictor)`` on a warm endpoint of the model (settings from ``environ``);
    returns what it returns."""

    async def main():
        settings = load_settings(cwd=model_dir.parent, environ=environ or {}, home=model_dir.parent / "home")
        endpoint = Endpoint(settings, str(model_dir), **options)
        await asyncio.to_thread(endpoint.warm_up, retry=False)
        try:
            predictor = endpoint.predictor
            for record in (predictor.calls, predictor.starts, predictor.threads, predictor.torch_threads):
                record.clear()  # the warm-up's call
            return await scenario(endpoint, predictor)
        finally:
            endpoint.stop()

    try:
        return asyncio.run(main())
    finally:
        gc.unfreeze()  # the warm-up freezes the heap, as a worker does once


def test_concurrent_requests_share_model_calls_and_each_gets_its_own_answer(model_dir):
    texts = [f"review number {i}" + "!" * i for i in range(12)]
    sizes = []

    async def scenario(endpoint, predictor):
        answers = await asyncio.gather(
            *(endpoint.predict("/predict", [text]) for text in texts[:6]),
            endpoint.predict("/predict", texts[6:9]),
            *(endpoint.predict_batch("/predict_batch", [text]) for text in texts[9:]),
        )
        return answers, predictor.calls, endpoint.model_calls

    answers, calls, model_calls = serve(model_dir, scenario, batched=sizes.append)
    assert len(calls) < 10 and model_calls == len(calls) == len(sizes)  # 10 requests
    assert sorted(text for call in calls for text in call) == sorted(texts)
    assert sum(sizes) == 10
    for text, response in zip(texts[:6], answers[:6]):
        [prediction] = response.predictions
        assert answer(prediction) == expected(text)
        assert response.model.kind == "counting" and response.inference_id
    assert [answer(p) for p in answers[6].predictions] == [expected(t) for t in texts[6:9]]
    for text, batch in zip(texts[9:], answers[7:]):
        [item] = batch
        assert answer(item) == expected(text) and item.inference_id


def test_a_lone_request_is_predicted_at_once_and_requests_arriving_meanwhile_go_together_next(model_dir):
    CountingPredictor.delay = 0.1

    async def scenario(endpoint, predictor):
        sent = time.perf_counter()
        lone = await endpoint.predict("/predict", ["all alone"])
        lone_wait = predictor.starts[0] - sent
        lone_total = time.perf_counter() - sent
        first = asyncio.ensure_future(endpoint.predict("/predict", ["first"]))
        await asyncio.sleep(0.03)  # the first call runs: these three wait for it, then share the next
        later = await asyncio.gather(*(endpoint.predict("/predict", [f"later {i}"]) for i in range(3)))
        return lone, lone_wait, lone_total, await first, later, predictor

    lone, lone_wait, lone_total, first, later, predictor = serve(model_dir, scenario)
    # No batching window: the model starts on the lone request at once, and it is answered when the model is.
    assert lone_wait < 0.02, f"a lone request waited {lone_wait * 1000:.1f} ms before its model call"
    assert lone_total < 0.1 + 0.05
    assert answer(lone.predictions[0]) == expected("all alone")
    assert predictor.calls == [["all alone"], ["first"], ["later 0", "later 1", "later 2"]]
    assert answer(first.predictions[0]) == expected("first")
    assert [answer(r.predictions[0]) for r in later] == [expected(f"later {i}") for i in range(3)]


def test_a_call_holds_at_most_max_batch_reviews(model_dir):
    async def scenario(endpoint, predictor):
        await asyncio.gather(*(endpoint.predict("/predict", [f"review {i}", "and another"]) for i in range(7)))
        return predictor.calls

    calls = serve(model_dir, scenario, max_batch_reviews=4)
    assert [len(call) for call in calls] == [4, 4, 4, 2]


def test_a_review_the_model_fails_on_fails_only_its_own_request(model_dir):
    async def scenario(endpoint, predictor):
        results = await asyncio.gather(
            endpoint.predict("/predict", ["good one"]),
            endpoint.predict("/predict", ["a poison pill", "innocent neighbour"]),
            endpoint.predict_batch("/predict_batch", ["good two"]),
            return_exceptions=True,
        )
        again = await endpoint.predict("/predict", ["after the failure"])
        return results, again, predictor.calls

    (good, bad, batch), again, calls = serve(model_dir, scenario)
    assert isinstance(bad, ValueError) and str(bad) == "this model cannot read poison"
    assert answer(good.predictions[0]) == expected("good one")
    assert answer(batch[0]) == expected("good two")
    assert answer(again.predictions[0]) == expected("after the failure")
    # The shared call failed, so each request was predicted on its own; then batching goes on.
    assert calls == [["good one", "a poison pill", "innocent neighbour", "good two"],
                     ["good one"], ["a poison pill", "innocent neighbour"], ["good two"], ["after the failure"]]


def test_a_heavy_kind_predicts_off_the_event_loop_and_a_cheap_one_on_it(model_dir):
    async def scenario(endpoint, predictor):
        await asyncio.gather(*(endpoint.predict("/predict", [f"r{i}"]) for i in range(3)))
        return predictor.threads, threading.current_thread(), endpoint._heavy

    threads, loop_thread, heavy = serve(model_dir, scenario)
    assert threads and all((thread is not loop_thread) == heavy for thread in threads)
    if heavy:  # every call of a heavy kind on the one model thread (its OpenMP team the process's only one)
        assert set(threads) == {model_thread().submit(threading.current_thread).result()}


def test_the_warm_up_loads_and_first_predicts_on_the_model_thread(model_dir, monkeypatch):
    loaded_on = []
    monkeypatch.setattr(CountingPredictor, "load",
                        classmethod(lambda cls, _: loaded_on.append(threading.current_thread()) or cls()))

    async def main():
        settings = load_settings(cwd=model_dir.parent, environ={}, home=model_dir.parent / "home")
        endpoint = Endpoint(settings, str(model_dir))
        try:
            await asyncio.to_thread(endpoint.warm_up, retry=False)
            return list(endpoint.predictor.threads)
        finally:
            endpoint.stop()

    predicted_on = asyncio.run(main())
    model = model_thread().submit(threading.current_thread).result()
    assert model is not threading.current_thread() and model.name.startswith("sagestack-model")
    assert loaded_on == [model] and predicted_on == [model]


def test_a_lone_request_runs_on_every_core_and_shared_calls_on_the_workers_share(model_dir, monkeypatch):
    import torch  # in the lock: the test must run, never skip

    from sagestack.serving.threads import available_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # else the operator's count stands (the test command sets 1)
    before = torch.get_num_threads()
    CountingPredictor.delay = 0.2

    async def scenario(endpoint, predictor):
        await endpoint.predict("/predict", ["all alone"])
        first = asyncio.ensure_future(endpoint.predict("/predict", ["first"]))
        while len(predictor.calls) < 2:  # the first call runs (however long a loaded machine takes to start it):
            await asyncio.sleep(0.001)  # the three sent now share the next
        await asyncio.gather(*(endpoint.predict("/predict", [f"later {i}"]) for i in range(3)), first)
        return predictor.calls, predictor.torch_threads

    try:
        calls, threads = serve(model_dir, scenario, environ={"SAGESTACK_WORKERS": "2"})
    finally:
        model_thread().submit(torch.set_num_threads, before).result()  # where the calls set it
    cores = available_cores()
    assert calls == [["all alone"], ["first"], ["later 0", "later 1", "later 2"]]
    assert threads == [cores, cores, max(1, cores // 2)]
