"""What ``sagestack serve-aws`` costs over calling sagestack directly: the same work through the AWS API, from the
real clients (.venv-aws: the SageMaker SDK 2.35, boto3) against a real server on loopback, and done directly.

``clarify``: the course's Clarify pre-training bias job on reviews_clarify_lab.csv (7 methods, facet
product_category), started with ``SageMakerClarifyProcessor.run_pre_training_bias(wait=False)`` and polled
with ``describe_processing_job`` every 0.2 s until ``Completed`` (the SDK's own ``wait()`` polls every 5 s,
which would add up to 5 s of nothing), against ``sagestack bias`` on the same file. Seconds each, and the API
path's overhead. The job runs the same ``sagestack bias`` in a process of its own, so the overhead is the upload,
the job's record, copying the input in and the outputs out, and the polling.

``endpoint``: a BlazingText model (a training job on 2,000 lines of the course's split, small hyperparameters)
deployed with ``estimator.deploy()`` (CreateModel, CreateEndpointConfig, CreateEndpoint), then 8 concurrent
clients for ``--seconds`` each, one real validation review a request, in rotation: boto3 ``invoke_endpoint``
(``application/json`` ``{"instances": [review]}``, signed, through serve-aws); the same endpoint's sagestack
server's ``/predict`` (``{"reviews": [review]}``) directly; and boto3 ``sts.get_caller_identity()`` through
serve-aws, a signed call with no endpoint behind it (the API path's floor). Two rounds of /predict, InvokeEndpoint,
GetCallerIdentity, in that order. The clients
are Python threads in one process of the client environment (keep-alive connections), alike for every path, and
share the cores with the servers. Prints requests/s, p50 and p99 side by side.

Run: .venv/bin/python bench/serve_aws.py [--sections clarify,endpoint] [--repeats 2] [--seconds 15]
(needs .venv-aws: ``make aws-client``).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from course_split import blazingtext_split
from sagestack.config import load_settings
from sagestack.data import resolve_dataset
from sagestack.processes import free_port

REPO = Path(__file__).resolve().parents[1]
CLIENT_PYTHON = REPO / ".venv-aws" / "bin" / "python"
SAGESTACK = Path(sys.executable).with_name("sagestack")
CLIENTS = 8

CLARIFY_CLIENT = r"""
import json, sys, time
started = time.perf_counter()
import boto3, sagemaker
from sagemaker import clarify
sess = sagemaker.Session()
bucket = sess.default_bucket()
role = sagemaker.get_execution_role()
ready = time.perf_counter()
data_s3_uri = sess.upload_data(sys.argv[1], bucket=bucket, key_prefix="bias/prepared")
data_config = clarify.DataConfig(s3_data_input_path=data_s3_uri, s3_output_path=f"s3://{bucket}/bias/report-{sys.argv[2]}",
                                 label="sentiment", headers=["sentiment", "review_body", "product_category"],
                                 dataset_type="text/csv")
bias_config = clarify.BiasConfig(label_values_or_threshold=[1], facet_name="product_category")
processor = clarify.SageMakerClarifyProcessor(role=role, instance_count=1, instance_type="ml.c5.2xlarge",
                                              sagemaker_session=sess)
processor.run_pre_training_bias(data_config=data_config, data_bias_config=bias_config,
                                methods=["CI", "DPL", "KL", "JS", "LP", "TVD", "KS"], wait=False, logs=False)
client = boto3.client("sagemaker")
while True:
    status = client.describe_processing_job(ProcessingJobName=processor.latest_job.job_name)["ProcessingJobStatus"]
    if status != "InProgress":
        break
    time.sleep(0.2)
done = time.perf_counter()
print(json.dumps({"status": status, "setup": ready - started, "job": done - ready}))
"""

TRAIN_AND_DEPLOY_CLIENT = r"""
import json, sys, time
import sagemaker
sess = sagemaker.Session()
bucket = sess.default_bucket()
role = sagemaker.get_execution_role()
train = sess.upload_data(sys.argv[1], bucket=bucket, key_prefix="bench/train")
validation = sess.upload_data(sys.argv[2], bucket=bucket, key_prefix="bench/validation")
estimator = sagemaker.estimator.Estimator(image_uri=sagemaker.image_uris.retrieve("blazingtext", sess.boto_region_name),
                                          role=role, instance_count=1, instance_type="ml.m5.large",
                                          sagemaker_session=sess)
