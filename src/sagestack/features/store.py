"""The Feast feature store under ``$SAGESTACK_HOME/feast``: ingest, online reads, training sets.

The declarations live in the ``feature_repo`` folder (shipped with sagestack); its
``feature_store.yaml`` names ``${SAGESTACK_FEAST_DIR}``, which these functions render as
``<home>/feast`` (:func:`store_config`), so every home has its own registry, online store and
offline parquet. Only a ``feast`` child process gets the variable itself (:func:`feast_env`), for
the declarations it imports; this process's environment is never changed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Collection, Sequence

import pandas as pd

from sagestack.config import Settings
from sagestack.data.atomic import atomic_file, private_file
from sagestack.errors import SagestackError
from sagestack.features.feast_import import import_feast

FEATURES_FILE = "review_features.parquet"
# Which tokenizer made the stored input_ids (its fingerprint, directory and sequence length).
TOKENIZER_FILE = "tokenizer.json"
# The fingerprint of the declarations and configuration of the last `feast apply` (see apply()).
APPLIED_FILE = "applied.json"
TRAINING_SERVICE, SERVING_SERVICE = "sentiment_training_v1", "sentiment_serving_v1"
# What the endpoint's /predict_by_id reads: every kind predicts from the text. The serving service
# also carries the BERT token ids, which triple the cost of a read (0.30 vs 0.14 ms for one review).
ENDPOINT_FEATURES = ("reviews_text:review_body",)
# A Redis server that is down or hung fails a read within seconds instead of hanging the caller.
REDIS_TIMEOUTS = "socket_connect_timeout=2,socket_timeout=5"
# The endpoint reads a few small rows at a time: a second is ample, and a hung server must not
# hold the requests queued behind a read for long.
ENDPOINT_REDIS_TIMEOUTS = "socket_connect_timeout=1,socket_timeout=1"
SPLITS = ("train", "validation", "test")
# Timestamps in microseconds: Spark (an offline-store choice) cannot read pandas' nanoseconds; DuckDB reads both.
PARQUET_OPTIONS = {"coerce_timestamps": "us", "allow_truncated_timestamps": True}
# The variable the shipped feature_store.yaml (and the declarations, in a feast process) name the home's feast folder by.
FEAST_DIR_ENV = "SAGESTACK_FEAST_DIR"


def repo_dir() -> Path:
    """The feature repository (declarations and feature_store.yaml)."""
    import sagestack.feature_repo

    return Path(sagestack.feature_repo.__file__).resolve().parent


def feast_dir(settings: Settings) -> Path:
    """Where this home's Feast state lives."""
    return settings.home.resolve() / "feast"


