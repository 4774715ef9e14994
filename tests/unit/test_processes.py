"""The process supervisor (sagestack.processes): start with a log, wait until ready or report a
dead or slow process with its log's last line, stop a whole process group."""

import signal
import sys
import time
from pathlib import Path

import pytest

from sagestack.errors import SagestackError
from sagestack.processes import group_alive, start


def test_a_process_that_becomes_ready_is_waited_for_and_stopped(tmp_path: Path):
    flag = tmp_path / "ready"
    server = start([sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(flag)!r}).touch(); time.sleep(60)"],
                   what="the sleeper", log=tmp_path / "logs" / "sleeper.log")
    try:
        server.wait_ready(flag.exists, timeout=30, interval=0.05)
        assert server.process.poll() is None
    finally:
        server.stop(grace=5)
    assert server.process.poll() is not None and (tmp_path / "logs" / "sleeper.log").is_file()


def test_a_process_that_dies_during_start_up_is_reported_with_its_last_log_line(tmp_path: Path):
    log = tmp_path / "crash.log"
    crash = start([sys.executable, "-c", "import sys; print('loading'); sys.exit('boom: no model')"],
                  what="the crasher", log=log)
    with pytest.raises(SagestackError) as caught:
        crash.wait_ready(lambda: False, timeout=30, interval=0.05)
    assert str(caught.value) == f"the crasher exited during start-up; last log line: boom: no model (log: {log})"


def test_a_process_not_ready_in_time_is_reported_and_a_foreground_one_points_at_its_output(tmp_path: Path):
    slow = start([sys.executable, "-c", "import time; time.sleep(60)"], what="the slow one")
    try:
        with pytest.raises(SagestackError, match=r"^the slow one was not ready after 0 s \(see its output above\)$"):
            slow.wait_ready(lambda: False, timeout=0.2, interval=0.05)
    finally:
        slow.stop(grace=5)


def test_a_session_of_its_own_is_stopped_whole_sigkill_for_what_ignores_sigterm(tmp_path: Path):
    # The leader starts a child that ignores SIGTERM, then waits: stopping the group must end both.
    code = ("import signal, subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, "
            "signal.SIG_IGN); print(\"up\", flush=True); time.sleep(120)']); time.sleep(120)")
    log = tmp_path / "group.log"
    group = start([sys.executable, "-c", code], what="the group", log=log, new_session=True)
    group.wait_ready(lambda: "up" in log.read_text(), timeout=30, interval=0.05)
    started = time.monotonic()
    group.stop(grace=1)
    assert not group_alive(group.pid) and time.monotonic() - started < 10


def test_wait_gives_a_process_asked_to_stop_its_grace_then_kills_it(tmp_path: Path):
    log = tmp_path / "stubborn.log"
    stubborn = start([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                      "print('up', flush=True); time.sleep(120)"], what="the stubborn one", log=log, new_session=True)
    stubborn.wait_ready(lambda: "up" in log.read_text(), timeout=30, interval=0.05)
    stubborn.signal(signal.SIGTERM)
    assert stubborn.wait(lambda: True, grace=0.5) == -signal.SIGKILL
