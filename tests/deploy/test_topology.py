"""The scaled-out topology for real on loopback: `sagestack up` starts PostgreSQL + the MLflow server,
Redis + the Feast feature server, endpoints A and B and nginx; the pipeline runs against them.

Pipeline → registered on the PostgreSQL-backed MLflow → features read from Redis → predictions over
HTTP through nginx; a pending challenger takes no traffic; A/B at 50/50 then 0/100 with no failed
request during the shift; a dead variant is routed around; `sagestack down` leaves nothing running.

The topology is started once for the module. Each test gets it running with traffic at 50/50 (the
``running`` fixture runs `sagestack up` again when an earlier test stopped a service, took it down or
failed part-way; a test that shifts traffic shifts it back), so each test passes alone and in any order.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import wait_until
from sagestack.config import load_settings
from sagestack.deploy.topology import LEGACY_HOME_CONFIG_MARK, SERVICES, Topology, _alive
from sagestack.bento.launch import serve_command

REVIEWS = ["Love it, fits perfectly and the fabric is soft"]


def _env(home: Path) -> dict:
    """What a client of the topology sources (topology/env.sh), as a dict."""
    lines = (home / "topology" / "env.sh").read_text().splitlines()
    return dict(line.removeprefix("export ").replace("'", "").split("=", 1) for line in lines)


@pytest.fixture(scope="module")
def topology(sagestack, sample_csv, sample_split, tmp_path_factory):
    for tool in ("nginx", "redis-server"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.fail(f"{tool} is not installed; `make test` installs it with apt-get")
    root = tmp_path_factory.mktemp("topology")
    home = root / "home"

    def run(*args, env=None):
        proc = sagestack(home, *args, env=env)
        assert proc.returncode == 0, f"sagestack {' '.join(args)}: {proc.stderr[-3000:]}"
        return json.loads(proc.stdout) if "--json" in args else proc

    first = run("up", "--json")
    try:
        env = _env(home)
        assert {s["name"]: s["state"] for s in first["services"]} == {
            "postgres": "started", "mlflow": "started", "redis": "started", "feast": "waiting",
            "endpoint-a": "waiting", "endpoint-b": "waiting", "nginx": "started"}
        # The champion from the pipeline, auto-approved; then a challenger trained on its own, registered
        # pending (SageMaker's manual approval) on the same MLflow server.
        run("pipeline", "run", "--data", str(sample_csv), "--trainers", "fasttext", "--auto-approve", "--min-accuracy", "0",
            "--json", env=env)
        run("train", "baseline", "--train", str(sample_split / "train.csv"), "--out", str(root / "challenger"), "--json",
            env=env)
        pending = {s["name"]: s for s in run("up", "--json", env=env)["services"]}
        # No traffic to a variant whose endpoint is not running: one line, nothing rewritten.
        refused = sagestack(home, "deploy", "shift-traffic", "--a", "0", "--b", "100", "--route-file",
                            str(root / "route.yaml"), env=env)
        assert refused.returncode == 2 and refused.stderr.strip() == (
            "error: variant B has no running endpoint to take 100 % of the traffic; approve its version and run "
            "`sagestack up` first") and not (root / "route.yaml").exists()
        run("models", "approve", "reviews-sentiment/2", env=env)
        started = {s["name"]: s for s in run("up", "--json", env=env)["services"]}
        yield {"home": home, "env": env, "pending": pending, "started": started, "run": run,
               "topology": Topology(load_settings(cwd=root, environ=env), serve_command)}
    finally:
        sagestack(home, "down")


@pytest.fixture
def running(topology):
    """The module's topology with every service running (`sagestack up` again only if one is not)."""
    top = topology["topology"]
    if not all(top.running(name) for name in SERVICES):
        states = {s["name"]: s["state"] for s in topology["run"]("up", "--json", env=topology["env"])["services"]}
        assert set(states.values()) <= {"started", "running"}, states
    return topology


def test_a_pending_challenger_takes_no_traffic_until_approved(topology):
    pending, started = topology["pending"], topology["started"]
    assert pending["endpoint-a"]["state"] == "started" and pending["feast"]["state"] == "started"
    assert pending["endpoint-b"]["state"] == "waiting"
    assert "PendingManualApproval; approve it first" in pending["endpoint-b"]["detail"]
    assert started["endpoint-b"]["state"] == "started" and started["endpoint-a"]["state"] == "running"


