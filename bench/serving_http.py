"""HTTP throughput and latency of sagestack's BentoML endpoint: its routes, its feature store, every
model kind, against a plain BentoML service.

Two sections, one server at a time (the others stopped, so they never compete for the cores):

``routes``: trains one fastText model, registers it in a throw-away MLflow SQLite store, ingests
reviews_balanced.csv into the home's Feast store and measures

- sagestack's endpoint (``sagestack.bento.launch.running_server``, as ``sagestack serve`` starts it) on the
  SQLite online store: ``/predict``, ``/predict_batch`` and ``/predict_by_id``;
- the same endpoint on a Redis online store (a ``redis-server`` on loopback, the same reviews
  ingested into it): ``/predict_by_id``;
- a plain BentoML service, ``bench/plain_bentoml_service.py``: ``fasttext.load_model`` and
  fastText's own ``predict`` behind ``/predict``, no sagestack code, the same worker count;
- with ``--earlier COMMIT`` (or a source folder), sagestack's endpoint from that earlier code, same model
  and store: ``/predict`` and ``/predict_by_id``, this change against the code before it.

Every route gets single-review requests (real validation-set reviews, or real review ids, in
rotation) at 1, 8 and 32 concurrent clients, each for a fixed time, plus 32 clients that pause 30 ms
after each answer (about 1,000 requests/s). Prints requests/s, p50/p99 latency and the error count
(connection errors, timeouts and 4xx/5xx answers) and the servers' CPU milliseconds per request (on a shared
machine the one figure other processes barely move) per server, route and load, then the
``/predict_by_id`` figures against ``/predict`` and the targets.

``kinds``: for every model kind (fastText, the baseline, AutoGluon, BERT on the CPU), trained small
on the same data and registered as the champion of a home of its own: seconds from ``bentoml
serve`` to ``/readyz`` 200, the latency of the first ``/predict`` after that, and ``/predict`` at
1, 8 and 32 clients; the plain BentoML fastText service is the yardstick. With ``--earlier``, each
kind is also served by the earlier code (same model, same run) and the ratios are printed.

``access``: the access log's cost (``SAGESTACK_ACCESS_LOG``): the fastText champion's ``/predict`` at
1 and 32 clients with the log ``off``, ``sampled`` (the default) and ``on``, and the lines each wrote.

Uses ``wrk`` (``apt-get install -y wrk``) when it is installed, as it costs far less CPU than a
Python client on a small machine; otherwise an asyncio httpx client. Needs ``redis-server``.
Run: .venv/bin/python bench/serving_http.py [--seconds 10] [--sections routes,kinds,access] [--earlier e731369]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np

from course_split import blazingtext_split
from sagestack.config import Settings, load_settings
from sagestack.data import load_reviews, prepare_dataset, resolve_dataset
from sagestack.data.fasttext_format import read_fasttext
from sagestack.features import ingest, read_features
from sagestack.registry import log_model_run
from sagestack.text import make_params, train_fasttext
from sagestack.bento.launch import SERVICE, free_port, running_bentoml, running_server, serve_command

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
PLAIN_SERVICE = "plain_bentoml_service:PlainFastTextService"  # in bench/, the --working-dir
# (label, clients, pause in ms each client takes after an answer: 0 = as fast as the server answers).
# 32 clients pausing 30 ms offer about 1,000 requests/s: the issue's target load, below saturation.
LOADS = [("1 client", 1, 0), ("8 clients", 8, 0), ("32 clients", 32, 0), ("32, 30ms pause", 32, 30)]
N_REVIEWS = 200

WRK_SCRIPT = """
local bodies = {%(bodies)s}
local i = 0
local pause_ms = %(pause_ms)d
request = function()
  i = i %% #bodies + 1
  if bodies[i] == "" then return wrk.format("GET") end
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
                    body = bodies[i % len(bodies)]
                    response = await (client.post(url, content=body, headers={"Content-Type": "application/json"})
                                      if body else client.get(url))
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


