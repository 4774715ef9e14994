"""The server's core in process, in well under a second: requests signed by botocore's own signers (from the
stack's environment) go through :class:`sagestack.aws.server.AwsApi` without HTTP — SigV4 canonical forms as
botocore builds them (S3 paths kept, other paths encoded twice, queries sorted), what a tampered, stale or
unsigned request gets, and each protocol's error shape."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from email.message import Message
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sagestack.aws.backends import Backends
from sagestack.aws import sigv4
from sagestack.aws.protocol import AwsError, Request
from sagestack.aws.server import AwsApi
from conftest import wait_until

ENDPOINT = "http://127.0.0.1:4566"


@pytest.fixture
def api(tmp_path):
    backends = Backends.open(tmp_path / "home")
    yield AwsApi(backends)
    backends.close()


def signed(api: AwsApi, service: str, method: str, url: str, body: bytes = b"", headers: dict | None = None,
           secret: str | None = None) -> Request:
    """``url`` signed as botocore signs it for ``service``, as the server receives it."""
    identity = api.backends.identity
    request = AWSRequest(method=method, url=ENDPOINT + url, data=body, headers=headers or {})
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(
        Credentials(identity.access_key_id, secret or identity.secret_access_key), service, "us-east-1")
    signer.add_auth(request)
    return received(request.prepare())


def received(prepared) -> Request:
    parts = urlsplit(prepared.url)
    headers = Message()
    for name, value in prepared.headers.items():
        headers[name] = value.decode() if isinstance(value, bytes) else value
    headers["Host"] = parts.netloc
    return Request(prepared.method, parts.path, parts.query, headers, prepared.body or b"")


def test_s3_paths_and_queries_are_canonical_as_botocore_signs_them(api):
    api.backends.s3.create_bucket("bkt", "us-east-1")
    api.backends.s3.put("bkt", "a b/c+d ключ", b"x")
    response = api.handle(signed(api, "s3", "GET", "/bkt?list-type=2&prefix=a%20b%2F&delimiter=%2F&encoding-type=url"))
    assert response.status == 200 and b"<Prefix>a%20b/</Prefix>" in response.body
    response = api.handle(signed(api, "s3", "GET", "/bkt/a%20b/c%2Bd%20%D0%BA%D0%BB%D1%8E%D1%87"))
    assert response.status == 200 and response.body == b"x"


def test_other_services_paths_are_encoded_twice_as_botocore_does(api):
    # No such endpoint: that answer (not a 403) proves the signature of the twice-encoded path passed.
    response = api.handle(signed(api, "sagemaker", "POST", "/endpoints/my%3Aendpoint/invocations", b"1,2"))
    assert response.status == 400 and json.loads(response.body) == {
        "__type": "ValidationException", "message": "Endpoint my:endpoint of account 000000000000 not found."}


def test_query_protocol_signed_form_body(api):
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    response = api.handle(signed(api, "sts", "POST", "/", body,
                                 {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}))
    assert response.status == 200 and b"assumed-role/sagestack-execution-role" in response.body


def test_tampered_stale_and_unsigned_requests(api):
    request = signed(api, "sts", "POST", "/", b"Action=GetCallerIdentity&Version=2011-06-15",
                     {"Content-Type": "application/x-www-form-urlencoded"})
    request.body = b"Action=GetCallerIdentity&Version=2011-06-16"
    answer = api.handle(request)
    assert answer.status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in answer.body and b"<ErrorResponse" in answer.body
    request = signed(api, "s3", "PUT", "/bkt/k", b"signed body")
    request.body = b"other body"
    assert b"<Code>XAmzContentSHA256Mismatch</Code>" in api.handle(request).body
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=16)
    with pytest.raises(AwsError, match="15 minutes") as stale:
        sigv4.verify(signed(api, "s3", "GET", "/"), api.backends.identity, now=later)
    assert (stale.value.code, stale.value.status) == ("RequestTimeTooSkewed", 403)
    unsigned = received(AWSRequest(method="GET", url=ENDPOINT + "/").prepare())
    answer = api.handle(unsigned)
    assert answer.status == 403 and b"<Code>MissingAuthenticationToken</Code>" in answer.body
    wrong = api.handle(signed(api, "sagemaker", "POST", "/", b"{}", {"X-Amz-Target": "SageMaker.ListEndpoints"},
                              secret="x" * 40))
    assert wrong.status == 403 and json.loads(wrong.body)["__type"] == "SignatureDoesNotMatch"


def test_a_json_operation_with_a_body_that_is_not_json_is_a_400(api):
    response = api.handle(signed(api, "sagemaker", "POST", "/", b"[1,", {"X-Amz-Target": "SageMaker.DescribeProcessingJob",
                                                                          "Content-Type": "application/x-amz-json-1.1"}))
    assert response.status == 400 and json.loads(response.body)["__type"] == "SerializationException"


def test_jobs_run_in_the_background_at_most_max_concurrent_at_once(tmp_path):
    import threading

    from sagestack.aws.jobs import COMPLETED, FAILED, IN_PROGRESS, STOPPED_WHILE_RUNNING, JobFailed, JobRunner

    runner = JobRunner(tmp_path / "jobs", max_concurrent=1)
    release = threading.Event()
    runner.submit("processing", "first", {}, lambda job: release.wait(10) and {"ok": True})
    runner.submit("processing", "second", {}, lambda job: {"second": True})
    runner.submit("processing", "broken", {}, lambda job: (_ for _ in ()).throw(JobFailed("ClientError: no data")))
    assert [runner.get("processing", n).status for n in ("first", "second")] == [IN_PROGRESS, IN_PROGRESS]
    with pytest.raises(AwsError, match="exists already"):
        runner.submit("processing", "first", {}, lambda job: None)
    release.set()
    wait_until(lambda: runner.get("processing", "broken").status != IN_PROGRESS, 10, "the jobs did not finish")
    first, second, broken = (runner.get("processing", n) for n in ("first", "second", "broken"))
    assert (first.status, first.result, second.status, second.result) == (COMPLETED, {"ok": True}, COMPLETED,
                                                                          {"second": True})
    assert second.started >= first.ended  # one at a time
    assert (broken.status, broken.failure) == (FAILED, "ClientError: no data")
    assert "failed: ClientError: no data" in (broken.folder / "log.txt").read_text()
    with pytest.raises(AwsError) as unknown:
        runner.get("processing", "never")
    assert unknown.value.code == "ValidationException"
    stuck = threading.Event()
    runner.submit("processing", "left-running", {}, lambda job: stuck.wait(10))
    restarted = JobRunner(tmp_path / "jobs")  # as a new server process finds it
    assert (restarted.get("processing", "left-running").status,
            restarted.get("processing", "left-running").failure) == (FAILED, STOPPED_WHILE_RUNNING)
    stuck.set()
    runner.close()
    restarted.close()


def test_clarify_config_becomes_sagestack_bias_options(tmp_path):
    from sagestack.aws.clarify import _dataset, bias_options
    from sagestack.aws.jobs import JobFailed

    headers = ["sentiment", "review_body", "product_category", "age"]
    config = {"dataset_type": "text/csv", "headers": headers, "label": 0, "label_values_or_threshold": [1, 0],
              "facet": [{"name_or_index": "product_category", "value_or_threshold": ["Dresses", "Tops"]},
                        {"name_or_index": 3, "value_or_threshold": 40}, {"name_or_index": "review_body"}],
              "group_variable": "age", "methods": {"pre_training_bias": {"methods": "all"}, "report": {}}}
    assert bias_options(config, headers) == [
        "--label", "sentiment", "--positive", "1,0", "--facet", "product_category=Dresses,Tops", "--facet", "age>40",
        "--facet", "review_body", "--group", "age"]
    with pytest.raises(JobFailed, match="pdp are not supported"):
        bias_options({**config, "methods": {"post_training_bias": {}, "pdp": {}}}, headers)
    with pytest.raises(JobFailed, match="dataset_type 'application/jsonlines'"):
        bias_options({**config, "dataset_type": "application/jsonlines"}, headers)
    data = tmp_path / "data"
    data.mkdir()
    (data / "part.csv").write_text("1,great,Dresses,30\n0,bad,Tops,50\n")  # no header row: the config's is added
    path, columns = _dataset(data, headers, tmp_path)
    assert columns == headers and path.read_text().splitlines()[0] == ",".join(headers)
    (data / "part.csv").write_text(",".join(headers) + "\n1,great,Dresses,30\n")  # a header row: read as it is
    assert _dataset(data, headers, tmp_path) == (data / "part.csv", headers)


def test_blazingtext_hyperparameters_become_fasttext_options():
    from sagestack.aws.blazingtext import train_options
    from sagestack.aws.jobs import JobFailed

    logged = []
    options = train_options({"mode": "supervised", "epochs": "10", "learning_rate": "0.01", "min_count": "2",
                             "vector_dim": "300", "word_ngrams": "3", "early_stopping": "True", "evaluation": "x"},
                            logged.append)
    assert options == ["--mode", "supervised", "--epochs", "10", "--learning-rate", "0.01", "--min-count", "2",
                       "--vector-dim", "300", "--word-ngrams", "3", "--early-stopping"]
    assert logged == ["warning: hyperparameter evaluation=x is not used by sagestack's fastText; ignored"]
    with pytest.raises(JobFailed, match="mode must be one of"):
        train_options({"epochs": "1"}, logged.append)
    with pytest.raises(JobFailed, match="early_stopping must be true or false"):
        train_options({"mode": "supervised", "early_stopping": "maybe"}, logged.append)


def _call(api: AwsApi, operation: str, document: dict) -> tuple[int, dict]:
    """A signed SageMaker json call in process: (status, answer)."""
    response = api.handle(signed(api, "sagemaker", "POST", "/", json.dumps(document).encode(),
                                 {"X-Amz-Target": f"SageMaker.{operation}", "Content-Type": "application/x-amz-json-1.1"}))
    return response.status, json.loads(response.body)


@pytest.mark.parametrize("image, channel_uri, reason", [
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:1", "s3://bkt/train/",
     "ClientError: image 123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:1 cannot run here (sagestack runs no "
     "containers); known images: blazingtext (BlazingText (sagestack train fasttext))"),
    ("811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1", "s3://bkt/missing/",
     "ClientError: no object at input s3://bkt/missing/; upload the data there first"),
    ("811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1", "s3://no-bucket/train/",
     "ClientError: cannot read input s3://no-bucket/train/: the specified bucket does not exist"),
])
def test_a_training_job_that_cannot_run_fails_with_the_reason(api, image, channel_uri, reason):
    api.backends.s3.create_bucket("bkt", "us-east-1")
    request = {"TrainingJobName": "job", "RoleArn": api.backends.identity.role_arn,
               "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
               "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
                   "S3DataType": "S3Prefix", "S3Uri": channel_uri}}}],
               "OutputDataConfig": {"S3OutputPath": "s3://bkt/out"},
               "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30},
               "StoppingCondition": {"MaxRuntimeInSeconds": 600}, "HyperParameters": {"mode": "supervised"}}
    assert _call(api, "CreateTrainingJob", request)[0] == 200
    described = wait_until(lambda: (lambda d: d if d[1]["TrainingJobStatus"] != "InProgress" else None)(
        _call(api, "DescribeTrainingJob", {"TrainingJobName": "job"})), 10, "the job did not end")[1]
    assert (described["TrainingJobStatus"], described["FailureReason"]) == ("Failed", reason)
    assert described["SecondaryStatusTransitions"][-1]["Status"] == "Failed"
    status, refused = _call(api, "CreateTrainingJob", {**request, "TrainingJobName": "bad name!"})
    assert status == 400 and refused["__type"] == "ValidationException"


def test_create_endpoint_refuses_the_prefix_of_clarifys_shadow_endpoints(api):
    # A starting server deletes every endpoint named so, as a shadow endpoint a killed server left.
    status, refused = _sagemaker(api, "CreateEndpoint", {"EndpointName": "sm-clarify-mine", "EndpointConfigName": "c"})
    assert status == 400 and refused["__type"] == "ValidationException"
    assert "'sm-clarify-' is reserved for the shadow endpoints" in refused["message"]
    status, missing = _sagemaker(api, "CreateEndpoint", {"EndpointName": "sm-clarify", "EndpointConfigName": "c"})
    assert status == 400 and "reserved" not in missing["message"]  # only the prefix itself is reserved


def test_cloudwatch_in_cbor_as_botocore_may_speak_it(api):
    import botocore.session
    from botocore import serialize

    from sagestack.aws import cbor

    model = botocore.session.get_session().get_service_model("cloudwatch")
    serializer = serialize.create_serializer("smithy-rpc-v2-cbor")

    def call(operation: str, params: dict):
        built = serializer.serialize_to_request(params, model.operation_model(operation))
        response = api.handle(signed(api, "monitoring", "POST", built["url_path"], built["body"], built["headers"]))
        assert response.headers["smithy-protocol"] == "rpc-v2-cbor"
        return response.status, cbor.decode(response.body)

    status, answer = call("GetMetricStatistics", {
        "Namespace": "/aws/sagemaker/TrainingJobs", "MetricName": "validation:accuracy", "Period": 60,
        "Dimensions": [{"Name": "TrainingJobName", "Value": "no-such-job"}], "Statistics": ["Average"],
        "StartTime": dt.datetime(2026, 1, 1), "EndTime": dt.datetime(2026, 1, 2)})
    assert (status, answer) == (200, {"Label": "validation:accuracy", "Datapoints": []})
    status, answer = call("ListMetrics", {"Namespace": "/aws/sagemaker/TrainingJobs"})
    assert status == 400 and answer["__type"] == "NotImplemented" and "monitoring:ListMetrics" in answer["message"]
    assert cbor.decode(cbor.encode({"a": [1, -2, 2.5, True, None, "x", b"y"]})) == {"a": [1, -2, 2.5, True, None, "x", b"y"]}


def test_a_second_server_on_the_same_home_is_refused_and_changes_nothing(tmp_path):
    import os
    import socket
    import threading

    from sagestack.aws.jobs import COMPLETED, FAILED, IN_PROGRESS
    from sagestack.aws.server import serve
    from sagestack.errors import ConfigError

    home = tmp_path / "home"
    first = Backends.open(home)
    release = threading.Event()
    first.jobs.submit("training", "running", {}, lambda job: release.wait(10) and {"metrics": {}})
    with socket.socket() as taken:  # a second server whose port is taken must not touch the home either
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match="cannot listen"):
            serve(home, "127.0.0.1", taken.getsockname()[1])
    with pytest.raises(ConfigError) as refused:
        Backends.open(home)
    assert str(refused.value) == f"another serve-aws (pid {os.getpid()}) serves {home}"
    with pytest.raises(ConfigError, match="another serve-aws"):
        serve(home, "127.0.0.1", 0)
    assert first.jobs.get("training", "running").status == IN_PROGRESS
    # A job that ended (here: failed by hand) stays ended when its work returns later.
    job = first.jobs.get("training", "running")
    first.jobs.update(job, status=FAILED, secondary="Failed", failure="gave up")
    release.set()
    first.jobs._pool.shutdown(wait=True)  # the work returned
    ended = first.jobs.get("training", "running")
    assert (ended.status, ended.failure, ended.transitions[-1]["Status"]) == (FAILED, "gave up", "Failed")
    assert COMPLETED not in [t["Status"] for t in ended.transitions]
    first.close()
    Backends.open(home).close()  # the home is free again once the first server closed


def _command_job(runner, name: str, seconds: float, limit: int | None = None):
    """Submit a job whose work runs ``sleep`` as its command; returns a function giving the command's pid."""
    import sys

    request = {"StoppingCondition": {"MaxRuntimeInSeconds": limit}} if limit else {}
    runner.submit("training", name, request, lambda job: {"code": runner.run_command(
        job, [sys.executable, "-c", f"import time; time.sleep({seconds})"], env={}, cwd=job.folder,
        stdout=job.folder / "out.txt")})
    return lambda: next((process.pid for (_, running), process in list(runner._running.items()) if running == name),
                        None)


