"""Autopilot through ``sagestack serve-aws``: the SageMaker SDK 2.35's ``AutoML`` and boto3, from the client
environment, run one real AutoML job (``sagestack automl``: 3 candidates, a 15-second budget, 300 reviews),
read its notebooks, list its candidates, deploy the best and invoke it as the course does."""

from __future__ import annotations

import csv
import json

import pytest
from serve_aws_fixtures import aws, client_bin  # noqa: F401

from sagestack.aws.identity import DEFAULT_ACCOUNT
from sagestack.aws.protocol import AwsError

LABELS = {"-1", "0", "1"}


@pytest.fixture(scope="module")
def course_csv(sample_csv, tmp_path_factory):
    """The course's Autopilot input: sentiment and review_body of 100 reviews per sentiment of the sample."""
    path = tmp_path_factory.mktemp("autopilot") / "womens_clothing_ecommerce_reviews_balanced_for_autopilot.csv"
    with open(sample_csv, newline="", encoding="utf-8") as source, open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["sentiment", "review_body"])
        rows = list(csv.DictReader(source))
        for sentiment in ("-1", "0", "1"):
            writer.writerows([[row["sentiment"], row["review_body"]] for row in rows if row["sentiment"] == sentiment][:100])
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
    # The job's log, read back from CloudWatch Logs' group for AutoML jobs: the command and its progress.
    assert any(" -m sagestack automl --data " in line and "--max-candidates 3 --time-limit 15 " in line
               for line in seen["log"])
    assert any(line.startswith("... features built") for line in seen["log"]) and "completed" in seen["log"][-1]


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
    assert "240 training rows" in text and "review_body" in text and "| -1 | 80 (33.3%)" in text
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
    for name, candidate in autopilot["models"].items():  # each candidate's own model, deployable
        assert name.endswith("-" + candidate.lower())
    assert len(set(autopilot["models"].values())) == len(candidates)
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


@pytest.fixture
def container(monkeypatch):
    """Autopilot's inference adapter over a stand-in for the sagestack endpoint's /predict (the texts it got)."""
    from sagestack.aws import autopilot, endpoints

    texts = []

    def predict(url, batch):
        texts.extend(batch)
        return [{"label": 1, "probabilities": {"-1": 0.1, "0": 0.2, "1": 0.7}} for _ in batch]

    monkeypatch.setattr(endpoints, "predict", predict)

    def invoke(body, environment, content_type="text/csv", accept="text/csv"):
        return autopilot.invoke("http://127.0.0.1:1", body, content_type, accept, environment)

    return type("Container", (), {"invoke": staticmethod(invoke), "texts": texts})


def test_the_inference_container_writes_every_key_as_autopilot_does(container):
    environment = {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability,probabilities,labels",
                   "SAGESTACK_INPUT_COLUMNS": '["review_body"]', "SAGESTACK_TEXT_COLUMN": "review_body"}
    body, kind = container.invoke(b'fits, well\n"quoted, text"\n\n', environment, accept="text/csv")
    assert kind == "text/csv" and body.decode() == "1,0.7,\"[0.1, 0.2, 0.7]\",\"['-1', '0', '1']\"\n" * 2
    assert container.texts == ["fits, well", "quoted, text"]  # one input column: an unquoted comma stays in the text
    body, kind = container.invoke(b"love it", environment, accept="application/json")
    assert json.loads(body) == {"predictions": [{"predicted_label": "1", "probability": 0.7,
                                                 "probabilities": [0.1, 0.2, 0.7], "labels": ["-1", "0", "1"]}]}
    body, kind = container.invoke(b"love it", {}, accept="*/*")  # no keys chosen: the predicted label alone
    assert (body, kind) == (b"1\n", "text/csv")


def test_the_inference_container_refuses_what_autopilots_refuses(container):
    two = {"SAGESTACK_INPUT_COLUMNS": '["product_category", "review_body"]', "SAGESTACK_TEXT_COLUMN": "review_body"}
    assert container.invoke(b"Dresses,love it\n", two)[0] == b"1\n" and container.texts == ["love it"]
    cases = [(b"love it\n", two, "text/csv", "text/csv", "record 1 has 1 fields; the model reads 2"),
             (b"{}", {}, "application/json", "text/csv", "reads text/csv, not application/json"),
             (b"love it", {}, "text/csv", "application/xml", "Accept application/xml is not supported"),
             (b"\n\n", {}, "text/csv", "text/csv", "the body holds no record"),
             (b"love it", {"SAGEMAKER_INFERENCE_OUTPUT": "score"}, "text/csv", "text/csv", "names score")]
    for body, environment, content_type, accept, message in cases:
        with pytest.raises(AwsError, match=message) as refused:
            container.invoke(body, environment, content_type, accept)
        assert (refused.value.code, refused.value.status) == ("ModelError", 424)