def train_and_register(settings: Settings, tmp: Path) -> tuple[str, Path, Path, Path]:
    """Train sagestack's default fastText model and register it as the served champion.

    Returns:
        (the model reference sagestack's endpoint serves, the trained model's folder, the
        fastText model file the plain service loads, the validation file the request bodies come from).
    """
    train, validation = blazingtext_split(settings, tmp)
    result = train_fasttext(train, tmp / "model", make_params(threads=1), validation_file=validation)
    log_model_run(result.out_dir, settings=settings, model_name="bench", approval="Approved", aliases=("champion",))
    return "bench@champion", result.out_dir, result.model_path, validation


def ingest_reviews(settings: Settings) -> list[str]:
    """Ingest reviews_balanced.csv into the home's feature store; ``/predict_by_id`` bodies for 200 of its reviews."""
    reviews = load_reviews(resolve_dataset(settings=settings).path).frame
    with contextlib.redirect_stdout(sys.stderr):
        ingest(settings, reviews)
    ids = read_features(settings)["review_id"].sample(N_REVIEWS, random_state=0)
    return [json.dumps({"review_ids": [int(i)]}) for i in ids]


@contextlib.contextmanager
def running_redis(tmp: Path) -> Iterator[str]:
    """A ``redis-server`` on loopback for the block; yields its ``redis://`` URL."""
    import redis

    port = free_port(HOST)
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                                "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis(host=HOST, port=port).ping()
                break
            time.sleep(0.1)
        yield f"redis://{HOST}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def running_bench_server(service: str, working_dir: Path, env_extra: dict, home: Path) -> contextlib.AbstractContextManager[str]:
    """``bentoml serve SERVICE`` from ``working_dir`` (through ``sagestack.bento.launch``) for a ``with`` block."""
    port = free_port(HOST)
    env = dict(os.environ, BENTOML_HOME=str(home / f"bentoml-{port}"), **env_extra)
    command = serve_command(HOST, port, service=service, working_dir=working_dir)
    return running_bentoml(command, env, f"http://{HOST}:{port}", home / "logs" / f"serve-{port}.log")


def running_plain_server(model_file: Path, home: Path) -> contextlib.AbstractContextManager[str]:
    """``bench/plain_bentoml_service.py`` around ``model_file``."""
    return running_bench_server(PLAIN_SERVICE, BENCH, {"PLAIN_FASTTEXT_MODEL": str(model_file)}, home)


def earlier_source(earlier: str, tmp: Path) -> Path:
    """The source tree of ``earlier``: a folder as it is, else a commit of this repository exported
    (``git archive``) into ``tmp``."""
    if Path(earlier).is_dir():
        return Path(earlier).resolve()
    out = tmp / "earlier-source"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(BENCH.parent), "archive", "--format=tar", earlier],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def running_earlier_sagestack(source: Path, settings: Settings, model_ref: str, home: Path) -> contextlib.AbstractContextManager[str]:
    """sagestack's endpoint from another source tree (e.g. a worktree of an earlier commit), same model and store."""
    env = {"PYTHONPATH": f"{source / 'src'}:{source}", "SAGESTACK_MODEL": model_ref,
           "SAGESTACK_HOME": str(settings.home.resolve()), "SAGESTACK_TRACKING_URI": settings.mlflow_uri}
    return running_bench_server(earlier_service(source), source, env, home)


def earlier_service(source: Path) -> str:
    """The endpoint's import path in ``source``, a tree from before the adapters installed under sagestack (no
    setup.py), where it is the top-level ``serving`` package. A tree with setup.py maps ``serving/`` to
    ``sagestack.bento``, which a PYTHONPATH cannot give (this checkout's would answer instead): refused."""
    if (source / "setup.py").is_file():
        raise SystemExit(f"error: --earlier {source} installs its service as sagestack.bento, which PYTHONPATH cannot "
                         "load beside this checkout; compare a commit from before that layout")
    return "serving.service:SentimentService"


def post(url: str, body: str) -> httpx.Response:
    return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=60)


