"""``sagestack review`` as a user runs it (the console script's entry point, in this process): flows, loops
started, listed, described and stopped by hand, Label Studio answers imported, and one-line errors."""

from __future__ import annotations

import json


def test_a_flow_and_its_loops_through_the_cli(sagestack_main):
    code, out, err = sagestack_main("review", "flow", "create", "--name", "sentiment", "--threshold", "0.8",
                                    "--labels", "neg,pos", "--task-title", "Is it positive?")
    assert (code, err) == (0, "")
    assert out.strip() == "flow sentiment: predictions below 0.8 confidence go to 1 reviewer(s), labels neg, pos"
    code, out, _ = sagestack_main("review", "flow", "list", "--json")
    [flow] = json.loads(out)["FlowDefinitionSummaries"]
    assert flow["FlowDefinitionName"] == "sentiment" and flow["HumanLoopConfig"]["Labels"] == ["neg", "pos"]
    assert flow["HumanLoopConfig"]["TaskTitle"] == "Is it positive?"
    assert flow["HumanLoopActivationConfig"]["ConfidenceThreshold"] == 0.8
    code, out, _ = sagestack_main("review", "flow", "list")
    assert out.splitlines()[1].split() == ["sentiment", "0.8", "1", "neg,pos"]

    code, out, err = sagestack_main("review", "start", "--flow", "sentiment", "--review", "Runs small",
                                    "--initial-value", "neg", "--confidence", "0.4", "--name", "loop-one")
    assert (code, out.strip(), err) == (0, "started loop-one", "")
    code, out, _ = sagestack_main("review", "start", "--flow", "sentiment", "--review", "Lovely", "--json")
    other = json.loads(out)
    assert other["HumanLoopStatus"] == "InProgress" and other["HumanLoopName"].startswith("loop-")

    code, out, _ = sagestack_main("review", "describe", "loop-one", "--json")
    described = json.loads(out)
    assert described["HumanLoopStatus"] == "InProgress"
    assert described["HumanLoopInput"] == {"initialValue": "neg", "taskObject": "Runs small", "confidence": 0.4}
    code, out, _ = sagestack_main("review", "list", "--json")
    assert [s["HumanLoopName"] for s in json.loads(out)["HumanLoopSummaries"]] == [other["HumanLoopName"], "loop-one"]

    code, out, err = sagestack_main("review", "stop", "loop-one")
    assert (code, out.strip(), err) == (0, "loop-one: Stopped", "")
    code, out, err = sagestack_main("review", "stop", "loop-one")
    assert (code, out, err.strip()) == (2, "", "error: human loop loop-one is Stopped already")
    code, out, _ = sagestack_main("review", "list", "--status", "Stopped", "--json")
    assert [s["HumanLoopName"] for s in json.loads(out)["HumanLoopSummaries"]] == ["loop-one"]
    code, out, _ = sagestack_main("review", "list", "--flow", "sentiment", "--status", "InProgress")
    assert other["HumanLoopName"] in out and "loop-one" not in out

    # Label Studio annotations: one answers the open loop, one task without a loop starts (and completes) one.
    export = sagestack_main.work / "annotated.json"
    export.write_text(json.dumps([
        {"data": {"text": "Lovely", "loop": other["HumanLoopName"]},
         "annotations": [{"completed_by": 7, "result": [{"type": "choices", "value": {"choices": ["pos"]}}]}]},
        {"data": {"text": "Fell apart"},
         "annotations": [{"completed_by": 7, "result": [{"type": "choices", "value": {"choices": ["neg"]}}]}]},
    ]))
    code, out, err = sagestack_main("review", "import", export, "--flow", "sentiment")
    assert (code, out.strip(), err) == (0, "1 loop(s) started, 2 answer(s) recorded", "")
    code, out, _ = sagestack_main("review", "describe", other["HumanLoopName"], "--json")
    answered = json.loads(out)
    assert answered["HumanLoopStatus"] == "Completed" and answered["HumanLoopOutput"]["OutputS3Uri"].endswith("output.json")
    code, out, _ = sagestack_main("review", "flow", "describe", "sentiment", "--json")
    assert json.loads(out)["Progress"] == {"InProgress": 0, "Completed": 2, "Stopped": 1, "Failed": 0, "tied": 0,
                                           "answers": 2}


def test_review_cli_errors_are_one_line(sagestack_main):
    def refused(*args: str) -> str:
        code, out, err = sagestack_main(*args)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (code, err)
        return err.strip()

    assert refused("review", "start", "--flow", "nope", "--review", "x") == (
        "error: no flow named 'nope' (flows: none yet); create one with `sagestack review flow create`")
    assert "flow name 'Bad Name' is not valid" in refused("review", "flow", "create", "--name", "Bad Name")
    assert "--threshold must be in (0, 1]" in refused("review", "flow", "create", "--name", "f", "--threshold", "2")
    assert refused("review", "flow", "describe", "nope").startswith("error: no flow named 'nope'")
    assert refused("review", "describe", "loop-nope").startswith("error: no human loop named 'loop-nope'")
    assert refused("review", "stop", "loop-nope").startswith("error: no human loop named 'loop-nope'")
    assert "--status must be one of" in refused("review", "list", "--status", "Done")
    sagestack_main("review", "flow", "create", "--name", "f")
    assert refused("review", "import", "missing.json", "--flow", "f").startswith("error: ")
    (sagestack_main.work / "tasks.csv").write_text("text\nx\n")
    assert refused("review", "import", "tasks.csv", "--flow", "f", "--format", "csv") == (
        "error: --format must be label-studio, got 'csv'")
    assert "is not a Label Studio JSON export" in refused("review", "import", "tasks.csv", "--flow", "f")
