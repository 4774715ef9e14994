"""A flow's tie-break through the CLI (in process, through the console script's entry point): set at
`review flow create --tie-break`, shown by `review flow describe`, and applied to answers given with
`review answer` (the store's own rules, on SQLite and PostgreSQL, are in test_review_store.py)."""

from __future__ import annotations

import json


def test_tie_break_is_set_at_create_shown_in_describe_and_ends_ties(sagestack_main):
    code, out, err = sagestack_main("review", "flow", "create", "--name", "by-model", "--reviewers-per-item", "2",
                                    "--tie-break", "model")
    assert (code, err) == (0, "") and out.strip() == (
        "flow by-model: predictions below 0.9 confidence go to 2 reviewer(s), labels -1, 0, 1; a tie goes to the "
        "model's label")
    assert sagestack_main("review", "flow", "create", "--name", "escalating", "--reviewers-per-item", "2")[0] == 0
    code, out, _ = sagestack_main("review", "flow", "describe", "escalating", "--json")
    assert json.loads(out)["HumanLoopConfig"]["TieBreak"] == "escalate"  # the default
    code, out, _ = sagestack_main("review", "flow", "describe", "by-model")
    assert "HumanLoopConfig.TieBreak" in out and out.split("HumanLoopConfig.TieBreak")[1].split()[0] == "model"

    code, _, err = sagestack_main("review", "flow", "create", "--name", "f", "--tie-break", "coin")
    assert (code, err.strip()) == (2, "error: --tie-break must be escalate or model, got 'coin'")

    for flow in ("by-model", "escalating"):
        sagestack_main("review", "start", "--flow", flow, "--review", "Nice but small", "--initial-value", "0",
                       "--name", f"loop-{flow}")
        sagestack_main("review", "answer", f"loop-{flow}", "--answer", "1", "--reviewer", "ann")
    code, out, _ = sagestack_main("review", "answer", "loop-by-model", "--answer", "0", "--reviewer", "bob", "--json")
    assert code == 0 and json.loads(out)["Label"] == "0"  # tied 0/1: the model said 0
    code, out, _ = sagestack_main("review", "describe", "loop-by-model", "--json")
    assert json.loads(out)["DecidedBy"] == "tie-break:model"

    code, out, _ = sagestack_main("review", "answer", "loop-escalating", "--answer", "0", "--reviewer", "bob")
    assert code == 0 and out.strip() == "loop-escalating: InProgress, tied between 0, 1: one more reviewer decides"
    code, out, err = sagestack_main("review", "answer", "loop-escalating", "--answer", "-1", "--reviewer", "cid")
    assert (code, err.strip()) == (2, "error: human loop loop-escalating is tied between 0, 1: the deciding answer "
                                      "must be one of them, got '-1'")
    code, out, _ = sagestack_main("review", "answer", "loop-escalating", "--answer", "1", "--reviewer", "cid")
    assert code == 0 and out.strip() == "loop-escalating: Completed, label 1"