def test_registered_on_postgres_features_from_redis_predictions_through_nginx(running):
    topology = running
    import psycopg
    import redis

    top = topology["topology"]
    # The registry is the PostgreSQL database behind the MLflow server, not a SQLite file.
    with psycopg.connect(top.database_uri("mlflow").replace("postgresql+psycopg", "postgresql")) as connection:
        versions = connection.execute("SELECT name, version FROM model_versions ORDER BY version").fetchall()
    assert versions == [("reviews-sentiment", 1), ("reviews-sentiment", 2)]
    assert not (topology["home"] / "mlflow.db").exists()
    # The online features are in Redis; the feature server and the endpoints read them there.
    assert redis.Redis.from_url(topology["env"]["SAGESTACK_ONLINE_STORE"]).dbsize() > 0
    with httpx.Client(base_url=top.url("nginx"), timeout=30) as client:
        by_id = client.post("/predict_by_id", json={"review_ids": [1, 2]})
        assert by_id.status_code == 200, by_id.text
        assert [p["review_id"] for p in by_id.json()["predictions"]] == [1, 2]
        answer = client.post("/predict", json={"reviews": REVIEWS}).json()
        assert answer["model"]["variant"] in ("A", "B") and answer["model"]["name"] == "reviews-sentiment"
    features = httpx.post(f"{top.url('feast')}/get-online-features", timeout=30, json={
        "feature_service": "sentiment_serving_v1", "entities": {"review_id": [1]}})
    assert features.status_code == 200, features.text


def _predict_many(url: str, count: int, workers: int = 8) -> tuple[Counter, int]:
    """``count`` requests through the router: answers per variant, and how many failed."""
    def one(_):
        try:
            response = httpx.post(f"{url}/predict", json={"reviews": REVIEWS}, timeout=30)
        except httpx.HTTPError:
            return None
        return response.json()["model"]["variant"] if response.status_code == 200 else None

    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(one, range(count)))
    return Counter(a for a in answers if a), sum(a is None for a in answers)


def test_a_b_split_then_shift_without_failures(running):
    topology = running
    try:
        _split_then_shift(topology)
    finally:  # back to the 50/50 every test starts from
        topology["run"]("deploy", "shift-traffic", "--a", "50", "--b", "50", "--route-file",
                        str(topology["home"] / "httproute.yaml"), env=topology["env"])


def _split_then_shift(topology) -> None:
    from scipy.stats import binomtest

    top, run = topology["topology"], topology["run"]
    variants, failed = _predict_many(top.url("nginx"), 1000)
    assert failed == 0 and variants["A"] + variants["B"] == 1000
    assert binomtest(variants["A"], 1000, 0.5).pvalue >= 0.001, variants

    # Shift to 0/100 while clients keep sending: no request fails, and afterwards all land on B.
    stop, during = threading.Event(), []

    def load():
        while not stop.is_set():
            during.append(_predict_many(top.url("nginx"), 40, workers=4))

    sender = threading.Thread(target=load)
    sender.start()
    try:
        shifted = run("deploy", "shift-traffic", "--a", "0", "--b", "100", "--route-file",
                      str(topology["home"] / "httproute.yaml"), "--json", env=topology["env"])
    finally:
        stop.set()
        sender.join()
    assert shifted["router_reloaded"] and "weight: 100" in (topology["home"] / "httproute.yaml").read_text()
    assert sum(failures for _, failures in during) == 0 and sum(sum(v.values()) for v, _ in during) > 0
    after, failed = _predict_many(top.url("nginx"), 200)
    assert failed == 0 and after == Counter({"B": 200})


def test_metrics_name_the_variant(running):
    topology = running
    top = topology["topology"]
    for variant in ("a", "b"):
        # One request of its own first: a histogram has no series before its first observation.
        assert httpx.post(f"{top.url(f'endpoint-{variant}')}/predict", json={"reviews": REVIEWS},
                          timeout=30).status_code == 200
        text = httpx.get(f"{top.url(f'endpoint-{variant}')}/metrics", timeout=10).text
        assert f'variant="{variant.upper()}"' in text and "sagestack_request_duration_seconds_bucket" in text


def _workers(pid: int) -> set[int]:
    """The endpoint server's worker processes (every descendant that runs a BentoML service worker)."""
    import psutil

    workers = set()
    for child in psutil.Process(pid).children(recursive=True):
        try:  # a killed worker stays a zombie until the server reaps it: not a worker any more
            if child.status() != psutil.STATUS_ZOMBIE and any("worker" in part for part in child.cmdline()):
                workers.add(child.pid)
        except psutil.Error:
            continue
    return workers


def test_a_fasttext_endpoint_runs_a_worker_per_core_whose_openmp_threads_wait_passively(running):
    """Variant A serves the pipeline's fastText champion: one worker per core (no worker count set), and workers
    that share the cores get passive OpenMP waits (sagestack.serving.threads) unless the operator set a policy."""
    import os

    import psutil

    from sagestack.serving.threads import available_cores

    top = running["topology"]

    def one_per_core() -> set[int]:  # a worker an earlier test killed may still be coming back
        workers = _workers(top.pid("endpoint-a"))
        return workers if len(workers) == available_cores() else set()

    workers = wait_until(one_per_core, 60,
                         lambda: f"endpoint A runs {_workers(top.pid('endpoint-a'))}, not one worker per core")
    expected = os.environ.get("OMP_WAIT_POLICY", "PASSIVE" if available_cores() > 1 else None)
    assert {psutil.Process(pid).environ().get("OMP_WAIT_POLICY") for pid in workers} == {expected}


