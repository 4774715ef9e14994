"""Real Feast (feast apply, materialize, online and historical reads, feast serve) on a tmp home."""

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pandas as pd
import pytest

from conftest import wait_until
from sagestack.config import load_settings
from sagestack.data import load_reviews
from sagestack.errors import SagestackError
from sagestack.features import engineer_features, get_online, ingest, load_tokenizer, read_features, training_set
from sagestack.features.store import feast_command, feast_env, open_store


@pytest.fixture(scope="module")
def reviews(sample_csv):
    return load_reviews(sample_csv).frame


@pytest.fixture(scope="module")
def home(tmp_path_factory, reviews):
    settings = load_settings(cwd=Path("/nonexistent"), environ={}, home=tmp_path_factory.mktemp("feast-home"))
    first = ingest(settings, reviews)
    return settings, first


def test_engineering_schema_and_idempotence(reviews):
    tokenizer = load_tokenizer()
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    table = engineer_features(reviews, tokenizer=tokenizer, max_seq_length=32, now=now)
    assert list(table.columns[:11]) == ["review_id", "event_timestamp", "sentiment", "label_id", "input_ids",
                                        "attention_mask", "review_body", "product_category", "split_type",
                                        "word_count", "char_count"]
    assert table["review_id"].tolist() == list(range(len(table)))
    assert set(zip(table["sentiment"], table["label_id"])) == {(-1, 0), (0, 1), (1, 2)}
    assert {len(ids) for ids in table["input_ids"]} == {32} and table["input_ids"].iloc[0][0] == tokenizer.cls_token_id
    assert table["split_type"].value_counts().to_dict() == {"train": 540, "validation": 30, "test": 30}
    again = engineer_features(reviews, tokenizer=tokenizer, max_seq_length=32, existing=table,
                              now=now + timedelta(days=1))
    pd.testing.assert_frame_equal(again, table)
    extra = pd.DataFrame({"sentiment": [1], "review_body": ["A brand new review."], "product_category": ["Dresses"]})
    grown = engineer_features(pd.concat([reviews, extra]), tokenizer=tokenizer, max_seq_length=32, existing=table,
                              now=now + timedelta(days=1))
    assert len(grown) == len(table) + 1
    new = grown.iloc[-1]
    assert new["review_id"] == len(table) and new["event_timestamp"] == pd.Timestamp(now + timedelta(days=1))


def test_feast_apply_registers_the_declarations(home):
    settings, first = home
    assert first["rows"] == 600 and first["new_rows"] == 600
    listed = subprocess.run(feast_command(settings, "feature-views", "list"), env=feast_env(settings),
                            capture_output=True, text=True, check=True).stdout
    assert "reviews_bert" in listed and "reviews_text" in listed
    store = open_store(settings)
    assert {s.name for s in store.list_feature_services()} == {"sentiment_training_v1", "sentiment_serving_v1"}
    assert store.get_feature_view("reviews_bert").tags["owner"] == "sagestack"


def test_feast_apply_runs_again_only_when_what_it_applies_changed(home):
    """A second ingest into the same home skips the ~10 s `feast apply` when the declarations,
    Feast and the store's configuration are those of the last apply; any change applies again."""
    from sagestack.features.store import APPLIED_FILE, _apply_fingerprint, apply

    settings, _ = home
    assert apply(settings) is False  # the fixture's ingest applied exactly this
    marker = settings.home / "feast" / APPLIED_FILE
    recorded = marker.read_text()
    marker.write_text('{"fingerprint": "of other declarations"}')
    assert apply(settings) is True and marker.read_text() == recorded
    other = settings.replace(offline_store="spark")  # another configuration, another fingerprint
    assert _apply_fingerprint(other) != _apply_fingerprint(settings)


def test_a_refused_ingest_leaves_no_feast_apply_running_and_records_none(tmp_path, reviews):
    """Ingest starts `feast apply` while it engineers the features: when the ingest is refused (here, a table
    whose tokenizer nobody recorded), the child is stopped and reaped, and no apply is recorded: not even the
    older record, which would vouch for a registry the stopped apply may have changed."""
    import psutil

    from sagestack.features.store import APPLIED_FILE, FEATURES_FILE, feast_dir

    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    table = feast_dir(settings) / FEATURES_FILE
    table.parent.mkdir(parents=True)
    pd.DataFrame({"review_id": [1], "review_body": ["old"]}).to_parquet(table)
    (feast_dir(settings) / APPLIED_FILE).write_text('{"fingerprint": "of other declarations"}')
    before = table.read_bytes()
    with pytest.raises(SagestackError, match="unrecorded tokenizer"):
        ingest(settings, reviews)
    assert not [child for child in psutil.Process().children(recursive=True) if "feast" in " ".join(child.cmdline())]
    assert not (feast_dir(settings) / APPLIED_FILE).exists() and table.read_bytes() == before


