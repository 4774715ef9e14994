"""Settings: where sagestack keeps its state and which services it talks to.

Resolved once, at the boundary (the CLI or the caller), from — in increasing priority —
built-in defaults, an optional ``sagestack.toml`` in the working directory, and environment
variables. Nothing here runs at import time.

All state lives under one directory, ``SAGESTACK_HOME`` (default ``./.sagestack``): the
MLflow SQLite store and artifacts, the download cache, and (later) Feast files. Two runs
with different homes never see each other's state.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sagestack.errors import ConfigError

CONFIG_FILE_NAME = "sagestack.toml"
DEFAULT_HOME_NAME = ".sagestack"

# Every setting, declared once: (flat name, group, field, environment variable). The flat name is its key in
# ``sagestack.toml`` (or its field under the group's table), its keyword in load_settings and Settings.replace, and
# the name errors use; in the settings tree it lives at settings.<group>.<field> ("home" is at the top).
_DECLARED = (
    ("home", None, "home", "SAGESTACK_HOME"),
    ("tracking_uri", "tracking", "uri", "SAGESTACK_TRACKING_URI"),
    ("data_dir", "data", "dir", "SAGESTACK_DATA"),
    ("data_url", "data", "url", "SAGESTACK_DATA_URL"),
    ("data_sha256", "data", "sha256", "SAGESTACK_DATA_SHA256"),
    ("online_store", "feature_store", "online", "SAGESTACK_ONLINE_STORE"),
    ("offline_store", "feature_store", "offline", "SAGESTACK_OFFLINE_STORE"),
    ("feast_registry", "feature_store", "registry", "SAGESTACK_FEAST_REGISTRY"),
    ("endpoint_model", "endpoint", "model", "SAGESTACK_MODEL"),
    ("variant", "endpoint", "variant", "SAGESTACK_VARIANT"),
    ("workers", "endpoint", "workers", "SAGESTACK_WORKERS"),
    ("capture", "endpoint", "capture", "SAGESTACK_CAPTURE"),
    ("capture_uri", "endpoint", "capture_uri", "SAGESTACK_CAPTURE_URI"),
    ("access_log", "endpoint", "access_log", "SAGESTACK_ACCESS_LOG"),
    ("review_flow", "review", "flow", "SAGESTACK_REVIEW_FLOW"),
    ("review_db", "review", "db", "SAGESTACK_REVIEW_DB"),
)
# Flat name -> (group, field).
FIELDS = {name: (group, field) for name, group, field, _ in _DECLARED}
# Environment variable -> flat name.
ENV_VARS = {var: name for name, _, _, var in _DECLARED}
# What only an endpoint reads: a pipeline's steps do not get these, so a change to one keeps the step cache.
ENDPOINT_ONLY = ("endpoint_model", "variant", "workers", "capture", "access_log", "review_flow")
# The endpoint's access log: no line, a sample of requests plus every error (serving/service.py), or every request.
ACCESS_LOG_CHOICES = ("off", "sampled", "on")


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackingSettings(_Group):
    """MLflow. ``uri``: the tracking URI (``tracking_uri``); default ``sqlite:///<home>/mlflow.db``."""

    uri: str | None = None


class DataSettings(_Group):
    """Where datasets come from.

    Attributes:
        dir: a directory (or file) to look for datasets in before the copies embedded in the package (``data_dir``).
        url: where to download the dataset from when it is found nowhere else (``data_url``).
        sha256: expected sha256 of the downloaded file (``data_sha256``; required with ``url``).
    """

    dir: Path | None = None
    url: str | None = None
    sha256: str | None = None


class FeatureStoreSettings(_Group):
    """Feast.

    Attributes:
        online: the online store (``online_store``): ``sqlite`` (default, a file under ``home``) or a Redis
            server, ``redis://HOST:PORT[/DB]`` (a password, when it needs one, goes in the URL).
        offline: the offline store over the home's feature table (``offline_store``): ``duckdb`` (default),
            or ``spark`` (a local Spark session) or a Spark master URL (``spark://HOST:PORT``, ``yarn``,
            ``k8s://…``) for training sets too large for one machine.
        registry: Feast's registry as a SQLAlchemy URI (``feast_registry``; default: SQLite under ``home``),
            e.g. ``postgresql+psycopg://user:password@host:5432/feast`` for a shared one.
    """

    online: str = "sqlite"
    offline: str = "duckdb"
    registry: str | None = None

    @field_validator("online")
    @classmethod
    def _known_online_store(cls, value: str) -> str:
        if value != "sqlite" and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be sqlite or a redis://HOST:PORT URL")
        return value

    @field_validator("offline")
    @classmethod
    def _known_offline_store(cls, value: str) -> str:
        if value not in ("duckdb", "spark", "yarn") and not value.startswith(("spark://", "k8s://", "local")):
            raise ValueError("must be duckdb, spark, or a Spark master URL (spark://HOST:PORT, yarn, k8s://...)")
        return value