def warm_up(url: str, routes: dict[str, list[str]]) -> list:
    """Send each route 50 of its bodies (first-request imports, the batching optimizer); return
    the ``/predict`` labels, to check that sagestack and the plain service give the same answers."""
    labels = []
    for route, bodies in routes.items():
        for body in bodies[:50]:
            response = post(url + route, body)
            response.raise_for_status()
            if route == "/predict":
                labels.append(response.json()["predictions"][0]["label"])
    return labels


def timed_post(url: str, route: str, body: str) -> float:
    """Milliseconds for one POST on a fresh connection, connect included. ``http.client`` sends the
    headers and a small body in one write; httpx's two writes meet Nagle and delayed ACKs, 40 ms."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    started = time.perf_counter()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        connection.request("POST", route, body=body.encode(), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise SystemExit(f"{route} answered {response.status}")
    return (time.perf_counter() - started) * 1000


def ratio(a: float, b: float) -> str:
    return f"x{a / max(b, 1e-9):.2f}"


def off_on(measure: "Measure", settings_for, model_ref: str, bodies: list[str], what: str, clients: int,
           target: float, pauses_ms: tuple[int, ...] = (0,)) -> dict:
    """One observer's cost on ``/predict``: servers with it off and on, alternated three times (off, on, …)
    so a drift of this machine's speed hits both; for each load (``clients``, each pausing one of
    ``pauses_ms`` after an answer) prints the median p99 of each, the overhead against ``target`` and how
    much the off runs alone spread. ``settings_for(on)`` gives each server's settings.

    Returns:
        ``{load: {"off": [row, …], "on": [row, …]}}``, the measured rows.
    """
    loads = [(f"{clients} clients" + (f", {pause} ms pause" if pause else ""), clients, pause) for pause in pauses_ms]
    rows = {name: {"off": [], "on": []} for name, _, _ in loads}
    for turn in ("off", "on") * 3:
        with running_server(settings_for(turn == "on"), model_ref) as url:
            warm_up(url, {"/predict": bodies})
            for name, row in measure(f"{what} {turn}", url + "/predict", bodies, loads=loads).items():
                rows[name][turn].append(row)
    for name, by_turn in rows.items():
        off = np.median([r["p99_ms"] for r in by_turn["off"]])
        on = np.median([r["p99_ms"] for r in by_turn["on"]])
        overhead = on / off - 1
        verdict = "target met" if overhead <= target else f"target NOT met (> {target:.0%})"
        spread = max(r["p99_ms"] for r in by_turn["off"]) / min(r["p99_ms"] for r in by_turn["off"]) - 1
        print(f"{name}: p99 {what} off {off:.2f} ms, on {on:.2f} ms (median of three runs each): overhead "
              f"{overhead:+.1%}  {verdict}; the three {what}-off runs alone spread {spread:.0%}; req/s off "
              f"{np.median([r['rps'] for r in by_turn['off']]):.0f}, on {np.median([r['rps'] for r in by_turn['on']]):.0f}")
    return rows


class Measure:
    """Runs the loads against a URL with wrk or httpx and prints one row per load."""

    def __init__(self, use_wrk: bool, seconds: int, tmp: Path) -> None:
        self.use_wrk, self.seconds, self.tmp = use_wrk, seconds, tmp

    def __call__(self, name: str, url: str, bodies: list[str], loads=LOADS) -> dict[str, dict]:
        rows = {}
        for label, clients, pause_ms in loads:
            cpu = server_cpu_seconds()
            if self.use_wrk:
                row = run_wrk(url, bodies, clients, pause_ms, self.seconds, self.tmp)
            else:
                row = asyncio.run(run_httpx(url, bodies, clients, pause_ms, self.seconds))
            row["cpu_ms"] = (server_cpu_seconds() - cpu) * 1000 / max(row["rps"] * self.seconds, 1)
            rows[label] = row
            print(f"{name:<34} {label:<14} {row['rps']:>8.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                  f"{row['errors']:>7} {row['cpu_ms']:>9.2f}", flush=True)
        return rows


def server_cpu_seconds() -> float:
    """CPU seconds the servers this bench started have used so far (every process under this one but the load
    generator). Per request, the figure to compare on a shared machine: other processes taking the cores lower
    req/s and raise latency, but not the server's own CPU time per request."""
    import psutil

    total = 0.0
    for process in psutil.Process().children(recursive=True):
        try:
            if process.name() != "wrk":
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.Error:  # ended meanwhile
            pass
    return total