def test_online_reads_and_unknown_ids(home):
    settings, _ = home
    table = read_features(settings)
    rows = get_online(settings, [17, 10**9, 17])
    assert rows[0]["found"] and rows[0]["review_body"] == table.loc[table.review_id == 17, "review_body"].item()
    assert list(rows[0]["input_ids"]) == list(table.loc[table.review_id == 17, "input_ids"].item())
    assert rows[1] == {"review_id": 10**9, "found": False}
    assert rows[2]["found"]  # duplicate ids each get their answer


def test_materializing_twice_gives_the_same_online_state(home, reviews):
    settings, _ = home
    before = get_online(settings, [0, 5, 9])
    again = ingest(settings, reviews)
    assert again["new_rows"] == 0
    assert get_online(settings, [0, 5, 9]) == before


def test_training_set_is_point_in_time_and_never_drops_rows(home):
    settings, _ = home
    table = read_features(settings)
    validation = training_set(settings, "validation")
    assert len(validation) == 30 and set(validation["split_type"]) == {"validation"}
    assert validation["review_id"].tolist() == sorted(table.loc[table.split_type == "validation", "review_id"])
    # Entity timestamps earlier than every feature row: the rows come back, with null features.
    store = open_store(settings)
    early = pd.DataFrame({"review_id": [0, 1, 10**9, 0],
                          "event_timestamp": pd.Timestamp(table["event_timestamp"].min()) - timedelta(days=1)})
    frame = store.get_historical_features(entity_df=early, features=["reviews_text:review_body"]).to_df()
    assert len(frame) == 4 and frame["review_body"].isna().all()
    with pytest.raises(SagestackError, match="unknown split 'dev'; use one of train, validation, test"):
        training_set(settings, "dev")


