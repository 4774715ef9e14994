"""AutoML jobs that cannot run, through ``sagestack serve-aws`` with the SageMaker SDK 2.35 and boto3 from the
client environment: each fails or is refused with the reason, before any candidate is fitted (the module fits
nothing)."""

from __future__ import annotations

import pytest
from serve_aws_fixtures import aws, client_bin  # noqa: F401


@pytest.fixture(scope="module")
def refused(aws, tmp_path_factory):
    """What the client met: a small CSV of the course's columns and three sentiments is the jobs' input."""
    data = tmp_path_factory.mktemp("refusals") / "reviews_for_autopilot.csv"
    data.write_text("sentiment,review_body\n" + "".join(f"{label},review {i} of sentiment {label}\n"
                                                       for i, label in enumerate(["-1", "0", "1"] * 10)))
    return aws.run("autopilot_refusals.py", str(data))


def test_jobs_whose_data_cannot_be_fitted_fail_with_the_reason(refused):
    assert (refused["no-target"]["status"], refused["no-target"]["secondary"]) == ("Failed", "Failed")
    assert refused["no-target"]["failure"] == (
        "ClientError: the target attribute 'stars' is not a column of the input data; its columns are sentiment, "
        "review_body (the first row of the CSV is read as its header)")
    assert not refused["no-target"]["artifacts"] and refused["no-target"]["candidates"] == []
    assert refused["no-input"]["status"] == "Failed" and "no object at input s3://" in refused["no-input"]["failure"]
    assert refused["binary"]["status"] == "Failed" and refused["binary"]["failure"] == (
        "ClientError: ProblemType BinaryClassification was given but the target attribute 'sentiment' has 3 classes "
        "(-1, 0, 1): that is MulticlassClassification")


def test_requests_sagemaker_refuses_are_400s_and_an_unknown_job_is_resource_not_found(refused):
    assert refused["regression"]["status"] == 400 and refused["regression"]["code"] == "ValidationException"
    assert "MetricName MSE is not supported" in refused["regression"]["message"]
    assert refused["long-name"]["code"] == "ValidationException" and "at most 32" in refused["long-name"]["message"]
    assert refused["no-bucket"]["code"] == "ValidationException"
    assert "does not exist" in refused["no-bucket"]["message"]
    assert refused["unknown"]["code"] == "ResourceNotFound"