def routes_section(args, measure: Measure, settings: Settings, tmp: Path) -> dict:
    """sagestack's routes on SQLite and Redis, the plain service, optionally the earlier code."""
    model_ref, model_dir, model_file, validation = train_and_register(settings, tmp)
    _, texts = read_fasttext(validation)
    text_bodies = [json.dumps({"reviews": [text]}) for text in texts[:N_REVIEWS]]
    id_bodies = ingest_reviews(settings)
    print(f"{'server, route':<34} {'load':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU ms/req':>9}")
    results: dict[tuple[str, str], dict] = {}
    labels = {}

    def run(server: str, start, routes: dict[str, list[str]]) -> None:
        with start() as url:
            labels[server] = warm_up(url, {route: bodies for route, bodies in routes.items() if route != "/livez"})
            for route, bodies in routes.items():
                results[server, route] = measure(f"{server} {route}", url + route, bodies)

    # /livez (a GET: the empty body) is BentoML's own route, no sagestack code and no model: the
    # floor of what any route of this server can do on this machine under the same loads.
    sqlite_routes = {"/predict": text_bodies, "/predict_batch": text_bodies, "/predict_by_id": id_bodies, "/livez": [""]}
    run("sagestack", lambda: running_server(settings, model_ref), sqlite_routes)
    with running_redis(tmp) as redis_url:
        redis_settings = load_settings(cwd=tmp, environ={}, home=tmp / "home-redis", online_store=redis_url)
        redis_bodies = ingest_reviews(redis_settings)
        run("sagestack-redis", lambda: running_server(redis_settings, str(model_dir)), {"/predict_by_id": redis_bodies})
    run("plain", lambda: running_plain_server(model_file, tmp), {"/predict": text_bodies})
    if args.earlier:
        run("earlier", lambda: running_earlier_sagestack(args.earlier, settings, model_ref, tmp),
            {"/predict": text_bodies, "/predict_by_id": id_bodies})

    same = sum(a == b for a, b in zip(labels["sagestack"], labels["plain"]))
    print(f"labels agree on {same}/{len(labels['plain'])} warm-up reviews (the plain service does not tokenize)")
    names = [label for label, _, _ in LOADS]
    predict, by_id, redis = (results["sagestack", "/predict"], results["sagestack", "/predict_by_id"],
                             results["sagestack-redis", "/predict_by_id"])
    print("/predict_by_id (SQLite) vs /predict: " + "; ".join(
        f"{n}: req/s {ratio(by_id[n]['rps'], predict[n]['rps'])}, p99 {ratio(by_id[n]['p99_ms'], predict[n]['p99_ms'])}"
        for n in names))
    floor = results["sagestack", "/livez"]
    for name, rows in (("/livez (BentoML's own)", floor), ("/predict", predict), ("/predict_by_id SQLite", by_id),
                       ("/predict_by_id Redis", redis)):
        closed, paced = rows["32 clients"], rows["32, 30ms pause"]
        # Little's law: 32 requests always in flight take at least 32 / throughput seconds each, on average.
        print(f"{name} at 32 clients: {closed['rps']:.0f} req/s, p99 {closed['p99_ms']:.2f} ms closed loop (mean "
              f"latency at least {32 / closed['rps'] * 1000:.1f} ms by Little's law); p99 {paced['p99_ms']:.2f} ms at "
              f"{paced['rps']:.0f} req/s (30 ms pause); errors {sum(r['errors'] for r in rows.values())} over all loads")
    errors = sum(row["errors"] for rows in (by_id, redis) for row in rows.values())
    targets = [
        (">= 2,000 req/s, /predict_by_id on SQLite, 32 clients", f"{by_id['32 clients']['rps']:,.0f} req/s",
         by_id["32 clients"]["rps"] >= 2000),
        ("p99 <= 10 ms, /predict_by_id on SQLite, 32 clients", f"{by_id['32 clients']['p99_ms']:.2f} ms closed loop, "
         f"{by_id['32, 30ms pause']['p99_ms']:.2f} ms paced", by_id["32 clients"]["p99_ms"] <= 10),
        ("p99 <= 5 ms, /predict_by_id on Redis", ", ".join(f"{redis[n]['p99_ms']:.2f} ms at {n}" for n in names),
         all(row["p99_ms"] <= 5 for row in redis.values())),
        ("zero errors, /predict_by_id", f"{errors}", errors == 0),
    ]
    for target, measured, met in targets:
        print(f"target {target}: {measured}: {'met' if met else 'NOT met'}")
    batch = results["sagestack", "/predict_batch"]
    print("adaptive batching on vs off (sagestack /predict_batch / /predict): " + "; ".join(
        f"{n}: throughput {ratio(batch[n]['rps'], predict[n]['rps'])}" for n in names))
    plain = results["plain", "/predict"]
    print("sagestack vs plain BentoML (/predict, sagestack / plain): " + "; ".join(
        f"{n}: req/s {ratio(predict[n]['rps'], plain[n]['rps'])}, p99 {ratio(predict[n]['p99_ms'], plain[n]['p99_ms'])}"
        for n in names))
    # Issue 27's yardstick target. BentoML's own /livez on the same server (no sagestack code, no model, no body)
    # bounds what any route of a BentoML server answers on this machine in this run.
    need, done, bound = (2.5 * plain["32 clients"]["rps"], predict["32 clients"]["rps"], floor["32 clients"]["rps"])
    print(f"target /predict >= 2.5x the plain BentoML service at 32 clients ({need:,.0f} req/s): {done:,.0f} req/s "
          f"({ratio(done, plain['32 clients']['rps'])}): {'met' if done >= need else 'NOT met'}; BentoML's own /livez made "
          f"{bound:,.0f} ({ratio(bound, plain['32 clients']['rps'])}), {done / bound:.0%} of which /predict reached: the "
          f"target is {'within' if bound >= need else 'beyond'} what a route of this server answers in this run")
    if args.earlier:
        for route in ("/predict", "/predict_by_id"):
            now, before = results["sagestack", route], results["earlier", route]
            print(f"sagestack vs sagestack from {args.earlier} ({route}, this / earlier): " + "; ".join(
                f"{n}: req/s {ratio(now[n]['rps'], before[n]['rps'])}, p99 {ratio(now[n]['p99_ms'], before[n]['p99_ms'])}"
                for n in names))
    return {"plain": plain, "text_bodies": text_bodies}


