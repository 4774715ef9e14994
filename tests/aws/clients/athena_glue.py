"""Course 1, week 1 through awswrangler, in the course's order: the reviews CSV to S3, a Glue database and a CSV
table over it, Athena's bucket, six queries (group-by counts, averages, string functions); then what the lab
gets wrong (malformed SQL, an unknown database, a table over a missing prefix or bucket). Prints one JSON line.

Usage: athena_glue.py REVIEWS_CSV
"""

import json
import sys
import warnings

import awswrangler as wr
import boto3
from botocore.exceptions import ClientError

warnings.simplefilter("ignore")  # awswrangler warns that the workgroup has no result location (as on AWS)
reviews_csv = sys.argv[1]
session = boto3.session.Session()
region = session.region_name
account = boto3.client("sts").get_caller_identity()["Account"]
bucket = f"sagemaker-{region}-{account}"
boto3.client("s3").create_bucket(Bucket=bucket)
wr.s3.upload(local_file=reviews_csv, path=f"s3://{bucket}/data/reviews/reviews_balanced.csv")

database_name = "dsoaws"
table_name = "reviews"
wr.catalog.create_database(name=database_name, exist_ok=True)
wr.catalog.create_database(name=database_name, exist_ok=True)  # the lab's cell run twice
databases = [db["Name"] for db in wr.catalog.get_databases()]
databases_frame = wr.catalog.databases()
wr.catalog.create_csv_table(
    table=table_name, path=f"s3://{bucket}/data/reviews/",
    columns_types={"sentiment": "int", "review_body": "string", "product_category": "string"},
    mode="overwrite", skip_header_line_count=1, sep=",", database=database_name)
table = wr.catalog.table(database=database_name, table=table_name)
athena_bucket = wr.athena.create_athena_bucket()

QUERIES = {
    "avg_sentiment": f"""SELECT product_category, AVG(sentiment) AS avg_sentiment FROM {table_name}
                         GROUP BY product_category ORDER BY avg_sentiment DESC""",
    "count_sentiment": f"""SELECT product_category, COUNT(sentiment) AS count_sentiment FROM {table_name}
                           GROUP BY product_category ORDER BY count_sentiment DESC""",
    "breakdown": f"""SELECT product_category, sentiment, COUNT(sentiment) AS count_reviews FROM {table_name}
                     GROUP BY product_category, sentiment ORDER BY product_category ASC, sentiment DESC,
                     count_reviews""",
    "num_words": f"SELECT CARDINALITY(SPLIT(review_body, ' ')) AS num_words FROM {table_name}",
    "lengths": f"""SELECT product_category, AVG(LENGTH(review_body)) AS avg_length,
                   MAX(LENGTH(review_body)) AS max_length FROM {database_name}.{table_name}
                   GROUP BY product_category ORDER BY product_category""",
    "starts": f"""SELECT LOWER(SUBSTR(review_body, 1, 12)) AS review_start, COUNT(*) AS n FROM {table_name}
                  GROUP BY LOWER(SUBSTR(review_body, 1, 12)) ORDER BY n DESC, review_start LIMIT 10""",
}
results = {name: wr.athena.read_sql_query(sql=sql, database=database_name) for name, sql in QUERIES.items()}
# The same query without the CTAS wrapping (the result CSV read back), and through UNLOAD (Parquet).
plain = wr.athena.read_sql_query(sql=QUERIES["count_sentiment"], database=database_name, ctas_approach=False)
unloaded = wr.athena.read_sql_query(sql=QUERIES["count_sentiment"], database=database_name, ctas_approach=False,
                                    unload_approach=True, s3_output=f"s3://{bucket}/unload/count_sentiment/")


def failure(call):
    try:
        call()
    except wr.exceptions.QueryFailed as error:
        return {"kind": "QueryFailed", "message": str(error)}
    except ClientError as error:
        return {"kind": "ClientError", "code": error.response["Error"]["Code"],
                "message": error.response["Error"]["Message"]}
    return None


errors = {
    "malformed": failure(lambda: wr.athena.read_sql_query(
        sql=f"SELECT product_category, COUNT( FROM {table_name}", database=database_name)),
    "malformed_plain": failure(lambda: wr.athena.read_sql_query(
        sql=f"SELECT product_category, COUNT( FROM {table_name}", database=database_name, ctas_approach=False)),
    "unknown_column": failure(lambda: wr.athena.read_sql_query(
        sql=f"SELECT no_such_column FROM {table_name}", database=database_name)),
    "unknown_database_query": failure(lambda: wr.athena.read_sql_query(
        sql=f"SELECT * FROM {table_name}", database="no_such_database")),
    "unknown_database_table": failure(lambda: wr.catalog.create_csv_table(
        table="t", path=f"s3://{bucket}/data/reviews/", columns_types={"a": "string"},
        database="no_such_database")),
    "unknown_table": failure(lambda: wr.catalog.table(database=database_name, table="no_such_table")),
}
wr.catalog.create_csv_table(table="empty", path=f"s3://{bucket}/no/such/prefix/", columns_types={"a": "int"},
                            skip_header_line_count=1, sep=",", database=database_name)
empty = wr.athena.read_sql_query(sql="SELECT a, COUNT(*) AS n FROM empty GROUP BY a", database=database_name,
                                 ctas_approach=False)
empty_ctas = wr.athena.read_sql_query(sql="SELECT a FROM empty", database=database_name)
wr.catalog.create_csv_table(table="nobucket", path="s3://no-such-bucket/data/", columns_types={"a": "int"},
                            database=database_name)
errors["missing_bucket"] = failure(lambda: wr.athena.read_sql_query(sql="SELECT * FROM nobucket",
                                                                    database=database_name))
athena = boto3.client("athena")
errors["no_such_execution"] = failure(lambda: athena.get_query_execution(QueryExecutionId="no-such-id"))
errors["no_output_location"] = failure(lambda: athena.start_query_execution(QueryString="SELECT 1 AS one"))
errors["file_output_location"] = failure(lambda: athena.start_query_execution(
    QueryString="SELECT 1 AS one", ResultConfiguration={"OutputLocation": "file:///tmp/results/"}))
errors["other_workgroup"] = failure(lambda: wr.athena.read_sql_query(sql="SELECT 1 AS one", database=database_name,
                                                                     workgroup="analysts"))
left = [t["Name"] for t in boto3.client("glue").get_tables(DatabaseName=database_name)["TableList"]]

print(json.dumps({
    "databases": databases, "databases_frame": databases_frame["Database"].tolist(),
    "table": table.to_dict(orient="list"), "athena_bucket": athena_bucket,
    "results": {name: json.loads(frame.to_json(orient="split", index=False)) for name, frame in results.items()},
    "dtypes": {name: {column: str(kind) for column, kind in frame.dtypes.items()} for name, frame in results.items()},
    "plain": json.loads(plain.to_json(orient="split", index=False)),
    "plain_dtypes": {column: str(kind) for column, kind in plain.dtypes.items()},
    "unloaded": json.loads(unloaded.to_json(orient="split", index=False)),
    "empty": {"columns": list(empty.columns), "rows": len(empty)},
    "empty_ctas": {"columns": list(empty_ctas.columns), "rows": len(empty_ctas),
                   "dtypes": [str(kind) for kind in empty_ctas.dtypes]},
    "errors": errors, "tables_left": sorted(left),
    "results_left": sorted(obj for obj in wr.s3.list_objects(athena_bucket)),
}))