def test_closing_the_runner_stops_running_commands_and_fails_their_jobs(tmp_path):
    import time

    from sagestack.aws.jobs import FAILED, STOPPED_WHILE_RUNNING, JobRunner
    from sagestack.processes import alive

    runner = JobRunner(tmp_path / "jobs")
    pid = wait_until(_command_job(runner, "long", 60), 10, "the command did not start")
    began = time.monotonic()
    runner.close()
    assert time.monotonic() - began < 8 and not alive(pid)
    job = runner.get("training", "long")
    assert (job.status, job.failure, job.transitions[-1]["Status"]) == (FAILED, STOPPED_WHILE_RUNNING, FAILED)
    with pytest.raises(AwsError) as refused:  # a job submitted after close is refused, and never recorded
        runner.submit("training", "late", {}, lambda job: None)
    assert (refused.value.code, refused.value.status) == ("ServiceUnavailable", 503)
    with pytest.raises(AwsError):
        runner.get("training", "late")


def test_a_job_past_its_max_runtime_is_stopped_and_fails(tmp_path):
    from sagestack.aws.jobs import FAILED, IN_PROGRESS, JobRunner
    from sagestack.processes import alive

    runner = JobRunner(tmp_path / "jobs")
    pid = wait_until(_command_job(runner, "slow", 60, limit=1), 10, "the command did not start")
    job = wait_until(lambda: (lambda j: j if j.status != IN_PROGRESS else None)(runner.get("training", "slow")), 15,
                     "the job was not stopped")
    assert job.status == FAILED and job.failure.startswith("MaxRuntimeExceeded: ") and not alive(pid)
    runner.close()


