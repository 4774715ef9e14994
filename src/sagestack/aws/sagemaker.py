"""SageMaker's control-plane API (json protocol, ``X-Amz-Target: SageMaker.<Operation>``) for the jobs served
here: processing jobs (Clarify through ``sagestack bias``) and training jobs (BlazingText through
``sagestack train fasttext``)."""

from __future__ import annotations

import re

from sagestack.aws.backends import Backends
from sagestack.aws.jobs import Job
from sagestack.aws.protocol import AwsError, Request, Response, json_response

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
PROCESSING, TRAINING = "processing", "training"
# Echoed back by DescribeProcessingJob as they were given.
PROCESSING_FIELDS = ("ProcessingInputs", "ProcessingOutputConfig", "ProcessingResources", "StoppingCondition",
                     "AppSpecification", "Environment", "NetworkConfig", "RoleArn", "ExperimentConfig")
TRAINING_FIELDS = ("AlgorithmSpecification", "RoleArn", "InputDataConfig", "OutputDataConfig", "ResourceConfig",
                   "StoppingCondition", "HyperParameters", "VpcConfig", "EnableNetworkIsolation",
                   "CheckpointConfig", "DebugHookConfig", "ExperimentConfig")


def _require(body: dict, *names: str) -> None:
    missing = [name for name in names if not body.get(name)]
    if missing:
        raise AwsError("ValidationException", f"missing required field(s): {', '.join(missing)}")


def _job_name(body: dict, field: str) -> str:
    name = body.get(field)
    if not isinstance(name, str) or not JOB_NAME.match(name):
        raise AwsError("ValidationException", f"{field} {name!r} must match {JOB_NAME.pattern}")
    return name


def _arn(backends: Backends, kind: str, name: str) -> str:
    identity = backends.identity
    return f"arn:aws:sagemaker:{identity.region}:{identity.account}:{kind}-job/{name.lower()}"


def create_processing_job(backends: Backends, request: Request) -> Response:
    """CreateProcessingJob: recorded InProgress at once; the work runs in the background."""
    from sagestack.aws.processing import run_processing_job

    body = request.json()
    name = _job_name(body, "ProcessingJobName")
    _require(body, "AppSpecification", "ProcessingResources", "RoleArn")
    if not (body["AppSpecification"] or {}).get("ImageUri"):
        raise AwsError("ValidationException", "AppSpecification.ImageUri is required")
    backends.jobs.submit(PROCESSING, name, body, lambda job: run_processing_job(backends, job))
    return json_response({"ProcessingJobArn": _arn(backends, PROCESSING, name)})


def _times(job: Job, started: str, ended: str) -> dict:
    times = {"CreationTime": job.created, "LastModifiedTime": job.modified, started: job.started, ended: job.ended}
    return {key: value for key, value in times.items() if value is not None}


def describe_processing_job(backends: Backends, request: Request) -> Response:
    """DescribeProcessingJob: the request as given, the status, FailureReason when it failed, the times."""
    name = _job_name(request.json(), "ProcessingJobName")
    job = backends.jobs.get(PROCESSING, name)
    document = {"ProcessingJobName": name, "ProcessingJobArn": _arn(backends, PROCESSING, name),
                **{key: job.request[key] for key in PROCESSING_FIELDS if key in job.request},
                "ProcessingJobStatus": job.status, **_times(job, "ProcessingStartTime", "ProcessingEndTime")}
    if job.failure:
        document["FailureReason"] = job.failure
    return json_response(document)


def list_processing_jobs(backends: Backends, request: Request) -> Response:
    """ListProcessingJobs (newest first; NameContains and StatusEquals filters)."""
    body = request.json()
    contains, status = body.get("NameContains"), body.get("StatusEquals")
    summaries = []
    for name in backends.jobs.names(PROCESSING):
        job = backends.jobs.get(PROCESSING, name)
        if (contains and contains not in name) or (status and status != job.status):
            continue
        summary = {"ProcessingJobName": name, "ProcessingJobArn": _arn(backends, PROCESSING, name),
                   "ProcessingJobStatus": job.status, **_times(job, "ProcessingStartTime", "ProcessingEndTime")}
        if job.failure:
            summary["FailureReason"] = job.failure
        summaries.append(summary)
    return json_response({"ProcessingJobSummaries": summaries[: int(body.get("MaxResults") or 100)]})


def create_training_job(backends: Backends, request: Request) -> Response:
    """CreateTrainingJob: recorded InProgress (secondary status Starting) at once; the work runs in the background."""
    from sagestack.aws.training import run_training_job

    body = request.json()
    name = _job_name(body, "TrainingJobName")
    _require(body, "AlgorithmSpecification", "RoleArn", "OutputDataConfig", "ResourceConfig", "StoppingCondition")
    if not (body["AlgorithmSpecification"] or {}).get("TrainingImage"):
        raise AwsError("ValidationException", "AlgorithmSpecification.TrainingImage is required (sagestack runs no "
                       "algorithm by name)")
    backends.jobs.submit(TRAINING, name, body, lambda job: run_training_job(backends, job))
    return json_response({"TrainingJobArn": _arn(backends, TRAINING, name)})


def describe_training_job(backends: Backends, request: Request) -> Response:
    """DescribeTrainingJob: the request as given, status and secondary status with its transitions, the model
    artifact and final metrics once Completed, FailureReason when it failed."""
    from sagestack.aws.training import model_artifact

    name = _job_name(request.json(), "TrainingJobName")
    job = backends.jobs.get(TRAINING, name)
    document = {"TrainingJobName": name, "TrainingJobArn": _arn(backends, TRAINING, name),
                **{key: job.request[key] for key in TRAINING_FIELDS if key in job.request},
                "TrainingJobStatus": job.status, "SecondaryStatus": job.secondary or "Starting",
                "SecondaryStatusTransitions": job.transitions, "ModelArtifacts": {"S3ModelArtifacts": ""},
                **_times(job, "TrainingStartTime", "TrainingEndTime")}
    if job.status == "Completed":
        document["ModelArtifacts"] = {"S3ModelArtifacts": model_artifact(job)}
        document["FinalMetricDataList"] = [{"MetricName": metric, "Value": value, "Timestamp": job.ended}
                                         for metric, value in job.result.get("metrics", {}).items()]
        document["TrainingTimeInSeconds"] = document["BillableTimeInSeconds"] = int((job.ended or 0) - (job.started or 0))
    if job.failure:
        document["FailureReason"] = job.failure
    return json_response(document)