def train_kind(kind: str, home: Path, tmp: Path) -> str:
    """Train a small model of ``kind`` on reviews_balanced.csv and register it as ``home``'s champion
    (through the ``sagestack`` CLI, as a user would); returns the model reference."""
    data = resolve_dataset(settings=load_settings(cwd=tmp, environ={}, home=home)).path
    out = tmp / f"train-{kind}"
    if kind == "fasttext":
        train, validation = blazingtext_split(load_settings(cwd=tmp, environ={}, home=home), tmp / "split-fasttext")
        command = ["train", "fasttext", "--train", str(train), "--validation", str(validation)]
    elif kind == "baseline":
        split = prepare_dataset(data, tmp / "split-csv", validation_fraction=0.1, test_fraction=0.1)
        command = ["train", "baseline", "--train", str(split.files["train"]["csv"]),
                   "--validation", str(split.files["validation"]["csv"])]
    elif kind == "autogluon":
        command = ["automl", "--data", str(data), "--target", "sentiment", "--max-candidates", "2", "--time-limit", "60"]
    else:  # a few steps of the pretrained MiniLM: the serving cost does not depend on how long it trained
        command = ["train", "bert", "--data", str(data), "--max-steps", "10", "--pooling", "mean", "--no-profile"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGESTACK_")}
    env["SAGESTACK_HOME"] = str(home)
    done = subprocess.run([str(Path(sys.executable).with_name("sagestack")), *command, "--approve", "--out", str(out)],
                          env=env, cwd=tmp, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training {kind} failed: {done.stderr.strip().splitlines()[-1:]}")
    if kind == "baseline":
        # sagestack before 0076aa1 (an --earlier commit) reads the baseline from model.joblib: the registered
        # model gets that file too, the same pipeline (the current code reads model.pkl).
        import joblib
        import pickle

        for saved in home.rglob("model.pkl"):
            joblib.dump(pickle.loads(saved.read_bytes()), saved.with_name("model.joblib"))
    return "reviews-sentiment@champion"


def kinds_section(args, measure: Measure, tmp: Path, yardstick: dict | None, text_bodies: list[str] | None) -> None:
    """Every kind's start-up, first prediction and sustained /predict figures."""
    if text_bodies is None:
        settings = load_settings(cwd=tmp, environ={}, home=tmp / "home-texts")
        _, validation = blazingtext_split(settings, tmp)
        text_bodies = [json.dumps({"reviews": [text]}) for text in read_fasttext(validation)[1][:N_REVIEWS]]
    loads = [load for load in LOADS if load[2] == 0]
    figures, earlier = {}, {}
    print(f"{'kind /predict':<34} {'load':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU ms/req':>9}")
    for kind in args.kinds:
        home = tmp / f"home-{kind}"
        model_ref = train_kind(kind, home, tmp)
        settings = load_settings(cwd=tmp, environ={}, home=home)
        started = time.perf_counter()
        with running_server(settings, model_ref, timeout=600) as url:
            ready_s = time.perf_counter() - started
            first_ms, second_ms = (timed_post(url, "/predict", body) for body in text_bodies[:2])
            print(f"{kind}: ready {ready_s:.1f} s after start; first /predict {first_ms:.2f} ms, second {second_ms:.2f} ms",
                  flush=True)
            figures[kind] = (ready_s, first_ms, second_ms, measure(f"{kind} /predict", url + "/predict", text_bodies, loads))
        if args.earlier:
            with running_earlier_sagestack(args.earlier, settings, model_ref, tmp) as url:
                warm_up(url, {"/predict": text_bodies})
                earlier[kind] = measure(f"{kind} /predict (earlier)", url + "/predict", text_bodies, loads)
    print("\n| kind | ready after start | first, second /predict | " + " | ".join(
        f"{label}: req/s, p50, p99 ms" for label, _, _ in loads) + " | errors |")
    print("|---|---|---|" + "---|" * len(loads) + "---|")
    rows = [(kind, f"{ready:.1f} s", f"{first:.1f}, {second:.1f} ms", results)
            for kind, (ready, first, second, results) in figures.items()]
    if yardstick:
        rows.append(("plain BentoML fastText (yardstick)", "", "", yardstick))
    rows += [(f"{kind} from {args.earlier_name}", "", "", results) for kind, results in earlier.items()]
    for name, ready, first, results in rows:
        cells = [f"{results[label]['rps']:,.0f}, {results[label]['p50_ms']:.2f}, {results[label]['p99_ms']:.2f}"
                 for label, _, _ in loads]
        errors = sum(results[label]["errors"] for label, _, _ in loads)
        print(f"| {name} | {ready} | {first} | " + " | ".join(cells) + f" | {errors} |")
    for kind, before in earlier.items():
        now = figures[kind][3]
        print(f"{kind} /predict, this / {args.earlier_name}: " + "; ".join(
            f"{label}: req/s {ratio(now[label]['rps'], before[label]['rps'])}, p99 "
            f"{ratio(now[label]['p99_ms'], before[label]['p99_ms'])} ({now[label]['p99_ms'] - before[label]['p99_ms']:+.2f} ms), "
            f"server CPU per request {ratio(now[label]['cpu_ms'], before[label]['cpu_ms'])}"
            for label, _, _ in loads))
    if yardstick and "fasttext" in figures:
        now = figures["fasttext"][3]["32 clients"]["rps"]
        print(f"fastText /predict vs plain BentoML at 32 clients: {ratio(now, yardstick['32 clients']['rps'])}")


def access_section(args, measure: Measure, tmp: Path, text_bodies: list[str] | None) -> None:
    """The access log's cost: the fastText champion's /predict with each SAGESTACK_ACCESS_LOG setting."""
    settings = load_settings(cwd=tmp, environ={}, home=tmp / "home-access")
    model_ref, *_, validation = train_and_register(settings, tmp / "access-model")
    text_bodies = text_bodies or [json.dumps({"reviews": [t]}) for t in read_fasttext(validation)[1][:N_REVIEWS]]
    loads = [load for load in LOADS if load[2] == 0 and load[1] in (1, 32)]
    results = {}
    print(f"{'access log, /predict':<34} {'load':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU ms/req':>9}")
    for mode in ("off", "sampled", "on"):
        mode_settings = settings.replace(access_log=mode)
        with running_server(mode_settings, model_ref) as url:
            log = settings.home.resolve() / "logs" / f"serve-{url.rsplit(':', 1)[1]}.log"
            warm_up(url, {"/predict": text_bodies})
            results[mode] = measure(f"access log {mode}", url + "/predict", text_bodies, loads)
            time.sleep(1)
            lines = sum("(scheme=http," in line for line in log.read_text(errors="replace").splitlines())
        requests = sum(row["rps"] * args.seconds for row in results[mode].values())
        print(f"access log {mode}: {lines:,} lines for about {requests:,.0f} requests", flush=True)
    for mode in ("sampled", "on"):
        print(f"access log {mode} vs off: " + "; ".join(
            f"{label}: req/s {ratio(results[mode][label]['rps'], results['off'][label]['rps'])}, p99 "
            f"{ratio(results[mode][label]['p99_ms'], results['off'][label]['p99_ms'])}" for label, _, _ in loads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load (default 10)")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--sections", default="routes,kinds,access", help="routes, kinds, access (default: all three)")
    parser.add_argument("--kinds", default="fasttext,baseline,autogluon,bert",
                        help="the model kinds the kinds section measures (default: all four)")
    parser.add_argument("--earlier", default=None,
                        help="also measure sagestack served from this commit (or source folder): /predict and "
                             "/predict_by_id in routes, /predict of every kind in kinds; same models, same run")
    args = parser.parse_args()
    args.kinds = [k for k in args.kinds.split(",") if k]
    sections = set(args.sections.split(","))
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    if "routes" in sections and shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server); the routes section needs it")
    # Every server inherits this environment: none of the user's sagestack or BentoML settings.
    for name in [n for n in os.environ if n.startswith(("SAGESTACK_", "BENTOML_"))]:
        del os.environ[name]
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        measure = Measure(use_wrk, args.seconds, tmp)
        args.earlier_name = args.earlier
        if args.earlier:
            args.earlier = earlier_source(args.earlier, tmp)
        print(f"one server at a time, {os.cpu_count()} workers each; client: {'wrk' if use_wrk else 'httpx'}; "
              f"{args.seconds} s per load; load average before: {os.getloadavg()[0]:.2f}")
        routes = {}
        if "routes" in sections:
            routes = routes_section(args, measure, load_settings(cwd=tmp, environ={}, home=tmp / "home"), tmp)
        if "kinds" in sections:
            kinds_section(args, measure, tmp, routes.get("plain"), routes.get("text_bodies"))
        if "access" in sections:
            access_section(args, measure, tmp, routes.get("text_bodies"))


if __name__ == "__main__":
    main()
