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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sagestack.config import Settings
from sagestack.data.atomic import atomic_file
from sagestack.deploy.traffic import (ROUTE_FILE, VARIANTS, TrafficSplit, check_servable, check_split_servable,
                                      nginx_config, route_text, write_route)
from sagestack.errors import ConfigError, RegistryError, SagestackError
from sagestack.processes import alive as _alive
from sagestack.processes import free_port, http_ok, last_line, start, start_ticks, stop_group

HOST = "127.0.0.1"
# Where Debian's packages put the programs `up` runs when they are not on PATH (module constants, so a
# test can point them at an empty folder and see the refusal a machine without the package gets).
POSTGRES_LIB = Path("/usr/lib/postgresql")
SBIN_NGINX = Path("/usr/sbin/nginx")
SERVICES = ("postgres", "mlflow", "redis", "feast", "endpoint-a", "endpoint-b", "nginx")
DATABASES = ("mlflow", "feast", "review")


LEGACY_HOME_CONFIG_MARK = "# Written by `sagestack up` (the topology's services); `sagestack down` removes it.\n"


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
    # name -> [pid, start time in clock ticks since boot]: a pid alone may since belong to another process.
    pids: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "State":
        return cls(**json.loads(path.read_text())) if path.is_file() else cls()

    def save(self, path: Path) -> None:
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps({"ports": self.ports, "pids": self.pids}, indent=1))