def test_a_command_a_killed_server_left_running_is_stopped_on_the_next_start(tmp_path):
    from sagestack.aws.jobs import FAILED, JobRunner
    from sagestack.processes import alive

    crashed = JobRunner(tmp_path / "jobs")  # never closed: as a server killed with SIGKILL leaves it
    pid = wait_until(_command_job(crashed, "orphan", 60), 10, "the command did not start")
    restarted = JobRunner(tmp_path / "jobs")
    assert not alive(pid) and restarted.get("training", "orphan").status == FAILED
    crashed.close()
    restarted.close()


def test_reading_an_object_while_a_put_replaces_it_gets_an_object_not_a_500(api, monkeypatch):
    from sagestack.aws.s3store import S3Store

    store = api.backends.s3
    store.create_bucket("bkt", "us-east-1")
    store.put("bkt", "k", b"old")
    looked_up = S3Store.get

    def replaced_right_after_the_look_up(self, bucket, key):
        record = looked_up(self, bucket, key)
        if key == "k" and not replaced:
            replaced.append(True)
            self.put("bkt", "k", b"new")  # unlinks the blob the record names
        return record

    monkeypatch.setattr(S3Store, "get", replaced_right_after_the_look_up)
    for request in (lambda: signed(api, "s3", "GET", "/bkt/k"),
                    lambda: signed(api, "s3", "PUT", "/bkt/copy", headers={"x-amz-copy-source": "bkt/k"})):
        replaced = []
        response = api.handle(request())
        assert response.status == 200, response.body
    assert store.get("bkt", "copy").path.read_bytes() == b"new"


