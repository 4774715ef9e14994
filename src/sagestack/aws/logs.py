"""CloudWatch Logs for the jobs served here (json protocol, ``X-Amz-Target: Logs_20140328.<Operation>``): each
job's log (``FOLDER/log.txt``) is one stream ``JOB/algo-1`` in SageMaker's log group of its kind, so the SDK's
``wait(logs=True)`` and ``logs_for_*_job`` print it as they print a container's output on AWS."""

from __future__ import annotations

from sagestack.aws.backends import Backends
from sagestack.aws.jobs import LOG_FILE, Job
from sagestack.aws.protocol import AwsError, Request, Response, json_response, member

# SageMaker's log group of a job kind -> the kind's name in the job runner.
LOG_GROUPS = {"/aws/sagemaker/ProcessingJobs": "processing", "/aws/sagemaker/TrainingJobs": "training",
              "/aws/sagemaker/AutoMLJobs": "automl"}
STREAM_SUFFIX = "/algo-1"
BAD = "InvalidParameterException"  # CloudWatch Logs' answer to a malformed parameter


def _group(body: dict) -> str:
    group = member(body, "logGroupName", str, code=BAD)
    if group not in LOG_GROUPS:
        raise AwsError("ResourceNotFoundException", f"the specified log group does not exist: {group}")
    return LOG_GROUPS[group]


def _events(job: Job) -> list[dict]:
    """The job's log lines as events, stamped with the job's start (milliseconds)."""
    path = job.folder / LOG_FILE
    stamp = int((job.started or job.created) * 1000)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    return [{"timestamp": stamp, "message": line, "ingestionTime": stamp} for line in lines]


def describe_log_streams(backends: Backends, request: Request) -> Response:
    """DescribeLogStreams: one stream per job of the group's kind whose name starts with the prefix."""
    body = request.json()
    kind = _group(body)
    prefix = member(body, "logStreamNamePrefix", str, code=BAD) or ""
    limit = member(body, "limit", int, code=BAD) or 50
    streams = []
    for name in sorted(backends.jobs.names(kind)):
        stream = name + STREAM_SUFFIX
        if stream.startswith(prefix):
            job = backends.jobs.get(kind, name)
            created = int(job.created * 1000)
            streams.append({"logStreamName": stream, "creationTime": created, "firstEventTimestamp": created,
                            "lastEventTimestamp": int(job.modified * 1000), "storedBytes": 0})
    return json_response({"logStreams": streams[:limit]})


def get_log_events(backends: Backends, request: Request) -> Response:
    """GetLogEvents: the stream's events from the head, after ``startTime``; the forward token is an offset."""
    body = request.json()
    kind = _group(body)
    stream = member(body, "logStreamName", str, code=BAD) or ""
    start, limit = member(body, "startTime", int, code=BAD) or 0, member(body, "limit", int, code=BAD) or 10_000
    token = member(body, "nextToken", str, code=BAD) or "f/0"
    if not stream.endswith(STREAM_SUFFIX):
        raise AwsError("ResourceNotFoundException", f"the specified log stream does not exist: {stream}")
    try:
        job = backends.jobs.get(kind, stream[: -len(STREAM_SUFFIX)])
    except AwsError:
        raise AwsError("ResourceNotFoundException", f"the specified log stream does not exist: {stream}") from None
    events = [event for event in _events(job) if event["timestamp"] >= start]
    try:
        offset = int(token.split("/", 1)[1])
    except (IndexError, ValueError):
        raise AwsError("InvalidParameterException", "the nextToken is not one this server gave") from None
    page = events[offset:offset + limit]
    return json_response({"events": page, "nextForwardToken": f"f/{offset + len(page)}",
                          "nextBackwardToken": f"b/{offset}"})
