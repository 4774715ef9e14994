"""The same feature definitions on Feast's Redis online store, against a real redis-server on loopback."""

import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sagestack.data import load_reviews
from sagestack.features import engineer_features
from sagestack.features.store import FEATURES_FILE, repo_dir
from serving.launch import free_port

REDIS = shutil.which("redis-server")


@pytest.fixture
def redis_url(tmp_path):
    # Never a skip: a run without redis-server would go green without testing the Redis store.
    if REDIS is None:
        pytest.fail("redis-server is not installed; `make test` installs it with apt-get (or: apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(50):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def test_same_definitions_on_redis(tmp_path, redis_url, sample_csv, monkeypatch):
    from feast import FeatureStore

    repo = tmp_path / "repo"
    shutil.copytree(repo_dir(), repo, ignore=shutil.ignore_patterns("__pycache__"))
    config = (repo / "feature_store.yaml").read_text()
    sqlite_online = "online_store:\n  type: sqlite\n  path: ${SAGESTACK_FEAST_DIR}/online_store.db\n"
    assert sqlite_online in config
    (repo / "feature_store.yaml").write_text(
        config.replace(sqlite_online, f"online_store:\n  type: redis\n  connection_string: \"{redis_url}\"\n"))
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("SAGESTACK_FEAST_DIR", str(state))
    table = engineer_features(load_reviews(sample_csv).frame.head(50))
    table.to_parquet(state / FEATURES_FILE, index=False)

    feast = str(Path(sys.executable).with_name("feast"))
    subprocess.run([feast, "-c", str(repo), "apply"], check=True, capture_output=True)
    store = FeatureStore(repo_path=str(repo))
    store.materialize(start_date=table["event_timestamp"].min().to_pydatetime() - timedelta(seconds=1),
                      end_date=datetime.now(timezone.utc) + timedelta(seconds=1))
    result = store.get_online_features(features=store.get_feature_service("sentiment_serving_v1"),
                                       entity_rows=[{"review_id": 7}, {"review_id": 10**9}]).to_dict()
    assert result["review_body"] == [table.loc[7, "review_body"], None]
    assert list(result["input_ids"][0]) == list(table.loc[7, "input_ids"])
