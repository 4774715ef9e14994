"""Per-step time of the sentiment pipeline on KFP's local runner against the same library calls
in-process, the candidates' test scores, and the time of a fully cached re-run.

Runs the pipeline (both trainers) on reviews_balanced.csv in a throw-away home, then calls
the same ``sagestack.workflows.sentiment`` functions in-process on the same data in another
home; the difference per step is what the local runner adds (a fresh Python process, imports,
KFP's executor). Then re-runs the identical pipeline, which KFP's cache should serve. Finally times
``sagestack demo`` as a new user runs it after the install: from an empty folder, a fresh home (the
pipeline, the endpoint's start, one prediction; target 75 s on 2 cores).
Run: .venv/bin/python bench/pipeline_overhead.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sagestack.pipelines.runner import run_local
from sagestack.config import load_settings
from sagestack.data import resolve_dataset
from sagestack.registry import DatasetRef
from sagestack.workflows import sentiment as wf


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def default_params(trainer: str) -> str:
    """A trainer's default parameters as the pipeline passes them to its train step."""
    from sagestack.models.kinds import kind_for_trainer

    kind = kind_for_trainer(trainer)
    return kind.params_template({name: field.default for name, field in kind.param_fields().items()})


def in_process(data: Path, tmp: Path) -> dict[str, float]:
    """Each pipeline step's library call, in order, in this process; returns seconds per task name."""
    settings = load_settings(cwd=tmp, environ={}, home=tmp / "direct")
    d = tmp / "d"
    t: dict[str, float] = {}
    info, t["ingest-data"] = timed(wf.ingest_step, str(data), d / "reviews.csv", settings)
    _, t["pretraining-bias"] = timed(wf.pretraining_bias_step, d / "reviews.csv", d / "bias.html", d / "bias.json",
                                     facet="product_category")
    _, t["feature-store"] = timed(wf.feature_store_step, d / "reviews.csv", d / "features.json", settings)
    _, t["prepare-data"] = timed(wf.prepare_step, d / "features.json", d / "prepared", settings)
    _, t["train-fasttext"] = timed(wf.train_step, "fasttext", d / "prepared", d / "fasttext", d / "ft-reports",
                                   default_params("fasttext"), seed=42)
    _, t["evaluate-model"] = timed(wf.evaluate_step, d / "prepared", d / "fasttext", d / "ft.json", d / "ft.md")
    _, t["train-baseline"] = timed(wf.train_step, "baseline", d / "prepared", d / "baseline", d / "bl-reports",
                                   default_params("baseline"), seed=42)
    _, t["evaluate-model-2"] = timed(wf.evaluate_step, d / "prepared", d / "baseline", d / "bl.json", d / "bl.md")
    selection, t["select-champion"] = timed(
        wf.select_champion_step, {"fasttext": (d / "fasttext", d / "ft.json"), "baseline": (d / "baseline", d / "bl.json")},
        d / "champion", d / "evaluation.json", d / "candidates.json")
    _, t["posttraining-bias"] = timed(wf.posttraining_bias_step, d / "prepared", d / "champion", d / "mb.html",
                                      d / "mb.json", facet="product_category")
    _, t["explain-model"] = timed(wf.explain_step, d / "prepared", d / "champion", d / "ex.html", d / "ex.json")
    _, t["register-model"] = timed(
        wf.register_step, settings=settings, model_dir=d / "champion", evaluation=wf.read_json(d / "evaluation.json"),
        dataset=DatasetRef(info["source"], info["sha256"]), model_name="bench", auto_approve=True,
        lineage=wf.lineage_tags("bench", {}, selection))
    return t


def time_demo(folder: Path) -> float:
    """Seconds of ``sagestack demo`` run in the empty ``folder`` (its home ``folder/.sagestack``), with no
    SAGESTACK_* variable of this process; raises if it fails."""
    folder.mkdir()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SAGESTACK_")}
    command = [str(Path(sys.executable).with_name("sagestack")), "demo", "--json"]
    done, seconds = timed(subprocess.run, command, cwd=folder, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sagestack demo failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = resolve_dataset(settings=load_settings(cwd=tmp, environ={}, home=tmp / "resolve")).path
        settings = load_settings(cwd=tmp, environ={}, home=tmp / "p")
        arguments = {"data_path": str(data), "min_accuracy": 0.0, "auto_approve": True}
        summary, total = timed(run_local, arguments, settings=settings)
        steps = {s["name"]: s["seconds"] for s in summary["steps"]}
        direct = in_process(data, tmp)
        cached, cached_total = timed(run_local, arguments, settings=settings)
        demo_seconds = time_demo(tmp / "demo")

    print(f"data: {data}")
    print(f"{'step':18} {'pipeline s':>10} {'in-process s':>12} {'overhead s':>10}")
    for name, seconds in direct.items():
        print(f"{name:18} {steps[name]:10.2f} {seconds:12.2f} {steps[name] - seconds:10.2f}")
    for name, seconds in steps.items():  # the pipeline's own steps (stand-ins of trainers left out)
        if name not in direct and seconds:
            print(f"{name:18} {seconds:10.2f} {'-':>12} {'-':>10}")
    overheads = [steps[n] - s for n, s in direct.items()]
    print(f"mean per-step overhead of the local runner: {sum(overheads) / len(overheads):.2f} s over {len(overheads)} steps")
    print(f"whole pipeline, cold: {total:.1f} s; identical re-run: {cached_total:.1f} s "
          f"({sum(s['status'] == 'CACHED' for s in cached['steps'])} steps from the cache)")
    selection = summary["selection"]
    for name, candidate in selection["candidates"].items():
        print(f"candidate {name:9} test accuracy {candidate['test_accuracy']:.4f}  macro F1 {candidate['test_macro_f1']:.4f}")
    print(f"champion: {selection['champion']} (by {selection['metric']}); registered {summary['registered']}")
    print(f"sagestack demo from an empty folder with a fresh home: {demo_seconds:.1f} s (target 75 s)")


if __name__ == "__main__":
    main()
