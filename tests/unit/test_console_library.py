"""The library under the console: data profiles, the data catalog, bias-input checks, the job table."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sagestack.bias import BiasConfig, LabelSpec
from sagestack.bias.analysis import validate_config
from sagestack.bias.job import parse_facet
from sagestack.config import load_settings
from sagestack.data.catalog import DataCatalog, UploadTooLarge
from sagestack.data.profile import profile_frame
from sagestack.errors import DataError
from sagestack.jobs import JobConflict, JobStore
from sagestack.jobs.runner import _outcome
from sagestack.jobs.store import FAILED, RUNNING, SUCCEEDED, stop_leftovers


def test_profile_infers_types_missing_values_label_and_text_lengths():
    frame = pd.DataFrame({
        "sentiment": ["1", "-1", "0", "1"],
        "review_body": ["one two three four five six seven eight nine ten eleven twelve", "short text here",
                        "a b", "the fabric is lovely and the fit is exactly what I hoped for in a dress"],
        "price": ["9.5", "", "12", "3"],
        "category": ["Dresses", "Tops", "Dresses", ""],
    })
    profile = profile_frame(frame, label="sentiment")
    columns = {c["name"]: c for c in profile["columns"]}
    assert profile["rows"] == 4 and profile["duplicate_rows"] == 0
    assert [columns[n]["type"] for n in ("sentiment", "review_body", "price", "category")] == [
        "integer", "text", "float", "categorical"]
    assert columns["price"]["missing"] == 1 and columns["category"]["missing"] == 1
    assert columns["category"]["value_counts"] == {"Dresses": 2, "Tops": 1}
    assert profile["label"]["distribution"][0] == {"value": "1", "count": 2, "share": 0.5}
    lengths = profile["text_lengths"]["review_body"]
    assert (lengths["min"], lengths["max"]) == (2, 16)
    assert sum(b["count"] for b in lengths["histogram"]) == 4
    with pytest.raises(DataError, match="label column 'rating' is not in the data"):
        profile_frame(frame, label="rating")


@pytest.fixture
def catalog(tmp_path: Path) -> DataCatalog:
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    return DataCatalog(tmp_path / "data", settings, max_upload_bytes=200)


def test_catalog_names_never_leave_its_folder(catalog: DataCatalog, tmp_path: Path):
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    (catalog.folder / "mine.csv").write_text("a,b\n1,2\n")
    assert catalog.path("mine.csv") == catalog.folder / "mine.csv"
    for name in ("../secret.csv", "/etc/passwd", "..", "sub/mine.csv", "mine.txt", ""):
        with pytest.raises(DataError, match="not a dataset name"):
            catalog.path(name)
    os.symlink(tmp_path / "secret.csv", catalog.folder / "link.csv")
    with pytest.raises(DataError, match="outside the data directory"):
        catalog.path("link.csv")
    with pytest.raises(DataError, match="no dataset named 'absent.csv'"):
        catalog.path("absent.csv")
    os.symlink("loop.csv", catalog.folder / "loop.csv")
    with pytest.raises(DataError, match="cannot be read"):
        catalog.path("loop.csv")
    listed = [d.name for d in catalog.list()]
    assert listed == ["mine.csv", "reviews_balanced.csv", "reviews_clarify_lab.csv"]  # the link is not offered
    assert {d.source for d in catalog.list()[1:]} <= {"shared", "embedded"}  # the course's: ../shared or the package


def test_catalog_upload_checks_name_size_and_content_and_leaves_nothing_behind(catalog: DataCatalog):
    stored = catalog.add_upload("../../evil name.csv", io.BytesIO(b"x,y\n1,2\n"))
    assert stored.path == catalog.folder / "evil name.csv" and stored.path.read_bytes() == b"x,y\n1,2\n"
    cases = [
        ("notes.txt", b"x,y\n1,2\n", DataError, "not a CSV file name"),
        ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", DataError, "not valid UTF-8"),
        ("header.csv", b"x,y\n", DataError, "no rows"),
        ("blank.csv", b"x,,y\n1,2,3\n", DataError, "column without a name"),
        ("big.csv", b"x,y\n" + b"1,2\n" * 100, UploadTooLarge, "larger than the upload limit"),
    ]
    for name, content, error, message in cases:
        with pytest.raises(error, match=message) as raised:
            catalog.add_upload(name, io.BytesIO(content))
        assert ".upload" not in str(raised.value)  # the user's file name, not the temporary one
    assert sorted(p.name for p in catalog.folder.iterdir()) == ["evil name.csv"]


def test_validate_config_refuses_what_the_analysis_would_refuse():
    frame = pd.DataFrame({"sentiment": [1, 0, 1, -1], "category": ["A", "A", "A", "A"], "shop": ["x", "y", "x", "y"]})
    config = lambda facet, positive=("1",): BiasConfig(label="sentiment", positive=LabelSpec(values=positive),  # noqa: E731
                                                       facets=[parse_facet(facet)])
    with pytest.raises(DataError, match="facet 'category' has a single value"):
        validate_config(frame, config("category"))
    with pytest.raises(DataError, match="facet column 'nope' is not in the data"):
        validate_config(frame, config("nope"))
    with pytest.raises(DataError, match="never occur in column 'sentiment'"):
        validate_config(frame, config("shop", positive=("7",)))
    validate_config(frame, config("shop"))


def test_job_store_runs_one_job_at_a_time_and_records_outcomes(tmp_path: Path):
    store = JobStore(tmp_path / "jobs")
    first = store.submit("bias", "a bias job", ["--version"])
    assert first.status == RUNNING and first.folder.is_dir()
    with pytest.raises(JobConflict, match=f"job {first.id} \\(bias\\) is still running"):
        store.submit("automl", "another", ["--version"])
    store.finish(first.id, status=SUCCEEDED, exit_code=0, error=None, result={"ok": 1})
    store.finish(first.id, status=FAILED, exit_code=1, error="late", result=None)  # the first outcome stays
    assert store.get(first.id).status == SUCCEEDED and store.get(first.id).result == {"ok": 1}
    second = store.submit("automl", "another", ["--version"])
    assert [j.id for j in store.list()] == [second.id, first.id]
    assert [j.id for j in store.list(kind="bias")] == [first.id]


def test_reconcile_fails_a_job_whose_process_is_gone_and_keeps_a_live_one(tmp_path: Path):
    store = JobStore(tmp_path / "jobs")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    job = store.submit("pipeline", "a run", ["pipeline", "run"])
    with store._connect() as db:
        db.execute("UPDATE jobs SET pid = ?, pid_started = ? WHERE id = ?", (gone.pid, time.time() - 5, job.id))
    assert store.reconcile() == [job.id]
    failed = store.get(job.id)
    assert failed.status == FAILED and f"pid {gone.pid}" in failed.error and "stopped while it ran" in failed.error

    live = store.submit("bias", "b", ["--version"])
    from sagestack.processes import start_ticks

    runner = _sleeping_group()  # a child stands in for the live job: a regression kills it, never pytest
    try:
        with store._connect() as db:
            db.execute("UPDATE jobs SET pid = ?, pid_started = ? WHERE id = ?", (runner.pid, start_ticks(runner.pid), live.id))
        assert store.reconcile() == [] and store.get(live.id).status == RUNNING
        assert runner.poll() is None  # reconciling looks, it never signals
    finally:
        runner.kill()
        runner.wait(timeout=10)


def test_runner_outcome_reads_the_commands_json_error_or_its_log(tmp_path: Path):
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"report": "out/report.html"}))
    assert _outcome(0, result, []) == (SUCCEEDED, None, {"report": "out/report.html"})
    result.write_text(json.dumps({"ok": False, "error": "facet column 'x' is not in the data"}))
    assert _outcome(2, result, ["error: facet column 'x' is not in the data"]) == (
        FAILED, "facet column 'x' is not in the data", None)
    result.write_text("")
    status, error, _ = _outcome(1, result, ["Traceback (most recent call last):", "ValueError: boom", ""])
    assert status == FAILED and error == "the command failed (exit code 1): ValueError: boom"
    typer_box = ["╭─ Error ──────────────────────╮",
                 "│ Invalid value for '--bert-max-steps': '1e+06' is not a valid integer. │",
                 "╰──────────────────────────────╯"]
    assert _outcome(2, result, typer_box)[1] == ("the command failed (exit code 2): Invalid value for "
                                                 "'--bert-max-steps': '1e+06' is not a valid integer.")
    wrapped = ["Usage: sagestack bias [OPTIONS]", "╭─ Error ─────────╮", "│ Invalid value for '--label': no column │",
               "│ 'sentiment'; its values are -1, 0, 1  │", "╰─────────────────╯"]
    assert _outcome(2, result, wrapped)[1].endswith("Invalid value for '--label': no column 'sentiment'; its values "
                                                    "are -1, 0, 1")


def test_a_real_job_runs_through_the_runner_and_records_its_json(tmp_path: Path):
    store = JobStore(tmp_path / "jobs")
    home = tmp_path / "home"
    job = store.submit("models", "list models", ["--home", str(home), "models", "list"])
    process = store.start(job)
    process.wait(timeout=120)
    done = store.get(job.id)
    assert done.status == SUCCEEDED, done.error
    assert done.result == {"models": []} and done.exit_code == 0
    bad = store.submit("models", "show a model that is not there", ["--home", str(home), "models", "show", "nope"])
    store.start(bad).wait(timeout=120)
    failed = store.get(bad.id)
    assert failed.status == FAILED and failed.error == "no registered model named 'nope'; see `sagestack models list`"


def _sleeping_group() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)


def test_stop_leftovers_kills_the_group_and_nothing_older():
    from sagestack.processes import start_ticks

    group = _sleeping_group()
    started = start_ticks(group.pid)
    assert stop_leftovers(group.pid, started + 5, time.time()) == []  # a group that started later than recorded is not the job's
    assert stop_leftovers(group.pid, started, time.time()) == [group.pid]
    assert group.wait(timeout=10) == -9
    assert stop_leftovers(None, None, None) == []
    other = _sleeping_group()  # a child, never pytest's own group: a regression kills only it
    try:
        # Recorded before this machine booted: a job of another boot whose pid was reused, not touched.
        assert stop_leftovers(other.pid, start_ticks(other.pid), 0.0) == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(timeout=10)


def test_a_finished_commands_leftovers_get_sigterm_then_sigkill(monkeypatch):
    from sagestack.jobs import runner

    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print(flush=True); time.sleep(120)"],
                                start_new_session=True, stdout=subprocess.PIPE)
    stubborn.stdout.readline()  # its SIGTERM handler is in place
    monkeypatch.setattr(runner, "GRACE_SECONDS", 1.0)
    runner._drain_group(stubborn.pid)
    assert stubborn.wait(timeout=10) == -9


def test_a_job_table_from_an_earlier_version_gets_the_new_columns(tmp_path: Path):
    import sqlite3

    folder = tmp_path / "jobs"
    folder.mkdir()
    with sqlite3.connect(folder / "jobs.db") as db:
        db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, title TEXT NOT NULL, "
                   "argv TEXT NOT NULL, folder TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL, "
                   "finished_at REAL, pid INTEGER, pid_started REAL, exit_code INTEGER, error TEXT, result TEXT)")
        db.execute("INSERT INTO jobs (kind, title, argv, folder, status, created_at) "
                   "VALUES ('bias', 'old', '[]', '/x', 'succeeded', 1.0)")
    store = JobStore(folder)
    assert store.get(1).title == "old" and store.get(1).pgid is None
    store.record_group(1, os.getpid())
    assert store.get(1).pgid == os.getpid()


def test_the_console_key_is_32_private_bytes_made_anew_when_damaged(tmp_path: Path):
    from sagestack.console.app import _secret

    path = tmp_path / "secret.key"
    key = _secret(path)
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600 and _secret(path) == key
    path.write_bytes(b"")
    assert len(_secret(path)) == 32
    path.chmod(0o644)
    assert _secret(path) != key and path.stat().st_mode & 0o777 == 0o600


def test_a_killed_runner_takes_its_command_along(tmp_path: Path):
    """The runner gets SIGKILL (no handler runs): its command hears of it and ends, and reconcile
    marks the job failed, so the next job never runs beside an orphan."""
    import psutil
    import signal

    from sagestack.bento.launch import free_port

    store = JobStore(tmp_path / "jobs")
    job = store.submit("console", "a long-running command", ["--home", str(tmp_path / "home"), "console",
                                                            "--port", str(free_port())])
    runner = store.start(job)
    deadline = time.monotonic() + 60
    while store.get(job.id).pgid is None and time.monotonic() < deadline:
        time.sleep(0.2)
    command = psutil.Process(store.get(job.id).pgid)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    command.wait(timeout=30)  # psutil.TimeoutExpired would fail the test
    assert store.reconcile() == [job.id]
    assert "stopped while it ran" in store.get(job.id).error
