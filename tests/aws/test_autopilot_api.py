"""Autopilot through ``sagestack serve-aws``: the SageMaker SDK 2.35's ``AutoML`` and boto3, from the client
environment, run one real AutoML job (``sagestack automl``: 3 candidates, a 15-second budget, 600 reviews),
read its notebooks, list its candidates, deploy the best and invoke it as the course does."""

from __future__ import annotations

import csv

import pytest
from serve_aws_fixtures import aws, client_bin  # noqa: F401

from sagestack.aws.identity import DEFAULT_ACCOUNT

LABELS = {"-1", "0", "1"}


@pytest.fixture(scope="module")
def course_csv(sample_csv, tmp_path_factory):
    """The course's Autopilot input: sentiment and review_body of the 600-review sample."""
    path = tmp_path_factory.mktemp("autopilot") / "womens_clothing_ecommerce_reviews_balanced_for_autopilot.csv"
    with open(sample_csv, newline="", encoding="utf-8") as source, open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["sentiment", "review_body"])
        writer.writerows([row["sentiment"], row["review_body"]] for row in csv.DictReader(source))
    return path


@pytest.fixture(scope="module")
def autopilot(aws, course_csv):
    return aws.run("autopilot.py", str(course_csv))


def test_the_job_goes_through_autopilots_statuses(autopilot):
    seen = autopilot
    assert seen["status"] == "Completed", seen.get("failure")
    assert seen["first"][0] == "InProgress" and seen["first"][1] in ("Starting", "AnalyzingData")
    # All 3 candidates fit in the 15-s budget on a quiet machine; a loaded one may cut the last (LightGBM).
    final = "MaxCandidatesReached" if len(seen["candidates"]) == 3 else "MaxAutoMLJobRuntimeReached"
    assert seen["describe"]["AutoMLJobSecondaryStatus"] == final
    stages = ["Starting", "AnalyzingData", "FeatureEngineering", "ModelTuning", final]
    assert [stage for stage in stages if stage in seen["seen"]] == seen["seen"]  # in order, none repeated
    assert seen["seen"][-1] == final and "ModelTuning" in seen["seen"]
    described = seen["describe"]
    assert described["ProblemType"] == "MulticlassClassification"
    assert described["AutoMLJobObjective"] == {"MetricName": "Accuracy"}
    assert described["AutoMLJobConfig"]["CompletionCriteria"]["MaxCandidates"] == 3
    assert described["AutoMLJobArn"].endswith(f":{DEFAULT_ACCOUNT}:automl-job/{seen['job']}")


def test_the_notebooks_are_in_s3_where_autopilot_writes_them(autopilot):
    artifacts = autopilot["describe"]["AutoMLJobArtifacts"]
    prefix = f"s3://sagemaker-us-east-1-{DEFAULT_ACCOUNT}/autopilot/output/{autopilot['job']}/sagemaker-automl-candidates/"
    assert artifacts["DataExplorationNotebookLocation"] == (
        f"{prefix}{autopilot['job_id']}/notebooks/SageMakerAutopilotDataExplorationNotebook.ipynb")
    assert artifacts["CandidateDefinitionNotebookLocation"].endswith(
        "/notebooks/SageMakerAutopilotCandidateDefinitionNotebook.ipynb")
    assert autopilot["job_id"].startswith("pr-1-")
    exploration = autopilot["notebooks"]["DataExplorationNotebookLocation"]
    definition = autopilot["notebooks"]["CandidateDefinitionNotebookLocation"]
    for notebook in (exploration, definition):
        assert notebook["nbformat"] == 4 and all(cell["cell_type"] in ("markdown", "code") for cell in notebook["cells"])
    text = "".join("".join(cell["source"]) for cell in exploration["cells"])
    assert "480 training rows" in text and "review_body" in text and "| -1 | 160 (33.3%)" in text
    assert "text/html" in exploration["cells"][-1]["outputs"][0]["data"]
    text = "".join("".join(cell["source"]) for cell in definition["cells"])
    for candidate in autopilot["candidates"]:
        assert candidate["CandidateName"] in text
    assert text.count("%%writefile") == len(autopilot["candidates"]) and "def main():" in text


def test_candidates_are_listed_by_the_objective(autopilot):
    candidates = autopilot["candidates"]
    assert 1 <= len(candidates) <= 3
    values = [c["FinalAutoMLJobObjectiveMetric"]["Value"] for c in candidates]
    assert values == sorted(values, reverse=True) and all(0 < value <= 1 for value in values)
    assert {c["FinalAutoMLJobObjectiveMetric"]["MetricName"] for c in candidates} == {"Accuracy"}
    assert autopilot["best"]["CandidateName"] == candidates[0]["CandidateName"]
    assert autopilot["best"]["CandidateName"].startswith(autopilot["job"] + "-001-")
    assert autopilot["steps"] == [autopilot["best"]["CandidateName"]]
    for candidate in candidates:
        (container,) = candidate["InferenceContainers"]
        assert "sagemaker-sklearn-automl" in container["Image"] and candidate["CandidateStatus"] == "Completed"
        assert container["ModelDataUrl"].endswith(f"/tuning/{candidate['CandidateName']}/output/model.tar.gz")
        assert container["Environment"]["SAGEMAKER_INFERENCE_SUPPORTED"] == "predicted_label,probability,probabilities,labels"


def test_the_best_candidate_deployed_answers_as_autopilot(autopilot):
    (container,) = autopilot["containers"]
    assert container["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label,probability"
    assert container["ModelDataUrl"] == autopilot["best"]["InferenceContainers"][0]["ModelDataUrl"]
    assert len(autopilot["predictions"]) == 3
    for label, probability in autopilot["predictions"]:
        assert label in LABELS and 1 / 3 <= float(probability) <= 1
    assert [set(p) for p in autopilot["as_json"]["predictions"]] == [{"predicted_label", "probability"}] * 2
    assert autopilot["as_lines"] == autopilot["as_json"]["predictions"]
    (row,) = autopilot["predicted"]
    assert row[0] in LABELS and len(row) == 2
    refused = autopilot["refused"]
    assert refused["code"] == "ModelError" and refused["status"] == 424 and "text/csv" in refused["message"]


def test_automl_jobs_that_cannot_run_say_why(aws, course_csv):
    seen = aws.run("autopilot_refusals.py", str(course_csv))
    assert seen["no-target"]["status"] == "Failed" and seen["no-target"]["secondary"] == "Failed"
    assert seen["no-target"]["failure"] == ("ClientError: the target attribute 'stars' is not a column of the input "
                                            "data; its columns are sentiment, review_body")
    assert not seen["no-target"]["artifacts"] and seen["no-target"]["candidates"] == []
    assert seen["no-input"]["status"] == "Failed" and "no object at input s3://" in seen["no-input"]["failure"]
    assert seen["regression"]["status"] == 400 and seen["regression"]["code"] == "ValidationException"
    assert "MetricName MSE is not supported" in seen["regression"]["message"]