def test_concurrent_puts_of_one_key_leave_one_blob(api):
    import threading

    store = api.backends.s3
    store.create_bucket("bkt", "us-east-1")

    def put_many(worker: int) -> None:
        for i in range(25):
            store.put("bkt", "k", f"{worker}-{i}".encode())

    threads = [threading.Thread(target=put_many, args=(worker,)) for worker in range(4)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    assert [path.name for path in (store.root / "blobs").iterdir()] == [store.get("bkt", "k").path.name]


@pytest.fixture
def http_port(api):
    """The server's HTTP layer over ``api`` on a free loopback port, with a 1-second socket timeout."""
    import threading

    from sagestack.aws.server import _Handler, _Server

    class QuickHandler(_Handler):
        timeout = 1

    server = _Server(("127.0.0.1", 0), QuickHandler)
    server.api, server.access_log = api, False
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _exchange(port: int, *sends: bytes, wait: float = 5.0) -> bytes:
    """Send each piece (reading what the server answers after each), until the server closes or ``wait`` passes."""
    import socket

    answers = b""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        for piece in sends:
            connection.sendall(piece)
            connection.settimeout(wait)
            try:
                while chunk := connection.recv(65536):  # then whatever follows at once, until the server is quiet
                    answers += chunk
                    connection.settimeout(0.3)
            except socket.timeout:
                if connection.gettimeout() == wait:
                    return answers + b"<no answer>"
                continue
            break  # closed by the server
    return answers


def test_http_bodies_that_would_hold_a_thread_or_memory_are_refused(api, http_port):
    import time

    def head(body: bytes, *extra: str) -> bytes:
        """A signed PUT's request line and headers (the body's length and hash signed), plus ``extra`` lines."""
        request = signed(api, "s3", "PUT", "/bkt/k", body)
        lines = [f"{name}: {value}" for name, value in request.headers.items() if name not in ("Host", "Content-Length")]
        return "\r\n".join(["PUT /bkt/k HTTP/1.1", f"Host: {request.headers['Host']}", *lines, *extra, "", ""]).encode()

    negative = _exchange(http_port, head(b"abc", "Transfer-Encoding: chunked") + b"-1\r\nabc")
    assert negative.startswith(b"HTTP/1.1 400") and b"IncompleteBody" in negative
    began = time.monotonic()  # a body shorter than its Content-Length: the connection is dropped, not held
    short = _exchange(http_port, head(b"a" * 100, "Content-Length: 100") + b"abc")
    assert b"<no answer>" not in short and time.monotonic() - began < 4
    # Unsigned, announcing a huge body: refused before any of it is asked for.
    unsigned = _exchange(http_port, b"PUT /bkt/k HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n"
                         b"Expect: 100-continue\r\n\r\n")
    assert unsigned.startswith(b"HTTP/1.1 403") and b"MissingAuthenticationToken" in unsigned
    too_large = _exchange(http_port, b"PUT /bkt/k HTTP/1.1\r\nHost: x\r\nContent-Length: 536870912\r\n\r\n")
    assert too_large.startswith(b"HTTP/1.1 400") and b"EntityTooLarge" in too_large
    # Signed: 100 Continue, then the body is read and stored.
    api.backends.s3.create_bucket("bkt", "us-east-1")
    answered = _exchange(http_port, head(b"hello", "Content-Length: 5", "Expect: 100-continue"), b"hello")
    assert answered.startswith(b"HTTP/1.1 100 Continue\r\n\r\n") and b"HTTP/1.1 200" in answered
    assert api.backends.s3.get("bkt", "k").path.read_bytes() == b"hello"


def _hand_signed(api, *, scope_date: str | None = None, signed_headers=("host", "x-amz-date"),
                 headers: dict | None = None) -> Request:
    """A GET / to STS signed here by hand (valid but for what the arguments change)."""
    import hashlib
    import hmac

    identity = api.backends.identity
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    scope = sigv4.Scope(identity.access_key_id, scope_date or stamp[:8], "us-east-1", "sts")
    message = Message()
    message["Host"] = "127.0.0.1:4566"
    message["X-Amz-Date"] = stamp
    for name, value in (headers or {}).items():
        message[name] = value
    request = Request("GET", "/", "Action=GetCallerIdentity&Version=2011-06-15", message)
    payload = (headers or {}).get("X-Amz-Content-SHA256") or hashlib.sha256(b"").hexdigest()
    text = sigv4.canonical_request(request, "sts", list(signed_headers), payload)
    to_sign = "\n".join([sigv4.ALGORITHM, stamp, f"{scope.date}/us-east-1/sts/aws4_request",
                         hashlib.sha256(text.encode()).hexdigest()])
    signature = hmac.new(sigv4._signing_key(identity.secret_access_key, scope), to_sign.encode(),
                         hashlib.sha256).hexdigest()
    message["Authorization"] = (f"{sigv4.ALGORITHM} Credential={identity.access_key_id}/{scope.date}/us-east-1/sts/"
                                f"aws4_request, SignedHeaders={';'.join(signed_headers)}, Signature={signature}")
    return request


def test_sigv4_scope_date_host_and_signed_chunks_as_aws_checks_them(api):
    assert api.handle(_hand_signed(api)).status == 200  # the hand signing itself is right
    yesterday = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).strftime("%Y%m%d")
    with pytest.raises(AwsError, match="credential scope's date") as other_day:
        sigv4.verify(_hand_signed(api, scope_date=yesterday), api.backends.identity)
    assert (other_day.value.code, other_day.value.status) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(AwsError, match="host header must be among the SignedHeaders"):
        sigv4.verify(_hand_signed(api, signed_headers=("x-amz-date",)), api.backends.identity)
    streaming = {"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}
    with pytest.raises(AwsError, match="signed chunks") as chunks:
        sigv4.verify(_hand_signed(api, headers=streaming, signed_headers=("host", "x-amz-content-sha256", "x-amz-date")),
                     api.backends.identity)
    assert chunks.value.code == "NotImplemented"


_SM = ("sagemaker", "SageMaker.")
_LOGS = ("logs", "Logs_20140328.")
_AUTOML = {"AutoMLJobName": "a", "RoleArn": "r", "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
           "InputDataConfig": [{"TargetAttributeName": "y", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/d"}}}]}
_TRAINING = {"TrainingJobName": "t", "RoleArn": "r", "AlgorithmSpecification": {"TrainingImage": "img"},
             "OutputDataConfig": {"S3OutputPath": "s3://b/o"}, "ResourceConfig": {}, "StoppingCondition": {}}


def _cbor(document) -> bytes:
    from sagestack.aws import cbor

    return cbor.encode(document)


@pytest.mark.parametrize("service, operation, body, code", [
    (_SM, "CreateProcessingJob", {"ProcessingJobName": "j", "AppSpecification": "x", "ProcessingResources": {"a": 1},
                                  "RoleArn": "r"}, "ValidationException"),
    (_SM, "CreateProcessingJob", {"ProcessingJobName": "j", "AppSpecification": {"ImageUri": "i"},
                                  "ProcessingResources": {"a": 1}, "RoleArn": "r", "ProcessingInputs": [{"S3Input": 1}]},
     "ValidationException"),
    (_SM, "CreateTrainingJob", {**_TRAINING, "InputDataConfig": ["x"]}, "ValidationException"),
    (_SM, "CreateTrainingJob", {**_TRAINING, "StoppingCondition": {"MaxRuntimeInSeconds": "long"}},
     "ValidationException"),
    (_SM, "CreateModel", {"ModelName": "m", "PrimaryContainer": "img"}, "ValidationException"),
    (_SM, "CreateAutoMLJob", {**_AUTOML, "InputDataConfig": ["x"]}, "ValidationException"),
    (_SM, "CreateAutoMLJob", {**_AUTOML, "InputDataConfig": [{"TargetAttributeName": "y", "DataSource": "s3://b/d"}]},
     "ValidationException"),
    (_SM, "CreateAutoMLJob", {**_AUTOML, "AutoMLJobConfig": {"CompletionCriteria": {"MaxCandidates": "3"}}},
     "ValidationException"),
    (_SM, "CreateAutoMLJob", {**_AUTOML, "AutoMLJobConfig": {"CompletionCriteria": {"MaxCandidates": 0}}},
     "ValidationException"),
    (_SM, "CreateAutoMLJob", {**_AUTOML, "AutoMLJobName": "a" * 33}, "ValidationException"),
    (_SM, "DescribeAutoMLJob", {"AutoMLJobName": ["x"]}, "ValidationException"),
    (_SM, "ListCandidatesForAutoMLJob", {"AutoMLJobName": "never-created"}, "ResourceNotFound"),
    (_SM, "CreateEndpointConfig", {"EndpointConfigName": "c", "ProductionVariants": ["x"]}, "ValidationException"),
    (_SM, "ListProcessingJobs", {"MaxResults": "abc"}, "ValidationException"),
    (_SM, "DescribeProcessingJob", {"ProcessingJobName": ["x"]}, "ValidationException"),
    (_LOGS, "DescribeLogStreams", {"logGroupName": "/aws/sagemaker/TrainingJobs", "limit": "abc"},
     "InvalidParameterException"),
    (_LOGS, "DescribeLogStreams", {"logGroupName": ["x"]}, "InvalidParameterException"),
    (_LOGS, "GetLogEvents", {"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamName": "x/algo-1",
                             "startTime": "now"}, "InvalidParameterException"),
    (_SM, "DescribeModel", b"[" * 100_000, "SerializationException"),
    ("cbor", "additional info 28", b"\x1c", "SerializationException"),
    ("cbor", "simple value 0", b"\xe0", "SerializationException"),
    ("cbor", "nested 5000 deep", b"\x81" * 5000 + b"\x00", "SerializationException"),
    ("cbor", "an array as a map key", b"\xa1\x80\x00", "SerializationException"),
    ("cbor", "a timestamp out of range", b"\xa1\x69StartTime\xc1\x1b" + b"\xff" * 8, "SerializationException"),
    ("cbor", "dimensions not a list", _cbor({"Namespace": "n", "MetricName": "m", "Dimensions": "x"}),
     "InvalidParameterValue"),
    ("cbor", "a dimension not a structure", _cbor({"Namespace": "n", "MetricName": "m", "Dimensions": [1]}),
     "InvalidParameterValue"),
])
def test_malformed_input_is_an_aws_shaped_400_never_a_500(api, service, operation, body, code):
    from sagestack.aws import cbor

    if service == "cbor":
        response = api.handle(signed(api, "monitoring", "POST", "/service/GraniteServiceVersion20100801/operation/"
                                     "GetMetricStatistics", body, {"smithy-protocol": "rpc-v2-cbor",
                                                                   "Content-Type": "application/cbor"}))
        answer = cbor.decode(response.body)
    else:
        response = api.handle(signed(api, service[0], "POST", "/", body if isinstance(body, bytes) else
                                     json.dumps(body).encode(), {"X-Amz-Target": service[1] + operation,
                                                                 "Content-Type": "application/x-amz-json-1.1"}))
        answer = json.loads(response.body)
    assert (response.status, answer["__type"]) == (400, code), answer


def test_a_port_outside_0_to_65535_is_refused_without_a_traceback(sagestack_main, tmp_path):
    from sagestack.aws.server import serve
    from sagestack.errors import ConfigError

    for port in ("70000", "-1"):
        code, _, err = sagestack_main("serve-aws", "--port", port)
        assert code == 2 and "Traceback" not in err and "Invalid value" in err
    with pytest.raises(ConfigError, match="a port is 0 to 65535"):
        serve(tmp_path / "home", "127.0.0.1", 70000)
    assert not (tmp_path / "home" / "aws").exists()  # refused before the home was touched


def test_ipv6_hosts_are_served(api):
    import socket
    import threading

    from sagestack.aws.server import _Handler, _Server

    try:
        server = _Server(("::1", 0), _Handler)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server.api, server.access_log = api, False
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with socket.create_connection(("::1", server.server_address[1]), timeout=5) as connection:
            connection.sendall(b"GET / HTTP/1.1\r\nHost: [::1]\r\nContent-Length: 0\r\n\r\n")
            assert connection.recv(100).startswith(b"HTTP/1.1 403")  # unsigned: served, and refused
    finally:
        server.shutdown()
        server.server_close()


def test_importing_the_cli_loads_none_of_the_server():
    import subprocess
    import sys

    loaded = subprocess.run([sys.executable, "-c", "import sys, sagestack.cli; print(sorted(m for m in sys.modules "
                             "if m.startswith('sagestack.aws')))"], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "['sagestack.aws', 'sagestack.aws.defaults']"


def _model_archive():
    """An open model.tar.gz holding one file (what CreateEndpoint hands the endpoint's start)."""
    import io
    import tarfile

    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as archive:
        info = tarfile.TarInfo("model.bin")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"model"))
    packed.seek(0)
    return packed


def _fake_endpoints(root, monkeypatch):
    """Endpoints whose server is a sleeping process that prints its URL line (no model is served)."""
    import sys

    from sagestack.aws.endpoints import Endpoints

    monkeypatch.setattr(Endpoints, "command", lambda self, model, port, folder: [
        sys.executable, "-c", f"import json, time; print(json.dumps({{'url': 'http://127.0.0.1:{port}'}}), "
        "flush=True); time.sleep(120)"])
    return Endpoints(root)


@pytest.mark.parametrize("cancel", ["delete", "close"])
def test_an_endpoint_deleted_or_closed_while_it_unpacks_starts_no_server(tmp_path, monkeypatch, cancel):
    import tarfile
    import threading

    from sagestack import processes

    endpoints = _fake_endpoints(tmp_path / "endpoints", monkeypatch)
    unpacking, release, started = threading.Event(), threading.Event(), []
    extract = tarfile.TarFile.extractall

    def slow_extract(self, *args, **kwargs):
        unpacking.set()
        release.wait(10)
        return extract(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extractall", slow_extract)
    monkeypatch.setattr(processes, "start", lambda *args, **kwargs: started.append(args))
    endpoints.create_endpoint("ep", "cfg", {"variant": "AllTraffic", "image": "blazingtext", "weight": 1.0},
                              _model_archive())
    assert unpacking.wait(10)
    getattr(endpoints, "delete_endpoint" if cancel == "delete" else "close")(*(["ep"] if cancel == "delete" else []))
    release.set()
    for thread in threading.enumerate():
        if thread.name == "endpoint-ep":
            thread.join(10)
    assert started == [] and not (tmp_path / "endpoints" / "ep").exists()


def test_endpoint_servers_a_killed_server_left_are_stopped_and_delete_removes_their_folder(tmp_path, monkeypatch):
    from sagestack.aws.endpoints import FAILED, IN_SERVICE, RESTARTED
    from sagestack.processes import alive

    serving = {"variant": "AllTraffic", "image": "blazingtext", "weight": 1.0}
    crashed = _fake_endpoints(tmp_path / "endpoints", monkeypatch)  # never closed: as SIGKILL leaves it
    crashed.create_endpoint("ep", "cfg", serving, _model_archive())
    wait_until(lambda: crashed.endpoint("ep")["status"] == IN_SERVICE, 30, lambda: crashed.endpoint("ep"))
    pid = crashed._servers["ep"].pid
    first_folder = next((tmp_path / "endpoints" / "ep").iterdir())
    restarted = _fake_endpoints(tmp_path / "endpoints", monkeypatch)
    assert not alive(pid)
    assert (restarted.endpoint("ep")["status"], restarted.endpoint("ep")["failure"]) == (FAILED, RESTARTED)
    restarted.delete_endpoint("ep")
    assert not (tmp_path / "endpoints" / "ep").exists()
    restarted.create_endpoint("ep", "cfg", serving, _model_archive())  # the same name again: a fresh folder
    wait_until(lambda: restarted.endpoint("ep")["status"] == IN_SERVICE, 30, lambda: restarted.endpoint("ep"))
    assert [path.name for path in (tmp_path / "endpoints" / "ep").iterdir()] != [first_folder.name]
    pid = restarted._servers["ep"].pid
    restarted.close()
    assert not alive(pid)


def test_processes_making_the_identity_at_once_agree_on_it(tmp_path):
    import multiprocessing

    from sagestack.aws.identity import load_identity

    context = multiprocessing.get_context("fork")
    for trial in range(6):
        home = tmp_path / f"home{trial}"
        with context.Pool(3) as pool:
            keys = pool.map(_identity_key, [home] * 3)
        assert set(keys) == {load_identity(home, {}).access_key_id}, keys
        assert [path.name for path in (home / "aws").iterdir()] == ["identity.json"]


def _identity_key(home) -> str:
    from sagestack.aws.identity import load_identity

    return load_identity(home, {}).access_key_id


def test_the_kernel_spec_holding_the_secret_key_is_its_owners_alone(tmp_path):
    from sagestack.aws.bootstrap import install_kernel

    python = tmp_path / "python"  # answers the ipykernel probe as a client environment's Python does
    python.write_text(f"#!/bin/sh\necho {tmp_path / 'venv'}\n")
    python.chmod(0o755)
    folder = install_kernel(tmp_path / "home", 4566, python, tmp_path / "jupyter")
    assert (folder / "kernel.json").stat().st_mode & 0o777 == 0o600
    (folder / "kernel.json").chmod(0o644)  # one written before: made private again
    install_kernel(tmp_path / "home", 4566, python, tmp_path / "jupyter")
    spec = json.loads((folder / "kernel.json").read_text())
    assert (folder / "kernel.json").stat().st_mode & 0o777 == 0o600 and spec["env"]["AWS_SECRET_ACCESS_KEY"]


def test_job_inputs_skip_folder_markers_and_files_are_streamed_both_ways(api, tmp_path):
    import hashlib

    from sagestack.aws.blazingtext import _channel_file
    from sagestack.aws.containers import download_prefix, upload_folder

    store = api.backends.s3
    store.create_bucket("bkt", "us-east-1")
    store.put("bkt", "pre/sub/", b"")  # the marker the S3 console's "Create folder" writes
    store.put("bkt", "pre/sub/x.txt", b"a\nb")
    store.put("bkt", "pre/y.txt", b"c\n")
    written = download_prefix(api.backends, "s3://bkt/pre/", tmp_path / "in")
    assert sorted(path.relative_to(tmp_path / "in").as_posix() for path in written) == ["sub/x.txt", "y.txt"]
    joined = _channel_file(tmp_path / "in", "train", tmp_path)
    assert joined.read_bytes() in (b"a\nb\nc\n", b"c\na\nb\n")  # each file's lines whole, one file after the other
    assert upload_folder(api.backends, tmp_path / "in", "s3://bkt/out/") == 2
    record = store.get("bkt", "out/sub/x.txt")
    assert (record.size, record.etag, record.path.read_bytes()) == (3, hashlib.md5(b"a\nb").hexdigest(), b"a\nb")


@pytest.fixture
def autopilot_container(monkeypatch):
    """Autopilot's inference adapter over a stand-in /predict that answers as a sagestack endpoint does
    (``TextClassifier.predict``: the label as a number where it reads as one, the probabilities most probable
    first), for a model of ``labels`` whose probabilities for each text are ``rows[text]``."""
    import numpy as np

    from sagestack.aws import autopilot, endpoints
    from sagestack.models.base import TextClassifier

    class Model(TextClassifier):
        def __init__(self, labels, rows):
            self.labels, self.rows = labels, rows

        def predict_proba(self, texts):
            return np.array([self.rows[text] for text in texts])

    def invoke(labels, rows, body, environment, accept="application/json"):
        model = Model(labels, rows)
        monkeypatch.setattr(endpoints, "predict", lambda url, texts: json.loads(json.dumps(
            [prediction.to_dict() for prediction in model.predict(texts)])))
        environment = {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability,probabilities,labels",
                       **environment}
        answer, _ = autopilot.invoke("http://127.0.0.1:1", body, "text/csv", accept, environment)
        return json.loads(answer)["predictions"] if accept == "application/json" else answer.decode()

    return invoke


def test_autopilot_answers_in_the_models_label_order_with_its_own_label_strings(autopilot_container):
    card = {"SAGESTACK_LABELS": '["-1", "0", "1"]'}
    rows = {"love": [0.1, 0.2, 0.7], "meh": [0.2, 0.5, 0.3]}
    assert autopilot_container(["-1", "0", "1"], rows, b"love\nmeh\n", card) == [
        {"predicted_label": "1", "probability": 0.7, "probabilities": [0.1, 0.2, 0.7], "labels": ["-1", "0", "1"]},
        {"predicted_label": "0", "probability": 0.5, "probabilities": [0.2, 0.5, 0.3], "labels": ["-1", "0", "1"]}]
    # Labels that are no longer themselves as numbers ("01" and "+1" both read 1): a binary model's
    # probability is its second (positive) label's, whichever wins.
    binary = {"SAGESTACK_LABELS": '["+1", "01"]'}
    rows = {"yes": [0.2, 0.8], "no": [0.9, 0.1]}
    assert autopilot_container(["+1", "01"], rows, b"yes\nno\n", binary) == [
        {"predicted_label": "01", "probability": 0.8, "probabilities": [0.2, 0.8], "labels": ["+1", "01"]},
        {"predicted_label": "+1", "probability": 0.1, "probabilities": [0.9, 0.1], "labels": ["+1", "01"]}]
    assert autopilot_container(["False", "True"], {"no": [0.6, 0.4]}, b"no", {}, accept="text/csv") == \
        "False,0.4,\"[0.6, 0.4]\",\"['False', 'True']\"\n"  # no labels known: sorted, still one order


def test_an_autopilot_model_archive_carries_its_record_layout_and_the_environment_overrides_it(api, tmp_path):
    from sagestack.aws.autopilot import LAYOUT_FILE, inference_image
    from sagestack.aws.containers import upload_model
    from sagestack.aws.jobs import JobFailed
    from sagestack.aws.runtime import serving_environment

    api.backends.s3.create_bucket("bkt", "us-east-1")
    (tmp_path / "model" / "predictor").mkdir(parents=True)
    (tmp_path / "model" / "predictor" / "weights.bin").write_bytes(b"\0" * 10)
    layout = {"input_columns": ["product_category", "review_body"], "text_column": "review_body",
              "labels": ["-1", "0", "1"]}
    uri = upload_model(api.backends, tmp_path / "model", "s3://bkt/m/model.tar.gz", tmp_path / "model.tar.gz",
                       first={LAYOUT_FILE: json.dumps(layout).encode()})
    assert uri == "s3://bkt/m/model.tar.gz" and not (tmp_path / "model.tar.gz").exists()
    _, archive = api.backends.s3.open("bkt", "m/model.tar.gz")
    with archive:
        environment = serving_environment(inference_image("us-east-1"), archive, {"SAGESTACK_TEXT_COLUMN": "x"})
        assert archive.tell() == 0  # left for the endpoint to unpack
        assert serving_environment("1.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1", archive, {"A": "b"}) == \
            {"A": "b"}
    assert environment == {"SAGESTACK_INPUT_COLUMNS": '["product_category", "review_body"]',
                           "SAGESTACK_TEXT_COLUMN": "x", "SAGESTACK_LABELS": '["-1", "0", "1"]'}
    with pytest.raises(JobFailed, match="cannot write the model to s3://nobucket/m"):
        upload_model(api.backends, tmp_path / "model", "s3://nobucket/m/model.tar.gz", tmp_path / "model.tar.gz")


def _sagemaker(api: AwsApi, operation: str, body: dict) -> tuple[int, dict]:
    response = api.handle(signed(api, "sagemaker", "POST", "/", json.dumps(body).encode(), {
        "X-Amz-Target": f"SageMaker.{operation}", "Content-Type": "application/x-amz-json-1.1"}))
    return response.status, json.loads(response.body or b"{}")


def _automl_request(name: str = "job", **changes) -> dict:
    channel = {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bkt/in/"}},
               "TargetAttributeName": "sentiment"}
    request = {"AutoMLJobName": name, "InputDataConfig": [channel], "OutputDataConfig": {"S3OutputPath": "s3://bkt/out"},
               "RoleArn": "arn:aws:iam::000000000000:role/r",
               "AutoMLJobConfig": {"CompletionCriteria": {"MaxCandidates": 1}}}
    for path, value in changes.items():  # "InputDataConfig.0.CompressionType" -> that member
        *parents, last = path.split(".")
        node = request
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[last] = value
    return request


@pytest.mark.parametrize("changes, message", [
    ({"AutoMLJobName": "a" * 33}, "at most 32 characters"),
    ({"AutoMLJobName": "a" + "-b" * 16}, "at most 32 characters"),
    ({"InputDataConfig.0.TargetAttributeName": ""}, "TargetAttributeName must have at least 1 character"),
    ({"InputDataConfig.0.CompressionType": "Zip"}, "CompressionType must be None or Gzip"),
    ({"InputDataConfig.0.DataSource.S3DataSource.S3DataType": "ManifestFile"}, "S3DataType ManifestFile is not"),
    ({"OutputDataConfig.S3OutputPath": "bkt/out"}, "must be an s3:// URI"),
    ({"OutputDataConfig.S3OutputPath": "s3://nobucket/out"}, "output bucket of OutputDataConfig.S3OutputPath"),
    ({"ProblemType": "MulticlassClassification", "AutoMLJobObjective": {"MetricName": "F1"}},
     "F1 is not an objective of MulticlassClassification; use Accuracy or F1macro (the default: Accuracy)"),
    ({"ProblemType": "BinaryClassification", "AutoMLJobObjective": {"MetricName": "F1macro"}},
     "(the default: F1)"),
])
def test_automl_requests_sagemaker_refuses_are_refused_at_create(api, changes, message):
    api.backends.s3.create_bucket("bkt", "us-east-1")
    status, answer = _sagemaker(api, "CreateAutoMLJob", _automl_request(**changes))
    assert (status, answer["__type"]) == (400, "ValidationException") and message in answer["message"], answer
    with pytest.raises(AwsError):
        api.backends.jobs.get("automl", "job")  # nothing was started


def test_an_unknown_automl_job_is_resource_not_found_and_max_results_is_bounded(api):
    for operation in ("DescribeAutoMLJob", "ListCandidatesForAutoMLJob"):
        status, answer = _sagemaker(api, operation, {"AutoMLJobName": "never"})
        assert (status, answer["__type"]) == (400, "ResourceNotFound"), answer
    api.backends.jobs.submit("automl", "done", {}, lambda job: {"candidates": []})
    for wrong in (0, 101):
        status, answer = _sagemaker(api, "ListCandidatesForAutoMLJob", {"AutoMLJobName": "done", "MaxResults": wrong})
        assert status == 400 and "MaxResults must be from 1 to 100" in answer["message"]


def _automl_job(api, name: str, body: bytes, key: str = "in/data.csv", **changes):
    """An AutoML job over one input object, run in process; the finished job."""
    from sagestack.aws.jobs import IN_PROGRESS

    store = api.backends.s3
    with contextlib.suppress(AwsError):  # made by an earlier job of the test
        store.create_bucket("bkt", "us-east-1")
    store.put("bkt", key, body)
    status, answer = _sagemaker(api, "CreateAutoMLJob", _automl_request(name, **changes))
    assert status == 200, answer
    return wait_until(lambda: (lambda j: j if j.status != IN_PROGRESS else None)(api.backends.jobs.get("automl", name)),
                      60, "the job did not end")


def test_automl_jobs_fail_while_analysing_data_the_problem_type_contradicts(api):
    import gzip

    rows = "".join(f"{label},review {i}\n" for i, label in enumerate(["1", "0", "-1"] * 4))
    job = _automl_job(api, "three", ("\ufeffsentiment,review_body\n" + rows).encode(),  # a BOM before the header
                      ProblemType="BinaryClassification")
    assert job.status == "Failed" and job.failure == (
        "ClientError: ProblemType BinaryClassification was given but the target attribute 'sentiment' has 3 classes "
        "(-1, 0, 1): that is MulticlassClassification")
    body = gzip.compress(b"sentiment,review_body\n" + b"1,fine\n" * 5)
    job = _automl_job(api, "one", body, key="gz/data.csv.gz",
                      **{"InputDataConfig.0.CompressionType": "Gzip",
                         "InputDataConfig.0.DataSource.S3DataSource.S3Uri": "s3://bkt/gz/"})
    assert job.failure.startswith("ClientError: the target attribute 'sentiment' has 1 class(es) (1)")
    job = _automl_job(api, "nogzip", b"sentiment,review_body\n1,a\n", key="plain/x.csv",
                      **{"InputDataConfig.0.CompressionType": "Gzip",
                         "InputDataConfig.0.DataSource.S3DataSource.S3Uri": "s3://bkt/plain/"})
    assert job.failure.startswith("ClientError: x.csv is not gzip")
    job = _automl_job(api, "header", b"1,a\n0,b\n", key="nohdr/x.csv",
                      **{"InputDataConfig.0.DataSource.S3DataSource.S3Uri": "s3://bkt/nohdr/"})
    assert job.failure.endswith("its columns are 1, a (the first row of the CSV is read as its header)")
    job = _automl_job(api, "long", b"x" * 3000, key="long/x.csv", **{
        "InputDataConfig.0.TargetAttributeName": "t" * 2000, "InputDataConfig.0.DataSource.S3DataSource.S3Uri":
        "s3://bkt/long/"})
    assert len(job.failure) == 1024  # SageMaker's longest FailureReason


def test_automl_job_runtime_is_a_wall_clock_deadline(api):
    rows = "".join(f"{label},review number {i}\n" for i, label in enumerate(["1", "0"] * 20))
    job = _automl_job(api, "quick", ("sentiment,review_body\n" + rows).encode(),
                      **{"AutoMLJobConfig.CompletionCriteria.MaxAutoMLJobRuntimeInSeconds": 1})
    assert (job.status, job.secondary) == ("Failed", "MaxAutoMLJobRuntimeReached")
    assert job.failure.startswith("MaxAutoMLJobRuntimeReached: ")
    # Stopped at its deadline, not when its command ended (which writes the result; bound loose for a loaded machine).
    assert not (job.folder / "work" / "automl" / "summary.json").exists() and job.ended - job.created < 30
    status, answer = _sagemaker(api, "DescribeAutoMLJob", {"AutoMLJobName": "quick"})
    assert answer["AutoMLJobSecondaryStatus"] == "MaxAutoMLJobRuntimeReached"


def test_a_candidate_missing_for_another_reason_than_time_is_not_a_runtime_cut():
    from sagestack.automl.search import TIME_CUT, unfitted_candidates
    from sagestack.aws.autopilot import final_status

    asked = ["LinearTfidf", "CatBoost", "LightGBM"]
    failures = {"CatBoost": {"exc_type": "TimeLimitExceeded", "exc_str": ""},
                "LightGBM": {"exc_type": "ValueError", "exc_str": "bad input"}}
    assert unfitted_candidates(asked, ["LinearTfidf"], failures, used=9.0, budget=15.0) == {
        "CatBoost": TIME_CUT, "LightGBM": "ValueError: bad input"}
    # Missing with no record: AutoGluon skips so only for want of time, so with time left it is not the time limit.
    assert unfitted_candidates(asked, asked[:2], {}, used=14.9, budget=15.0) == {"LightGBM": TIME_CUT}
    assert unfitted_candidates(asked, asked[:2], {}, used=5.0, budget=15.0)["LightGBM"].startswith("not fitted, with 10 s")
    two = [{"name": "LinearTfidf"}, {"name": "CatBoost"}]
    status, lines = final_status({"leaderboard": two, "not_fitted": {"LightGBM": "ValueError: bad input"},
                                  "time_limit_cut": False}, 3, 3)
    assert status == "MaxCandidatesReached" and lines == [
        "sagestack serve-aws: warning: candidate LightGBM was not fitted: ValueError: bad input",
        "sagestack serve-aws: warning: 2 of the 3 candidates asked for were fitted, and the time limit cut none"]
    status, lines = final_status({"leaderboard": two, "not_fitted": {"LightGBM": TIME_CUT}, "time_limit_cut": True},
                                 3, 3)
    assert status == "MaxAutoMLJobRuntimeReached" and lines == [
        "sagestack serve-aws: MaxAutoMLJobRuntimeReached: the time limit cut candidate LightGBM (not fitted)"]
    assert final_status({"leaderboard": [*two, {"name": "LightGBM"}], "not_fitted": {}, "time_limit_cut": False},
                        3, 5) == ("Completed", [])


def test_automl_objectives_and_time_limits():
    from sagestack.automl.search import positive_f1
    from sagestack.aws.autopilot import _time_limit

    assert positive_f1([1, 1, 0, 0], ["1", "0", "1", "0"], 1) == pytest.approx(0.5)  # TP 1, FP 1, FN 1
    assert positive_f1(["0"], ["0"], "1") == 0.0
    assert _time_limit({}, 3, None) == 240 and _time_limit({"MaxRuntimePerTrainingJobInSeconds": 10}, 3, None) == 30
    assert _time_limit({}, 3, 100.0) == 50 and _time_limit({}, 3, -5.0) == 5  # half what is left, at least 5 s


def test_a_failed_sagestack_command_says_its_own_last_line():
    from sagestack.aws.jobs import command_failure

    traceback = ("... refitting TfidfLinear\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
                 "TypeError: bad operand type for unary -: 'NoneType'\n\n")
    assert str(command_failure(traceback, "automl", 1)) == (
        "AlgorithmError: sagestack automl failed (exit status 1): TypeError: bad operand type for unary -: 'NoneType'")
    assert str(command_failure("... exploring\nerror: --data x.csv: no such file\n", "automl", 2)) == \
        "ClientError: --data x.csv: no such file"
    assert str(command_failure("", "automl", -9)) == "AlgorithmError: sagestack automl failed (exit status -9)"


def test_a_job_s_sagestack_command_gets_none_of_the_server_s_sagestack_settings(tmp_path):
    from sagestack.aws.jobs import job_environment

    server = {"PATH": "/bin", "SAGESTACK_TRACKING_URI": "http://operators-mlflow:5000", "SAGESTACK_HOME": "/srv"}
    environment = job_environment(server, {"SAGESTACK_PROGRESS": "1"}, tmp_path / "home")
    assert environment == {"PATH": "/bin", "SAGESTACK_PROGRESS": "1", "SAGESTACK_HOME": str(tmp_path / "home")}