def _last_output_line(done: subprocess.CompletedProcess) -> str:
    """The last line a finished command printed (stderr first), for one-line errors."""
    return ((done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"])[0]


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
        self.env_file = self.root / "env.sh"  # what a client sources to use the topology
        self.state = State.load(self._state_file)

    def reload(self) -> None:
        """Read ``state.json`` again (another ``sagestack up`` may have restarted a service since)."""
        self.state = State.load(self._state_file)

    # -- configuration -------------------------------------------------------------------------

    def _port(self, name: str) -> int:
        if name not in self.state.ports:
            self.state.ports[name] = free_port(HOST)
            self.state.save(self._state_file)
        return self.state.ports[name]

    def _password(self) -> str:
        path = self.root / "secrets" / "postgres-password"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
            write_private(path, secrets.token_urlsafe(24))
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
            "SAGESTACK_REVIEW_DB": self.database_uri("review"),
        }

    def settings_for_services(self) -> Settings:
        """The settings the topology's services run with (:meth:`environment`, nothing else)."""
        return Settings.from_env(self.environment())

    # -- processes -----------------------------------------------------------------------------

    def _start(self, name: str, command: list[str], ready: Callable[[], bool], what: str, timeout: float,
               env: dict | None = None, log: Path | None = None) -> None:
        """Start a service in a session of its own and wait until ``ready``; a service that dies or is
        not ready in time is stopped and forgotten, so the next ``up`` starts it afresh."""
        # A session of its own: `down` stops the whole process group (servers fork workers).
        process = start(command, what=what, env=env, cwd=self.root, log=self.logs / f"{name}.log", report_log=log,
                        new_session=True)
        self.state.pids[name] = [process.pid, start_ticks(process.pid) or 0]
        self.state.save(self._state_file)
        try:
            process.wait_ready(ready, timeout)
        except BaseException:
            self.stop(name)
            raise

    def pid(self, name: str) -> int | None:
        """The pid of a service started by ``up``, while that very process runs."""
        if name == "postgres":
            return self._postgres_pid()
        self.reload()
        entry = self.state.pids.get(name)
        return entry[0] if entry and _alive(*entry) else None

    def running(self, name: str) -> bool:
        """Whether the service's process is alive."""
        return self.pid(name) is not None

    def stop(self, name: str) -> bool:
        """Stop one service (its whole process group); returns whether it was running."""
        if name == "postgres":
            return self._stop_postgres()
        pid = self.pid(name)  # reloads the state: another `sagestack` process may have changed it
        self.state.pids.pop(name, None)
        self.state.save(self._state_file)
        if pid is None:
            return False
        try:
            stop_group(pid)
        except PermissionError:
            raise SagestackError(f"process group {pid} belongs to another user; stop it as that user") from None
        return True

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
        found = sorted(POSTGRES_LIB.glob(f"*/bin/{tool}"))
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
            write_private(password_file, self._password())
            if self._as_root():
                shutil.chown(password_file, "postgres", "postgres")
            try:
                done = self._pg_run([self._pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                                     "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256",
                                     f"--pwfile={password_file}"])
            finally:
                password_file.unlink(missing_ok=True)
            if done.returncode != 0:
                raise SagestackError(f"initdb failed: {_last_output_line(done)}")
        options = f"-p {self._port('postgres')} -k {base} -c listen_addresses={HOST}"
        done = self._pg_run([self._pg_bin("pg_ctl"), "-D", str(data), "-l", str(base / "postgres.log"), "-w",
                             "-t", "60", "-o", options, "start"])
        if done.returncode != 0:
            raise SagestackError(f"PostgreSQL did not start: {last_line(base / 'postgres.log')}")

    def _create_databases(self) -> None:
        """Create MLflow's and Feast's databases where missing (every ``up``: a start that failed
        half-way is completed by the next)."""
        import psycopg

        try:
            with psycopg.connect(host=HOST, port=self._port("postgres"), user="postgres", password=self._password(),
                                 dbname="postgres", autocommit=True, connect_timeout=10) as connection:
                existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
                for database in DATABASES:
                    if database not in existing:
                        connection.execute(f'CREATE DATABASE "{database}"')
        except psycopg.Error as exc:
            raise SagestackError(f"PostgreSQL on port {self._port('postgres')} refused the databases' set-up: "
                                 f"{str(exc).strip().splitlines()[0]}") from None

    def start_database(self) -> None:
        """Start PostgreSQL alone (when it is not running) and create the topology's databases: what a
        test of a store on PostgreSQL needs, without the other services."""
        if not self.running("postgres"):
            self._start_postgres()
        self._create_databases()

    def _stop_postgres(self) -> bool:
        if self._postgres_pid() is None:
            return False
        done = self._pg_run([self._pg_bin("pg_ctl"), "-D", str(self.postgres_dir() / "data"), "-m", "fast", "-w",
                             "stop"])
        if done.returncode != 0:
            raise SagestackError(f"PostgreSQL did not stop: {_last_output_line(done)}")
        return True

    # -- the other services --------------------------------------------------------------------

    def _start_mlflow(self) -> None:
        port = self._port("mlflow")
        artifacts = self.root / "mlflow-artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        command = [str(Path(sys.executable).with_name("mlflow")), "server", "--serve-artifacts",
                   "--artifacts-destination", artifacts.as_uri(), "--host", HOST, "--port", str(port),
                   "--workers", "1", "--allowed-hosts", f"{HOST}:{port},localhost:{port}"]
        # The backend URI holds the password: through the environment, not the command line `ps` shows.
        env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": self.database_uri("mlflow")}
        self._start("mlflow", command, lambda: http_ok(f"{self.url('mlflow')}/health"), "the MLflow server", 120, env)

    def _start_redis(self) -> None:
        import redis

        data = self.root / "redis"
        data.mkdir(parents=True, exist_ok=True)
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise SagestackError("redis-server is not installed; install it (apt-get install redis-server) and run again")
        port = self._port("redis")
        client = redis.Redis(host=HOST, port=port)

        def pong() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        self._start("redis", [redis_server, "--port", str(port), "--bind", HOST, "--dir", str(data),
                              "--appendonly", "yes", "--save", ""], pong, "Redis", 30)

    def _start_feast(self) -> Status:
        from sagestack.features.store import feast_command, feast_env, read_features

        settings = self.settings_for_services()
        if read_features(settings) is None:
            return Status("feast", "waiting", detail="no features yet: run the pipeline (or `sagestack features ingest`)")
        env = {**feast_env(settings), **self.environment()}
        self._start("feast", feast_command(settings, "serve", "--host", HOST, "--port", str(self._port("feast"))),
                    lambda: http_ok(f"{self.url('feast')}/health"), "the Feast feature server", 120, env)
        return Status("feast", "started", self.url("feast"))

    def _start_endpoint(self, variant: str) -> Status:
        from sagestack.registry import DEFAULT_MODEL_NAME, resolve_ref

        name = f"endpoint-{variant.lower()}"
        ref = f"{DEFAULT_MODEL_NAME}@{VARIANTS[variant]}"
        try:
            check_servable(variant, resolve_ref(self.settings_for_services(), ref))
        except RegistryError as exc:
            return Status(name, "waiting", detail=str(exc))
        env = {**os.environ, **self.environment(), "SAGESTACK_MODEL": ref,
               "SAGESTACK_VARIANT": variant,
               # One BentoML home each: `bentoml serve` clears its Prometheus multiprocess folder at start,
               # so a shared one would wipe the other variant's /metrics.
               "BENTOML_HOME": str(self.root / f"bentoml-{variant.lower()}"), "BENTOML_DO_NOT_TRACK": "true"}
        self._start(name, self.endpoint_command(HOST, self._port(name)), lambda: http_ok(f"{self.url(name)}/readyz"),
                    f"endpoint {variant}", 300, env)
        return Status(name, "started", self.url(name))

    def _nginx_dir(self) -> Path:
        nginx_dir = self.root / "nginx"
        for sub in ("tmp", "logs"):
            (nginx_dir / sub).mkdir(parents=True, exist_ok=True)
        return nginx_dir

    def _render_nginx_config(self, split: TrafficSplit) -> str:
        upstreams = {v: f"{HOST}:{self._port(f'endpoint-{v.lower()}')}" for v in VARIANTS}
        return nginx_config(split, upstreams, listen=f"{HOST}:{self._port('nginx')}", state_dir=self._nginx_dir())

    def _write_nginx_config(self) -> Path:
        """Render the saved split (``traffic.json``, default 50/50) into ``nginx/nginx.conf`` and check it."""
        config = self._nginx_dir() / "nginx.conf"
        with atomic_file(config) as candidate:
            candidate.write_text(self._render_nginx_config(TrafficSplit.load(self.root / "traffic.json")))
            self._check_nginx_config(candidate)
        return config

    def _check_nginx_config(self, config: Path) -> None:
        """``nginx -t`` the configuration at ``config``.

        Raises:
            SagestackError: one line with nginx's own reason (its ``[emerg]`` line).
        """
        checked = subprocess.run([self._nginx(), "-t", "-q", "-c", str(config)], capture_output=True, text=True)
        if checked.returncode != 0:
            lines = checked.stderr.strip().splitlines() or ["no output"]
            reason = next((line.split(": ", 1)[-1] for line in lines if "[emerg]" in line), lines[-1])
            raise SagestackError(f"nginx refused the rendered configuration: {reason} (nothing was changed)")

    def _nginx(self) -> str:
        found = shutil.which("nginx") or (str(SBIN_NGINX) if SBIN_NGINX.is_file() else None)
        if found is None:
            raise SagestackError("nginx is not installed; install it (apt-get install nginx) and run again")
        return found

    def _start_nginx(self) -> None:
        config = self._write_nginx_config()
        nginx = self._nginx()
        port = self._port("nginx")

        def listening() -> bool:
            import socket

            with socket.socket() as sock:
                return sock.connect_ex((HOST, port)) == 0

        self._start("nginx", [nginx, "-c", str(config)], listening, "nginx", 30,
                    log=self.root / "nginx" / "logs" / "nginx-error.log")

    def start_router(self) -> None:
        """Start nginx alone (when it is not running) with the saved split: what a test of the router
        needs, without the other services (the variants' endpoints need not be up for it to start)."""
        if not self.running("nginx"):
            self._start_nginx()

    def _check_system_tools(self) -> None:
        """Refuse, before anything starts, when a system program of a service still to start is missing.

        Raises:
            SagestackError: one line naming the package to install.
        """
        if not self.running("postgres"):
            self._pg_bin("initdb")
        if not self.running("redis") and shutil.which("redis-server") is None:
            raise SagestackError("redis-server is not installed; install it (apt-get install redis-server) and run again")
        if not self.running("nginx"):
            self._nginx()

    # -- the commands --------------------------------------------------------------------------

    def up(self, progress: Callable[[str], None] = lambda line: None) -> list[Status]:
        """Start every service that is not running yet (in dependency order; see the module doc) and
        write :attr:`env_file`, the clients' settings."""
        self._check_system_tools()  # all of them first: a missing one must not leave the others running
        statuses = []
        steps: list[tuple[str, Callable[[], Status | None]]] = [
            ("postgres", self._start_postgres), ("mlflow", self._start_mlflow), ("redis", self._start_redis),
            ("feast", self._start_feast), ("endpoint-a", lambda: self._start_endpoint("A")),
            ("endpoint-b", lambda: self._start_endpoint("B")), ("nginx", self._start_nginx),
        ]
        for name, start in steps:
            if name == "mlflow":
                self._create_databases()
            url = None if name in ("postgres", "redis") else self.url(name)
            if self.running(name):
                statuses.append(Status(name, "running", url))
                continue
            progress(f"starting {name}")
            status = start() or Status(name, "started", url)
            statuses.append(status)
        # It holds the database password: the owner's only, from the first byte.
        write_private(self.env_file, "".join(f"export {k}='{v}'\n" for k, v in self.environment().items()))
        return statuses

    def down(self) -> list[str]:
        """Stop every service (nginx first, PostgreSQL last); returns the names of those stopped."""
        stopped = [name for name in reversed(SERVICES) if self.stop(name)]
        # `up` of versions before 2026-12-07 wrote the services' settings, the database password among them, to
        # HOME/sagestack.toml for the pipeline steps; nothing reads it now: remove one that carries its mark.
        legacy = self.home / "sagestack.toml"
        if legacy.is_file() and legacy.read_text(errors="replace").startswith(LEGACY_HOME_CONFIG_MARK):
            legacy.unlink()
        return stopped

    def shift_traffic(self, split: TrafficSplit, route_file: Path | None = None) -> bool:
        """Move the traffic: check the split can be served, then reload a running nginx gracefully (no
        connection is dropped) and rewrite the HTTPRoute manifest ``route_file``, if given.

        Everything is checked before anything is written, and the manifest is written last, after the
        router accepted the split: a refused shift changes nothing (neither the router, nor
        ``traffic.json`` that the next ``up`` reads, nor the manifest).

        Returns:
            whether a running router was reloaded.

        Raises:
            ConfigError: nothing to change (no ``route_file`` and no local topology in this home),
                or ``route_file`` is not an HTTPRoute that sends to both variants.
            RegistryError: a variant given traffic has no version, or one that is not Approved.
            SagestackError: a variant given traffic has no running endpoint in the local topology,
                or nginx refused the new configuration.
        """
        if route_file is None and not self._state_file.is_file():
            raise ConfigError("nothing to shift: no HTTPRoute manifest here and no local topology in "
                              f"{self.home}; run it in the sagestack checkout (it patches {ROUTE_FILE}), "
                              "pass --route-file PATH to the HTTPRoute to patch, or start the topology with `sagestack up`")
        text = route_text(route_file, split) if route_file is not None else None  # checked before anything changes
        router = self.running("nginx")
        if router:
            idle = [v for v, weight in split.weights().items() if weight and not self.running(f"endpoint-{v.lower()}")]
            if idle:
                raise SagestackError(f"variant {idle[0]} has no running endpoint to take {split.weights()[idle[0]]} % "
                                     "of the traffic; approve its version and run `sagestack up` first")
        # The variants' endpoints load from the topology's registry while it runs, else from the caller's.
        check_split_servable(self.settings_for_services() if self.running("mlflow") else self.settings, split)
        reloaded = router and self.reload_router(split)
        if not reloaded:  # no router to ask: the next `up` starts nginx with this split
            split.save(self.root / "traffic.json")
        if route_file is not None:
            write_route(route_file, split, text)
        return reloaded

    def reload_router(self, split: TrafficSplit) -> bool:
        """Give the running nginx the split: render its configuration into a temporary file, have
        ``nginx -t`` accept it, and only then save ``traffic.json``, swap the configuration in and
        reload (SIGHUP: new workers take the new upstreams, old ones finish their requests first).

        Returns:
            False when nginx is not running (nothing is written then).

        Raises:
            SagestackError: nginx refused the configuration; ``traffic.json`` and ``nginx.conf``
                are left as they were, and nginx keeps routing with the old split.
        """
        pid = self.pid("nginx")
        if pid is None:
            return False
        config = self._nginx_dir() / "nginx.conf"
        with atomic_file(config) as candidate:
            candidate.write_text(self._render_nginx_config(split))
            self._check_nginx_config(candidate)
            split.save(self.root / "traffic.json")
        os.kill(pid, signal.SIGHUP)
        return True


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only from the first byte (mode 0600), atomically."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