class EndpointSettings(_Group):
    """An endpoint.

    Attributes:
        model: the model it serves (``endpoint_model``: ``NAME@ALIAS``, ``NAME/VERSION`` or a model folder);
            what ``sagestack serve --model``, ``up`` and the k8s manifests give each endpoint.
        variant: the production variant it serves (e.g. ``A`` or ``B``); responses and ``/metrics`` name it.
        workers: how many worker processes it runs (default: one per CPU core, one holding every core for a
            kind whose calls use them all, e.g. BERT); one per pod when a Kubernetes autoscaler adds pods instead.
        capture: the percentage of its requests whose predictions are captured for monitoring (0–100;
            default off; SageMaker's usual choice is 20), into ``home/capture``.
        capture_uri: where captured records go instead: another folder, or an S3-compatible bucket
            (``s3://BUCKET/PREFIX``; the endpoint from ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``,
            credentials from the usual ``AWS_*`` variables).
        access_log: its access log: ``sampled`` (default: one request in 100, and every 4xx/5xx answer),
            ``on`` (a line per request) or ``off`` (none; ``/metrics`` counts every request either way).
    """

    model: str | None = None
    variant: str | None = None
    workers: int | None = Field(default=None, ge=1)
    capture: float | None = Field(default=None, ge=0, le=100)
    capture_uri: str | None = None
    access_log: str = "sampled"

    @field_validator("access_log")
    @classmethod
    def _known_access_log(cls, value: str) -> str:
        if value not in ACCESS_LOG_CHOICES:
            raise ValueError(f"must be one of {', '.join(ACCESS_LOG_CHOICES)}")
        return value

    @field_validator("capture_uri")
    @classmethod
    def _absolute_capture_folder(cls, value: str | None) -> str | None:
        # A folder is made absolute where the settings are read, so an endpoint or a job started
        # elsewhere writes and reads the same one; a URI (s3://…) is kept as it is.
        if value and "://" not in value:
            return str(Path(value).expanduser().resolve())
        return value or None


class ReviewSettings(_Group):
    """Human review.

    Attributes:
        flow: a human review flow (``review_flow``; ``sagestack review flow create``) attached to the
            endpoint: each prediction less confident than its threshold starts a human loop.
        db: the human review store's database (``review_db``): SQLite under ``home/review`` (default) or
            PostgreSQL, ``postgresql://user:password@host:5432/review`` (the scaled-out topology's).
    """

    flow: str | None = None
    db: str | None = None


