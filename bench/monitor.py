"""Model monitoring costs: data capture's overhead on the endpoint, and a monitoring run over 1M records.

1. The same fastText champion served in one run with capture off and capture at 100 %,
   alternated three times (off, on, off, on, off, on) so a drift of this machine's speed hits both; ``/predict`` at
   32 clients with no pause (saturation) and pausing 30 ms after each answer (about 1,000 requests/s), through
   wrk when installed (else httpx). Target: p99 with capture within 10 % of p99 without.
2. ``run_monitor`` over 1,000,000 captured records (the course's reviews with the model's
   predictions, repeated, written in the capture layout), with ground truth for 10 % of them.
3. Bias drift's power: 600-review windows of the test split (as in tests/monitor) in which a share
   of the Dresses predictions is made wrong; how many of 10 windows report Dresses' bias drift.
Run: .venv/bin/python bench/monitor.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from serving_http import Measure, off_on, train_and_register
from sagestack.config import load_settings
from sagestack.data import prepare_dataset, resolve_dataset
from sagestack.models.kinds import load_model
from sagestack.monitor import make_baseline
from sagestack.monitor.capture import CaptureStore, _to_table, new_inference_id
from sagestack.monitor.job import run_monitor

CLIENTS = 32
RECORDS = 1_000_000
TARGET_OVERHEAD = 0.10


def capture_overhead(seconds: int, tmp: Path) -> None:
    os.environ.pop("SAGESTACK_CAPTURE", None)  # the "off" servers must not inherit a capture setting
    settings = load_settings(cwd=tmp, environ={}, home=tmp / "home")
    model_ref, _, _, validation = train_and_register(settings, tmp)
    texts = [line.split(" ", 1)[1].strip() for line in validation.read_text(encoding="utf-8").splitlines()][:200]
    bodies = [json.dumps({"reviews": [t]}) for t in texts]
    measure = Measure(shutil.which("wrk") is not None, seconds, tmp)
    print(f"/predict at {CLIENTS} clients, {seconds} s per load ({'wrk' if measure.use_wrk else 'httpx'}):")
    print(f"{'server, route':<34} {'load':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    off_on(measure, lambda on: settings.replace(capture=100.0 if on else None), model_ref, bodies,
           "capture", CLIENTS, TARGET_OVERHEAD, pauses_ms=(0, 30))
    print(f"capture files written: {sum(1 for _ in settings.capture_dir.rglob('*.parquet'))}")


def monitor_million(tmp: Path) -> None:
    settings = load_settings(cwd=tmp, environ={}, home=tmp / "home-monitor")
    data = resolve_dataset(settings=settings).path
    prepared = prepare_dataset(data, tmp / "prepared", validation_fraction=0.1, test_fraction=0.1, seed=0)
    from sagestack.text import make_params, train_fasttext

    train_fasttext(prepared.files["train"]["fasttext"], tmp / "model-m", make_params())
    predictor = load_model(tmp / "model-m")
    validation = pd.read_csv(prepared.files["validation"]["csv"], dtype=str, keep_default_na=False)
    make_baseline(validation, predictor).write(tmp / "baseline")
    reviews = pd.read_csv(data, dtype=str, keep_default_na=False)
    labels = [str(p.label) for p in predictor.predict(reviews["review_body"].tolist())]
    probabilities = [json.dumps(p.probabilities) for p in predictor.predict(reviews["review_body"].tolist())]
    from datetime import datetime, timedelta, timezone

    start = datetime(2026, 11, 26, tzinfo=timezone.utc)
    written, truth = 0, []
    store = CaptureStore(tmp / "capture")
    t0 = time.perf_counter()
    while written < RECORDS:  # files of 2,000 records: about what one busy worker writes each second
        rows = []
        for i in range(min(2_000, RECORDS - written)):
            k = (written + i) % len(reviews)
            inference_id = new_inference_id()
            rows.append((inference_id, 0, start + timedelta(seconds=(written + i) * 0.05), "/predict",
                         reviews["review_body"].iat[k], labels[k], probabilities[k], "bench", "1", "fasttext", None))
            if (written + i) % 10 == 0:
                truth.append((inference_id, reviews["sentiment"].iat[k], reviews["product_category"].iat[k]))
        for hour in sorted({r[2].strftime("%Y/%m/%d/%H") for r in rows}):
            store.write(hour, _to_table([r for r in rows if r[2].strftime("%Y/%m/%d/%H") == hour]))
        written += len(rows)
    pd.DataFrame(truth, columns=["inference_id", "sentiment", "product_category"]).to_csv(tmp / "truth.csv", index=False)
    print(f"wrote {written:,} captured records in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    result = run_monitor(tmp / "baseline", tmp / "capture", tmp / "run", ground_truth=tmp / "truth.csv")
    seconds = time.perf_counter() - t0
    print(f"monitor run over {result['window']['rows']:,} records ({result['window']['with_ground_truth']:,} with ground "
          f"truth): {seconds:.1f} s, {result['window']['rows'] / seconds:,.0f} records/s; status {result['status']}")
    for violation in result["violations"]:  # the window includes the training reviews, and 1M records see small shifts
        print(f"  violation: {violation}")


def bias_power(tmp: Path) -> None:
    from sagestack.monitor import check_window
    from sagestack.monitor.run import PREDICTED

    predictor = load_model(tmp / "model-m")
    test = pd.read_csv(tmp / "prepared" / "test.csv", dtype=str, keep_default_na=False)
    test[PREDICTED] = [str(p.label) for p in predictor.predict(test["review_body"].tolist())]
    from sagestack.monitor import load_baseline

    baseline = load_baseline(tmp / "baseline")
    wrong = {"1": "-1", "0": "1", "-1": "1"}
    print("bias drift of Dresses, 600-review windows of the test split, 10 windows per row:")
    for share in (0.0, 0.3, 0.5, 0.7):
        caught, accuracies = 0, []
        for seed in range(10):
            window = test.sample(600, replace=True, random_state=100 + seed).reset_index(drop=True)
            dresses = window.index[window["product_category"] == "Dresses"]
            flipped = np.random.default_rng(seed).choice(dresses, int(share * len(dresses)), replace=False)
            window.loc[flipped, PREDICTED] = window.loc[flipped, "sentiment"].map(wrong)
            accuracies.append((window.loc[dresses, PREDICTED] == window.loc[dresses, "sentiment"]).mean())
            result = check_window(window, baseline, seed=seed)
            caught += any(b["status"] == "drift" and b["facet_value"] == "Dresses" for b in result["bias"])
        print(f"  {share:.0%} of Dresses predictions made wrong (their accuracy {np.mean(accuracies):.2f}): "
              f"caught in {caught} of 10 windows")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--skip-capture", action="store_true")
    parser.add_argument("--only-capture", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_capture:
            capture_overhead(args.seconds, Path(tmp))
        if not args.only_capture:
            monitor_million(Path(tmp))
            bias_power(Path(tmp))


if __name__ == "__main__":
    main()
