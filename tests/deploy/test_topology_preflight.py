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


def test_up_without_postgresql_or_nginx_is_one_line_and_starts_nothing(sagestack_main, monkeypatch, tmp_path):
    """Neither on PATH nor where Debian installs them: the first one missing is named, and nothing starts."""
    import shutil

    from sagestack.deploy import topology

    nowhere = tmp_path / "not-installed"
    monkeypatch.setattr(topology, "POSTGRES_LIB", nowhere / "postgresql")
    monkeypatch.setattr(topology, "SBIN_NGINX", nowhere / "nginx")
    found = tmp_path / "bin"
    found.mkdir()
    (found / "redis-server").symlink_to(shutil.which("redis-server"))
    monkeypatch.setenv("PATH", str(found))
    code, out, err = sagestack_main("up")
    assert (code, out) == (2, "") and "starting" not in err
    assert err.strip() == "error: PostgreSQL is not installed; install it (apt-get install postgresql) and run again"

    initdb = next(topology.Path("/usr/lib/postgresql").glob("*/bin/initdb"), None) or shutil.which("initdb")
    (found / "initdb").symlink_to(initdb)  # PostgreSQL on PATH now: nginx is the one missing
    code, out, err = sagestack_main("up")
    assert (code, out) == (2, "") and "starting" not in err
    assert err.strip() == "error: nginx is not installed; install it (apt-get install nginx) and run again"
