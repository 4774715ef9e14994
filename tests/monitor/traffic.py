"""What the monitoring tests share: a model, its baseline, and traffic to draw windows from (a plain module, not a
conftest.py: a second conftest module would shadow tests/conftest.py for `from conftest import ...`)."""

from __future__ import annotations

import pandas as pd
import pytest

from sagestack.data import prepare_dataset
from sagestack.models.kinds import load_model
from sagestack.monitor import load_baseline, make_baseline
from sagestack.monitor.capture import CaptureWriter, new_inference_id
from sagestack.monitor.run import PREDICTED
from sagestack.text.params import make_params
from sagestack.text.training import train_fasttext

WINDOW = 600


def window(frame: pd.DataFrame, seed: int, size: int = WINDOW) -> pd.DataFrame:
    """A window of traffic: ``size`` rows drawn with replacement."""
    return frame.sample(size, replace=True, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="session")
def world(shared_data, tmp_path_factory):
    """fastText trained on 80 % of the 7,110 reviews, a baseline on the 10 % validation split, and
    the 10 % test split with the model's predictions: the traffic the windows are drawn from."""
    out = tmp_path_factory.mktemp("monitor")
    prepared = prepare_dataset(shared_data / "reviews_balanced.csv", out / "prepared", validation_fraction=0.1,
                               test_fraction=0.1, seed=0)
    # One thread: fastText trains deterministically (seeded), so the windows' statistical bounds hold run to run.
    train_fasttext(prepared.files["train"]["fasttext"], out / "model", make_params(threads=1))
    predictor = load_model(out / "model")
    read = lambda split: pd.read_csv(prepared.files[split]["csv"], dtype=str, keep_default_na=False)  # noqa: E731
    baseline = make_baseline(read("validation"), predictor)
    baseline.write(out / "baseline")
    test = read("test")
    test[PREDICTED] = [str(p.label) for p in predictor.predict(test["review_body"].tolist())]
    return {"baseline": load_baseline(out / "baseline"), "test": test, "predictor": predictor, "out": out}


def capture(location, frame: pd.DataFrame, predictor, per_request: int = 5, kind: str = "fasttext") -> pd.DataFrame:
    """Send ``frame``'s reviews through a CaptureWriter as the endpoint would (5 reviews a request);
    returns the ground truth: inference_id, item, sentiment, product_category."""
    writer = CaptureWriter(location, 100)
    truth = []
    model = {"name": "reviews-sentiment", "version": "1", "kind": kind, "variant": None}
    for start in range(0, len(frame), per_request):
        chunk = frame.iloc[start:start + per_request]
        reviews = chunk["review_body"].tolist()
        inference_id = new_inference_id()
        writer.offer(inference_id, "/predict", reviews, predictor.predict(reviews), model)
        truth += [{"inference_id": inference_id, "item": i, "sentiment": s, "product_category": c}
                  for i, (s, c) in enumerate(zip(chunk["sentiment"], chunk["product_category"]))]
    writer.close()
    assert writer.stats.dropped == 0 and writer.stats.written == len(frame)
    return pd.DataFrame(truth)
