"""The endpoint behind the nginx router against the same endpoint called directly, in one run.

Starts the scaled-out topology on loopback (`sagestack up`: PostgreSQL + MLflow server, Redis,
endpoints, nginx) in a throw-away home, registers a fastText model (the course's BlazingText
split) as the Approved ``@champion`` on the MLflow server, starts variant A's endpoint, sends all
traffic to A (`sagestack deploy shift-traffic --a 100 --b 0`), then loads, in interleaved rounds,
``POST /predict`` straight at endpoint A and through nginx with 32 concurrent clients (single real
reviews in rotation). Prints requests/s, p50/p99 latency and errors per path and round, and the
ratios router / direct (best round of each). `sagestack down` at the end, whatever happens.

Uses ``wrk`` when installed (`apt-get install -y wrk`), else an asyncio httpx client.
Run: .venv/bin/python bench/router.py [--seconds 10] [--rounds 2] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from course_split import blazingtext_split
from sagestack.config import load_settings
from sagestack.data.fasttext_format import read_fasttext
from sagestack.registry import log_model_run
from sagestack.text import make_params, train_fasttext
from serving_http import run_httpx, run_wrk

SAGESTACK = Path(sys.executable).with_name("sagestack")


def sagestack(home: Path, *args: str, env: dict | None = None) -> dict:
    """Run a sagestack command with ``--json`` against ``home``; its JSON answer."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SAGESTACK_")}
    environment.update(env or {}, SAGESTACK_HOME=str(home))
    done = subprocess.run([str(SAGESTACK), *args, "--json"], capture_output=True, text=True, env=environment,
                          cwd=home.parent)
    if done.returncode != 0:
        raise SystemExit(f"sagestack {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sagestack-router-") as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        up = sagestack(home, "up")
        try:
            env = dict(line.removeprefix("export ").replace("'", "").split("=", 1)
                       for line in Path(up["env_file"]).read_text().splitlines())
            settings = load_settings(cwd=tmp, environ=env)
            train, validation = blazingtext_split(settings, tmp)
            model = train_fasttext(train, tmp / "model", make_params(threads=1), validation_file=validation)
            log_model_run(model.out_dir, settings=settings, approval="Approved", aliases=("champion",))
            services = {s["name"]: s for s in sagestack(home, "up", env=env)["services"]}
            sagestack(home, "deploy", "shift-traffic", "--a", "100", "--b", "0", "--route-file",
                      str(tmp / "httproute.yaml"), env=env)
            targets = {"direct": services["endpoint-a"]["url"] + "/predict", "router": up["router"] + "/predict"}
            reviews = read_fasttext(validation)[1][:200]
            bodies = [json.dumps({"reviews": [text]}) for text in reviews]
            use_wrk = shutil.which("wrk") is not None
            print(f"load generator: {'wrk' if use_wrk else 'httpx (asyncio)'}; {args.clients} clients, "
                  f"{args.seconds} s a run, {args.rounds} interleaved rounds", flush=True)
            best: dict[str, dict] = {}
            for name in targets:  # warm-up: a few seconds each, not measured
                run_wrk(targets[name], bodies, 4, 0, 2, tmp) if use_wrk else asyncio.run(
                    run_httpx(targets[name], bodies, 4, 0, 2))
            for round_ in range(1, args.rounds + 1):
                for name, url in targets.items():
                    result = (run_wrk(url, bodies, args.clients, 0, args.seconds, tmp) if use_wrk
                              else asyncio.run(run_httpx(url, bodies, args.clients, 0, args.seconds)))
                    print(f"round {round_} {name:6}: {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
                          f"p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}", flush=True)
                    if name not in best or result["rps"] > best[name]["rps"]:
                        best[name] = result
            direct, router = best["direct"], best["router"]
            print(f"router / direct (best round each): req/s {router['rps'] / direct['rps']:.3f}, "
                  f"p50 {router['p50_ms'] / direct['p50_ms']:.3f}, p99 {router['p99_ms'] / direct['p99_ms']:.3f}")
        finally:
            sagestack(home, "down")


if __name__ == "__main__":
    main()
