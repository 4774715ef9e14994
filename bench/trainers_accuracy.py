"""Test accuracy of every pipeline trainer on the 7,110 reviews, side by side, over several splits.

For each seed, sagestack's stratified 90/5/5 split of reviews_balanced.csv (the pipeline's
proportions); fastText (sagestack defaults) and the TF-IDF + logistic-regression baseline are
trained on the same train split and scored on the same test split. A 356-review test split
is noisy (one review is 0.28 points), hence several seeds. For reference: SageMaker
Autopilot reached 0.59-0.63 on these reviews.
Run: .venv/bin/python bench/trainers_accuracy.py [SEEDS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

from sagestack.config import load_settings
from sagestack.data import prepare_dataset, resolve_dataset
from sagestack.models import evaluate_predictor, load_model
from sagestack.models.baseline import train_baseline
from sagestack.text import make_params, train_fasttext


def main(seeds: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = resolve_dataset(settings=load_settings(cwd=tmp, environ={}, home=tmp / "home")).path
        print(f"data: {data}")
        scores: dict[str, list[float]] = {"fasttext": [], "baseline": []}
        seconds: dict[str, list[float]] = {"fasttext": [], "baseline": []}
        for seed in range(seeds):
            split = prepare_dataset(data, tmp / f"split-{seed}", seed=seed).out_dir
            fasttext = train_fasttext(split / "train.txt", tmp / f"ft-{seed}", make_params(seed=seed),
                                      validation_file=split / "validation.txt")
            card, _ = train_baseline(split / "train.csv", tmp / f"bl-{seed}")
            seconds["fasttext"].append(fasttext.train_seconds)
            seconds["baseline"].append(card.metrics["train_seconds"])
            test = pd.read_csv(split / "test.csv")
            for kind, model_dir in (("fasttext", tmp / f"ft-{seed}"), ("baseline", tmp / f"bl-{seed}")):
                accuracy = evaluate_predictor(load_model(model_dir), test["review_body"].astype(str), test["sentiment"]).accuracy
                scores[kind].append(accuracy)
            print(f"seed {seed}: test reviews {len(test)}; fasttext {scores['fasttext'][-1]:.4f}; "
                  f"baseline {scores['baseline'][-1]:.4f}", flush=True)
    print(f"{'trainer':10} {'test acc mean':>13} {'min':>7} {'max':>7} {'train s':>8}")
    for kind in scores:
        print(f"{kind:10} {statistics.mean(scores[kind]):13.4f} {min(scores[kind]):7.4f} {max(scores[kind]):7.4f} "
              f"{statistics.mean(seconds[kind]):8.2f}")
    diff = [b - f for b, f in zip(scores["baseline"], scores["fasttext"])]
    print(f"baseline - fasttext, same splits: mean {statistics.mean(diff):+.4f} (per seed {', '.join(f'{d:+.4f}' for d in diff)})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
