"""HTTP throughput and latency of the BentoML endpoint, ``/predict`` next to ``/predict_batch``.

Trains and registers a model in a throw-away MLflow SQLite store, starts the real
``bentoml serve serving.service:SentimentService`` on 127.0.0.1 and sends single-review requests
(real validation-set reviews, in rotation) from 1, 8 and 32 concurrent clients, each load for a
fixed time, plus 32 clients that pause 30 ms after each answer (about 1,000 requests/s in total). Prints requests/s, p50/p99
latency and the error count (connection errors, timeouts and 4xx/5xx answers, 503 load shedding
included) per route and load.

Uses ``wrk`` (``apt-get install -y wrk``) when it is installed, as it costs far less CPU than a
Python client on a small machine; otherwise an asyncio httpx client.
Run: .venv/bin/python bench/serving_http.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from sagestack.config import load_settings
from sagestack.data import resolve_dataset
from sagestack.data.fasttext_format import read_fasttext
from sagestack.registry import log_fasttext_run
from sagestack.text import make_params, train_fasttext

REPO = Path(__file__).resolve().parents[1]
BENTOML = Path(sys.executable).with_name("bentoml")
HOST = "127.0.0.1"
ROUTES = ("/predict", "/predict_batch")
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


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


def start_server(home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGESTACK_", "BENTOML_"))}
    env.update(SAGESTACK_HOME=str(home), SAGESTACK_MODEL="bench@champion",
               BENTOML_HOME=str(home / "bentoml"), BENTOML_DO_NOT_TRACK="true")
    proc = subprocess.Popen(
        [str(BENTOML), "serve", "serving.service:SentimentService", "--host", HOST, "--port", str(port)],
        cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bentoml serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"bentoml serve not ready after 120 s:\n{log.read_text()[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load (default 10)")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    args = parser.parse_args()
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        settings = load_settings(home=tmp / "home")
        train = resolve_dataset(settings=settings, name="blazingtext/train.txt").path
        validation = resolve_dataset(settings=settings, name="blazingtext/validation.txt").path
        result = train_fasttext(train, tmp / "model", make_params(threads=1), validation_file=validation)
        log_fasttext_run(result, settings=settings, model_name="bench", approval="Approved", aliases=("champion",))
        _, texts = read_fasttext(validation)
        bodies = [json.dumps({"reviews": [text]}) for text in texts[:N_REVIEWS]]

        proc, url = start_server(settings.home, tmp / "serve.log")
        try:
            print(f"bentoml serve on {url}; {os.cpu_count()} CPU cores; client: {'wrk' if use_wrk else 'httpx'}; "
                  f"{args.seconds} s per load; load average before: {os.getloadavg()[0]:.2f}")
            for route in ROUTES:  # warm both routes (first-request imports, batching optimizer)
                for body in bodies[:50]:
                    httpx.post(url + route, content=body, headers={"Content-Type": "application/json"})
            print(f"{'route':<15} {'load':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
            ratios = []
            for label, clients, pause_ms in LOADS:
                rows = {}
                for route in ROUTES:
                    if use_wrk:
                        row = run_wrk(url + route, bodies, clients, pause_ms, args.seconds, tmp)
                    else:
                        row = asyncio.run(run_httpx(url + route, bodies, clients, pause_ms, args.seconds))
                    rows[route] = row
                    print(f"{route:<15} {label:<14} {row['rps']:>8.0f} {row['p50_ms']:>8.2f} "
                          f"{row['p99_ms']:>8.2f} {row['errors']:>7}", flush=True)
                on, off = rows[ROUTES[1]], rows[ROUTES[0]]
                ratios.append(f"{label}: throughput x{on['rps'] / max(off['rps'], 1e-9):.2f}, "
                              f"p99 x{on['p99_ms'] / max(off['p99_ms'], 1e-9):.2f}")
            print("adaptive batching on vs off (" + ROUTES[1] + " / " + ROUTES[0] + "): " + "; ".join(ratios))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
