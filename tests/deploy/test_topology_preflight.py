"""`sagestack up` checks every system program it will need before it starts anything."""

from __future__ import annotations


def test_up_without_redis_server_is_one_line_and_starts_nothing(sagestack_main, monkeypatch, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # PostgreSQL is found in its own folder, nginx in /usr/sbin: Redis is not
    code, out, err = sagestack_main("up")
    assert code == 2 and "Traceback" not in err
    assert err.strip() == "error: redis-server is not installed; install it (apt-get install redis-server) and run again"
    assert "starting" not in err  # before, PostgreSQL and the MLflow server were left running
