"""Feature declarations for review sentiment (declarations only: `feast apply` imports this file).

The data behind them is written by `sagestack features ingest` (sagestack.features).
"""

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.types import Array, Int64, String
from feast.value_type import ValueType

FEATURES_PARQUET = os.path.join(os.environ.get("SAGESTACK_FEAST_DIR", "data"), "review_features.parquet")
OWNER = "sagestack"

review = Entity(
    name="review",
    join_keys=["review_id"],
    value_type=ValueType.INT64,
    description="One customer review of the Women's E-Commerce Clothing Reviews data",
    tags={"owner": OWNER},
)

# The same parquet table, read by the offline store sagestack's settings choose (SAGESTACK_FEAST_OFFLINE,
# given to the feast process by sagestack.features.store.feast_env): DuckDB through a FileSource, or Spark
# through a SparkSource.
_SOURCE = {"name": "review_features_source", "path": FEATURES_PARQUET, "timestamp_field": "event_timestamp",
           "created_timestamp_column": "created_timestamp",
           "description": "Engineered review features (sagestack features ingest)"}
if os.environ.get("SAGESTACK_FEAST_OFFLINE") == "spark":
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    review_features_source = SparkSource(file_format="parquet", **_SOURCE)
else:
    review_features_source = FileSource(**_SOURCE)

# Writing one review online at once, as SageMaker Feature Store's PutRecord.
review_push_source = PushSource(name="review_push_source", batch_source=review_features_source)

reviews_bert = FeatureView(
    name="reviews_bert",
    entities=[review],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="input_ids", dtype=Array(Int64), description="BERT token ids, padded to max_seq_length"),
        Field(name="attention_mask", dtype=Array(Int64), description="1 for real tokens, 0 for padding"),
        Field(name="label_id", dtype=Int64, description="sentiment -1/0/1 as class ids 0/1/2"),
        Field(name="sentiment", dtype=Int64, description="sentiment -1/0/1"),
        Field(name="split_type", dtype=String, description="train, validation or test"),
    ],
    source=review_push_source,
    online=True,
    description="BERT inputs and labels for the sentiment model",
    tags={"owner": OWNER, "team": "ml", "model": "sentiment"},
)

reviews_text = FeatureView(
    name="reviews_text",
    entities=[review],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="review_body", dtype=String, description="the review as written"),
        Field(name="product_category", dtype=String, description="the product's class name (the bias facet)"),
        Field(name="word_count", dtype=Int64, description="words in the review"),
        Field(name="char_count", dtype=Int64, description="characters in the review"),
    ],
    source=review_push_source,
    online=True,
    description="Review text, its category and simple text statistics",
    tags={"owner": OWNER, "team": "ml"},
)

sentiment_training_v1 = FeatureService(
    name="sentiment_training_v1",
    features=[reviews_bert, reviews_text],
    description="Everything a sentiment training set needs",
    tags={"owner": OWNER, "use": "training"},
)

sentiment_serving_v1 = FeatureService(
    name="sentiment_serving_v1",
    features=[reviews_bert[["input_ids", "attention_mask"]], reviews_text[["review_body", "product_category"]]],
    description="What the online sentiment endpoint reads per review",
    tags={"owner": OWNER, "use": "serving"},
)
