"""Feast's offline store chosen by a setting: the same declarations and parquet table read through a
local Spark session (``SAGESTACK_OFFLINE_STORE=spark``) give the same point-in-time training set as DuckDB."""

from __future__ import annotations

import pandas as pd

from sagestack.config import load_settings
from sagestack.data import load_reviews
from sagestack.features.store import get_online, ingest, store_config, training_set


def test_spark_reads_the_same_training_set_as_duckdb(tmp_path, sample_csv):
    reviews = load_reviews(sample_csv).frame.head(60)
    sets = {}
    for store in ("duckdb", "spark"):
        settings = load_settings(cwd=tmp_path, environ={"SAGESTACK_OFFLINE_STORE": store}, home=tmp_path / store)
        ingest(settings, reviews, max_seq_length=32)  # feast apply + materialize from the offline store
        sets[store] = training_set(settings, "train").sort_values("review_id").reset_index(drop=True)
        assert get_online(settings, [int(sets[store]["review_id"].iloc[0])])[0]["found"]
    assert store_config(settings)["offline_store"]["type"] == "spark"
    assert store_config(settings)["offline_store"]["spark_conf"]["spark.master"] == "local[*]"
    duckdb, spark = sets["duckdb"], sets["spark"]
    assert len(spark) == len(duckdb) > 40
    columns = ["review_id", "review_body", "product_category", "sentiment", "label_id", "split_type"]
    pd.testing.assert_frame_equal(spark[columns], duckdb[columns], check_dtype=False)
    assert [list(ids) for ids in spark["input_ids"]] == [list(ids) for ids in duckdb["input_ids"]]


def test_an_unknown_offline_store_is_a_one_line_error(tmp_path):
    import pytest

    from sagestack.errors import ConfigError

    with pytest.raises(ConfigError, match="invalid setting 'offline_store': .*must be duckdb, spark, or a Spark master URL"):
        load_settings(cwd=tmp_path, environ={"SAGESTACK_OFFLINE_STORE": "bigquery"})
