"""HTTP throughput and latency of sagestack's BentoML endpoint, against a plain BentoML service.

Trains one fastText model, registers it in a throw-away MLflow SQLite store and starts, on
127.0.0.1, two servers around the same model file, one after the other (the other stopped, so
they never compete for the cores):

- sagestack's endpoint, ``bentoml serve serving.service:SentimentService`` started by
  ``serving.launch.running_server`` (as ``sagestack serve`` does): ``/predict`` and ``/predict_batch``;
- a plain BentoML service, ``bench/plain_bentoml_service.py``: ``fasttext.load_model`` and
  fastText's own ``predict`` behind ``/predict``, no sagestack code, the same ``workers="cpu_count"``;
- with ``--earlier DIR``, also sagestack's endpoint from another source tree (a worktree of an
  earlier commit), around the same registered model: this change against the code before it.

Both get the same single-review requests (real validation-set reviews, in rotation) from the same
load generator at the same loads: 1, 8 and 32 concurrent clients, each
for a fixed time, plus 32 clients that pause 30 ms after each answer (about 1,000 requests/s in
total). Prints requests/s, p50/p99 latency and the error count (connection errors, timeouts and
4xx/5xx answers, 503 load shedding included) per service, route and load; then the batching ratio
(``/predict_batch`` / ``/predict``), the ratio sagestack / plain for ``/predict`` (req/s, p50, p99)
and sagestack's ``/predict`` p99 at 32 clients.

Uses ``wrk`` (``apt-get install -y wrk``) when it is installed, as it costs far less CPU than a
Python client on a small machine; otherwise an asyncio httpx client.
Run: .venv/bin/python bench/serving_http.py [--seconds 10] [--earlier /tmp/before]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from course_split import blazingtext_split
from sagestack.config import Settings, load_settings
from sagestack.data.fasttext_format import read_fasttext
from sagestack.registry import log_model_run
from sagestack.text import make_params, train_fasttext
from serving.launch import SERVICE, free_port, running_bentoml, running_server, serve_command

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
PLAIN_SERVICE = "plain_bentoml_service:PlainFastTextService"  # in bench/, the --working-dir
# (service, route) pairs measured at every load; both services answer {"reviews": [...]} on /predict.
TARGETS = [("sagestack", "/predict"), ("sagestack", "/predict_batch"), ("plain", "/predict")]
# (label, clients, pause in ms each client takes after an answer: 0 = as fast as the server answers).
# 32 clients pausing 30 ms offer about 1,000 requests/s: the target load, below saturation.
LOADS = [("1 client", 1, 0), ("8 clients", 8, 0), ("32 clients", 32, 0), ("32, 30ms pause", 32, 30)]
N_REVIEWS = 200

WRK_SCRIPT = """
local bodies = {%(bodies)s}
local i = 0
local pause_ms = %(pause_ms)d
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
if pause_ms > 0 then
  delay = function() return pause_ms end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_string(text: str) -> str:
    level = "=" * 4
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def run_wrk(url: str, bodies: list[str], clients: int, pause_ms: int, seconds: int, tmp: Path) -> dict:
    script = tmp / "load.lua"
    script.write_text(WRK_SCRIPT % {"bodies": ",\n".join(lua_string(b) for b in bodies), "pause_ms": pause_ms})
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    return {
        "rps": result["requests"] / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "errors": result["errors"],
    }


async def run_httpx(url: str, bodies: list[str], clients: int, pause_ms: int, seconds: int) -> dict:
    latencies: list[float] = []
    errors = 0
    pause = pause_ms / 1000
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=5) as client:
        deadline = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    response = await client.post(url, content=bodies[i % len(bodies)],
                                                 headers={"Content-Type": "application/json"})
                    errors += response.status_code >= 400
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - start)
                i += clients
                if pause:
                    await asyncio.sleep(pause)

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"rps": len(latencies) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "errors": errors}


def train_and_register(settings: Settings, tmp: Path) -> tuple[str, Path, Path]:
    """Train sagestack's default fastText model and register it as the served champion.

    Returns:
        (the model reference sagestack's endpoint serves, the fastText model file the plain
        service loads, the validation file the request bodies come from).
    """
    train, validation = blazingtext_split(settings, tmp)
    result = train_fasttext(train, tmp / "model", make_params(threads=1), validation_file=validation)
    log_model_run(result.out_dir, settings=settings, model_name="bench", approval="Approved", aliases=("champion",))
    return "bench@champion", result.model_path, validation


def running_bench_server(service: str, working_dir: Path, env_extra: dict, home: Path) -> contextlib.AbstractContextManager[str]:
    """``bentoml serve SERVICE`` from ``working_dir`` (through ``serving.launch``) for a ``with`` block."""
    port = free_port(HOST)
    env = dict(os.environ, BENTOML_HOME=str(home / f"bentoml-{port}"), **env_extra)
    command = serve_command(HOST, port, service=service, working_dir=working_dir)
    return running_bentoml(command, env, f"http://{HOST}:{port}", home / "logs" / f"serve-{port}.log")


def running_plain_server(model_file: Path, home: Path) -> contextlib.AbstractContextManager[str]:
    """``bench/plain_bentoml_service.py`` around ``model_file``."""
    return running_bench_server(PLAIN_SERVICE, BENCH, {"PLAIN_FASTTEXT_MODEL": str(model_file)}, home)