estimator.set_hyperparameters(mode="supervised", epochs=5, learning_rate=0.1, min_count=2, vector_dim=20,
                              word_ngrams=1)
estimator.fit({"train": sagemaker.inputs.TrainingInput(train, content_type="text/plain"),
               "validation": sagemaker.inputs.TrainingInput(validation, content_type="text/plain")}, logs=False)
name = "bench-blazingtext"
started = time.perf_counter()
estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name)
print(json.dumps({"endpoint": name, "in_service": time.perf_counter() - started}))
"""

LOAD_CLIENT = r"""
import http.client, json, sys, threading, time
from urllib.parse import urlsplit
import boto3
endpoint, direct_url, seconds, clients = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
reviews = json.loads(open(sys.argv[5]).read())


def run(make_call):
    latencies, errors, lock = [], [0], threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(offset):
        call = make_call()
        mine, failed, index = [], 0, offset
        while time.perf_counter() < stop:
            review = reviews[index % len(reviews)]
            index += clients
            began = time.perf_counter()
            try:
                call(review)
                mine.append(time.perf_counter() - began)
            except Exception:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")
    return {"rps": len(latencies) / elapsed, "p50_ms": pick(0.50), "p99_ms": pick(0.99), "errors": errors[0],
            "requests": len(latencies)}


def invoke_endpoint():
    runtime = boto3.client("sagemaker-runtime")

    def call(review):
        body = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="application/json",
                                       Body=json.dumps({"instances": [review]}))["Body"].read()
        json.loads(body)[0]["label"]
    return call


def caller_identity():
    sts = boto3.client("sts")

    def call(review):
        sts.get_caller_identity()["Account"]
    return call


def predict():
    address = urlsplit(direct_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)

    def call(review):
        connection.request("POST", "/predict", json.dumps({"reviews": [review]}),
                           {"Content-Type": "application/json"})
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(answer.status)
        json.loads(body)["predictions"][0]["label"]
    return call


results = {}
for name, make in (("direct", predict), ("api", invoke_endpoint), ("floor", caller_identity), ("direct2", predict),
                   ("api2", invoke_endpoint), ("floor2", caller_identity)):
    results[name] = run(make)
print(json.dumps(results))
"""


@contextmanager
def serve_aws(home: Path):
    """A real ``sagestack serve-aws`` on a free loopback port; yields (url, the client environment)."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SAGESTACK_", "AWS_"))}
    log = open(home.parent / "serve-aws.log", "w")
    process = subprocess.Popen([str(SAGESTACK), "serve-aws", "--home", str(home), "--port", str(port), "--json"],
                               stdout=subprocess.PIPE, stderr=log, text=True, env=clean)
    try:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"serve-aws did not start: {(home.parent / 'serve-aws.log').read_text()[-2000:]}")
        printed = subprocess.run([str(SAGESTACK), "serve-aws", "--env", "--json", "--home", str(home), "--port",
                                  str(port)], capture_output=True, text=True, check=True, env=clean)
        environment = {k: v for k, v in clean.items() if not k.startswith("PYTHON")}
        environment.update(json.loads(printed.stdout))
        environment["HOME"] = str(home.parent)
        yield json.loads(line)["url"], environment
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def client(script: str, environment: dict, *args: str, cwd: Path) -> dict:
    """Run a client script with the client environment's Python; its last JSON line."""
    ran = subprocess.run([str(CLIENT_PYTHON), "-c", script, *args], capture_output=True, text=True, env=environment,
                         cwd=cwd, timeout=1800)
    if ran.returncode != 0:
        raise SystemExit(f"client failed:\n{ran.stdout[-2000:]}\n{ran.stderr[-4000:]}")
    last = ran.stdout.strip().splitlines()[-1]
    return json.loads(last[last.index("{"):])


