"""The same feature definitions on Feast's Redis online store, chosen by a setting, against a real
redis-server on loopback."""

import pytest

from sagestack.config import load_settings
from sagestack.data import load_reviews
from sagestack.features.store import (
    REDIS_TIMEOUTS, feast_dir, get_online, ingest, read_features, redis_connection_string, store_config,
)
from sagestack.bento.launch import free_port
from conftest import start_redis


@pytest.fixture
def redis_url(tmp_path):
    port = free_port()
    process = start_redis(port, tmp_path)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def test_redis_is_chosen_by_configuration(tmp_path, redis_url, sample_csv):
    """``SAGESTACK_ONLINE_STORE=redis://…`` puts the same feature definitions' online values in Redis:
    sagestack's own ingest (``feast apply`` + materialize) writes them there and reads them back."""
    import redis

    settings = load_settings(cwd=tmp_path, environ={"SAGESTACK_ONLINE_STORE": f"redis://{redis_url}"},
                             home=tmp_path / "home")
    frame = load_reviews(sample_csv).frame.head(50)
    ingest(settings, frame, max_seq_length=64)
    table = read_features(settings)
    rows = get_online(settings, [int(table.loc[7, "review_id"]), 10**9])
    assert rows[0]["found"] and rows[0]["review_body"] == table.loc[7, "review_body"]
    assert list(rows[0]["input_ids"]) == list(table.loc[7, "input_ids"])
    assert rows[1] == {"review_id": 10**9, "found": False}
    # The values are in Redis, not in a SQLite file beside the registry.
    host, port = redis_url.split(":")
    assert redis.Redis(host=host, port=int(port)).dbsize() >= 50
    assert not (feast_dir(settings) / "online_store.db").exists()
    assert store_config(settings)["online_store"] == {"type": "redis",
                                                      "connection_string": f"{redis_url},{REDIS_TIMEOUTS}"}


def test_redis_urls_become_feast_connection_strings():
    assert redis_connection_string("redis://cache:6380/2") == f"cache:6380,db=2,{REDIS_TIMEOUTS}"
    assert redis_connection_string("rediss://:s%40cret@cache") == f"cache:6379,password=s@cret,ssl=true,{REDIS_TIMEOUTS}"
    # A down server fails a read within seconds: the endpoint's readiness and 503s depend on it.
    assert REDIS_TIMEOUTS == "socket_connect_timeout=2,socket_timeout=5"
