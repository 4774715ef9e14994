"""How fast the console's Models and Pipelines pages render with 100 versions and 100 runs.

Builds a throw-away home: one real pipeline run (fastText on the Clarify lab file, which registers
version 1), 99 more versions of that model (each with its own MLflow run, metrics and lineage tags,
as a pipeline registers them) and 99 more pipeline runs (copies of the real run's summary.json
under new names). Then starts a real ``sagestack console`` and times each page over HTTP, next to
the library call behind it in this process (``version_table``, ``list_runs``): the difference is
what the web layer (routing, the template, the guard) adds.
Target: each page in <= 200 ms (median and p95). Run: .venv/bin/python bench/console_pages.py [HOME]
(a HOME folder is filled once and kept, for repeated runs; without one a temporary home is used).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import mlflow

from sagestack.pipelines.runner import run_local
from sagestack.config import load_settings
from sagestack.data import resolve_dataset
from sagestack.pipeline_runs import list_runs
from sagestack.registry import version_table
from sagestack.registry.models import register_version
from sagestack.registry.store import client
from sagestack.registry.tracking import ensure_experiment
from sagestack.workflows.sentiment import pipeline_arguments
from sagestack.bento.launch import free_port, stop_process

VERSIONS = RUNS = 100
ROUNDS = 30
TARGET_MS = 200.0


def fill_home(home: Path) -> None:
    settings = load_settings(cwd=home.parent, environ={}, home=home)
    data = resolve_dataset(settings=settings, name="reviews_clarify_lab.csv").path
    print(f"one real pipeline run (fastText on {data.name}) ...", flush=True)
    summary = run_local(pipeline_arguments(data_path=str(data), trainers="fasttext", min_accuracy=0.0,
                                           fasttext=dict(epochs=5)), settings=settings)
    first = client(settings).get_model_version("reviews-sentiment", "1")
    # MLflow's registry looks the logged model of a "models:/m-…" source up in the *global* tracking store.
    mlflow.set_tracking_uri(settings.mlflow_uri)
    experiment = ensure_experiment(settings)
    mlflow_client = client(settings)
    print(f"registering {VERSIONS - 1} more versions and copying {RUNS - 1} more run summaries ...", flush=True)
    for i in range(2, VERSIONS + 1):
        run = mlflow_client.create_run(experiment, run_name=f"bench-{i}")
        for name, value in (("test_accuracy", 0.4 + i / 1000), ("test_macro_f1", 0.39 + i / 1000),
                            ("validation_accuracy", 0.41 + i / 1000)):
            mlflow_client.log_metric(run.info.run_id, name, value)
        mlflow_client.set_terminated(run.info.run_id)
        register_version(settings, "reviews-sentiment", first.source, run.info.run_id,
                         tags={k: v for k, v in first.tags.items() if k not in ("approval_status", "training.run_id")},
                         model_id=first.model_id)
    runs_dir = home / "pipelines" / "runs"
    source = runs_dir / summary["run"] / "summary.json"
    for i in range(2, RUNS + 1):
        started = datetime.strptime(summary["started_at"], "%Y-%m-%dT%H:%M:%S%z") - timedelta(minutes=i)
        copy = dict(summary, run=f"{summary['run']}-copy{i:03d}", started_at=started.strftime("%Y-%m-%dT%H:%M:%S%z"))
        (runs_dir / copy["run"]).mkdir()
        (runs_dir / copy["run"] / "summary.json").write_text(json.dumps(copy), encoding="utf-8")
    assert source.is_file()


def timings(fn, rounds: int = ROUNDS) -> list[float]:
    fn()  # warm: imports, connections, caches
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def line(name: str, ms: list[float], target: float | None = None) -> str:
    median, p95 = statistics.median(ms), sorted(ms)[int(0.95 * (len(ms) - 1))]
    verdict = "" if target is None else ("  target met" if p95 <= target else f"  target NOT met (> {target:.0f} ms)")
    return f"  {name:44} median {median:7.1f} ms   p95 {p95:7.1f} ms{verdict}"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(tmp) / "home"
        if not (home / "mlflow.db").is_file():
            fill_home(home)
        settings = load_settings(cwd=Path(tmp), environ={}, home=home)
        table = version_table(settings)
        runs = list_runs(settings, limit=RUNS)
        print(f"home: {len(table['versions'])} versions of {table['name']}, {len(runs)} pipeline runs")

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAGESTACK_")}
        env["SAGESTACK_HOME"] = str(home)
        console = subprocess.Popen([str(Path(sys.executable).with_name("sagestack")), "console", "--port", str(port)],
                                   env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    httpx.get(f"{url}/jobs", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            with httpx.Client(base_url=url, timeout=30) as http:
                def page(path: str, must_contain: str):
                    def get():
                        response = http.get(path)
                        assert response.status_code == 200 and must_contain in response.text, (path, response.status_code)
                    return get

                models = page("/models", f'id="version-{VERSIONS}"')
                pipelines = page("/pipelines", "-copy100")
                print(f"page timings over HTTP ({ROUNDS} requests each, after one warm-up; 2 cores):")
                print(line("GET /models (100 versions)", timings(models), TARGET_MS))
                print(line("  library: version_table() in process", timings(lambda: version_table(settings))))
                print(line("GET /pipelines (100 runs)", timings(pipelines), TARGET_MS))
                print(line("  library: list_runs(limit=100) in process", timings(lambda: list_runs(settings, limit=100))))
                print(line("GET /data (no heavy call: the web layer's floor)", timings(page("/data", "Upload"))))
        finally:
            stop_process(console)


if __name__ == "__main__":
    main()