def redis_connection_string(url: str, timeouts: str = REDIS_TIMEOUTS) -> str:
    """Feast's Redis ``connection_string`` (``host:port,db=N,password=…,ssl=true`` and ``timeouts``)
    for a ``redis://`` URL."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    options = [f"{parts.hostname or 'localhost'}:{parts.port or 6379}"]
    if parts.path.strip("/"):
        options.append(f"db={parts.path.strip('/')}")
    if parts.password:
        options.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        options.append("ssl=true")
    return ",".join([*options, timeouts])


def store_config(settings: Settings, *, endpoint: bool = False) -> dict:
    """The shipped ``feature_store.yaml`` with the online store and registry the settings choose.

    The declarations stay the same; only where Feast keeps its state changes (SQLite or Redis
    online, a SQLite or shared SQL registry), so a cluster and a laptop run one feature repo.
    ``endpoint`` gives a long-lived endpoint its own: the registry refreshed by a background
    thread (Feast's default reloads it inside a read once its cache is a minute old: on the
    endpoint's event loop, and blocked for as long as a shared registry is unreachable) and
    shorter Redis timeouts.
    """
    import yaml

    config = _in_folder(yaml.safe_load((repo_dir() / "feature_store.yaml").read_text()), str(feast_dir(settings)))
    if settings.feature_store.online != "sqlite":
        timeouts = ENDPOINT_REDIS_TIMEOUTS if endpoint else REDIS_TIMEOUTS
        config["online_store"] = {"type": "redis",
                                  "connection_string": redis_connection_string(settings.feature_store.online, timeouts)}
    if settings.feature_store.registry:
        config["registry"] = {**config["registry"], "path": settings.feature_store.registry}
    if endpoint:
        config["registry"] = {**config["registry"], "cache_mode": "thread"}
    if settings.feature_store.offline != "duckdb":
        master = "local[*]" if settings.feature_store.offline == "spark" else settings.feature_store.offline
        config["offline_store"] = {"type": "spark", "spark_conf": {
            "spark.master": master, "spark.sql.session.timeZone": "UTC", "spark.ui.enabled": "false"}}
    return config


def _in_folder(config, folder: str):
    """The shipped configuration with ``${SAGESTACK_FEAST_DIR}`` replaced by this home's ``folder``."""
    if isinstance(config, dict):
        return {key: _in_folder(value, folder) for key, value in config.items()}
    return config.replace(f"${{{FEAST_DIR_ENV}}}", folder) if isinstance(config, str) else config


def offline_engine(settings: Settings) -> str:
    """``duckdb`` or ``spark``: which source class the declarations use (``feature_repo/reviews.py``)."""
    return "duckdb" if settings.feature_store.offline == "duckdb" else "spark"


def store_config_file(settings: Settings, *, endpoint: bool = False) -> Path:
    """This process's ``feature_store.yaml`` for these settings, written on first use.

    Not in the home: that may be a read-only volume (the endpoints mount it so), and the file can
    hold the Redis or registry password: a private file of the user's own (:func:`private_file`).
    """
    import yaml

    return private_file("feature_store", ".yaml", yaml.safe_dump(store_config(settings, endpoint=endpoint),
                                                                   sort_keys=False))


def feast_command(settings: Settings, *args: str) -> list[str]:
    """A ``feast`` CLI command line on this home's repository (the environment comes from :func:`feast_env`).

    Feast's own CLI, started through :mod:`sagestack.features.feast_import` (8 s less import time).
    """
    return [sys.executable, "-m", "sagestack.features.feast_import", "-c", str(repo_dir()),
            "--feature-store-yaml", str(store_config_file(settings)), *args]


def feast_env(settings: Settings) -> dict:
    """The environment a ``feast`` process needs for this home: this process's, plus the home's feast
    folder and offline engine (read by the declarations it imports) and its ``feature_store.yaml``."""
    return {**os.environ,
            FEAST_DIR_ENV: str(_feast_folder(settings)),
            "SAGESTACK_FEAST_OFFLINE": offline_engine(settings),
            "FEAST_FS_YAML_FILE_PATH": str(store_config_file(settings))}  # the feast CLI's --feature-store-yaml


def _feast_folder(settings: Settings) -> Path:
    """This home's feast folder, made if it is not there yet (Feast writes into it)."""
    directory = feast_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _apply_fingerprint(settings: Settings) -> str:
    """What a ``feast apply`` of this home depends on: Feast's version, the declarations, the
    store's configuration and the home's feast folder."""
    import hashlib
    from importlib.metadata import version

    import yaml

    digest = hashlib.sha256()
    parts = [version("feast"), str(feast_dir(settings)), offline_engine(settings),
             yaml.safe_dump(store_config(settings), sort_keys=True)]
    for part in parts:
        digest.update(part.encode() + b"\0")
    for path in sorted(p for p in repo_dir().iterdir() if p.suffix in (".py", ".yaml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _registry_readable(path: Path) -> bool:
    """Whether ``path`` is a SQLite Feast registry holding feature views (a damaged or missing one is applied anew)."""
    import sqlite3

    if not path.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as connection:
            return connection.execute("SELECT count(*) FROM feature_views").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def apply(settings: Settings, *, force: bool = False) -> bool:
    """Run a real ``feast apply`` for this home (registers entities, views, services), unless
    this home's registry already holds exactly these declarations.

    A ``feast apply`` costs seconds (a process importing Feast's CLI) and changes nothing when the
    declarations, Feast and the store's configuration are those of the last apply: that is
    recorded in ``<home>/feast/applied.json`` and checked first. A shared registry
    (``feast_registry``) is always applied: another home may have changed it.

    Args:
        force: apply even when nothing changed.

    Returns:
        Whether ``feast apply`` ran.

    Raises:
        SagestackError: ``feast apply`` failed (its last line is in the message).
    """
    return _finish_apply(settings, _start_apply(settings, force=force))


def _start_apply(settings: Settings, *, force: bool = False) -> tuple[subprocess.Popen, str] | None:
    """Start :func:`apply`'s ``feast apply`` in a child process and return it with the fingerprint
    it applies, or ``None`` when this home's registry already holds these declarations."""
    fingerprint = _apply_fingerprint(settings)
    marker = feast_dir(settings) / APPLIED_FILE
    local_registry = feast_dir(settings) / "registry.db"
    if not force and not settings.feature_store.registry and marker.is_file() and _registry_readable(local_registry):
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") == fingerprint:
                return None
        except ValueError:
            pass  # a damaged record: apply again
    # An apply stopped halfway must not leave an older record vouching for the registry it was changing.
    marker.unlink(missing_ok=True)
    process = subprocess.Popen(feast_command(settings, "apply"), env=feast_env(settings), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    return process, fingerprint


def _abandon_apply(started: tuple[subprocess.Popen, str] | None) -> None:
    """Stop a :func:`_start_apply` that will not be finished (its ingest failed): kill and reap the child, so no
    ``feast apply`` outlives its caller; no apply is recorded, so the next one runs again."""
    if started is not None:
        started[0].kill()
        started[0].communicate()


def _finish_apply(settings: Settings, started: tuple[subprocess.Popen, str] | None) -> bool:
    """Wait for a :func:`_start_apply` and record what it applied; returns whether ``feast apply`` ran.

    Raises:
        SagestackError: ``feast apply`` failed (its last line is in the message).
    """
    if started is None:
        return False
    process, fingerprint = started
    try:
        stdout, stderr = process.communicate()
    except BaseException:  # interrupted while waiting: the child goes too (as subprocess.run does)
        _abandon_apply(started)
        raise
    if process.returncode != 0:
        last = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
        raise SagestackError(f"feast apply failed: {last[0]}")
    with atomic_file(feast_dir(settings) / APPLIED_FILE) as tmp:
        tmp.write_text(json.dumps({"fingerprint": fingerprint}), encoding="utf-8")
    return True


def open_store(settings: Settings, *, endpoint: bool = False):
    """A ``feast.FeatureStore`` on this home's state (``endpoint``: configured for a long-lived
    endpoint, see :func:`store_config`)."""
    FeatureStore = import_feast().FeatureStore

    _feast_folder(settings)
    return FeatureStore(repo_path=str(repo_dir()), fs_yaml_file=store_config_file(settings, endpoint=endpoint))


def has_features(settings: Settings) -> bool:
    """Whether this home's feature store has been ingested."""
    return (feast_dir(settings) / FEATURES_FILE).is_file()


def first_review_id(settings: Settings) -> int | None:
    """One review id of the feature table (reading that column only), or ``None`` before the first ingest."""
    import pyarrow.parquet as pq

    if not has_features(settings):
        return None
    ids = pq.read_table(feast_dir(settings) / FEATURES_FILE, columns=["review_id"]).column("review_id")
    return int(ids[0].as_py()) if len(ids) else None


def read_features(settings: Settings) -> pd.DataFrame | None:
    """The current offline feature table, or None before the first ingest."""
    path = feast_dir(settings) / FEATURES_FILE
    return pd.read_parquet(path) if path.is_file() else None


def ingest(settings: Settings, reviews: pd.DataFrame, *, max_seq_length: int = 128, tokenizer_dir=None, progress=None,
           relabel_texts: Collection[str] = ()) -> dict:
    """Engineer features for the reviews, write the offline table, ``feast apply``, materialize online.

    ``relabel_texts``: review texts whose label in ``reviews`` corrects the stored one (human-reviewed
    labels); those known reviews get a new label version (see :func:`engineer_features`).

    Known reviews keep their ids, timestamps and splits. The parquet file is replaced
    atomically, and put back if ``feast apply`` or materialization fails, so a failed run
    leaves the previous table (and the online values of known reviews) readable.

    Returns:
        ``{"rows", "new_rows", "relabelled", "path", "splits", "review_ids"}``.
    """
    from sagestack.features.engineering import content_hash

    _feast_folder(settings)
    # `feast apply` reads none of the table (the views declare their schema): its process runs
    # while the features are engineered here, and is waited for before materializing.
    applying = _start_apply(settings)
    path = feast_dir(settings) / FEATURES_FILE
    try:
        existing, record, table = _engineer(settings, reviews, max_seq_length=max_seq_length,
                                            tokenizer_dir=tokenizer_dir, progress=progress, relabel_texts=relabel_texts)
        with atomic_file(path) as tmp:
            table.to_parquet(tmp, index=False, **PARQUET_OPTIONS)
    except BaseException:
        _abandon_apply(applying)  # a refused or failed ingest leaves no feast apply running and records none
        raise
    try:
        if applying is not None:
            import_feast()  # this process's import (a second or more) overlaps the rest of `feast apply`'s
        _finish_apply(settings, applying)
        store = open_store(settings)
        start = table["event_timestamp"].min().to_pydatetime() - timedelta(seconds=1)
        # Feast prints materialization progress (in terminal colours) on stdout: library chatter,
        # kept off the terminal at all (stdout is for results, e.g. --json; stderr for our progress).
        with contextlib.redirect_stdout(io.StringIO()):
            store.materialize(start_date=start, end_date=datetime.now(timezone.utc) + timedelta(seconds=1))
    except BaseException:
        # Put the previous offline table back: known reviews keep their online values either
        # way (materialization rewrites them unchanged), so the store stays consistent.
        with atomic_file(path) as tmp:
            if existing is not None:
                existing.to_parquet(tmp, index=False, **PARQUET_OPTIONS)
        if existing is None:
            path.unlink(missing_ok=True)
        raise
    with atomic_file(feast_dir(settings) / TOKENIZER_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    hashes = {content_hash(b, c) for b, c in zip(reviews["review_body"], reviews["product_category"])}
    known_ids = set() if existing is None else set(existing["review_id"])
    new_reviews = int((~table["review_id"].drop_duplicates().isin(known_ids)).sum())
    return {
        "rows": len(table),
        "new_rows": new_reviews,
        # rows written beyond the new reviews: new label versions of known ones
        "relabelled": len(table) - (0 if existing is None else len(existing)) - new_reviews,
        "path": str(path),
        "splits": table["split_type"].value_counts().to_dict(),
        # The ids of exactly these reviews: a pipeline trains on its own input, not on the whole store.
        "review_ids": [int(i) for i in table.loc[table["content_hash"].isin(hashes), "review_id"].drop_duplicates()],
    }


def _engineer(settings: Settings, reviews: pd.DataFrame, *, max_seq_length: int, tokenizer_dir, progress,
              relabel_texts: Collection[str]) -> tuple[pd.DataFrame | None, dict, pd.DataFrame]:
    """:func:`ingest`'s feature table for ``reviews``: (the stored table or ``None``, the tokenizer's
    record, the new table), refusing a tokenizer other than the stored ids'.

    Raises:
        SagestackError: the stored ``input_ids`` come from another (or an unrecorded) tokenizer.
    """
    from sagestack.features.engineering import (
        content_hash, default_tokenizer_dir, engineer_features, load_feature_tokenizer, tokenizer_fingerprint,
    )

    existing = read_features(settings)
    tokenizer = load_feature_tokenizer(tokenizer_dir)
    record = {"fingerprint": tokenizer_fingerprint(tokenizer, max_seq_length),
              "tokenizer": str(tokenizer_dir or default_tokenizer_dir()), "max_seq_length": max_seq_length}
    recorded = stored_tokenizer(settings)
    if existing is not None and len(existing) and recorded is None:
        # Rows whose tokenizer nobody recorded: a fingerprint written now would vouch for ids never checked.
        raise SagestackError("the feature store holds input_ids from an unrecorded tokenizer (ingested by an older "
                             "sagestack); ingest into a new SAGESTACK_HOME")
    if existing is not None and len(existing) and recorded is not None and recorded["fingerprint"] != record["fingerprint"]:
        # Known reviews keep their stored ids: mixing two tokenizers' ids in one table is never right.
        raise SagestackError(
            f"the feature store's input_ids come from {recorded['tokenizer']} (max_seq_length "
            f"{recorded['max_seq_length']}); ingest with the same tokenizer and length, or use a new SAGESTACK_HOME"
        )
    texts = set(relabel_texts)
    relabel = {content_hash(b, c) for b, c in zip(reviews["review_body"], reviews["product_category"]) if b in texts}
    table = engineer_features(
        reviews, tokenizer=tokenizer, max_seq_length=max_seq_length, existing=existing, progress=progress,
        relabel=relabel,
    )
    return existing, record, table


def stored_tokenizer(settings: Settings) -> dict | None:
    """Which tokenizer made the store's ``input_ids``: ``{"fingerprint", "tokenizer", "max_seq_length"}``,
    or ``None`` for a store ingested before sagestack recorded it."""
    path = feast_dir(settings) / TOKENIZER_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class OnlineStoreUnavailable(SagestackError):
    """The online store (e.g. the Redis server) cannot be reached right now; a retry may succeed."""


def _connection_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the online store's server is not reachable" (not "the data is wrong")."""
    import sqlite3

    # SQLite: "database is locked" past the busy timeout, while an ingest writes: a retry may succeed.
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError, sqlite3.OperationalError]
    try:
        import redis

        errors += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - redis is locked with feast[redis]
        pass
    return tuple(errors)


def _fail_fast(store) -> None:
    """Give the Redis client of a Feast store one immediate retry instead of redis-py's default
    three with exponential backoff, which hold a read for up to 7 s when the server is down: an
    endpoint should answer 503 at once, and its readiness probe see why."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    online_store = store.provider.online_store
    # Feast has no public accessor for its Redis client (tests/serving/test_readiness.py checks this still works).
    online_store._get_client(store.config.online_store).set_retry(Retry(NoBackoff(), retries=1))


async def _fail_fast_async(store) -> None:
    """:func:`_fail_fast` for the asynchronous Redis client Feast reads with on an event loop."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    online_store = store.provider.online_store
    client = await online_store._get_client_async(store.config.online_store)
    client.set_retry(Retry(NoBackoff(), retries=1))


def _store_location(settings: Settings) -> str:
    """Where the online store is, without credentials (for messages)."""
    if settings.feature_store.online == "sqlite":
        return str(feast_dir(settings) / "online_store.db")
    from urllib.parse import urlsplit

    parts = urlsplit(settings.feature_store.online)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"


class OnlineReader:
    """Reads a feature service (or a list of feature references) from the online store; keeps the
    FeatureStore open between reads (``endpoint``: configured for a long-lived endpoint)."""

    def __init__(self, settings: Settings, service: str = SERVING_SERVICE, *,
                 features: Sequence[str] | None = None, endpoint: bool = False) -> None:
        if not has_features(settings):
            raise SagestackError("the feature store is empty; run `sagestack features ingest` first")
        self._store = open_store(settings, endpoint=endpoint)
        self._features = list(features) if features else self._store.get_feature_service(service)
        self._location = _store_location(settings)
        # Redis (or any store Feast reads asynchronously) is read on the event loop by get_async.
        self._async = self._store.provider.async_supported.online.read
        self._async_ready = False
        if settings.feature_store.online != "sqlite":
            _fail_fast(self._store)
        # SQLite keeps reading a deleted file through its open handle (and would create an empty
        # one on reconnecting): a store whose file is gone must say so, not serve stale rows.
        self._sqlite_file = Path(self._location) if settings.feature_store.online == "sqlite" else None

    @property
    def location(self) -> str:
        """Where the online store is, without credentials."""
        return self._location

    def get(self, review_ids: list[int]) -> list[dict]:
        """Features per review id, in order; an unknown id is ``{"review_id", "found": False}``.

        Raises:
            OnlineStoreUnavailable: the online store's server cannot be reached (the next call
                tries again: the client reconnects by itself), or its SQLite file is gone.
        """
        self._check_file()
        try:
            result = self._store.get_online_features(features=self._features, entity_rows=_entity_rows(review_ids))
        except _connection_errors() as exc:
            raise self._unreachable(exc) from None
        return _rows(result.to_dict(), review_ids)

    async def get_async(self, review_ids: list[int]) -> list[dict]:
        """:meth:`get` for an event loop: a Redis store is read asynchronously (Feast's async
        path), a SQLite file in place (a local read of a fraction of a millisecond).

        SQLite waits for a writer's lock (an ingest's commit: milliseconds) on the caller's thread.
        """
        if not self._async:
            return self.get(review_ids)
        if not self._async_ready:
            # The asynchronous client is made on first use, on this loop: give it the same fast failure.
            await _fail_fast_async(self._store)
            self._async_ready = True
        try:
            result = await self._store.get_online_features_async(features=self._features,
                                                                 entity_rows=_entity_rows(review_ids))
        except _connection_errors() as exc:
            raise self._unreachable(exc) from None
        return _rows(result.to_dict(), review_ids)

    def _check_file(self) -> None:
        if self._sqlite_file is not None and not self._sqlite_file.is_file():
            raise OnlineStoreUnavailable(f"the online feature store at {self._location} is gone; "
                                         "run `sagestack features ingest` for this SAGESTACK_HOME")

    def _unreachable(self, exc: BaseException) -> OnlineStoreUnavailable:
        return OnlineStoreUnavailable(f"the online feature store at {self._location} is unreachable "
                                      f"({type(exc).__name__}); try again when it is back")


def _entity_rows(review_ids: list[int]) -> list[dict]:
    return [{"review_id": int(i)} for i in review_ids]


def _rows(result: dict, review_ids: list[int]) -> list[dict]:
    """Feast's columnar answer as one dict per id, ``found`` when any feature has a value."""
    names = [k for k in result if k != "review_id"]
    rows = []
    for index, review_id in enumerate(review_ids):
        values = {name: result[name][index] for name in names}
        found = any(v is not None for v in values.values())
        rows.append({"review_id": int(review_id), "found": found, **(values if found else {})})
    return rows


def get_online(settings: Settings, review_ids: list[int], service: str = SERVING_SERVICE) -> list[dict]:
    """Online features per review id, in order; an unknown id comes back as ``{"review_id", "found": False}``."""
    return OnlineReader(settings, service).get(review_ids)


def put_record(settings: Settings, review: dict, *, tokenizer_dir=None, max_seq_length: int = 128) -> dict:
    """Write one new review to the online and offline store at once (SageMaker's PutRecord).

    The review gets the next id and the current time; its features are engineered exactly as
    in :func:`ingest` and pushed through the push source.

    Returns:
        The pushed feature row (without the token lists).
    """
    from feast.data_source import PushMode

    from sagestack.features.engineering import engineer_features, load_feature_tokenizer

    existing = read_features(settings)
    if existing is None:
        raise SagestackError("the feature store is empty; run `sagestack features ingest` first")
    frame = pd.DataFrame([{k: review[k] for k in ("sentiment", "review_body", "product_category")}])
    table = engineer_features(frame, tokenizer=load_feature_tokenizer(tokenizer_dir), max_seq_length=max_seq_length,
                              existing=existing)
    new = table[~table["review_id"].isin(existing["review_id"])]
    if new.empty:
        raise SagestackError("this review is already in the feature store")
    new = new.assign(split_type="train")  # a single new review joins the training split
    store = open_store(settings)
    store.push("review_push_source", new.drop(columns=["content_hash"]), to=PushMode.ONLINE)
    # The offline table is sagestack's own parquet file: append atomically, keeping it the source of truth.
    path = feast_dir(settings) / FEATURES_FILE
    with atomic_file(path) as tmp:
        pd.concat([existing, new], ignore_index=True).to_parquet(tmp, index=False, **PARQUET_OPTIONS)
    row = new.iloc[0]
    return {"review_id": int(row["review_id"]), "event_timestamp": str(row["event_timestamp"]), "split_type": "train"}


def training_set(settings: Settings, split: str, *, as_of: datetime | None = None) -> pd.DataFrame:
    """A point-in-time correct training set for one split, read back through Feast (see :func:`training_sets`)."""
    return training_sets(settings, (split,), as_of=as_of)[split]


def training_sets(settings: Settings, splits: Sequence[str] = SPLITS, *,
                  as_of: datetime | None = None) -> dict[str, pd.DataFrame]:
    """Point-in-time correct training sets of ``splits``, read back through Feast in one retrieval
    (each retrieval reads every review: three of them cost three times as much).

    Every review written at or before ``as_of`` (default: now) is an entity row stamped
    ``as_of``; Feast joins the latest feature values whose event time is at or before it.
    Feast joins on event time only, so a row written *after* ``as_of`` with an older event time
    (late-arriving data) would leak in: sagestack leaves such reviews out of the entity rows by
    their ``created_timestamp``, so the same ``as_of`` always gives the same training set.
    Rows are never dropped silently: an entity without features comes back with nulls (the
    DuckDB offline store keeps them, unlike Feast's default file store).
    """
    for split in splits:
        if split not in SPLITS:
            raise SagestackError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    table = read_features(settings)
    if table is None:
        raise SagestackError("the feature store is empty; run `sagestack features ingest` first")
    store = open_store(settings)
    stamp = pd.Timestamp(as_of or datetime.now(timezone.utc))
    known = table[table["created_timestamp"] <= stamp]
    # A relabelled review has several rows (label versions): one entity row each, Feast picks the version.
    entities = pd.DataFrame({"review_id": known["review_id"].drop_duplicates(), "event_timestamp": stamp})
    frame = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service(TRAINING_SERVICE)
    ).to_df()
    return {split: frame[frame["split_type"] == split].sort_values("review_id").reset_index(drop=True)
            for split in splits}
