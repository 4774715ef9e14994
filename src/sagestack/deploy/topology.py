"""The scaled-out topology, started for real on one machine: ``sagestack up`` / ``sagestack down``.

No Kubernetes API server can run here, so the services the manifests in ``k8s/`` run as pods
run as processes on loopback instead, configured through the same environment variables:

- PostgreSQL (the system's package; as root it runs as the ``postgres`` user, as it insists),
  with the MLflow tracking server on it (artifacts served by MLflow from a folder),
- Redis, Feast's online store, and the Feast feature server on it,
- two BentoML endpoints, variant A (``@champion``) and variant B (``@challenger``, Approved only),
- nginx in front of them as the weighted router, rendered from the same traffic split as the
  Gateway API ``HTTPRoute``.

Everything lives under ``$SAGESTACK_HOME/topology`` (ports, pids, logs, data), except
PostgreSQL's data when running as root (the ``postgres`` user cannot enter a private home).
``up`` is idempotent: it starts what is not running yet, and starts the feature server and the
endpoints only once there is something for them to serve (run it again after the pipeline).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sagestack.config import Settings
from sagestack.data.atomic import atomic_file
from sagestack.deploy.traffic import VARIANTS, TrafficSplit, check_servable, nginx_config
from sagestack.errors import RegistryError, SagestackError

HOST = "127.0.0.1"
SERVICES = ("postgres", "mlflow", "redis", "feast", "endpoint-a", "endpoint-b", "nginx")
DATABASES = ("mlflow", "feast")
HOME_CONFIG_MARK = "# Written by `sagestack up` (the topology's services); `sagestack down` removes it.\n"


@dataclass
class Status:
    """What ``up`` did for one service: ``started``, ``running`` (already), or ``waiting`` (and why)."""

    name: str
    state: str
    url: str | None = None
    detail: str = ""


@dataclass
class State:
    """Ports and pids of the topology, kept in ``state.json`` so that ``up`` and ``down`` agree."""

    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "State":
        return cls(**json.loads(path.read_text())) if path.is_file() else cls()

    def save(self, path: Path) -> None:
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps({"ports": self.ports, "pids": self.pids}, indent=1))


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's (postgres)
        return True
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait(check: Callable[[], bool], what: str, timeout: float, log: Path, pid: int | None = None) -> None:
    """Poll ``check`` until it holds; raise with the log's last line if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        if pid is not None and not _alive(pid):
            raise SagestackError(f"{what} exited during start-up; last log line: {_last_line(log)} (log: {log})")
        if time.monotonic() > deadline:
            raise SagestackError(f"{what} was not ready after {timeout:.0f} s; last log line: {_last_line(log)} (log: {log})")
        time.sleep(0.3)


