"""CloudWatch metrics for the jobs served here (signed as ``monitoring``; botocore speaks json or Smithy RPC v2
CBOR to it, answered in kind): a training job's
final metrics (BlazingText's ``validation:accuracy``) as datapoints of SageMaker's namespace, stamped with the
job's end, which is what ``estimator.training_job_analytics.dataframe()`` reads."""

from __future__ import annotations

import datetime as dt

from sagestack.aws.backends import Backends
from sagestack.aws.protocol import AwsError, Request, Response, document_response, member, members, read_document

TRAINING_NAMESPACE = "/aws/sagemaker/TrainingJobs"


def _moment(value: object) -> float | None:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value) if isinstance(value, (int, float)) else None


def get_metric_statistics(backends: Backends, request: Request) -> Response:
    """GetMetricStatistics: one datapoint per metric of the training job named by the ``TrainingJobName``
    dimension, when the job's end lies in [StartTime, EndTime]; nothing for other namespaces or metrics."""
    body = read_document(request)
    bad = "InvalidParameterValue"
    if not member(body, "MetricName", str, code=bad) or not member(body, "Namespace", str, code=bad):
        raise AwsError(bad, "Namespace and MetricName are required", 400)
    dimensions = {member(item, "Name", str, code=bad): member(item, "Value", str, code=bad)
                  for item in members(body, "Dimensions", code=bad)}
    statistics = member(body, "Statistics", list, code=bad) or ["Average"]
    if not all(isinstance(statistic, str) for statistic in statistics):
        raise AwsError(bad, "Statistics must be a list of strings")
    points = []
    if body["Namespace"] == TRAINING_NAMESPACE and dimensions.get("TrainingJobName"):
        try:
            job = backends.jobs.get("training", dimensions["TrainingJobName"])
        except AwsError:
            job = None
        value = job.result.get("metrics", {}).get(body["MetricName"]) if job else None
        start, end = _moment(body.get("StartTime")), _moment(body.get("EndTime"))
        if value is not None and job.ended and (start is None or start <= job.ended) and (end is None or job.ended <= end):
            stamp = dt.datetime.fromtimestamp(job.ended, dt.timezone.utc)
            points.append({"Timestamp": stamp, "Unit": "None",
                           **{statistic: float(value) for statistic in statistics}})
    return document_response(request, {"Label": body["MetricName"], "Datapoints": points})
