"""Capture to an S3-compatible bucket (a real S3 server on loopback): the writer puts whole objects in
hourly partitions, `sagestack monitor run --capture s3://…` reads them like a folder, a corrupt object is
skipped and named, and a missing bucket or an unsupported URI is one clear line."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import run_sagestack
from s3server import BUCKET, s3  # noqa: F401 (s3 is a fixture)
from sagestack.errors import DataError
from sagestack.monitor.capture import CaptureStore, CaptureWriter, read_capture
from traffic import capture, window, world  # noqa: F401 (world is a fixture)


def test_captured_traffic_in_a_bucket_is_monitored_like_a_folder(world, s3, tmp_path):
    import boto3

    uri = f"s3://{BUCKET}/endpoint-a/"
    truth = capture(uri, window(world["test"], 21), world["predictor"])
    truth.to_csv(tmp_path / "truth.csv", index=False)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="endpoint-a/")["Contents"]]
    assert keys and all(k.startswith("endpoint-a/20") and k.endswith(".parquet") for k in keys)
    assert len(keys[0].split("/")) == 6  # prefix / YYYY / MM / DD / HH / file
    captured, skipped = read_capture(uri)
    assert len(captured) == len(truth) == 600 and skipped == []
    assert set(captured["inference_id"]) == set(truth["inference_id"])
    now = datetime.now(timezone.utc)  # a window lists only its hour partitions, and finds the same records
    assert len(read_capture(uri, since=now - timedelta(hours=1))[0]) == 600
    assert read_capture(uri, since=now + timedelta(hours=2))[0].empty

    boto3.client("s3").put_object(Bucket=BUCKET, Key="endpoint-a/2026/11/26/23/broken.parquet", Body=b"not parquet")
    ran = run_sagestack(tmp_path / "home", "monitor", "run", "--baseline", str(world["out"] / "baseline"),
                        "--capture", uri, "--ground-truth", str(tmp_path / "truth.csv"), "--out",
                        str(tmp_path / "run"), "--json", env=s3)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["window"]["rows"] == 600 and result["status"] == "completed", result["violations"]
    assert result["skipped_files"] == [
        f"s3://{BUCKET}/endpoint-a/2026/11/26/23/broken.parquet: " + result["skipped_files"][0].split(": ", 1)[1]]
    assert json.loads((tmp_path / "run" / "violations.json").read_text()) == {"violations": []}

    # SAGESTACK_CAPTURE_URI is the default --capture, as it is the endpoint's target.
    ran = run_sagestack(tmp_path / "home", "monitor", "run", "--baseline", str(world["out"] / "baseline"),
                        "--out", str(tmp_path / "run2"), "--json", env={**s3, "SAGESTACK_CAPTURE_URI": uri})
    assert ran.returncode == 0 and json.loads(ran.stdout)["window"]["rows"] == 600, ran.stderr


def test_a_missing_bucket_or_an_unknown_scheme_is_one_line(world, s3, tmp_path):
    with pytest.raises(DataError, match="not supported; give a folder or an S3 URI"):
        CaptureStore("gs://bucket/capture")
    with pytest.raises(DataError, match="not supported"):
        CaptureStore("s3://")
    with pytest.raises(DataError, match=r"cannot list capture files at s3://no-such-bucket/x: .*NO_SUCH_BUCKET"):
        read_capture("s3://no-such-bucket/x")
    assert read_capture(f"s3://{BUCKET}/nothing-here")[0].empty  # an empty prefix is an empty window
    ran = run_sagestack(tmp_path / "home", "monitor", "run", "--baseline", str(world["out"] / "baseline"),
                        "--capture", "s3://no-such-bucket/x", "--out", str(tmp_path / "run"), env=s3)
    assert ran.returncode == 2 and len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert "cannot list capture files at s3://no-such-bucket/x" in ran.stderr and not (tmp_path / "run").exists()


def test_a_bucket_that_refuses_writes_loses_that_flush_only(s3):
    import boto3
    from types import SimpleNamespace

    prediction = SimpleNamespace(label=1, probabilities={"1": 1.0})
    writer = CaptureWriter("s3://late-bucket/capture", 100, flush_seconds=3600)
    writer.offer("a", "/predict", ["x", "y"], [prediction] * 2, {"kind": "fasttext"})
    assert writer.flush() == 0 and writer.stats.failed == 2  # no such bucket yet: counted, not raised
    boto3.client("s3").create_bucket(Bucket="late-bucket")
    writer.offer("b", "/predict", ["z"], [prediction], {"kind": "fasttext"})
    writer.close()
    assert writer.stats.written == 1
    assert read_capture("s3://late-bucket/capture")[0]["inference_id"].tolist() == ["b"]
