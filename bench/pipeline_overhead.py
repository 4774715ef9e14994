"""Per-step overhead of KFP's local runner, and the time of a fully cached re-run.

Runs the sentiment pipeline on reviews_balanced.csv in a throw-away home, then calls the
same library functions in-process on the same data; the difference per step is what the
local runner adds (a fresh Python process, imports, KFP's executor). Finally re-runs the
identical pipeline, which KFP's cache should serve entirely.
Run: .venv/bin/python bench/pipeline_overhead.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pipelines.runner import run_local
from sagestack.config import load_settings
from sagestack.data import prepare_dataset, resolve_dataset
from sagestack.registry import DatasetRef
from sagestack.steps import evaluate_step, ingest_step, register_step
from sagestack.text import make_params, train_fasttext


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = resolve_dataset(settings=load_settings()).path
        summary, total = timed(run_local, {"data_path": str(data), "min_accuracy": 0.0, "auto_approve": True}, home=tmp / "p")
        steps = {s["name"]: s["seconds"] for s in summary["steps"]}

        settings = load_settings(home=tmp / "direct")
        direct = {}
        info, direct["ingest-data"] = timed(ingest_step, str(data), tmp / "d" / "reviews.csv", settings)
        _, direct["prepare-data"] = timed(prepare_dataset, tmp / "d" / "reviews.csv", tmp / "d" / "prepared")
        _, direct["train-fasttext"] = timed(
            train_fasttext, tmp / "d/prepared/train.txt", tmp / "d/model", make_params(),
            validation_file=tmp / "d/prepared/validation.txt",
        )
        evaluation, direct["evaluate-model"] = timed(evaluate_step, tmp / "d/model", tmp / "d/prepared/test.txt", tmp / "d/report.md")
        _, direct["register-model"] = timed(
            register_step, settings=settings, model_dir=tmp / "d/model", evaluation=evaluation,
            dataset=DatasetRef(info["source"], info["sha256"]), model_name="bench", auto_approve=True, lineage={},
        )
        cached, cached_total = timed(run_local, {"data_path": str(data), "min_accuracy": 0.0, "auto_approve": True}, home=tmp / "p")

    print(f"{'step':16} {'pipeline s':>10} {'in-process s':>12} {'overhead s':>10}")
    for name, seconds in direct.items():
        print(f"{name:16} {steps[name]:10.2f} {seconds:12.2f} {steps[name] - seconds:10.2f}")
    overheads = [steps[n] - s for n, s in direct.items()]
    print(f"mean per-step overhead of the local runner: {sum(overheads) / len(overheads):.2f} s")
    print(f"whole pipeline, cold: {total:.1f} s; identical re-run: {cached_total:.1f} s "
          f"({sum(s['status'] == 'CACHED' for s in cached['steps'])} steps from the cache)")


if __name__ == "__main__":
    main()