class Settings(BaseModel):
    """Validated sagestack settings: the home, then one group per concern.

    Attributes:
        home: the state directory.
        tracking: MLflow (:class:`TrackingSettings`).
        data: where datasets come from (:class:`DataSettings`).
        feature_store: Feast's stores and registry (:class:`FeatureStoreSettings`).
        endpoint: what an endpoint serves and how (:class:`EndpointSettings`).
        review: human review (:class:`ReviewSettings`).

    Each setting also has one flat name (:data:`FIELDS`) for the environment, ``sagestack.toml``,
    overrides and :meth:`replace`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Path(DEFAULT_HOME_NAME)
    tracking: TrackingSettings = TrackingSettings()
    data: DataSettings = DataSettings()
    feature_store: FeatureStoreSettings = FeatureStoreSettings()
    endpoint: EndpointSettings = EndpointSettings()
    review: ReviewSettings = ReviewSettings()

    @field_validator("home")
    @classmethod
    def _home_is_a_folder(cls, value: Path) -> Path:
        # Caught here, once, rather than as a FileExistsError from whichever mkdir comes first.
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a folder; pass a folder (new or a sagestack home) as --home")
        from sagestack.paths import nearest_existing

        above = nearest_existing(value)
        if not above.is_dir():
            raise ValueError(f"{above} is not a folder, so {value} cannot be made; pass another --home")
        return value

    def value(self, name: str) -> object:
        """The setting of flat name ``name`` (a key of :data:`FIELDS`)."""
        group, field = FIELDS[name]
        return getattr(self if group is None else getattr(self, group), field)

    def flat(self) -> dict[str, object]:
        """Every setting by its flat name."""
        return {name: self.value(name) for name in FIELDS}

    def replace(self, **values: object) -> Settings:
        """A validated copy with the settings named (by flat name) replaced.

        Raises:
            ConfigError: an unknown name or an invalid value.
        """
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise ConfigError(f"replace: unknown settings {', '.join(unknown)}; name them by flat name (FIELDS)")
        return _validated({**self.flat(), **values}, source="replace")

    def to_env(self) -> dict[str, str]:
        """The ``SAGESTACK_*`` variables that give another process these same settings: the one form
        settings take across a process boundary (subprocesses, endpoint workers, job runners, pods).

        For a process started in another working directory (a ``sagestack.toml`` there would not be
        this one): every set field, paths made absolute, and the tracking URI spelled out.
        """
        env = {}
        for var, name in ENV_VARS.items():
            value = self.value(name)
            if value is not None:
                env[var] = str(value.resolve() if isinstance(value, Path) else value)
        env["SAGESTACK_HOME"] = str(self.home.resolve())
        env["SAGESTACK_TRACKING_URI"] = self.mlflow_uri
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """The settings that :meth:`to_env` (or a pod's ConfigMap) gave this process, and nothing else:
        no ``sagestack.toml`` is read.

        Raises:
            ConfigError: a variable holds an invalid value.
        """
        return _validated(fields_from_env(environ), source="environment")

    @property
    def mlflow_uri(self) -> str:
        """The MLflow tracking URI to use (the SQLite store under ``home`` unless configured)."""
        if self.tracking.uri:
            return self.tracking.uri
        return f"sqlite:///{self.home.resolve() / 'mlflow.db'}"

    @property
    def artifacts_dir(self) -> Path:
        """Where MLflow stores run artifacts when the tracking store is local."""
        return self.home.resolve() / "mlartifacts"

    @property
    def capture_dir(self) -> Path:
        """Where the endpoint's data capture writes (hourly Parquet partitions)."""
        return self.home.resolve() / "capture"

    @property
    def capture_location(self) -> str:
        """Where data capture writes and monitoring reads: ``capture_uri``, else :attr:`capture_dir`."""
        return self.endpoint.capture_uri or str(self.capture_dir)

    @property
    def cache_dir(self) -> Path:
        """Where downloaded datasets are cached."""
        return self.home.resolve() / "cache"


def field_default(name: str) -> object:
    """The default of the setting of flat name ``name``."""
    group, field = FIELDS[name]
    model = Settings if group is None else Settings.model_fields[group].annotation
    return model.model_fields[field].default


def settings_parameter(settings: Settings) -> str:
    """The one pipeline parameter that gives a local run's steps these settings.

    The path of a private file holding :meth:`Settings.to_env` (:func:`~sagestack.data.atomic.private_file`,
    in ``home/pipelines/settings``): the URIs may carry passwords, which must not go on the steps' command
    lines or into KFP's run files. Equal settings give the same path, so the step cache still hits; what only
    an endpoint reads (:data:`ENDPOINT_ONLY`) is left out, so changing it does not re-run a pipeline.
    """
    from sagestack.data.atomic import private_file

    for_steps = settings.replace(**{name: field_default(name) for name in ENDPOINT_ONLY})
    folder = settings.home.resolve() / "pipelines" / "settings"
    return str(private_file("settings", ".json", json.dumps(for_steps.to_env(), sort_keys=True), folder=folder))


def cluster_settings_parameter(**fields: object) -> str:
    """The ``settings`` parameter of a cluster run: the given settings (by flat name, e.g. ``tracking_uri`` as
    the pods see it) as ``SAGESTACK_*`` variables, over what the pods' ConfigMap and Secrets give; "" for none."""
    chosen = fields_as_env(**fields)
    return json.dumps(chosen, sort_keys=True) if chosen else ""


def fields_as_env(**fields: object) -> dict[str, str]:
    """The ``SAGESTACK_*`` variables of the settings given by flat name (``workers=2`` -> ``{"SAGESTACK_WORKERS":
    "2"}``); ``None`` values are left out."""
    names = {name: var for var, name in ENV_VARS.items()}
    return {names[name]: str(value) for name, value in fields.items() if value is not None}


def settings_from_parameter(value: str) -> Settings:
    """The settings of a pipeline step, from its one ``settings`` parameter.

    - a file's path (the local runner, :func:`settings_parameter`): exactly that file's settings;
      nothing of the step's environment or working directory, so a run never mixes the caller's
      settings with another's;
    - a JSON object of ``SAGESTACK_*`` variables (:func:`cluster_settings_parameter`): those over
      the step's environment (a pod's ConfigMap and Secrets);
    - "": the step's environment and working directory alone.

    Raises:
        ConfigError: the file is gone or unreadable, a name is unknown, or a value is invalid.
    """
    if not value:
        return load_settings()
    inline = value.lstrip().startswith("{")
    source = "the settings parameter" if inline else f"the pipeline's settings file {value}"
    try:
        chosen = json.loads(value if inline else Path(value).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        again = "" if inline else "; run the pipeline again"
        raise ConfigError(f"cannot read {source} ({exc}){again}") from None
    if not isinstance(chosen, dict) or not all(isinstance(v, str) for v in chosen.values()):
        raise ConfigError(f"{source} must be a JSON object of SAGESTACK_* names and string values")
    unknown = sorted(set(chosen) - set(ENV_VARS))
    if unknown:
        raise ConfigError(f"{source} names unknown settings ({', '.join(unknown)}); known: {', '.join(ENV_VARS)}")
    return load_settings(environ={**os.environ, **chosen}) if inline else Settings.from_env(chosen)


def load_settings(
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: object,
) -> Settings:
    """Build :class:`Settings` from defaults, ``sagestack.toml``, the environment and overrides.

    Args:
        cwd: directory holding the optional ``sagestack.toml`` (default: the working directory).
        environ: environment to read (default: ``os.environ``).
        **overrides: explicit values (e.g. CLI options); ``None`` values are ignored.

    Returns:
        The validated settings.

    Raises:
        ConfigError: the config file is not valid TOML or has an unknown/invalid field.
    """
    cwd = Path.cwd() if cwd is None else cwd
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    source = "defaults"

    config_file = cwd / CONFIG_FILE_NAME
    if config_file.is_file():
        source = str(config_file)
        try:
            values.update(tomllib.loads(config_file.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_file}: not valid TOML ({exc}); fix the file or remove it") from None
        values = _flat_file_values(values, config_file)
        if "home" in values and not Path(str(values["home"])).is_absolute():
            values["home"] = cwd / str(values["home"])

    values.update(fields_from_env(environ))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _validated(values, source=source, overrides=overrides)


def fields_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings (by flat name) the ``SAGESTACK_*`` variables in ``environ`` set (unvalidated; empty means unset)."""
    return {name: environ[var] for var, name in ENV_VARS.items() if environ.get(var)}


def _flat_file_values(values: Mapping[str, object], source: Path) -> dict[str, object]:
    """``sagestack.toml``'s values by flat name: flat keys as they are, a group's table (``[feature_store]``
    ``online = ...``) by its fields. An unknown key is kept (as ``group.field`` inside a table), to be refused
    by name.

    Raises:
        ConfigError: a group's name holds something else than a table, or a setting is given twice.
    """
    by_path = {path: name for name, path in FIELDS.items()}
    groups = {group for group, _ in FIELDS.values() if group}
    flat: dict[str, object] = {}
    for key, value in values.items():
        if key in groups and not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key}' must be a table ([{key}] then its fields), or use the flat names")
        found = ({by_path.get((key, field), f"{key}.{field}"): item for field, item in value.items()}
                 if key in groups else {key: value})
        for name in found:
            if name in flat:
                raise ConfigError(f"{source}: '{name}' is given twice (flat and in its group's table); keep one")
        flat.update(found)
    return flat


def _validated(values: Mapping[str, object], *, source: str, overrides: Mapping[str, object] | None = None) -> Settings:
    """:class:`Settings` from ``values`` (by flat name); an invalid one is a one-line ConfigError naming
    the setting and its ``source`` (or the CLI option, when an explicit override was the invalid value)."""
    tree: dict[str, object] = {}
    for name, value in values.items():
        group, field = FIELDS.get(name, (None, name))
        if group is None:
            tree[field] = value
        else:
            tree.setdefault(group, {})[field] = value
    try:
        return Settings(**tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        location = tuple(str(p) for p in err["loc"])
        field = {path: name for name, path in FIELDS.items()}.get(
            location if len(location) == 2 else (None, location[0]), ".".join(location))
        message = err["msg"].removeprefix("Value error, ")
        if (overrides or {}).get(field) is not None:  # an explicit value (a CLI option) is the source to name
            source = f"--{field.replace('_', '-')}"
        raise ConfigError(f"{source}: invalid setting '{field}': {message}") from None
