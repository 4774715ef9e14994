"""The one table of the operations ``sagestack serve-aws`` implements, and what each maps to in sagestack.

``sagestack serve-aws --operations`` prints it and the README's migration table is generated from it, so
what the server says it supports and what it serves cannot drift apart. An operation not in the table is
answered with a 400 that names it (:func:`sagestack.aws.protocol.not_implemented`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sagestack.aws import athena, cloudwatch, glue, iam, logs, runtime, s3, sagemaker
from sagestack.aws.backends import Backends
from sagestack.aws.protocol import AwsError, Request, Response, not_implemented, protocol_of

S3_STORE = "the S3 store under the home (home/aws/s3)"
PROCESSING_JOBS = ("the job runner (home/aws/jobs); image sagemaker-clarify-processing runs `sagestack bias` and "
                   "sagestack's Kernel SHAP")
ENDPOINTS = "models, endpoint configs and endpoints under home/aws/endpoints"
AUTOML_JOBS = "the job runner (home/aws/jobs) runs `sagestack automl` on the channel's CSV"
TRAINING_JOBS = "the job runner (home/aws/jobs); image blazingtext runs `sagestack train fasttext --preset blazingtext`"
GLUE_CATALOG = "the Glue catalog under the home (home/aws/glue.db): databases and tables, no partitions"
ATHENA_QUERIES = ("the query runs on DuckDB (sqlglot translates Athena SQL) over Glue tables read from S3 as Athena's "
                  "SerDes read them (LazySimpleSerDe, OpenCSVSerde, Parquet); records in home/aws/athena.db")


@dataclass(frozen=True)
class Operation:
    """One supported operation: the service's signing name, the operation's name as botocore spells it, the
    handler that serves it, what it maps to in sagestack (one line, for people), and the boto3 client that
    calls it when that is not the signing name (``sagemaker-runtime`` signs as ``sagemaker``)."""

    service: str
    name: str
    handler: Callable[[Backends, Request], Response]
    maps_to: str
    client: str = ""


OPERATIONS: tuple[Operation, ...] = (
    Operation("sts", "GetCallerIdentity", iam.get_caller_identity,
              "the home's identity: a session of its execution role (serve-aws --env prints its keys)"),
    Operation("iam", "GetRole", iam.get_role, "the home's one execution role, sagestack-execution-role"),
    Operation("s3", "ListBuckets", s3.list_buckets, S3_STORE),
    Operation("s3", "CreateBucket", s3.create_bucket, S3_STORE),
    Operation("s3", "HeadBucket", s3.head_bucket, S3_STORE),
    Operation("s3", "DeleteBucket", s3.delete_bucket, S3_STORE),
    Operation("s3", "GetBucketLocation", s3.get_bucket_location, S3_STORE),
    Operation("s3", "ListObjects", s3.list_objects, S3_STORE),
    Operation("s3", "ListObjectsV2", s3.list_objects_v2, S3_STORE),
    Operation("s3", "PutObject", s3.put_object, S3_STORE),
    Operation("s3", "GetObject", s3.get_object, S3_STORE + ", byte ranges too"),
    Operation("s3", "HeadObject", s3.head_object, S3_STORE),
    Operation("s3", "DeleteObject", s3.delete_object, S3_STORE),
    Operation("s3", "DeleteObjects", s3.delete_objects, S3_STORE),
    Operation("s3", "CopyObject", s3.copy_object, S3_STORE),
    Operation("s3", "CreateMultipartUpload", s3.create_multipart_upload, S3_STORE),
    Operation("s3", "UploadPart", s3.upload_part, S3_STORE),
    Operation("s3", "CompleteMultipartUpload", s3.complete_multipart_upload, S3_STORE),
    Operation("s3", "AbortMultipartUpload", s3.abort_multipart_upload, S3_STORE),
    Operation("sagemaker", "CreateProcessingJob", sagemaker.create_processing_job,
              PROCESSING_JOBS + " (Clarify pre- and post-training bias, SHAP): post-training bias and SHAP ask "
              "ModelConfig's model through a shadow endpoint of it (a sagestack endpoint, deleted after the job); other "
              "images fail the job, naming the known ones"),
    Operation("sagemaker", "DescribeProcessingJob", sagemaker.describe_processing_job, PROCESSING_JOBS),
    Operation("sagemaker", "ListProcessingJobs", sagemaker.list_processing_jobs, PROCESSING_JOBS),
    Operation("sagemaker", "CreateTrainingJob", sagemaker.create_training_job,
              TRAINING_JOBS + ", the model as output/model.tar.gz; other images fail the job, naming the known ones"),
    Operation("sagemaker", "DescribeTrainingJob", sagemaker.describe_training_job,
              TRAINING_JOBS + " (secondary statuses, validation:accuracy)"),
    Operation("sagemaker", "CreateAutoMLJob", sagemaker.create_auto_ml_job, AUTOML_JOBS + ": each candidate's model "
              "as model.tar.gz, the exploration and candidate definition notebooks as .ipynb (classification; "
              "Accuracy, F1 (two classes, their default) or F1macro; one text column)"),
    Operation("sagemaker", "DescribeAutoMLJob", sagemaker.describe_auto_ml_job, AUTOML_JOBS + " (AnalyzingData -> "
              "FeatureEngineering -> ModelTuning -> MaxCandidatesReached, or MaxAutoMLJobRuntimeReached when the time "
              "limit cut a candidate; AutoMLJobArtifacts, BestCandidate)"),
    Operation("sagemaker", "ListCandidatesForAutoMLJob", sagemaker.list_candidates_for_auto_ml_job,
              AUTOML_JOBS + ": the leaderboard, each candidate with one inference container (sagemaker-sklearn-automl)"),
    Operation("sagemaker", "CreateModel", sagemaker.create_model, ENDPOINTS + ": a record of image and model data"),
    Operation("sagemaker", "DescribeModel", sagemaker.describe_model, ENDPOINTS),
    Operation("sagemaker", "DeleteModel", sagemaker.delete_model, ENDPOINTS),
    Operation("sagemaker", "CreateEndpointConfig", sagemaker.create_endpoint_config, ENDPOINTS),
    Operation("sagemaker", "DescribeEndpointConfig", sagemaker.describe_endpoint_config, ENDPOINTS),
    Operation("sagemaker", "DeleteEndpointConfig", sagemaker.delete_endpoint_config, ENDPOINTS),
    Operation("sagemaker", "CreateEndpoint", sagemaker.create_endpoint,
              "a sagestack endpoint (`sagestack serve --model`) per SageMaker endpoint, first variant only "
              "(images: blazingtext, sagemaker-sklearn-automl)"),
    Operation("sagemaker", "DescribeEndpoint", sagemaker.describe_endpoint, ENDPOINTS + " (Creating -> InService)"),
    Operation("sagemaker", "DeleteEndpoint", sagemaker.delete_endpoint, ENDPOINTS + ": its server is stopped"),
    Operation("sagemaker", "InvokeEndpoint", runtime.invoke_endpoint,
              "POST /predict of the endpoint's sagestack server, in the image's request/response shape "
              "(BlazingText: application/json instances, top-k labels; Autopilot: text/csv records, predicted_label and "
              "probability... as text/csv, application/json or application/jsonlines)", client="sagemaker-runtime"),
    Operation("sagemaker", "ListTags", sagemaker.list_tags, "always empty: tags on Create* calls are accepted, "
              "not kept yet"),
    Operation("monitoring", "GetMetricStatistics", cloudwatch.get_metric_statistics,
              "a training job's final metrics (namespace /aws/sagemaker/TrainingJobs), for training_job_analytics",
              client="cloudwatch"),
    Operation("logs", "DescribeLogStreams", logs.describe_log_streams,
              "one stream JOB/algo-1 per job, in SageMaker's log group of its kind (processing and training jobs)"),
    Operation("logs", "GetLogEvents", logs.get_log_events, "the job's log (home/aws/jobs/KIND/NAME/log.txt)"),
    Operation("glue", "CreateDatabase", glue.create_database, GLUE_CATALOG),
    Operation("glue", "GetDatabase", glue.get_database, GLUE_CATALOG),
    Operation("glue", "GetDatabases", glue.get_databases, GLUE_CATALOG),
    Operation("glue", "UpdateDatabase", glue.update_database, GLUE_CATALOG),
    Operation("glue", "DeleteDatabase", glue.delete_database, GLUE_CATALOG + " (its tables too)"),
    Operation("glue", "CreateTable", glue.create_table, GLUE_CATALOG),
    Operation("glue", "GetTable", glue.get_table, GLUE_CATALOG),
    Operation("glue", "GetTables", glue.get_tables, GLUE_CATALOG),
    Operation("glue", "UpdateTable", glue.update_table, GLUE_CATALOG),
    Operation("glue", "DeleteTable", glue.delete_table, GLUE_CATALOG),
    Operation("glue", "GetPartitions", glue.get_partitions, GLUE_CATALOG + ": always none"),
    Operation("athena", "StartQueryExecution", athena.start_query_execution,
              ATHENA_QUERIES + "; SELECT writes OUTPUT/ID.csv, CREATE TABLE AS SELECT writes Parquet and a manifest"),
    Operation("athena", "GetQueryExecution", athena.get_query_execution, ATHENA_QUERIES),
    Operation("athena", "GetQueryResults", athena.get_query_results, ATHENA_QUERIES + ": the result CSV, paged"),
    Operation("athena", "StopQueryExecution", athena.stop_query_execution, ATHENA_QUERIES),
    Operation("athena", "GetWorkGroup", athena.get_work_group,
              "the one workgroup, primary, with no result location of its own (pass s3_output, or awswrangler "
              "uses aws-athena-query-results-ACCOUNT-REGION)"),
)
INDEX = {(operation.service, operation.name): operation for operation in OPERATIONS}


def operation_name(service: str, request: Request) -> str:
    """The name of the operation ``request`` calls on ``service`` (the signing scope's service).

    Raises:
        AwsError: a query or json request that names no operation (``MissingAction``).
    """
    protocol = protocol_of(service, request)
    if protocol == "rest-xml" and service == "s3":
        return s3.operation_name(request)
    if protocol == "json":
        target = (request.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        if not target and service == "sagemaker":  # the runtime API (rest-json) signs as "sagemaker" too
            target = runtime.operation_name(request) or ""
        if not target and service == "athena":  # botocore speaks rest-json to Athena, older clients json
            target = athena.operation_name(request) or ""
        return target or f"{request.method} {request.path}"
    if protocol == "rpc-v2-cbor":  # POST /service/SERVICE/operation/OPERATION
        return request.path.rpartition("/operation/")[2] or f"{request.method} {request.path}"
    if protocol == "query":
        action = request.form().get("Action")
        if not action:
            raise AwsError("MissingAction", "the request names no Action")
        return action
    return f"{request.method} {request.path}"


def find(service: str, request: Request) -> Operation:
    """The supported operation ``request`` calls.

    Raises:
        AwsError: the operation is not implemented here (a 400 naming it and ``--operations``).
    """
    name = operation_name(service, request)
    operation = INDEX.get((service, name))
    if operation is None:
        raise not_implemented(service, name)
    return operation


def table() -> list[dict[str, str]]:
    """The supported operations as rows: the boto3 client (``service``), operation, what it maps to."""
    return [{"service": op.client or op.service, "operation": op.name, "maps_to": op.maps_to} for op in OPERATIONS]
