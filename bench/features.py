"""Feature-store figures: tokenization throughput, materialization time, online read latency.

Tokenizes reviews_balanced.csv with the bundled BERT tokenizer; ingests it (feast apply +
materialize into SQLite) in a throw-away home; then times online reads of the serving
feature service for 1 and 100 entities in-process (FeatureStore.get_online_features) and over
HTTP (`feast serve` on loopback). Larger stores (default 100k rows; `--rows 1000000`) are
synthesized by resampling the engineered rows with new ids and timed for materialization.
Run: .venv/bin/python bench/features.py [--rows N ...]
"""

from __future__ import annotations

import argparse
import subprocess
import resource
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from sagestack.config import load_settings
from sagestack.data import load_reviews, resolve_dataset
from sagestack.features import engineer_features, ingest, load_tokenizer, tokenize
from sagestack.features.store import FEATURES_FILE, apply, feast_command, feast_env, feast_dir, open_store
from sagestack.bento.launch import free_port

READS = 300


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):.2f} ms  p99 {np.percentile(ms, 99):.2f} ms"


def time_reads(call, ids_sets) -> list[float]:
    for ids in ids_sets[:20]:
        call(ids)  # warm-up
    samples = []
    for ids in ids_sets:
        start = time.perf_counter()
        call(ids)
        samples.append(time.perf_counter() - start)
    return samples


def materialize_synthetic(rows: int, base: pd.DataFrame, tmp: Path) -> float:
    """Time materializing ``rows`` resampled feature rows into a fresh home's SQLite online store."""
    settings = load_settings(home=tmp / f"home-{rows}")
    directory = feast_dir(settings)
    directory.mkdir(parents=True)
    picks = np.random.default_rng(0).integers(0, len(base), size=rows)
    table = base.iloc[picks].reset_index(drop=True).assign(review_id=np.arange(rows))
    table.to_parquet(directory / FEATURES_FILE, index=False)
    apply(settings)
    store = open_store(settings)
    start = time.perf_counter()
    store.materialize(start_date=table["event_timestamp"].min().to_pydatetime() - timedelta(seconds=1),
                      end_date=datetime.now(timezone.utc) + timedelta(seconds=1))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000], help="synthetic store sizes to materialize")
    args = parser.parse_args()
    reviews = load_reviews(resolve_dataset(settings=load_settings()).path).frame
    tokenizer = load_tokenizer()
    texts = reviews["review_body"].tolist()
    tokenize(tokenizer, texts[:500])  # warm-up
    start = time.perf_counter()
    tokenize(tokenizer, texts)
    seconds = time.perf_counter() - start
    print(f"tokenization: {len(texts) / seconds:,.0f} reviews/s ({len(texts)} reviews, max_seq_length 128)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = load_settings(home=tmp / "home")
        start = time.perf_counter()
        ingest(settings, reviews)
        print(f"ingest of {len(reviews):,} reviews (engineer + feast apply + materialize): {time.perf_counter() - start:.1f} s")
        base = pd.read_parquet(feast_dir(settings) / FEATURES_FILE)
        print(f"materialize {len(base):,} rows: {materialize_synthetic(len(base), base, tmp):.1f} s")
        for rows in args.rows:
            seconds = materialize_synthetic(rows, base, tmp)
            # Materialization runs in this process: its peak resident memory so far bounds what it needed.
            peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
            print(f"materialize {rows:,} rows: {seconds:.1f} s (peak resident memory of this process so far: {peak_gb:.1f} GB)",
                  flush=True)

        store = open_store(settings)
        service = store.get_feature_service("sentiment_serving_v1")
        rng = np.random.default_rng(1)
        ids = base["review_id"].to_numpy()
        for count in (1, 100):
            sets = [[{"review_id": int(i)} for i in rng.choice(ids, count)] for _ in range(READS)]
            samples = time_reads(lambda rows: store.get_online_features(features=service, entity_rows=rows).to_dict(), sets)
            print(f"online read in-process, {count} entit{'y' if count == 1 else 'ies'}: {percentiles(samples)}")

        port = free_port()
        server = subprocess.Popen(feast_command(settings, "serve", "--host", "127.0.0.1", "--port", str(port)),
                                  env=feast_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/get-online-features"
            client = httpx.Client(timeout=10)
            for _ in range(120):
                try:
                    client.post(url, json={"feature_service": "sentiment_serving_v1", "entities": {"review_id": [0]}})
                    break
                except httpx.HTTPError:
                    time.sleep(0.5)
            for count in (1, 100):
                sets = [[int(i) for i in rng.choice(ids, count)] for _ in range(READS)]
                samples = time_reads(lambda chosen: client.post(url, json={
                    "feature_service": "sentiment_serving_v1", "entities": {"review_id": chosen}}).raise_for_status(), sets)
                print(f"online read over HTTP (feast serve), {count} entit{'y' if count == 1 else 'ies'}: {percentiles(samples)}")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