def running_earlier_sagestack(source: Path, settings: Settings, model_ref: str, home: Path) -> contextlib.AbstractContextManager[str]:
    """sagestack's endpoint from another source tree (e.g. a worktree of an earlier commit), same model."""
    env = {"PYTHONPATH": f"{source / 'src'}:{source}", "SAGESTACK_MODEL": model_ref,
           "SAGESTACK_HOME": str(settings.home.resolve()), "SAGESTACK_TRACKING_URI": settings.mlflow_uri}
    return running_bench_server(SERVICE, source, env, home)


def post(url: str, body: str) -> httpx.Response:
    return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)


def warm_up(url: str, routes: list[str], bodies: list[str]) -> list:
    """Warm a server's routes (first-request imports, the batching optimizer); return its
    ``/predict`` labels for ``bodies``, to check that both services give the same answers."""
    labels = []
    for route in routes:
        for body in bodies:
            response = post(url + route, body)
            response.raise_for_status()
            if route == "/predict":
                labels.append(response.json()["predictions"][0]["label"])
    return labels


def ratio(a: float, b: float) -> str:
    return f"x{a / max(b, 1e-9):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load (default 10)")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--earlier", type=Path, default=None,
                        help="also measure sagestack's /predict served from this source tree (e.g. `git worktree add "
                             "/tmp/before <commit>`), same model, same run")
    args = parser.parse_args()
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    # Both servers inherit this environment: none of the user's sagestack or BentoML settings.
    for name in [n for n in os.environ if n.startswith(("SAGESTACK_", "BENTOML_"))]:
        del os.environ[name]
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        settings = load_settings(cwd=tmp, environ={}, home=tmp / "home")
        model_ref, model_file, validation = train_and_register(settings, tmp)
        _, texts = read_fasttext(validation)
        bodies = [json.dumps({"reviews": [text]}) for text in texts[:N_REVIEWS]]

        # One server at a time, the other stopped, so neither competes for the 2 cores; every
        # load runs against sagestack, then the same loads against the plain service.
        print(f"sagestack and plain BentoML, one after the other (same model file, {os.cpu_count()} workers each); "
              f"client: {'wrk' if use_wrk else 'httpx'}; {args.seconds} s per load; "
              f"load average before: {os.getloadavg()[0]:.2f}")
        print(f"{'service':<10} {'route':<15} {'load':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        results: dict[tuple[str, str, str], dict] = {}
        labels: dict[str, list] = {}
        servers = {"sagestack": lambda: running_server(settings, model_ref),
                   "plain": lambda: running_plain_server(model_file, tmp)}
        targets = list(TARGETS)
        if args.earlier:
            servers["earlier"] = lambda: running_earlier_sagestack(args.earlier.resolve(), settings, model_ref, tmp)
            targets.append(("earlier", "/predict"))
        for service, start in servers.items():
            routes = [route for name, route in targets if name == service]
            with start() as url:
                labels[service] = warm_up(url, routes, bodies[:50])
                for label, clients, pause_ms in LOADS:
                    for route in routes:
                        if use_wrk:
                            row = run_wrk(url + route, bodies, clients, pause_ms, args.seconds, tmp)
                        else:
                            row = asyncio.run(run_httpx(url + route, bodies, clients, pause_ms, args.seconds))
                        results[service, route, label] = row
                        print(f"{service:<10} {route:<15} {label:<14} {row['rps']:>8.0f} {row['p50_ms']:>8.2f} "
                              f"{row['p99_ms']:>8.2f} {row['errors']:>7}", flush=True)
        same = sum(a == b for a, b in zip(labels["sagestack"], labels["plain"]))
        print(f"labels agree on {same}/{len(labels['plain'])} warm-up reviews (the plain service does not tokenize)")

        batching, versus = [], []
        for label, _, _ in LOADS:
            on, off = results["sagestack", "/predict_batch", label], results["sagestack", "/predict", label]
            batching.append(f"{label}: throughput {ratio(on['rps'], off['rps'])}, p99 {ratio(on['p99_ms'], off['p99_ms'])}")
            plain = results["plain", "/predict", label]
            versus.append(f"{label}: req/s {ratio(off['rps'], plain['rps'])}, p50 {ratio(off['p50_ms'], plain['p50_ms'])}, "
                          f"p99 {ratio(off['p99_ms'], plain['p99_ms'])}")
        print("adaptive batching on vs off (sagestack /predict_batch / /predict): " + "; ".join(batching))
        print("sagestack vs plain BentoML (/predict, sagestack / plain): " + "; ".join(versus))
        if args.earlier:
            print(f"sagestack vs sagestack from {args.earlier} (/predict, this / earlier): " + "; ".join(
                f"{label}: req/s {ratio(results['sagestack', '/predict', label]['rps'], results['earlier', '/predict', label]['rps'])}, "
                f"p99 {ratio(results['sagestack', '/predict', label]['p99_ms'], results['earlier', '/predict', label]['p99_ms'])}"
                for label, _, _ in LOADS))
        closed, paced = results["sagestack", "/predict", "32 clients"], results["sagestack", "/predict", "32, 30ms pause"]
        print(f"sagestack /predict p99 at 32 clients: {closed['p99_ms']:.2f} ms closed loop ({closed['rps']:.0f} req/s), "
              f"{paced['p99_ms']:.2f} ms at {paced['rps']:.0f} req/s (30 ms pause); errors {closed['errors']} / {paced['errors']}")


if __name__ == "__main__":
    main()
