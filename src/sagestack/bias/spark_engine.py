"""The Spark engine: the same contingency table, counted by a Spark ``groupBy`` (local or cluster).

Clarify scales its bias jobs out with Spark processing; sagestack does the counting pass with
Spark and everything after it (metrics, intervals, report) on the small table, identically to
the pandas engine.
"""

from __future__ import annotations

from sagestack.bias.table import (
    INTERSECTION_SEPARATOR,
    MISSING,
    ContingencyTable,
    LabelSpec,
    require_columns,
    table_from_counts,
)
from sagestack.errors import DataError


def build_table_spark(
    data,
    *,
    facet: str,
    label: str,
    positive: LabelSpec,
    predicted: str | None = None,
    group: str | None = None,
    facet_threshold: float | None = None,
) -> ContingencyTable:
    """Count rows per (facet value, group, observed positive, predicted positive) with Spark.

    Args:
        data: a ``pyspark.sql.DataFrame``.
        (the rest as :func:`sagestack.bias.table.build_table_pandas`)
    """
    from pyspark.sql import functions as F

    require_columns(data.columns, facet=facet, label=label, predicted_label=predicted, group=group)

    def is_positive(column: str):
        if positive.threshold is not None:
            return (F.col(column).cast("double") > F.lit(positive.threshold)).cast("int")
        values = [str(v) for v in positive.values]
        return F.col(column).cast("string").isin(values).cast("int")

    if facet_threshold is not None:
        numeric = F.col(facet).cast("double")
        facet_expr = (
            F.when(numeric.isNull(), MISSING)
            .when(numeric > F.lit(facet_threshold), f">{facet_threshold:g}")
            .otherwise(f"<={facet_threshold:g}")
        )
        facet_values = [f">{facet_threshold:g}", f"<={facet_threshold:g}", MISSING]
    else:
        facet_expr, facet_values = F.col(facet).cast("string"), None
    counted = (
        data.select(
            facet_expr.alias("facet"),
            (F.col(group).cast("string") if group else F.lit("(all)")).alias("group"),
            F.coalesce(is_positive(label), F.lit(0)).alias("observed"),
            (F.coalesce(is_positive(predicted), F.lit(0)) if predicted else F.lit(0)).alias("predicted"),
        )
        .groupBy("facet", "group", "observed", "predicted")
        .count()
        .toPandas()
    )
    return table_from_counts(counted, facet=facet, has_predictions=predicted is not None, facet_values=facet_values)


def local_spark_session(app_name: str = "sagestack-bias"):
    """A local Spark session with modest resources (tests, laptops)."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )


def spark_facet_column(data, columns: list[str]):
    """The facet column to count on: the column itself, or the intersection of two as 'x|y'."""
    from pyspark.sql import functions as F

    for column in columns:
        require_columns(data.columns, facet=column)
    if len(columns) == 1:
        return data, columns[0]
    parts = [F.coalesce(F.col(c).cast("string"), F.lit(MISSING)) for c in columns]
    return data.withColumn("__facet__", F.concat_ws(INTERSECTION_SEPARATOR, *parts)), "__facet__"


def read_csv_spark(spark, path):
    """Read a CSV with Spark (header row, quoted multi-line fields), with the same one-line errors."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}; pass an existing CSV")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it needs a header row and data rows")
    return spark.read.csv(str(path), header=True, inferSchema=True, multiLine=True, escape='"')