def bench_clarify(environment: dict, work: Path, repeats: int) -> None:
    lab = resolve_dataset("reviews_clarify_lab.csv", settings=load_settings(home=work / "direct-home")).path
    api, direct, setups = [], [], []
    for repeat in range(repeats):
        seen = client(CLARIFY_CLIENT, environment, str(lab), str(repeat), cwd=work)
        if seen["status"] != "Completed":
            raise SystemExit(f"the Clarify job ended {seen['status']}")
        api.append(seen["job"])
        setups.append(seen["setup"])
        started = time.perf_counter()
        subprocess.run([str(SAGESTACK), "bias", "--data", str(lab), "--label", "sentiment", "--positive", "1",
                        "--facet", "product_category", "--out", str(work / f"direct-{repeat}"), "--json",
                        "--home", str(work / "direct-home")], capture_output=True, text=True, check=True)
        direct.append(time.perf_counter() - started)
    print(f"clarify: pre-training bias of reviews_clarify_lab.csv (486 rows, 7 methods), {repeats} run(s) each, "
          "seconds (best / every run)")
    print(f"  through serve-aws (upload, CreateProcessingJob, polled to Completed): {min(api):6.2f}  "
          f"[{', '.join(f'{s:.2f}' for s in api)}]")
    print(f"  sagestack bias directly (its own process):                          {min(direct):6.2f}  "
          f"[{', '.join(f'{s:.2f}' for s in direct)}]")
    print(f"  the API path's overhead: {min(api) - min(direct):+.2f} s ({min(api) / min(direct):.2f}x); "
          f"the client's SDK import + Session + default bucket + role, once per script: {min(setups):.2f} s")


def bench_endpoint(environment: dict, home: Path, work: Path, seconds: float) -> None:
    train, validation = blazingtext_split(load_settings(home=work / "direct-home"), work / "split")
    small_train, small_validation = work / "train.txt", work / "validation.txt"
    small_train.write_text("".join(train.read_text().splitlines(keepends=True)[:2000]))
    small_validation.write_text("".join(validation.read_text().splitlines(keepends=True)[:300]))
    deployed = client(TRAIN_AND_DEPLOY_CLIENT, environment, str(small_train), str(small_validation), cwd=work)
    with sqlite3.connect(home / "aws" / "endpoints" / "endpoints.db") as db:
        direct_url = db.execute("SELECT url FROM endpoints WHERE name = ?", (deployed["endpoint"],)).fetchone()[0]
    reviews = [line.split(" ", 1)[1] for line in validation.read_text().splitlines()[:500] if " " in line]
    (work / "reviews.json").write_text(json.dumps(reviews))
    seen = client(LOAD_CLIENT, environment, deployed["endpoint"], direct_url, str(seconds), str(CLIENTS),
                  str(work / "reviews.json"), cwd=work)
    print(f"endpoint: BlazingText (fastText) endpoint, deploy() returned InService after {deployed['in_service']:.1f} s; "
          f"{CLIENTS} concurrent Python clients, {seconds:.0f} s each, one review a request, run in the order shown")
    print(f"  {'path':<48} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    names = {"direct": "/predict of the endpoint's server, directly", "api": "InvokeEndpoint (boto3) through serve-aws",
             "floor": "GetCallerIdentity (boto3) through serve-aws"}
    for key, figures in seen.items():
        print(f"  {names[key.rstrip('2')]:<48} {figures['rps']:7.1f} {figures['p50_ms']:8.1f} "
              f"{figures['p99_ms']:8.1f} {figures['errors']:7d}")
    best = {key: max(seen[key]["rps"], seen[key + "2"]["rps"]) for key in ("direct", "api", "floor")}
    print(f"  InvokeEndpoint / direct, best of two rounds: {best['api'] / best['direct']:.2f}x the requests/s; "
          f"GetCallerIdentity (no endpoint behind it) is the floor of a signed boto3 call through serve-aws")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="clarify,endpoint")
    parser.add_argument("--repeats", type=int, default=2, help="Clarify runs per path")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per path and round of the load")
    arguments = parser.parse_args()
    if not CLIENT_PYTHON.exists():
        raise SystemExit("error: no client environment; run `make aws-client` first")
    sections = set(arguments.sections.split(","))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    print(f"serve-aws bench at {commit.strip()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          f"at the start, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC")
    with tempfile.TemporaryDirectory(prefix="bench-serve-aws-") as scratch:
        work = Path(scratch)
        home = work / "home"
        with serve_aws(home) as (_, environment):
            if "clarify" in sections:
                bench_clarify(environment, work, arguments.repeats)
            if "endpoint" in sections:
                bench_endpoint(environment, home, work, arguments.seconds)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