def _last_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Topology:
    """The local stand-in for the cluster, rooted at ``<home>/topology``.

    Args:
        settings: the caller's settings; their ``home`` is shared by every service (as a volume
            would be on a cluster).
        endpoint_command: ``(host, port) -> argv`` of one endpoint server (``bentoml serve …``).
    """

    def __init__(self, settings: Settings, endpoint_command: Callable[[str, int], list[str]]) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.root = self.home / "topology"
        self.logs = self.root / "logs"
        self.endpoint_command = endpoint_command
        self._state_file = self.root / "state.json"
        self.state = State.load(self._state_file)

    # -- configuration -------------------------------------------------------------------------

    def _port(self, name: str) -> int:
        if name not in self.state.ports:
            self.state.ports[name] = _free_port()
            self.state.save(self._state_file)
        return self.state.ports[name]

    def _password(self) -> str:
        path = self.root / "secrets" / "postgres-password"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
            with atomic_file(path) as tmp:
                tmp.write_text(secrets.token_urlsafe(24))
                tmp.chmod(0o600)
        return path.read_text().strip()

    def database_uri(self, database: str) -> str:
        """A SQLAlchemy URI of one of the topology's PostgreSQL databases (psycopg 3)."""
        return f"postgresql+psycopg://postgres:{self._password()}@{HOST}:{self._port('postgres')}/{database}"

    def url(self, name: str) -> str:
        """The base URL of an HTTP service (``mlflow``, ``feast``, ``endpoint-a``/``-b``, ``nginx``)."""
        return f"http://{HOST}:{self._port(name)}"

    def environment(self) -> dict[str, str]:
        """The settings every service (and a client such as the pipeline) gets, as the pods' ConfigMap
        and Secret give them: the shared home, the MLflow server, Redis and the Feast registry."""
        return {
            "SAGESTACK_HOME": str(self.home),
            "SAGESTACK_TRACKING_URI": self.url("mlflow"),
            "SAGESTACK_ONLINE_STORE": f"redis://{HOST}:{self._port('redis')}/0",
            "SAGESTACK_FEAST_REGISTRY": self.database_uri("feast"),
        }

    def _write_home_config(self) -> None:
        """Write ``<home>/sagestack.toml`` with the services' settings while the topology is up.

        Pipeline steps read only their home's configuration (never the caller's environment), so
        this is how a pipeline run on this home reaches the MLflow server, Redis and the registry.
        """
        from sagestack.config import CONFIG_FILE_NAME

        path = self.home / CONFIG_FILE_NAME
        if path.is_file() and not path.read_text().startswith(HOME_CONFIG_MARK):
            raise SagestackError(f"{path} exists and was not written by `sagestack up`; move it away and run again")
        values = {k: v for k, v in self.environment().items() if k != "SAGESTACK_HOME"}
        fields = {"SAGESTACK_TRACKING_URI": "tracking_uri", "SAGESTACK_ONLINE_STORE": "online_store",
                  "SAGESTACK_FEAST_REGISTRY": "feast_registry"}
        with atomic_file(path) as tmp:
            tmp.write_text(HOME_CONFIG_MARK + "".join(f'{fields[k]} = "{v}"\n' for k, v in values.items()))
            tmp.chmod(0o600)  # it holds the database password

    def settings_for_services(self) -> Settings:
        from sagestack.config import load_settings

        return load_settings(cwd=self.root, environ=self.environment())

    # -- processes -----------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], env: dict | None = None) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            # A session of its own: `down` stops the whole process group (servers fork workers).
            process = subprocess.Popen(command, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=self.root)
        self.state.pids[name] = process.pid
        self.state.save(self._state_file)
        return process.pid

    def running(self, name: str) -> bool:
        """Whether the service's process is alive."""
        if name == "postgres":
            return self._postgres_pid() is not None
        return _alive(self.state.pids.get(name))

    # -- PostgreSQL ----------------------------------------------------------------------------

    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def postgres_dir(self) -> Path:
        """PostgreSQL's folder: in the home, or (as root) a folder the ``postgres`` user may enter,
        named after the home so that every home keeps its own database across ``down``/``up``."""
        if not self._as_root():
            return self.root / "postgres"
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:16]
        return Path("/var/lib/sagestack") / f"postgres-{digest}"

    def _pg_bin(self, tool: str) -> str:
        found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
        if found:
            return str(found[-1])
        if shutil.which(tool):
            return shutil.which(tool)
        raise SagestackError("PostgreSQL is not installed; install it (apt-get install postgresql) and run again")

    def _pg_run(self, argv: list[str]) -> subprocess.CompletedProcess:
        if self._as_root():  # PostgreSQL refuses to run as root
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, cwd="/")

    def _postgres_pid(self) -> int | None:
        pid_file = self.postgres_dir() / "data" / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def _start_postgres(self) -> None:
        base = self.postgres_dir()
        data = base / "data"
        base.mkdir(parents=True, exist_ok=True)
        if self._as_root():
            shutil.chown(base, "postgres", "postgres")
            base.chmod(0o700)
        if not (data / "PG_VERSION").is_file():
            password_file = base / "initdb-password"
            password_file.write_text(self._password())
            if self._as_root():
                shutil.chown(password_file, "postgres", "postgres")
            try:
                done = self._pg_run([self._pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                                     "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256",
                                     f"--pwfile={password_file}"])
            finally:
                password_file.unlink(missing_ok=True)
            if done.returncode != 0:
                last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise SagestackError(f"initdb failed: {last[0]}")
        options = f"-p {self._port('postgres')} -k {base} -c listen_addresses={HOST}"
        done = self._pg_run([self._pg_bin("pg_ctl"), "-D", str(data), "-l", str(base / "postgres.log"), "-w",
                             "-t", "60", "-o", options, "start"])
        if done.returncode != 0:
            raise SagestackError(f"PostgreSQL did not start: {_last_line(base / 'postgres.log')}")
        self._create_databases()

    def _create_databases(self) -> None:
        import psycopg

        with psycopg.connect(host=HOST, port=self._port("postgres"), user="postgres", password=self._password(),
                             dbname="postgres", autocommit=True) as connection:
            existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
            for database in DATABASES:
                if database not in existing:
                    connection.execute(f'CREATE DATABASE "{database}"')

    def _stop_postgres(self) -> None:
        if self._postgres_pid() is None:
            return
        self._pg_run([self._pg_bin("pg_ctl"), "-D", str(self.postgres_dir() / "data"), "-m", "fast", "-w", "stop"])

    # -- the other services --------------------------------------------------------------------

    def _start_mlflow(self) -> None:
        port = self._port("mlflow")
        artifacts = self.root / "mlflow-artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        command = [str(Path(sys.executable).with_name("mlflow")), "server",
                   "--backend-store-uri", self.database_uri("mlflow"), "--serve-artifacts",
                   "--artifacts-destination", artifacts.as_uri(), "--host", HOST, "--port", str(port),
                   "--workers", "1", "--allowed-hosts", f"{HOST}:{port},localhost:{port}"]
        pid = self._spawn("mlflow", command)
        _wait(lambda: _http_ok(f"{self.url('mlflow')}/health"), "the MLflow server", 120, self.logs / "mlflow.log", pid)

    def _start_redis(self) -> None:
        import redis

        data = self.root / "redis"
        data.mkdir(parents=True, exist_ok=True)
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise SagestackError("redis-server is not installed; install it (apt-get install redis-server) and run again")
        port = self._port("redis")
        pid = self._spawn("redis", [redis_server, "--port", str(port), "--bind", HOST, "--dir", str(data),
                                    "--appendonly", "yes", "--save", ""])
        client = redis.Redis(host=HOST, port=port)

        def pong() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        _wait(pong, "Redis", 30, self.logs / "redis.log", pid)

    def _start_feast(self) -> Status:
        from sagestack.features.store import feast_command, feast_env, read_features

        settings = self.settings_for_services()
        if read_features(settings) is None:
            return Status("feast", "waiting", detail="no features yet: run the pipeline (or `sagestack features ingest`)")
        env = {**feast_env(settings), **self.environment()}
        pid = self._spawn("feast", feast_command(settings, "serve", "--host", HOST, "--port", str(self._port("feast"))),
                          env)
        _wait(lambda: _http_ok(f"{self.url('feast')}/health"), "the Feast feature server", 120,
              self.logs / "feast.log", pid)
        return Status("feast", "started", self.url("feast"))

    def _start_endpoint(self, variant: str) -> Status:
        from sagestack.registry import DEFAULT_MODEL_NAME, resolve_ref

        name = f"endpoint-{variant.lower()}"
        ref = f"{DEFAULT_MODEL_NAME}@{VARIANTS[variant]}"
        try:
            check_servable(variant, resolve_ref(self.settings_for_services(), ref))
        except RegistryError as exc:
            return Status(name, "waiting", detail=str(exc))
        env = {**os.environ, **self.environment(), "SAGESTACK_MODEL": ref, "SAGESTACK_VARIANT": variant,
               # One BentoML home each: `bentoml serve` clears its Prometheus multiprocess folder at start,
               # so a shared one would wipe the other variant's /metrics.
               "BENTOML_HOME": str(self.root / f"bentoml-{variant.lower()}"), "BENTOML_DO_NOT_TRACK": "true"}
        pid = self._spawn(name, self.endpoint_command(HOST, self._port(name)), env)
        _wait(lambda: _http_ok(f"{self.url(name)}/readyz"), f"endpoint {variant}", 300, self.logs / f"{name}.log", pid)
        return Status(name, "started", self.url(name))

    def _write_nginx_config(self) -> Path:
        split = TrafficSplit.load(self.root / "traffic.json")
        upstreams = {v: f"{HOST}:{self._port(f'endpoint-{v.lower()}')}" for v in VARIANTS}
        nginx_dir = self.root / "nginx"
        for sub in ("tmp", "logs"):
            (nginx_dir / sub).mkdir(parents=True, exist_ok=True)
        config = nginx_dir / "nginx.conf"
        with atomic_file(config) as tmp:
            tmp.write_text(nginx_config(split, upstreams, listen=f"{HOST}:{self._port('nginx')}", state_dir=nginx_dir))
        return config

    def _nginx(self) -> str:
        found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
        if found is None:
            raise SagestackError("nginx is not installed; install it (apt-get install nginx) and run again")
        return found

    def _start_nginx(self) -> None:
        config = self._write_nginx_config()
        nginx = self._nginx()
        checked = subprocess.run([nginx, "-t", "-q", "-c", str(config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise SagestackError(f"the rendered nginx configuration is invalid: {checked.stderr.strip()}")
        pid = self._spawn("nginx", [nginx, "-c", str(config)])
        port = self._port("nginx")

        def listening() -> bool:
            import socket

            with socket.socket() as sock:
                return sock.connect_ex((HOST, port)) == 0

        _wait(listening, "nginx", 30, self.root / "nginx" / "logs" / "nginx-error.log", pid)

    # -- the commands --------------------------------------------------------------------------

    def up(self, progress: Callable[[str], None] = lambda line: None) -> list[Status]:
        """Start every service that is not running yet (in dependency order); see the module doc."""
        statuses = []
        steps: list[tuple[str, Callable[[], Status | None]]] = [
            ("postgres", self._start_postgres), ("mlflow", self._start_mlflow), ("redis", self._start_redis),
            ("feast", self._start_feast), ("endpoint-a", lambda: self._start_endpoint("A")),
            ("endpoint-b", lambda: self._start_endpoint("B")), ("nginx", self._start_nginx),
        ]
        for name, start in steps:
            if name == "feast":  # the stores and the tracking server are up: point the home at them
                self._write_home_config()
            url = None if name in ("postgres", "redis") else self.url(name)
            if self.running(name):
                statuses.append(Status(name, "running", url))
                continue
            progress(f"starting {name}")
            status = start() or Status(name, "started", url)
            statuses.append(status)
        return statuses

    def down(self) -> list[str]:
        """Stop every service (nginx first, PostgreSQL last); returns the names of those stopped."""
        stopped = []
        for name in reversed(SERVICES):
            if name == "postgres":
                if self._postgres_pid() is not None:
                    self._stop_postgres()
                    stopped.append(name)
                continue
            pid = self.state.pids.pop(name, None)
            if _alive(pid):
                _stop_group(pid)
                stopped.append(name)
        self.state.save(self._state_file)
        from sagestack.config import CONFIG_FILE_NAME

        home_config = self.home / CONFIG_FILE_NAME
        if home_config.is_file() and home_config.read_text().startswith(HOME_CONFIG_MARK):
            home_config.unlink()
        return stopped

    def shift_traffic(self, split: TrafficSplit) -> bool:
        """Save the split and, when nginx runs, reload it gracefully (no connection is dropped).

        Returns:
            whether a running router was reloaded.
        """
        split.save(self.root / "traffic.json")
        if not self.running("nginx"):
            return False
        config = self._write_nginx_config()
        checked = subprocess.run([self._nginx(), "-t", "-q", "-c", str(config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise SagestackError(f"the rendered nginx configuration is invalid: {checked.stderr.strip()}")
        # SIGHUP: nginx starts workers with the new upstreams; old workers finish their requests first.
        os.kill(self.state.pids["nginx"], signal.SIGHUP)
        return True


def _stop_group(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM a service's process group, SIGKILL it if it has not exited within ``timeout`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
