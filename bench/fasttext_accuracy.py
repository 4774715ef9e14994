"""Accuracy, training time and model size of the fastText classifier on the course's BlazingText split.

Prints one line per configuration, each trained REPEATS times (fastText's multi-threaded
training is not bit-reproducible), next to SageMaker BlazingText's 0.4951 on the same split.
Run: .venv/bin/python bench/fasttext_accuracy.py
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from course_split import blazingtext_split
from sagestack.config import load_settings
from sagestack.text import make_params, train_fasttext

SAGEMAKER_BLAZINGTEXT = 0.4951
REPEATS = 3
LAB = {"epochs": 10, "learning_rate": 0.01, "min_count": 2, "vector_dim": 300, "word_ngrams": 3}
CONFIGS = {
    "BlazingText lab hyperparameters (2M buckets, as BlazingText)": make_params("blazingtext", **LAB),
    "BlazingText lab hyperparameters, 100k buckets": make_params("blazingtext", **LAB, buckets=100_000),
    "sagestack defaults": make_params(),
    "sagestack defaults, quantized": make_params(quantize=True),
}


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        run(load_settings(), Path(work))


def run(settings, work: Path) -> None:
    train, validation = blazingtext_split(settings, work)
    print(f"data: {train} / {validation}; SageMaker BlazingText (lab): {SAGEMAKER_BLAZINGTEXT}")
    print(f"{'configuration':62} {'acc mean':>8} {'acc min':>8} {'vs SM':>7} {'train s':>8} {'model MB':>9}")
    for name, params in CONFIGS.items():
        accuracies, seconds, size = [], [], 0.0
        for seed in range(REPEATS):
            with tempfile.TemporaryDirectory() as tmp:
                result = train_fasttext(
                    train, Path(tmp) / "m", params.model_copy(update={"seed": seed}), validation_file=validation
                )
                accuracies.append(result.validation.accuracy)
                seconds.append(result.train_seconds)
                size = result.model_size_mb
        mean = statistics.mean(accuracies)
        print(
            f"{name:62} {mean:8.4f} {min(accuracies):8.4f} {mean - SAGEMAKER_BLAZINGTEXT:+7.4f} "
            f"{max(seconds):8.2f} {size:9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
