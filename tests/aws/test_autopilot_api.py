"""Autopilot's inference adapter of ``sagestack serve-aws`` writes and refuses as Autopilot's container does.
The course's Autopilot job itself (3 candidates, deployed and invoked) runs in course 1's notebook
(tests/aws/test_course1_notebook.py); AutoML jobs that cannot run are tests/aws/test_autopilot_refusals.py."""

from __future__ import annotations

import json

import pytest

from sagestack.aws.protocol import AwsError


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
