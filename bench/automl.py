"""AutoML (``sagestack automl``) on the 7,110 reviews: fit budget vs test accuracy, and prediction latency.

For each fit budget (60/120/240 s) with and without sentence embeddings, the whole job runs as
`sagestack automl` runs it (seeded stratified 80/20 split, 3 candidates, exploration, importance,
SHAP, MLflow, registration) and prints the best candidate, its test accuracy and macro-F1, the
fit time and the whole command's time. Beside it, in the same run, the yardsticks on the same
split: sagestack's TF-IDF + logistic-regression baseline and SageMaker Autopilot's lab figure
(0.591 validation accuracy; 0.63 at best, 3 candidates in a 2-hour budget).

The registered model is the best candidate refit on the fit and validation parts together
(``refit``); its test figures are printed beside the candidate's before the refit.

Then the single-review prediction latency (p50/p99 over 300 requests) of the default job's
registered model, loaded in-process and over HTTP (the BentoML endpoint on loopback).
Run: .venv/bin/python bench/automl.py [BUDGETS, e.g. 60,120,240]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from sagestack.automl.job import read_table, run_automl, split_for_automl
from sagestack.automl.search import AutoMLSpec
from sagestack.config import load_settings
from sagestack.data import resolve_dataset
from sagestack.models import evaluate_predictor, load_model
from sagestack.registry import load_predictor
from sagestack.bento.launch import running_server

REVIEW = "The fabric is lovely but it runs small, I had to return it for a larger size."
REQUESTS = 300


def latency(call) -> tuple[float, float]:
    """p50 and p99 in milliseconds of ``REQUESTS`` calls, after 20 warm-up calls."""
    for _ in range(20):
        call()
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def baseline_on_the_same_split(data: Path, tmp: Path) -> float:
    """The TF-IDF + logistic-regression baseline, trained on the job's 80 % and scored on its 20 %."""
    import pandas as pd

    from sagestack.models.baseline import train_baseline

    spec = AutoMLSpec()
    frame, _ = read_table(data, spec)
    fit_part, tuning, test = split_for_automl(frame, None, spec)
    pd.concat([fit_part, tuning]).to_csv(tmp / "train80.csv", index=False)
    train_baseline(tmp / "train80.csv", tmp / "baseline")
    return evaluate_predictor(load_model(tmp / "baseline"), test["review_body"].tolist(), test["sentiment"]).accuracy


def main(budgets: list[float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = load_settings(cwd=tmp, environ={}, home=tmp / "home")
        data = resolve_dataset(settings=settings).path
        print(f"data: {data}; {len(budgets)} budgets x embeddings off/on; 3 candidates", flush=True)
        print(f"{'budget s':>8} {'embeddings':>10} {'best':>12} {'test acc':>8} {'macro-F1':>8} {'before refit':>12} "
              f"{'fit s':>6} {'refit s':>7} {'command s':>9} {'embed s':>7}  leaderboard (test acc, before refit)",
              flush=True)
        default_ref = None
        for embeddings in (False, True):
            for budget in budgets:
                spec = AutoMLSpec(time_limit=budget, embeddings=embeddings)
                try:
                    summary = run_automl(spec, tmp / f"job-{budget:g}-{embeddings}", settings=settings, approve=True)
                except Exception as exc:  # a budget too small is a result too
                    print(f"{budget:8g} {str(embeddings):>10} {'-':>12}  {type(exc).__name__}: {exc}", flush=True)
                    continue
                best = summary["best"]
                board = ", ".join(f"{r['name']} {r['test_accuracy']:.4f}" for r in summary["leaderboard"])
                print(f"{budget:8g} {str(embeddings):>10} {best['name']:>12} {best['test_accuracy']:8.4f} "
                      f"{best['test_macro_f1']:8.4f} {best['test_accuracy_before_refit']:12.4f} "
                      f"{summary['fit_seconds']:6.1f} {summary['refit_seconds']:7.1f} {summary['seconds']:9.1f} "
                      f"{summary['embedding_seconds']:7.1f}  {board}", flush=True)
                if not embeddings and budget == max(budgets):
                    registered = summary["registered"]
                    default_ref = f"{registered['name']}/{registered['version']}"
        print(f"yardsticks on the same 80/20 split: TF-IDF + LR baseline {baseline_on_the_same_split(data, tmp):.4f}; "
              "SageMaker Autopilot (lab) 0.591 validation, 0.63 at best", flush=True)
        if default_ref is None:
            return
        predictor, _ = load_predictor(settings, default_ref)
        p50, p99 = latency(lambda: predictor.predict([REVIEW]))
        print(f"latency of {default_ref} ({predictor.model}), one review, in-process: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        with running_server(settings, default_ref, timeout=180) as url, httpx.Client(base_url=url, timeout=30) as client:
            p50, p99 = latency(lambda: client.post("/predict", json={"reviews": [REVIEW]}).raise_for_status())
        print(f"latency of {default_ref}, one review, POST /predict over HTTP (sequential): p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main([float(b) for b in sys.argv[1].split(",")] if len(sys.argv) > 1 else [60.0, 120.0, 240.0])