def test_a_killed_worker_is_restarted_and_costs_at_most_the_requests_in_flight(running):
    topology = running
    import os
    import signal

    top = topology["topology"]
    before = _workers(top.pid("endpoint-a"))
    assert before, "no worker processes found"
    victim = sorted(before)[0]
    results: list[tuple[Counter, int]] = []
    stop = threading.Event()

    def load():  # straight at variant A's endpoint: no router to hide a failure
        while not stop.is_set():
            results.append(_predict_many(top.url("endpoint-a"), 32, workers=4))

    sender = threading.Thread(target=load)
    sender.start()
    try:
        wait_until(lambda: results, 60, "no load reached variant A's endpoint")  # killed under load
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            after = _workers(top.pid("endpoint-a"))
            return victim not in after and len(after) == len(before)

        wait_until(replaced, 60, lambda: f"worker {victim} was not replaced: {before} -> {_workers(top.pid('endpoint-a'))}",
                   interval=0.5)
        served = len(results)  # and the load goes on against the new worker
        wait_until(lambda: len(results) >= served + 2, 60, "no request was served after the worker came back")
    finally:
        stop.set()
        sender.join()
    failed = sum(f for _, f in results)
    print(f"killed worker {victim}: {failed} of {sum(sum(v.values()) + f for v, f in results)} requests failed")
    assert failed <= 4  # at most the requests in flight (4 clients)
    assert _predict_many(top.url("endpoint-a"), 20) == (Counter({"A": 20}), 0)


def test_redis_down_is_a_503_with_a_clear_message_and_recovers(running):
    topology = running
    top, run = topology["topology"], topology["run"]
    assert top.stop("redis")
    down = httpx.post(f"{top.url('endpoint-a')}/predict_by_id", json={"review_ids": [1]}, timeout=30)
    assert down.status_code == 503, down.text
    assert "online feature store at redis://127.0.0.1:" in down.text and "unreachable" in down.text
    assert "postgres" not in down.text  # no credentials in the message
    assert down.headers["retry-after"] == "5"
    metrics = httpx.get(f"{top.url('endpoint-a')}/metrics", timeout=10).text
    assert 'outcome="unavailable",route="/predict_by_id",variant="A"' in metrics
    restarted = {s["name"]: s["state"] for s in run("up", "--json", env=topology["env"])["services"]}
    assert restarted["redis"] == "started" and restarted["endpoint-a"] == "running"

    def answered():
        answer = httpx.post(f"{top.url('endpoint-a')}/predict_by_id", json={"review_ids": [1]}, timeout=30)
        return answer if answer.status_code == 200 else None

    answer = wait_until(answered, 20, "the endpoint did not answer by id again after Redis came back", interval=0.5)
    assert answer.json()["predictions"][0]["review_id"] == 1  # the features survived (append-only file)


def test_restarting_the_mlflow_server_loses_no_version_or_alias(running):
    topology = running
    top, run = topology["topology"], topology["run"]
    before = run("models", "list", "--json", env=topology["env"])
    assert top.stop("mlflow")
    assert {s["name"]: s["state"] for s in run("up", "--json", env=topology["env"])["services"]}["mlflow"] == "started"
    assert run("models", "list", "--json", env=topology["env"]) == before
    assert "champion" in json.dumps(before) and "challenger" in json.dumps(before)


def test_a_dead_variant_is_routed_around(running):
    topology = running
    top = topology["topology"]
    assert top.stop("endpoint-b")  # variant B's endpoint dies entirely (traffic is still 50/50)
    variants, failed = _predict_many(top.url("nginx"), 100)
    assert failed == 0 and variants == Counter({"A": 100})


def test_down_stops_everything(topology):
    """`sagestack down` stops every running service, nginx first and PostgreSQL last (a later test's ``running``
    brings the topology back: its data and ports are kept). Alone it stops all of them; after the dead-variant
    test, all but the endpoint that test stopped (restarting it only to stop it again cost a minute)."""
    top, run = topology["topology"], topology["run"]
    up = [name for name in reversed(SERVICES) if top.running(name)]
    assert len(up) >= len(SERVICES) - 1, up  # at most one endpoint stopped on purpose
    pids = dict(Topology(top.settings, serve_command).state.pids)  # name -> [pid, start time]
    # What `up` of earlier versions left in the home (with the database password) goes; a file of the user's stays.
    (topology["home"] / "sagestack.toml").write_text(LEGACY_HOME_CONFIG_MARK + 'review_db = "postgresql://u:p@h/r"\n')
    stopped = run("down", "--json", env=topology["env"])["stopped"]
    assert stopped == up
    assert pids and not any(_alive(*entry) for entry in pids.values())
    assert top._postgres_pid() is None and not (topology["home"] / "sagestack.toml").exists()
    theirs = topology["home"] / "sagestack.toml"
    theirs.write_text('variant = "A"\n')
    assert top.down() == [] and theirs.read_text() == 'variant = "A"\n'
    theirs.unlink()
