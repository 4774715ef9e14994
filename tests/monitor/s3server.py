"""A real S3-compatible server on loopback for the capture tests: moto's server mode (HTTP, the S3 REST API),
with a bucket made, and the ``AWS_*`` variables that point boto3, pyarrow and child processes at it."""

from __future__ import annotations

import pytest

BUCKET = "sagestack-capture"


@pytest.fixture(scope="module")
def s3():
    """Yields the environment (``AWS_ENDPOINT_URL`` and credentials) of a fresh server holding :data:`BUCKET`;
    it is set in this process too while the module's tests run."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "sagestack",
           "AWS_SECRET_ACCESS_KEY": "sagestack-secret", "AWS_DEFAULT_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        try:
            yield env
        finally:
            server.stop()
