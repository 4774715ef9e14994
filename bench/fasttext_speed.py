"""fastText training throughput and single-review latency of the registered MLflow pyfunc model.

Trains with sagestack's defaults and with BlazingText's lab hyperparameters (words/sec/thread,
as BlazingText reports), registers the default model in a throw-away MLflow SQLite store,
loads it back with ``mlflow.pyfunc.load_model("models:/...@champion")`` and times single-review
predictions (p50/p99), next to the bare FastTextPredictor in the same run.
Run: .venv/bin/python bench/fasttext_speed.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from course_split import blazingtext_split
from sagestack.config import load_settings
from sagestack.data.fasttext_format import read_fasttext
from sagestack.registry import log_model_run
from sagestack.models.fasttext import FastTextPredictor
from sagestack.text import make_params, train_fasttext

N_PREDICTIONS = 2000


def percentiles(samples_s: list[float]) -> str:
    ms = np.array(samples_s) * 1000
    return f"p50 {np.percentile(ms, 50):.3f} ms  p99 {np.percentile(ms, 99):.3f} ms"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp) / "home")
        train, validation = blazingtext_split(settings, Path(tmp))
        lab = make_params("blazingtext", epochs=10, learning_rate=0.01, min_count=2, vector_dim=300, word_ngrams=3)
        for name, params in (("sagestack defaults", make_params()), ("BlazingText lab hyperparameters", lab)):
            result = train_fasttext(train, Path(tmp) / name.replace(" ", "_"), params, validation_file=validation)
            threads = result.params.fasttext_kwargs()["thread"]
            print(f"training, {name}: {result.words_per_sec_per_thread:,.0f} words/sec/thread "
                  f"({threads} threads, {result.train_seconds:.2f} s, {result.tokens * result.epochs_run:,} words)")

        result = train_fasttext(train, Path(tmp) / "served", make_params(), validation_file=validation)
        log_model_run(result.out_dir, settings=settings, model_name="bench", approval="Approved", aliases=("champion",))
        import mlflow

        mlflow.set_tracking_uri(settings.mlflow_uri)
        mlflow.set_registry_uri(settings.mlflow_uri)
        model = mlflow.pyfunc.load_model("models:/bench@champion")
        _, texts = read_fasttext(validation)
        reviews = [texts[i % len(texts)] for i in range(N_PREDICTIONS)]
        predictor = FastTextPredictor.load(result.model_path)

        for name, call in (
            ("pyfunc (models:/bench@champion), one-row DataFrame", lambda r: model.predict(pd.DataFrame({"review_body": [r]}))),
            ("FastTextPredictor.predict, one review", lambda r: predictor.predict([r])),
        ):
            for review in reviews[:50]:
                call(review)  # warm-up
            samples = []
            for review in reviews:
                start = time.perf_counter()
                call(review)
                samples.append(time.perf_counter() - start)
            print(f"latency, {name}: {percentiles(samples)} over {N_PREDICTIONS} reviews")


if __name__ == "__main__":
    main()
