"""``sagestack serve-aws``: a real server on loopback, called by the real clients (the SageMaker SDK 2.35, boto3,
the ``aws`` CLI) from their own environment (.venv-aws), exactly as a SageMaker user's code calls AWS. Course 1's
labs run end to end in one notebook through the installed kernel: tests/aws/test_course1_notebook.py."""

from __future__ import annotations

import json
import subprocess

import pytest
from serve_aws_fixtures import SAGESTACK, aws, client_bin, client_environment, serve_aws  # noqa: F401

from sagestack.aws.identity import DEFAULT_ACCOUNT, ROLE_NAME


def test_sagemaker_session_default_bucket_role_and_upload_data(aws, tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_text("sentiment,review_body\n1,great dress\n")
    seen = aws.run("session_and_data.py", str(data))
    assert seen["bucket"] == f"sagemaker-us-east-1-{DEFAULT_ACCOUNT}"
    assert seen["role"] == f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/{ROLE_NAME}"
    assert seen["uploaded"] == f"s3://{seen['bucket']}/data/reviews.csv"
    assert seen["body"] == data.read_text()
    # The SDK names STS's AWS endpoint explicitly; the start-up shim of --env sends it to the server instead.
    assert seen["sts_endpoint"] == aws.env["AWS_ENDPOINT_URL"] and seen["region"] == "us-east-1"


def test_boto3_s3_objects_listings_ranges_and_multipart(aws):
    seen = aws.run("s3_objects.py", "boto3-bucket")
    assert seen["body"] == "data/b c+d.csv" and seen["metadata"] == {"source": "test"}
    assert seen["content_type"] == "text/csv" and seen["etag"].startswith('"')
    assert seen["prefixes"] == ["data/nested/"]
    assert seen["folded_keys"] == ["data/a.csv", "data/b c+d.csv"]
    assert seen["pages"] == [["data/a.csv", "data/b c+d.csv"], ["data/nested/e.csv", "top.txt"], ["ünïcode/ключ.txt"]]
    assert seen["ranged"] == "op." and seen["copied"] == "top.txt" and seen["deleted"] == ["copy.txt", "top.txt"]
    assert seen["multipart_roundtrip"] and seen["multipart_etag"].endswith('-2"')
    assert seen["left"] == ["big.bin", "data/a.csv", "data/b c+d.csv", "data/nested/e.csv", "ünïcode/ключ.txt"]


def test_aws_cli_cp_and_ls(aws, tmp_path):
    source = tmp_path / "train.txt"
    source.write_text("__label__1 love it\n")
    copied = aws.command("aws", "s3", "cp", str(source), "s3://cli-bucket/input/train.txt")
    assert copied.returncode != 0 and "NoSuchBucket" in copied.stderr  # no bucket yet: the AWS error, no traceback
    assert aws.command("aws", "s3", "mb", "s3://cli-bucket").returncode == 0
    copied = aws.command("aws", "s3", "cp", str(source), "s3://cli-bucket/input/train.txt")
    assert copied.returncode == 0, copied.stderr
    listed = aws.command("aws", "s3", "ls", "s3://cli-bucket/input/")
    assert listed.returncode == 0 and listed.stdout.split()[-2:] == ["19", "train.txt"], listed.stdout
    assert "cli-bucket" in aws.command("aws", "s3", "ls").stdout
    back = aws.command("aws", "s3", "cp", "s3://cli-bucket/input/train.txt", "-")
    assert back.stdout == source.read_text()


@pytest.fixture(scope="module")
def refusals(aws):
    return aws.run("refusals.py")


@pytest.mark.parametrize("case, code", [("wrong_secret", "SignatureDoesNotMatch"),
                                        ("wrong_key_sts", "InvalidClientTokenId"),
                                        ("wrong_key_s3", "InvalidAccessKeyId")])
def test_other_credentials_get_403(refusals, case, code):
    assert refusals[case]["status"] == 403 and refusals[case]["code"] == code


@pytest.mark.parametrize("case, operation", [("unknown_json", "sagemaker:ListEndpoints"),
                                             ("unknown_query", "sts:AssumeRole"),
                                             ("unknown_s3", "s3:PutBucketTagging")])
def test_an_unknown_operation_is_a_400_naming_it(refusals, case, operation):
    answer = refusals[case]
    assert answer["status"] == 400 and answer["code"] == "NotImplemented"
    assert operation in answer["message"] and "sagestack serve-aws --operations" in answer["message"]


@pytest.mark.parametrize("case, status, code", [
    ("no_such_bucket", 404, "NoSuchBucket"), ("no_such_key", 404, "NoSuchKey"), ("bad_range", 416, "InvalidRange"),
    ("bad_bucket_name", 400, "InvalidBucketName"), ("no_such_role", 404, "NoSuchEntity"),
    ("bad_part", 400, "InvalidPart")])
def test_bad_input_gets_the_aws_error(refusals, case, status, code):
    assert (refusals[case]["status"], refusals[case]["code"]) == (status, code)


def test_requests_no_sdk_sends_are_refused_the_aws_way(refusals):
    assert refusals["unsigned"]["status"] == 403 and "<Code>MissingAuthenticationToken</Code>" in refusals["unsigned"]["body"]
    assert refusals["malformed_xml"]["status"] == 400 and "<Code>MalformedXML</Code>" in refusals["malformed_xml"]["body"]
    assert refusals["not_json"]["status"] == 400 and json.loads(refusals["not_json"]["body"])["__type"]


def test_objects_and_credentials_survive_a_restart(tmp_path, client_bin):
    from sagestack.processes import free_port

    home, port = tmp_path / "home", free_port()
    put = "import boto3; s3 = boto3.client('s3'); s3.create_bucket(Bucket='kept'); s3.put_object(Bucket='kept', Key='k', Body=b'v')"
    get = "import boto3; print(boto3.client('s3').get_object(Bucket='kept', Key='k')['Body'].read().decode())"
    with serve_aws(home, port):
        environment = client_environment(home, port)
        subprocess.run([str(client_bin / "python"), "-c", put], env=environment, check=True, timeout=120)
    with serve_aws(home, port):
        assert client_environment(home, port)["AWS_SECRET_ACCESS_KEY"] == environment["AWS_SECRET_ACCESS_KEY"]
        got = subprocess.run([str(client_bin / "python"), "-c", get], env=environment, capture_output=True, text=True,
                             timeout=120)
    assert got.stdout.strip() == "v", got.stderr


def test_operations_env_and_refusals_on_the_command_line(sagestack_main):
    code, out, _ = sagestack_main("serve-aws", "--operations", "--json")
    rows = {(row["service"], row["operation"]): row["maps_to"] for row in json.loads(out)["operations"]}
    assert code == 0 and {("sts", "GetCallerIdentity"), ("s3", "PutObject"), ("s3", "UploadPart")} <= set(rows)
    code, out, _ = sagestack_main("serve-aws", "--env", "--port", "4999")
    lines = out.splitlines()
    assert code == 0 and "export AWS_ENDPOINT_URL=http://127.0.0.1:4999" in lines
    assert "export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python" in lines
    assert any(line.startswith("export PYTHONPATH=") and line.endswith('"${PYTHONPATH:+:$PYTHONPATH}"') for line in lines)
    code, _, err = sagestack_main("serve-aws", "--host", "0.0.0.0", "--port", "4999")
    assert code == 2 and err.startswith("error: listening on 0.0.0.0") and "SAGESTACK_AWS_ACCESS_KEY_ID" in err


def test_jobs_that_cannot_run_fail_with_the_reason(aws):
    seen = aws.run("processing_refusals.py")
    assert seen["byoc"]["status"] == "Failed"
    assert seen["byoc"]["failure"].startswith("ClientError: image 123456789012.dkr.ecr.us-east-1.amazonaws.com/"
                                              "my-own-processing:latest cannot run here")
    assert "known images: sagemaker-clarify-processing" in seen["byoc"]["failure"]
    assert seen["missing-input"]["status"] == "Failed" and "no object at input s3://" in seen["missing-input"]["failure"]
    # A CSV with a header where BlazingText expects `__label__<label> <text>` lines: the job says which line.
    assert seen["csv-header"]["status"] == "Failed"
    assert "line 1 has no __label__ label" in seen["csv-header"]["failure"], seen["csv-header"]
    assert seen["unknown"]["code"] == "ValidationException" and "never-created" in seen["unknown"]["message"]
    assert seen["duplicate"]["code"] == "ResourceInUse"


def test_a_malformed_http_body_is_a_400_not_a_hang(aws):
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(aws.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(b"PUT /bucket/key HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):  # the server closes the connection after this answer
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 400") and "<Code>IncompleteBody</Code>" in answer


def test_the_kernel_needs_a_python_with_ipykernel(sagestack_main, tmp_path):
    code, _, err = sagestack_main("compat", "kernel", "install", "--python", str(tmp_path / "nothing"))
    assert code == 2 and err.startswith("error: ") and "make aws-client" in err


def _descendants_of_home(home) -> list[str]:
    """The command lines of the processes whose arguments name ``home`` (what a server started there)."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(home) in args and "serve-aws" not in args:
                found.append(args)
    return found


def _started_server(home, port):
    """A real serve-aws (no client environment needed) and a botocore client maker signed for it."""
    import os

    import boto3

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SAGESTACK_", "AWS_"))}
    process = subprocess.Popen([str(SAGESTACK), "serve-aws", "--home", str(home), "--port", str(port), "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment)
    url = json.loads(process.stdout.readline())["url"]
    identity = json.loads((home / "aws" / "identity.json").read_text())

    def client(service):
        return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                            aws_access_key_id=identity["access_key_id"],
                            aws_secret_access_key=identity["secret_access_key"])

    return process, client


def test_sigterm_during_a_job_stops_the_server_and_the_job_at_once(tmp_path):
    import random
    import signal
    import sqlite3
    import time

    from conftest import wait_until

    from sagestack.aws.jobs import STOPPED_WHILE_RUNNING
    from sagestack.processes import free_port

    home = tmp_path / "home"
    process, client = _started_server(home, free_port())
    try:
        words = [f"w{i}" for i in range(300)]
        lines = "".join(f"__label__{i % 2} {' '.join(random.choices(words, k=12))}\n" for i in range(3000))
        s3 = client("s3")
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="train/train.txt", Body=lines.encode())
        client("sagemaker").create_training_job(
            TrainingJobName="long", RoleArn="arn:aws:iam::000000000000:role/x",
            AlgorithmSpecification={"TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1",
                                    "TrainingInputMode": "File"},
            InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": "s3://bkt/train/"}}}],
            OutputDataConfig={"S3OutputPath": "s3://bkt/out"},
            ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
            HyperParameters={"mode": "supervised", "epochs": "100000"})
        wait_until(lambda: any("train fasttext" in args for args in _descendants_of_home(home)), 60,
                   "the training command did not start")
        assert client("sagemaker").describe_training_job(TrainingJobName="long")["SecondaryStatus"] == "Training"
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert time.monotonic() - began < 15
        wait_until(lambda: not _descendants_of_home(home), 5, "a job's process outlived the server")
        with sqlite3.connect(home / "aws" / "jobs" / "jobs.db") as db:
            assert db.execute("SELECT status, failure FROM jobs").fetchall() == [("Failed", STOPPED_WHILE_RUNNING)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_with_a_live_endpoint_leaves_no_endpoint_server(tmp_path):
    import io
    import os
    import signal
    import tarfile

    from conftest import wait_until

    from sagestack.processes import free_port

    model = tmp_path / "model"
    lines = "".join(f"__label__{i % 2} {'good great fine' if i % 2 else 'bad awful poor'} words {i}\n" for i in range(200))
    (tmp_path / "train.txt").write_text(lines)
    subprocess.run([str(SAGESTACK), "train", "fasttext", "--preset", "blazingtext", "--train", str(tmp_path / "train.txt"),
                    "--mode", "supervised", "--epochs", "2", "--buckets", "1000", "--vector-dim", "10", "--out", str(model), "--no-register", "--json"],
                   check=True, capture_output=True, env={**os.environ, "SAGESTACK_HOME": str(tmp_path / "train-home")})
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as archive:
        for path in sorted(p for p in model.rglob("*") if p.is_file()):
            archive.add(path, arcname=path.relative_to(model).as_posix())
    home = tmp_path / "home"
    process, client = _started_server(home, free_port())
    try:
        client("s3").create_bucket(Bucket="bkt")
        client("s3").put_object(Bucket="bkt", Key="model.tar.gz", Body=packed.getvalue())
        sagemaker = client("sagemaker")
        sagemaker.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::000000000000:role/x", PrimaryContainer={
            "Image": "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1", "ModelDataUrl": "s3://bkt/model.tar.gz"})
        sagemaker.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        sagemaker.create_endpoint(EndpointName="e", EndpointConfigName="c")
        status = wait_until(lambda: (lambda s: s if s != "Creating" else None)(
            sagemaker.describe_endpoint(EndpointName="e")["EndpointStatus"]), 240, "the endpoint stayed Creating")
        assert status == "InService"
        assert any(" serve --model " in args for args in _descendants_of_home(home))
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        wait_until(lambda: not _descendants_of_home(home), 5, "an endpoint's server outlived serve-aws")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