def test_feast_serve_answers_over_http(home):
    settings, _ = home
    from sagestack.bento.launch import free_port, stop_process

    port = free_port()
    process = subprocess.Popen(feast_command(settings, "serve", "--host", "127.0.0.1", "--port", str(port)),
                               env=feast_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = {"features": ["reviews_text:product_category"], "entities": {"review_id": [3, 10**9]}}

        def answered():
            try:
                return httpx.post(f"http://127.0.0.1:{port}/get-online-features", json=body, timeout=5)
            except httpx.HTTPError:  # not listening yet
                return None

        answer = wait_until(answered, 60, "feast serve did not answer within 60 s", interval=0.5)
        assert answer.status_code == 200
        results = answer.json()["results"]
        category = read_features(settings).loc[3, "product_category"]
        assert results[1]["values"] == [category, None]
    finally:
        stop_process(process, timeout=30)


def test_put_record_is_readable_online_at_once(home):
    from sagestack.features import put_record

    settings, _ = home
    before = len(read_features(settings))
    pushed = put_record(settings, {"sentiment": 1, "review_body": "Pushed just now: lovely soft sweater.",
                                   "product_category": "Sweaters"})
    assert pushed["review_id"] == before
    [row] = get_online(settings, [pushed["review_id"]])
    assert row["found"] and row["review_body"] == "Pushed just now: lovely soft sweater."
    assert len(read_features(settings)) == before + 1


def test_late_arriving_rows_stay_out_of_a_training_set_as_of_before_they_were_written(tmp_path, reviews):
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    ingest(settings, reviews.head(100))
    as_of = datetime.now(timezone.utc)
    time.sleep(0.01)
    table = read_features(settings)
    # A row that arrives after as_of but claims an event time before it (late-arriving data).
    late = table.iloc[[0]].assign(review_id=10_000, content_hash="late", event_timestamp=pd.Timestamp(as_of) - timedelta(days=1),
                                  created_timestamp=pd.Timestamp.now(tz="UTC"), split_type="train")
    pd.concat([table, late]).to_parquet(settings.home / "feast" / "review_features.parquet", index=False)

    store = open_store(settings)
    raw = store.get_historical_features(entity_df=pd.DataFrame({"review_id": [10_000], "event_timestamp": [pd.Timestamp(as_of)]}),
                                        features=["reviews_text:review_body"]).to_df()
    assert raw["review_body"].notna().all()  # plain Feast lets the late row into an as-of-past training set
    assert 10_000 not in set(training_set(settings, "train", as_of=as_of)["review_id"])  # sagestack does not
    assert 10_000 in set(training_set(settings, "train")["review_id"])  # and includes it from its write time on


def test_a_failed_ingest_leaves_the_previous_state_readable(tmp_path, reviews):
    from sagestack.errors import ConfigError, SagestackError

    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    ingest(settings, reviews.head(60))
    before_table = read_features(settings)
    before_online = get_online(settings, [1, 2])
    with pytest.raises(ConfigError, match="no tokenizer in"):  # fails before anything is written
        ingest(settings, reviews, tokenizer_dir=tmp_path / "no-tokenizer")
    pd.testing.assert_frame_equal(read_features(settings), before_table)

    # A real failure after the new table is written: `feast apply` cannot open a corrupted registry.
    registry = settings.home / "feast" / "registry.db"
    saved = registry.read_bytes()
    registry.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(SagestackError, match="^feast apply failed"):
        ingest(settings, reviews)
    pd.testing.assert_frame_equal(read_features(settings), before_table)  # previous table put back
    registry.write_bytes(saved)
    assert get_online(settings, [1, 2]) == before_online
    assert [p.name for p in (settings.home / "feast").iterdir() if p.name.startswith(".")] == []


def test_features_cli(cli, tmp_path, sample_csv):
    ingested = cli("features", "ingest", "--data", str(sample_csv), "--json", check=True).json
    assert ingested["rows"] == 600 and ingested["splits"] == {"train": 540, "validation": 30, "test": 30}
    human = cli("features", "ingest", "--data", str(sample_csv), check=True)  # progress on stderr, summary on stdout
    assert "600 reviews in the store (0 new), splits train=540, validation=30, test=30" in human.stdout
    assert "... engineering features for" in human.stderr
    assert "Materializing" not in human.stderr and "\x1b[" not in human.stderr  # Feast's coloured chatter stays off
    got = cli("features", "get", "--review-id", "5", "--review-id", "123456", "--json", check=True).json
    assert got["features"][0]["found"] and got["features"][1] == {"review_id": 123456, "found": False}
    assert "123456: not found" in cli("features", "get", "--review-id", "123456", check=True).stdout
    out = tmp_path / "test.csv"
    written = cli("features", "training-set", "--split", "test", "--out", str(out), "--json", check=True).json
    assert written["rows"] == 30 and len(pd.read_csv(out)) == 30
    bad = cli("features", "training-set", "--split", "dev", "--out", str(tmp_path / "x.csv"))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == "error: unknown split 'dev'; use one of train, validation, test"
    assert not (tmp_path / "x.csv").exists()


def test_the_store_records_its_tokenizer_and_bert_refuses_another(home, reviews):
    """Training BERT from the store checks the tokenizer fingerprint: same tokenizer and length →
    the stored ids; another length (other ids) → a one-line refusal; re-ingesting with another
    tokenizer setting is refused too (known reviews would keep the old ids)."""
    from sagestack.bert.data import store_splits, tokenizer_fingerprint
    from sagestack.errors import DataError, SagestackError
    from sagestack.features.store import stored_tokenizer

    settings, _ = home
    tokenizer = load_tokenizer()
    recorded = stored_tokenizer(settings)
    assert recorded["max_seq_length"] == 128 and recorded["fingerprint"] == tokenizer_fingerprint(tokenizer, 128)
    splits = store_splits(settings, tokenizer, 128)
    table = read_features(settings)
    assert len(splits["train"]) == (table["split_type"] == "train").sum()
    assert splits["train"].input_ids.shape[1] == 128 and set(splits["train"].labels) == {0, 1, 2}
    with pytest.raises(DataError, match="another tokenizer"):
        store_splits(settings, tokenizer, 64)
    with pytest.raises(SagestackError, match="ingest with the same tokenizer and length"):
        ingest(settings, reviews.head(5), max_seq_length=64)
    assert stored_tokenizer(settings) == recorded


def test_train_bert_without_data_reads_the_feature_store(home, sagestack_main, one_torch_thread):
    """`sagestack train bert` with no --data trains on the store's input_ids: the store's tokenizer length is
    required, and a home whose store is empty says so (it said "does not record which tokenizer" before)."""
    settings, _ = home
    train = ("train", "bert", "--tiny", "--max-steps", "2", "--no-profile", "--no-register")
    code, out, err = sagestack_main("--home", settings.home, *train, "--out", "bert", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["training"]["steps"] == 2 and result["params"]["max_seq_length"] == 128
    assert (sagestack_main.work / "bert" / "model").is_dir()
    code, out, err = sagestack_main("--home", settings.home, *train, "--max-seq-length", "64", "--out", "short")
    refusal = err.strip().splitlines()[-1]
    assert code == 2 and refusal.startswith("error: the feature store's input_ids come from another tokenizer (")
    assert refusal.endswith("max_seq_length 128) than this model's (max_seq_length 64); train with that tokenizer and "
                            "length, or from a CSV with --data")
    code, out, err = sagestack_main(*train, "--out", "empty")  # sagestack_main's own home: nothing ingested
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: the feature store of ")
    assert err.strip().endswith("is empty; run `sagestack features ingest` first, or train from a CSV with --data")
    assert not (sagestack_main.work / "short").exists() and not (sagestack_main.work / "empty").exists()
