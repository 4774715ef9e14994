"""The loss of every step is checked for NaN/inf whatever the Debugger's save interval: the first
non-finite one is recorded at its own step, the rules judge it there, and such a run's model is
never registered (with or without a stop action)."""

from __future__ import annotations

import html
import json
import math

import pytest
import torch

from sagestack.bert.job import NOT_REGISTERED_STOPPED, not_registered_reason
from sagestack.debugger.config import DebuggerConfig
from sagestack.debugger.events import TrainingState
from sagestack.debugger.hook import FINDINGS_FILE, DebuggerHook, HookResult, RuleAction
from sagestack.debugger.recording import Recording
from sagestack.debugger.report import render_debugger_html
from sagestack.debugger.rules import ExplodingTensor, first_nonfinite_loss


def rec(rows) -> Recording:
    return Recording.from_rows([{"step": s, "mode": m, "collection": "losses", "tensor": "loss", "reduction": "value",
                                 "value": v} for s, m, v in rows])


def test_first_nonfinite_loss_reads_the_training_loss_only():
    assert first_nonfinite_loss(rec([(0, "train", 1.1), (3, "train", math.nan), (9, "train", math.nan)]))[0] == 3
    step, value = first_nonfinite_loss(rec([(0, "train", 1.1), (5, "train", math.inf)]))
    assert step == 5 and value == math.inf
    assert first_nonfinite_loss(rec([(0, "train", 1.1), (4, "eval", math.nan)])) is None
    assert first_nonfinite_loss(rec([(0, "train", 1.1), (100, "train", 0.9)])) is None


def drive(hook: DebuggerHook, losses: list[float]) -> TrainingState:
    """The hook's events for one step per loss (no optimizer), as a loop calls them; stops when asked."""
    model = torch.nn.Linear(2, 3)
    state = TrainingState(model=model)
    hook.on_train_begin(state)
    try:
        for step, loss in enumerate(losses):
            state.step, state.loss = step, None
            hook.on_step_begin(state)
            state.loss = torch.tensor(loss)
            hook.on_backward(state)
            hook.on_pre_optimizer_step(state)
            hook.on_step_end(state)
            if state.should_stop:
                break
    finally:
        hook.on_train_end(state)
    return state


LOSSES = [1.1, 1.0, 0.9, math.nan, math.nan, 0.8, math.nan, 0.7]


def test_a_nan_loss_between_save_steps_is_caught_at_its_step_and_stops_training(tmp_path):
    hook = DebuggerHook(tmp_path, DebuggerConfig(save_interval=100),
                        [RuleAction(ExplodingTensor(), ("log", "report", "stop"))], num_labels=3)
    state = drive(hook, LOSSES)
    [finding] = hook.result.findings
    assert finding.rule == "ExplodingTensor" and finding.step == 3 and "loss value is nan" in finding.detail
    assert state.should_stop and state.step == 3 and "at step 3" in state.stop_reason  # halted on that step
    assert hook.result.nonfinite_loss == {"step": 3, "value": "nan"}
    assert hook.result.divergence == "training loss became non-finite (nan) at step 3"
    saved = json.loads((tmp_path / FINDINGS_FILE).read_text())
    assert saved["nonfinite_loss"] == {"step": 3, "value": "nan"} and saved["findings"][0]["step"] == 3
    # Offline, the rule on the recording on disk names the same step.
    assert ExplodingTensor().evaluate(Recording.load(tmp_path)).step == 3


def test_without_rules_or_a_stop_action_the_nonfinite_loss_is_still_recorded(tmp_path):
    hook = DebuggerHook(tmp_path, DebuggerConfig(save_interval=100), [], num_labels=3)
    state = drive(hook, LOSSES)
    assert not state.should_stop and state.step == len(LOSSES) - 1  # nothing stopped it
    assert hook.result.findings == [] and hook.result.nonfinite_loss == {"step": 3, "value": "nan"}
    losses = Recording.load(tmp_path).series("losses", "loss", "value")
    assert list(losses.index) == [0, 3]  # the save step, then the first non-finite loss only
    assert math.isnan(losses[3])


def test_an_infinite_loss_on_a_save_step_is_recorded_once(tmp_path):
    hook = DebuggerHook(tmp_path, DebuggerConfig(save_interval=2), [ExplodingTensor()], num_labels=3)
    drive(hook, [1.0, 0.9, math.inf, 0.8])
    assert hook.result.nonfinite_loss == {"step": 2, "value": "inf"}
    rows = Recording.load(tmp_path).select("losses")
    assert list(rows["step"]) == [0, 2] and [f.step for f in hook.result.findings] == [2]


def test_a_healthy_loss_trips_nothing(tmp_path):
    hook = DebuggerHook(tmp_path, DebuggerConfig(save_interval=100), [ExplodingTensor()], num_labels=3)
    drive(hook, [1.1, 1.0, 0.9, 0.8])
    assert hook.result.findings == [] and hook.result.nonfinite_loss is None and hook.result.divergence == ""


def test_a_resumed_run_keeps_the_earlier_nonfinite_loss(tmp_path):
    drive(DebuggerHook(tmp_path, DebuggerConfig(save_interval=100), [], num_labels=3), [1.0, math.nan])
    resumed = DebuggerHook(tmp_path, DebuggerConfig(save_interval=100), [], num_labels=3)
    drive(resumed, [0.5, 0.4])
    assert resumed.result.nonfinite_loss == {"step": 1, "value": "nan"}


@pytest.mark.parametrize("nonfinite, stopped, expected", [
    ({"step": 3, "value": "nan"}, False, "training loss became non-finite (nan) at step 3; "),
    ({"step": 3, "value": "inf"}, True, "training loss became non-finite (inf) at step 3; "),
    (None, True, NOT_REGISTERED_STOPPED),
    (None, False, ""),
])
def test_why_a_model_is_not_registered(nonfinite, stopped, expected):
    reason = not_registered_reason(nonfinite, stopped)
    assert reason.startswith(expected) and (reason == "") == (expected == "")
    if nonfinite:
        assert "--learning-rate" in reason and "\n" not in reason


def test_the_report_says_why_the_model_is_not_registered():
    note = "This run's model is not registered: training loss became non-finite (nan) at step 3."
    page = render_debugger_html(rec([(0, "train", 1.0), (3, "train", math.nan)]), [], notes=[note])
    assert html.escape(note) in page
    assert HookResult().to_dict()["nonfinite_loss"] is None
