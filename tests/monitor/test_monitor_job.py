"""Capture files → a monitoring run (violations.json, report.html, MLflow), and the CLI around it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from conftest import run_sagestack
from sagestack.config import load_settings
from sagestack.errors import DataError
from sagestack.monitor.capture import CaptureWriter, read_capture
from sagestack.monitor.job import run_monitor
from sagestack.monitor.run import PREDICTED
from traffic import capture, window, world  # noqa: F401 (world is a fixture)


def test_captured_traffic_with_ground_truth_runs_clean_then_catches_a_shift(world, tmp_path):
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    truth = capture(tmp_path / "capture", window(world["test"], 10), world["predictor"])
    captured, skipped = read_capture(tmp_path / "capture")
    assert len(captured) == len(truth) and skipped == []
    assert set(captured.columns) >= {"inference_id", "item", "time", "review", "label", "probabilities", "model_kind"}
    truth.to_csv(tmp_path / "truth.csv", index=False)

    clean = run_monitor(world["out"] / "baseline", tmp_path / "capture", tmp_path / "run1",
                        ground_truth=tmp_path / "truth.csv", settings=settings)
    assert clean["status"] == "completed", clean["violations"]
    assert {c["name"] for c in clean["checks"]} >= {"predictions", "labels", "columns.product_category"}
    assert json.loads((tmp_path / "run1" / "violations.json").read_text()) == {"violations": []}
    assert "Monitoring report" in (tmp_path / "run1" / "report.html").read_text()
    from sagestack.registry.store import client

    logged = client(settings).get_run(clean["mlflow_run"]).data.metrics
    assert logged["violations"] == 0 and logged["window_rows"] == len(truth)

    positive = world["test"][world["test"]["sentiment"] == "1"]
    later = capture(tmp_path / "capture2", window(positive, 11), world["predictor"])
    (tmp_path / "capture2" / "2026").mkdir(exist_ok=True)
    (tmp_path / "capture2" / "2026" / "broken.parquet").write_bytes(b"not parquet")
    later.to_csv(tmp_path / "truth2.csv", index=False)
    shifted = run_monitor(world["out"] / "baseline", tmp_path / "capture2", tmp_path / "run2",
                          ground_truth=tmp_path / "truth2.csv")
    assert shifted["status"] == "completed_with_violations"
    found = json.loads((tmp_path / "run2" / "violations.json").read_text())["violations"]
    assert {v["feature_name"] for v in found} >= {"predictions", "labels"}
    assert len(shifted["skipped_files"]) == 1 and "broken.parquet" in shifted["skipped_files"][0]


def test_bad_windows_and_ground_truth_are_one_clear_line(world, tmp_path):
    truth = capture(tmp_path / "capture", window(world["test"], 12, size=50), world["predictor"])
    baseline = world["out"] / "baseline"
    future = datetime.now(timezone.utc) + timedelta(days=2)
    with pytest.raises(DataError, match="no captured records in .* between"):
        run_monitor(baseline, tmp_path / "capture", tmp_path / "out", since=future)
    truth.assign(inference_id=[f"nope{i}" for i in range(len(truth))]).to_csv(tmp_path / "unknown.csv", index=False)
    with pytest.raises(DataError, match="none of the 50 inference ids in .* is in this window"):
        run_monitor(baseline, tmp_path / "capture", tmp_path / "out", ground_truth=tmp_path / "unknown.csv")
    pd.concat([truth, truth.head(2)]).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(DataError, match=r"labels inference \w+ item \d more than once \(2 repeated row\(s\)\)"):
        run_monitor(baseline, tmp_path / "capture", tmp_path / "out", ground_truth=tmp_path / "twice.csv")
    truth.assign(item="first").to_csv(tmp_path / "items.csv", index=False)
    with pytest.raises(DataError, match="item 'first' is not a review's place in its request"):
        run_monitor(baseline, tmp_path / "capture", tmp_path / "out", ground_truth=tmp_path / "items.csv")
    capture(tmp_path / "other-kind", window(world["test"], 14, size=50), world["predictor"], kind="baseline")
    with pytest.raises(DataError, match="come from a baseline model but the baseline was made with a fasttext model"):
        run_monitor(baseline, tmp_path / "other-kind", tmp_path / "out")
    with pytest.raises(DataError, match="no capture folder at"):
        run_monitor(baseline, tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written

    cli = run_sagestack(tmp_path / "home", "monitor", "run", "--baseline", str(tmp_path), "--capture",
                        str(tmp_path / "capture"), "--out", str(tmp_path / "o"))
    assert cli.returncode == 2 and cli.stderr.strip().startswith(f"error: {tmp_path} holds no baseline")
    cli = run_sagestack(tmp_path / "home", "monitor", "run", "--baseline", str(baseline), "--capture",
                        str(tmp_path / "capture"), "--since", "yesterday", "--out", str(tmp_path / "o"))
    assert cli.returncode == 2 and "--since 'yesterday' is not a time" in cli.stderr


def test_the_cli_makes_a_baseline_and_runs_a_window(world, tmp_path):
    validation = world["out"] / "prepared" / "validation.csv"
    made = run_sagestack(tmp_path / "home", "monitor", "baseline", "--data", str(validation), "--model",
                         str(world["out"] / "model"), "--out", str(tmp_path / "baseline"), "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / "baseline" / "statistics.json").read_text())["model"]["kind"] == "fasttext"
    capture(tmp_path / "home" / "capture", window(world["test"], 13), world["predictor"])
    ran = run_sagestack(tmp_path / "home", "monitor", "run", "--baseline", str(tmp_path / "baseline"),
                        "--out", str(tmp_path / "run"), "--json")
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["window"]["rows"] == 600 and result["mlflow_run"]
    assert PREDICTED not in result["window"]


def test_the_capture_queue_drops_and_counts_instead_of_blocking(tmp_path):
    from types import SimpleNamespace

    prediction = SimpleNamespace(label=1, probabilities={"1": 0.9, "0": 0.05, "-1": 0.05})
    writer = CaptureWriter(tmp_path / "capture", 100, max_records=3, flush_seconds=3600)
    queued = writer.offer("id", "/predict", ["a", "b", "c", "d", "e"], [prediction] * 5, {"kind": "fasttext"})
    assert (queued, writer.stats.dropped) == (3, 2)
    writer.close()
    assert writer.stats.written == 3 and len(read_capture(tmp_path / "capture")[0]) == 3
    sampled = CaptureWriter(tmp_path / "c2", 20, seed=0)
    share = sum(sampled.sampled() for _ in range(5000)) / 5000
    sampled.close()
    assert 0.18 < share < 0.22
    with pytest.raises(DataError, match="between 0 and 100"):
        CaptureWriter(tmp_path / "c3", 120)


def test_a_write_error_loses_that_flush_only_and_the_writer_goes_on(tmp_path):
    from types import SimpleNamespace

    prediction = SimpleNamespace(label=0, probabilities={"0": 1.0})
    flushed = []
    writer = CaptureWriter(tmp_path / "capture", 100, flush_seconds=3600, on_flush=lambda w, f: flushed.append((w, f)))
    (tmp_path / "capture").write_text("a file where the folder should be")
    writer.offer("a", "/predict", ["x", "y"], [prediction] * 2, {"kind": "fasttext"})
    assert writer.flush() == 0 and writer.stats.failed == 2 and flushed == [(0, 2)]
    (tmp_path / "capture").unlink()
    writer.offer("b", "/predict", ["z"], [prediction], {"kind": "fasttext"})
    assert writer.flush() == 1 and writer.stats.written == 1 and flushed[-1] == (1, 0)
    writer.close()

    small = CaptureWriter(tmp_path / "c2", 100, max_bytes=10, flush_seconds=3600)
    assert small.offer("c", "/predict", ["12345", "67890", "x"], [prediction] * 3, {}) == 2
    assert small.stats.dropped == 1
    small.close()


def test_capture_files_read_as_one_dataset_and_windows_cut_at_the_second(tmp_path):
    import pyarrow.dataset as ds
    from types import SimpleNamespace

    prediction = SimpleNamespace(label=1, probabilities={"1": 1.0})
    writer = CaptureWriter(tmp_path / "capture", 100, flush_seconds=3600)
    writer.offer("a", "/predict", ["no variant"], [prediction], {"kind": "fasttext", "variant": None})
    writer.flush()
    writer.offer("b", "/predict", ["variant B"], [prediction], {"kind": "fasttext", "variant": "B"})
    writer.close()
    table = ds.dataset(tmp_path / "capture", format="parquet").to_table()  # one schema for every file
    assert table.num_rows == 2 and sorted(v for v in table.column("variant").to_pylist() if v) == ["B"]
    captured, _ = read_capture(tmp_path / "capture")
    moment = captured["time"].iloc[0].to_pydatetime()
    naive = moment.replace(tzinfo=None) - timedelta(microseconds=1)  # naive datetimes are UTC
    assert len(read_capture(tmp_path / "capture", since=naive)[0]) == 2
    assert len(read_capture(tmp_path / "capture", since=moment + timedelta(hours=2))[0]) == 0


def test_allow_empty_on_a_fresh_home_writes_a_no_data_report(world, tmp_path):
    """No capture folder yet (capture never ran in this home): with --allow-empty a `no_data` result,
    without it the one-line error that says how to turn capture on."""
    baseline = str(world["out"] / "baseline")
    home = tmp_path / "home"
    fresh = run_sagestack(home, "monitor", "run", "--baseline", baseline, "--allow-empty", "--out",
                          str(tmp_path / "quiet"), "--json")
    assert fresh.returncode == 0, fresh.stderr
    result = json.loads(fresh.stdout)
    assert result["status"] == "no_data" and result["violations"] == [] and result["window"]["rows"] == 0
    assert result["reason"].startswith(f"no capture folder at {home / 'capture'}: nothing was captured yet")
    assert json.loads((tmp_path / "quiet" / "violations.json").read_text()) == {"violations": []}
    assert "nothing was captured yet" in (tmp_path / "quiet" / "report.html").read_text()
    refused = run_sagestack(home, "monitor", "run", "--baseline", baseline, "--out", str(tmp_path / "loud"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(f"error: no capture folder at {home / 'capture'}")
    assert not (tmp_path / "loud").exists()


def test_a_quiet_window_is_a_result_when_allowed_and_durations_are_checked(world, tmp_path):
    capture(tmp_path / "capture", window(world["test"], 15, size=40), world["predictor"])
    baseline = str(world["out"] / "baseline")
    quiet = run_sagestack(tmp_path / "home", "monitor", "run", "--baseline", baseline, "--capture",
                          str(tmp_path / "capture"), "--since", "2099-01-01T00:00", "--allow-empty",
                          "--out", str(tmp_path / "quiet"), "--json")
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["status"] == "no_data"
    assert json.loads((tmp_path / "quiet" / "violations.json").read_text()) == {"violations": []}
    assert "no captured records" in (tmp_path / "quiet" / "report.html").read_text()
    for bad in ("nanh", "infh", "1e300d", "-1h", "1w"):
        done = run_sagestack(tmp_path / "home", "monitor", "run", "--baseline", baseline, "--last", bad,
                             "--out", str(tmp_path / "x"))
        assert done.returncode == 2 and "is not a duration" in done.stderr and "Traceback" not in done.stderr, bad
