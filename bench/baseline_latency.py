"""The baseline kind's in-process cost per review: scikit-learn's pipeline against sagestack's scorer, same run.

Trains the baseline (defaults) on sagestack's 90/5/5 split of the 7,110 reviews (seed 0), or loads
``--model DIR``, and times ``predict_proba`` on 1 / 16 / 256 distinct test reviews per call two ways:
the fitted scikit-learn pipeline (what ``BaselinePredictor.predict_proba`` called before) and
``BaselinePredictor.predict_proba``. The scorer caches each word's character n-gram ids, so it is
timed twice: a fresh predictor's first pass over the test reviews (cold cache) and the passes after.
Both paths' probabilities are compared on every test review.
Run: .venv/bin/python bench/baseline_latency.py [--model DIR] [--seconds S]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sagestack.config import load_settings
from sagestack.data import prepare_dataset, resolve_dataset
from sagestack.models.baseline import BaselinePredictor, train_baseline


def _per_call(predict, texts: list[str], size: int, seconds: float) -> list[float]:
    """Seconds per call of ``predict`` on successive ``size``-review slices of ``texts`` (wrapping round)."""
    times, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < seconds or len(times) < 3:
        batch = [texts[(i + k) % len(texts)] for k in range(size)]
        i += size
        began = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - began)
    return times


def main(model: Path | None, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = resolve_dataset(settings=load_settings(cwd=tmp, environ={}, home=tmp / "home")).path
        split = prepare_dataset(data, tmp / "split", seed=0).out_dir
        texts = pd.read_csv(split / "test.csv")["review_body"].astype(str).tolist()
        if model is None:
            model = tmp / "baseline"
            card, _ = train_baseline(split / "train.csv", model)
            print(f"trained on {split / 'train.csv'} in {card.metrics['train_seconds']:.1f} s; vocabulary {card.metrics['vocabulary']:.0f}")
        predictor = BaselinePredictor.load(model)

    cold = []
    for text in texts:  # a fresh predictor: every word's n-grams computed once
        began = time.perf_counter()
        predictor.predict_proba([text])
        cold.append(time.perf_counter() - began)
    reference = predictor.pipeline.predict_proba(texts)
    ours = predictor.predict_proba(texts)
    print(f"{len(texts)} test reviews (mean {statistics.mean(map(len, texts)):.0f} characters); "
          f"largest probability difference {np.abs(reference - ours).max():.1e}; same labels: "
          f"{bool((reference.argmax(axis=1) == ours.argmax(axis=1)).all())}")
    print(f"one review, fresh predictor (cold word cache): median {statistics.median(cold) * 1e3:.3f} ms, "
          f"max {max(cold) * 1e3:.3f} ms")
    print(f"{'reviews/call':>12} {'path':>12} {'ms/review':>10} {'p99 ms/call':>12} {'reviews/s':>10}")
    ratios = []
    for size in (1, 16, 256):
        rates = {}
        for name, predict in (("scikit-learn", predictor.pipeline.predict_proba), ("sagestack", predictor.predict_proba)):
            times = _per_call(predict, texts, size, seconds)
            per_review = statistics.median(times) / size
            rates[name] = 1 / per_review
            print(f"{size:>12} {name:>12} {per_review * 1e3:10.3f} {np.percentile(times, 99) * 1e3:12.3f} {rates[name]:10.0f}")
        ratios.append(f"{size}: {rates['sagestack'] / rates['scikit-learn']:.1f}x")
    print(f"sagestack / scikit-learn reviews/s: {', '.join(ratios)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a trained baseline's folder (default: train one, ~20 s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per path and size")
    args = parser.parse_args()
    main(args.model, args.seconds)
