"""Debugger rules judged on tiny hand-made recordings: each rule fires where it must, at the exact step,
and stays quiet on a healthy recording; plus parsing, the registry and the HTML report."""

from __future__ import annotations

import math
import re

import pytest

from sagestack.debugger import rules as R
from sagestack.debugger.recording import REDUCTIONS, SPECIAL_REDUCTIONS, Recording, RecordingWriter
from sagestack.debugger.report import render_debugger_html, write_debugger_report
from sagestack.errors import ConfigError


def row(step, collection, tensor, reduction, value, mode="train", wall_time=None):
    fields = {"step": step, "mode": mode, "collection": collection, "tensor": tensor, "reduction": reduction,
              "value": value}
    return fields if wall_time is None else {**fields, "wall_time": wall_time}


def losses(values: dict, mode="train"):
    return [row(step, "losses", "loss", "value", value, mode) for step, value in values.items()]


def series(collection, tensor, reduction, values: dict, mode="train"):
    return [row(step, collection, tensor, reduction, value, mode) for step, value in values.items()]


def rec(*groups) -> Recording:
    return Recording.from_rows([r for group in groups for r in group])


KEY_BIAS = "bert.encoder.layer.0.attention.self.key.bias"
DENSE = [f"bert.encoder.layer.{i}.intermediate.dense" for i in range(6)]
# Standard deviations of a pretrained MiniLM's intermediate.dense outputs (measured): variance ratio about 3.2.
MINILM_STDS = [1.168, 1.257, 1.218, 1.001, 0.839, 0.704]


def _dense_stds(stds, step=0):
    return [row(step, "outputs", name, "std", value) for name, value in zip(DENSE, stds)]


# --- every rule fires where it must ---------------------------------------------------------------

FIRES = {
    "VanishingGradient": (
        R.VanishingGradient(),
        rec(series("gradients", "l0.weight", "abs_mean", {0: 1e-3, 100: 1e-5, 200: 5e-8}),
            series("gradients", "l1.weight", "abs_mean", {0: 1e-3, 100: 1e-3, 200: 1e-3})),
        200, ["l0.weight", "5e-08", "1e-07", "1 of 2"]),
    "VanishingGradient-key-bias-when-not-excluded": (
        R.VanishingGradient(exclude_regex=""),
        rec(series("gradients", KEY_BIAS, "abs_mean", {0: 6e-12, 100: 7e-12}),
            series("gradients", "l1.weight", "abs_mean", {0: 1e-4, 100: 1e-4})),
        0, [KEY_BIAS, "6e-12"]),
    "ExplodingTensor-count": (
        R.ExplodingTensor(),
        rec(series("gradients", "l0.weight", "nonfinite", {0: 0, 100: 0, 200: 3}), losses({0: 1.0, 100: 0.9, 200: 0.8})),
        200, ["l0.weight", "3 non-finite"]),
    "ExplodingTensor-nan-loss": (
        R.ExplodingTensor(),
        rec(losses({0: 1.0, 100: 0.9, 200: 0.8, 300: math.nan})),
        300, ["losses loss value is nan"]),
    "ExplodingTensor-inf-loss": (
        R.ExplodingTensor(),
        rec(losses({0: 1.0, 100: math.inf, 200: math.nan})),
        100, ["inf"]),
    "ExplodingTensor-only-nan-skips-inf": (
        R.ExplodingTensor(only_nan=True),
        rec(losses({0: 1.0, 100: math.inf, 200: math.nan}), series("gradients", "w", "nonfinite", {100: 5})),
        200, ["nan"]),
    "PoorWeightInitialization-zero-variance": (
        R.PoorWeightInitialization(),
        rec(_dense_stds([0.0] * 6), losses({0: 1.0986})),
        0, ["zero variance", "6 of 6"]),
    "PoorWeightInitialization-variance-ratio": (
        R.PoorWeightInitialization(),
        rec(_dense_stds([1.0, 1.0, 0.2, 1.0, 1.0, 1.0]), losses({0: 1.0})),
        0, ["variance ratio 25 > threshold 10", DENSE[2]]),
    "PoorWeightInitialization-narrow-gradients": (
        R.PoorWeightInitialization(),
        rec(_dense_stds(MINILM_STDS, step=0), _dense_stds(MINILM_STDS, step=1),
            series("gradients", "a.weight", "p05", {0: -2e-3, 1: -1e-4}), series("gradients", "a.weight", "p95", {0: 2e-3, 1: 2e-4}),
            series("gradients", "b.weight", "p05", {0: -1e-3, 1: -1e-4}), series("gradients", "b.weight", "p95", {0: 1e-3, 1: 1e-4})),
        1, ["spread 0.0003 < distribution_range 0.001"]),
    "PoorWeightInitialization-loss-stalls": (
        R.PoorWeightInitialization(),
        rec(losses({0: 2.0, 1: 1.9, 2: 1.95, 3: 1.96, 4: 1.97, 5: 1.98, 6: 1.99, 7: 1.5})),
        6, ["1.99", "1.9 (step 1)", "5 recorded steps"]),
    "SaturatedActivation": (
        R.SaturatedActivation(),
        rec(series("outputs", "bert.pooler.activation", "saturated_fraction", {0: 0.2, 100: 0.5, 200: 0.998})),
        200, ["bert.pooler.activation", "99.8 %", "0.5 %"]),
    "DeadRelu": (
        R.DeadRelu(),
        rec(series("outputs", "net.relu1", "zero_fraction", {0: 0.5, 100: 0.7, 200: 1.0}),
            series("outputs", "net.relu2", "zero_fraction", {0: 0.5, 100: 0.5, 200: 0.5})),
        200, ["net.relu1", "100 % of outputs zero"]),
    "DeadRelu-custom-thresholds": (
        R.DeadRelu(threshold_inactivity=50, threshold_layer=0),
        rec(series("outputs", "net.relu1", "zero_fraction", {0: 0.4, 100: 0.7})),
        100, ["active share 30 % < 50 %"]),
    "WeightUpdateRatio-large": (
        R.WeightUpdateRatio(),
        rec(series("weights", "l0.weight", "l2", {100: 10.0, 200: 10.0}),
            series("weights", "l0.weight", "update_l2", {100: 1e-3, 200: 200.0})),
        200, ["l0.weight", "update ratio 20 > large_threshold 10"]),
    "WeightUpdateRatio-small": (
        R.WeightUpdateRatio(),
        rec(series("weights", "l0.weight", "l2", {100: 10.0, 200: 10.0}),
            series("weights", "l0.weight", "update_l2", {100: 1e-12, 200: 1e-3})),
        100, ["1e-13 < small_threshold 1e-08"]),
    "AllZero": (
        R.AllZero(),
        rec(series("gradients", "l0.weight", "zero_fraction", {0: 0.3, 100: 1.0}),
            series("weights", "l0.weight", "zero_fraction", {0: 0.0, 100: 0.0})),
        100, ["gradients l0.weight", "100 % of values are zero"]),
    "AllZero-threshold": (
        R.AllZero(threshold=25),
        rec(series("gradients", "l0.weight", "zero_fraction", {0: 0.3, 100: 1.0})),
        0, ["30 % of values are zero >= threshold 25 %"]),
    "TensorVariance-max": (
        R.TensorVariance(max_threshold=10),
        rec(series("weights", "l0.weight", "std", {0: 1.0, 100: 5.0})),
        100, ["variance 25 > max_threshold 10"]),
    "TensorVariance-min": (
        R.TensorVariance(min_threshold=1e-5),
        rec(series("weights", "l0.weight", "std", {0: 1.0, 100: 0.5, 200: 1e-4})),
        200, ["variance 1e-08 < min_threshold 1e-05"]),
    "LossNotDecreasing-flat": (
        # smdebug's own test: losses saved every 4 steps, the check at step 12 compares with step 0.
        R.LossNotDecreasing(),
        rec(losses({0: 0.3, 4: 0.33, 8: 0.31, 12: 0.30, 16: 0.28})),
        12, ["from 0.3 (step 0) to 0.3", "decreased 0 % < diff_percent 0.1 %"]),
    "LossNotDecreasing-increase": (
        R.LossNotDecreasing(),
        rec(losses({0: 1.0, 100: 0.9, 200: 1.0})),
        200, ["increased 11.11 % > increase_threshold_percent 5 %"]),
    "LossNotDecreasing-eval": (
        R.LossNotDecreasing(mode="eval"),
        rec(losses({0: 1.0, 100: 0.5, 200: 0.4}), losses({100: 0.8, 200: 0.9}, mode="eval")),
        200, ["eval loss went from 0.8 (step 100) to 0.9"]),
    "Overfit": (
        R.Overfit(),
        rec(losses({0: 1.0, 50: 0.9, 100: 0.8, 150: 0.6, 200: 0.5, 250: 0.45, 300: 0.4}),
            losses({100: 0.85, 200: 1.0, 300: 1.1}, mode="eval")),
        200, ["validation loss 1 vs mean train loss 0.55", "ratio 0.8182 > ratio_threshold 0.1"]),
    "Overfit-patience": (
        R.Overfit(patience=2),
        rec(losses({0: 1.0, 50: 0.9, 100: 0.8, 150: 0.6, 200: 0.5, 250: 0.45, 300: 0.4}),
            losses({100: 0.85, 200: 1.0, 300: 1.1}, mode="eval")),
        300, ["mean train loss 0.425", "for 2 evaluation(s)"]),
    "Overtraining-train": (
        R.Overtraining(),
        rec(losses({0: 1.0, 100: 0.8, 200: 0.6, 300: 0.5, 400: 0.5, 500: 0.495, 600: 0.5, 700: 0.5, 800: 0.5})),
        800, ["train loss 0.5 has not improved on 0.5 (step 300)", "patience_train 5"]),
    "Overtraining-validation": (
        R.Overtraining(),
        rec(losses({step * 100: 1.0 - 0.1 * step for step in range(5)}),
            losses({step * 100: 0.7 + 0.001 * (step % 2) for step in range(12)}, mode="eval")),
        1000, ["validation loss", "patience_validation 10"]),
    "ClassImbalance": (
        R.ClassImbalance(),
        rec(*[series("labels", name, "count", {0: n, 100: n}) for name, n in (("class_0", 300), ("class_1", 20))]),
        100, ["class_1 has 40 of 640 samples vs 600 for class_0", "ratio 15 > threshold_imbalance 10"]),
    "ClassImbalance-misprediction": (
        R.ClassImbalance(),
        rec(*[series("labels", name, "count", {0: 100, 100: 100, 200: 100}) for name in ("class_0", "class_1")],
            series("predictions", "class_0", "count", {0: 100, 100: 100, 200: 100}),
            series("predictions", "class_1", "count", {0: 20, 100: 20, 200: 20})),
        200, ["class_1: 0.8 of its 300 samples mispredicted > threshold_misprediction 0.7"]),
    "ClassImbalance-unseen-class": (
        R.ClassImbalance(samples=10),
        rec(*[series("labels", name, "count", {0: n}) for name, n in (("class_0", 6), ("class_1", 6), ("class_2", 0))]),
        0, ["class_2 has 0 of 12 samples", "ratio inf"]),
    "StalledTrainingRule": (
        R.StalledTrainingRule(),
        Recording.from_rows([row(0, "losses", "loss", "value", 1.0, wall_time=1000.0),
                             row(100, "losses", "loss", "value", 0.9, wall_time=1100.0),
                             row(200, "losses", "loss", "value", 0.8, wall_time=3000.0)]),
        200, ["no record for 1900 s (steps 100 -> 200) > threshold 1800 s"]),
}


@pytest.mark.parametrize("case", list(FIRES))
def test_rule_fires_at_the_exact_step(case):
    rule, recording, step, words = FIRES[case]
    finding = rule.evaluate(recording)
    assert finding is not None, case
    assert (finding.rule, finding.step) == (rule.name, step)
    for word in words:
        assert word in finding.detail, (word, finding.detail)
    assert "\n" not in finding.detail


@pytest.mark.parametrize("case", list(FIRES))
def test_a_growing_recording_names_the_same_step(case):
    """In process the hook judges the recording so far: a prefix up to the firing step must give the
    same finding, and a prefix before it none (so in-process and offline evaluation agree)."""
    rule, recording, step, _ = FIRES[case]
    finding = rule.evaluate(recording)
    frame = recording.frame
    assert rule.evaluate(Recording(frame[frame["step"] <= step])) == finding
    assert rule.evaluate(Recording(frame[frame["step"] < step])) is None


def test_every_rule_has_a_firing_case():
    assert {rule.name for rule, *_ in FIRES.values()} == set(R.RULES)


# --- and stays quiet on a healthy recording -------------------------------------------------------

def _healthy() -> Recording:
    steps = range(0, 1100, 100)
    groups = [losses({s: 1.2 * 0.9 ** (s / 100) for s in steps}),
              losses({s: 1.25 * 0.9 ** (s / 100) for s in (300, 600, 900)}, mode="eval")]
    for name, scale in (("l0.weight", 1e-3), ("l1.weight", 5e-4)):
        groups += [series("gradients", name, "abs_mean", {s: scale for s in steps}),
                   series("gradients", name, "nonfinite", {s: 0 for s in steps}),
                   series("gradients", name, "zero_fraction", {s: 0.0 for s in steps}),
                   series("weights", name, "l2", {s: 20.0 for s in steps}),
                   series("weights", name, "update_l2", {s: 0.0 if s == 0 else 2e-3 for s in steps}),
                   series("weights", name, "std", {s: 0.05 for s in steps}),
                   series("weights", name, "zero_fraction", {s: 0.0 for s in steps})]
    groups += [series("gradients", KEY_BIAS, "abs_mean", {s: 8e-12 for s in steps}),  # zero by construction
               series("biases", "classifier.bias", "zero_fraction", {0: 1.0}),  # zero-initialised head
               series("optimizer", "learning_rate", "value", {s: 0.0 if s == 0 else 2e-5 for s in steps}),
               series("outputs", "net.relu1", "zero_fraction", {s: 0.55 for s in steps}),
               series("outputs", "bert.pooler.activation", "saturated_fraction", {s: 0.02 for s in steps}),
               series("outputs", "classifier", "saturated_fraction", {s: 1.0 for s in steps}),  # not an activation
               _dense_stds(MINILM_STDS, 0),
               series("gradients", "l0.weight", "p05", {0: -0.01}), series("gradients", "l0.weight", "p95", {0: 0.01}),
               series("gradients", KEY_BIAS, "p05", {0: 0.0}), series("gradients", KEY_BIAS, "p95", {0: 0.0})]
    for label in ("class_0", "class_1", "class_2"):
        groups += [series("labels", label, "count", {s: 6 for s in steps}),
                   series("predictions", label, "count", {s: 5 for s in steps})]
    return rec(*groups)


QUIET = {
    "VanishingGradient": R.VanishingGradient(),
    "ExplodingTensor": R.ExplodingTensor(),
    "ExplodingTensor-only-nan": R.ExplodingTensor(only_nan=True),
    "PoorWeightInitialization": R.PoorWeightInitialization(),
    "SaturatedActivation": R.SaturatedActivation(),
    "DeadRelu": R.DeadRelu(),
    "WeightUpdateRatio": R.WeightUpdateRatio(),
    "AllZero": R.AllZero(collection_names=("gradients", "weights")),
    "TensorVariance": R.TensorVariance(max_threshold=10, min_threshold=1e-5),
    "LossNotDecreasing": R.LossNotDecreasing(),
    "LossNotDecreasing-eval": R.LossNotDecreasing(mode="eval"),
    "Overfit": R.Overfit(),
    "Overtraining": R.Overtraining(),
    "ClassImbalance": R.ClassImbalance(samples=100),
    "StalledTrainingRule": R.StalledTrainingRule(),
}


@pytest.mark.parametrize("case", list(QUIET))
def test_rule_is_quiet_on_a_healthy_recording(case):
    assert QUIET[case].evaluate(_healthy()) is None


def test_every_rule_has_a_quiet_case():
    assert {rule.name for rule in QUIET.values()} == set(R.RULES)


def test_the_healthy_recording_holds_what_the_quiet_cases_rely_on():
    """The quiet cases are not quiet for lack of data: the same recording fires once a threshold moves."""
    healthy = _healthy()
    assert R.VanishingGradient(exclude_regex="").evaluate(healthy).step == 0
    assert R.AllZero().evaluate(healthy).detail.startswith("biases classifier.bias")
    assert R.WeightUpdateRatio(small_threshold=1e-3, large_threshold=10).evaluate(healthy).step == 100
    assert R.DeadRelu(threshold_inactivity=100, threshold_layer=0).evaluate(healthy).step == 0
    assert R.SaturatedActivation(tensor_regex="classifier").evaluate(healthy).step == 0
    assert R.TensorVariance(min_threshold=0.01).evaluate(healthy).step == 0
    assert R.PoorWeightInitialization(threshold=2).evaluate(healthy).step == 0
    assert R.LossNotDecreasing(diff_percent=20).evaluate(healthy).step == 100
    assert R.Overfit(ratio_threshold=-1).evaluate(healthy).step == 300
    assert R.Overtraining(delta=1).evaluate(healthy).step == 500
    assert R.ClassImbalance(samples=100, threshold_misprediction=0.1).evaluate(healthy).step == 500
    assert R.StalledTrainingRule(threshold=50).evaluate(healthy).step == 100


def test_poor_weight_initialization_only_reads_the_first_steps():
    late_zero = rec(_dense_stds(MINILM_STDS, 0), _dense_stds([0.0] * 6, 100))
    assert R.PoorWeightInitialization().evaluate(late_zero) is None
    assert R.PoorWeightInitialization(steps=101).evaluate(late_zero).step == 100


def _mlp_recording(zero_init: bool) -> Recording:
    """Ten full-batch SGD steps of a small ReLU network, reduced the way the hook reduces tensors."""
    import torch  # in the lock: the recording must come from a real network
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 3))
    if zero_init:
        for param in model.parameters():
            torch.nn.init.zeros_(param)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    outputs, rows = {}, []
    for index in ("0", "2"):
        model.get_submodule(index).register_forward_hook(lambda m, i, o, n=index: outputs.__setitem__(n, o.detach()))
    for step in range(10):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        rows.append(row(step, "losses", "loss", "value", loss.item()))
        for name, output in outputs.items():
            rows.append(row(step, "outputs", name, "std", output.std(correction=0).item()))
        for name, param in model.named_parameters():
            rows.append(row(step, "gradients", name, "p05", torch.quantile(param.grad.flatten(), 0.05).item()))
            rows.append(row(step, "gradients", name, "p95", torch.quantile(param.grad.flatten(), 0.95).item()))
        optimizer.step()
    return Recording.from_rows(rows)


def test_poor_weight_initialization_on_a_real_network():
    rule = R.PoorWeightInitialization(activation_inputs_regex=r"^(?:0|2)$")
    zero = rule.evaluate(_mlp_recording(zero_init=True))
    assert zero is not None and zero.step == 0 and "zero variance" in zero.detail
    assert rule.evaluate(_mlp_recording(zero_init=False)) is None


def test_stalled_helper():
    assert R.stalled(1000.0, 2801.0)
    assert not R.stalled(1000.0, 2800.0)
    assert R.stalled(0.0, 61.0, threshold=60)


# --- non-finite values survive the recording files -----------------------------------------------

def test_nonfinite_values_written_and_read_back_reach_exploding_tensor(tmp_path):
    writer = RecordingWriter(tmp_path / "rec")
    for step, value in ((0, 1.1), (100, 0.9), (200, math.inf), (300, math.nan)):
        writer.write(step, "train", "losses", "loss", "value", value, wall_time=1000.0 + step)
    writer.write(100, "train", "gradients", "l0.weight", "nonfinite", 0, wall_time=1100.0)
    writer.write(300, "train", "gradients", "l0.weight", "nan", 4, wall_time=1300.0)
    writer.close()
    recording = Recording.load(tmp_path / "rec")
    finding = R.ExplodingTensor().evaluate(recording)
    assert (finding.step, finding.detail) == (200, "losses loss value is inf (1 non-finite record(s) at this step)")
    assert R.ExplodingTensor(only_nan=True).evaluate(recording).step == 300
    assert R.StalledTrainingRule().evaluate(recording) is None


# --- parsing, registry, evaluation order ---------------------------------------------------------

def test_parse_rule_defaults_and_parameters():
    assert R.parse_rule("LossNotDecreasing") == R.LossNotDecreasing()
    rule = R.parse_rule(" LossNotDecreasing:num_steps=20, diff_percent=0.5 ")
    assert (rule.num_steps, rule.diff_percent, rule.increase_threshold_percent) == (20, 0.5, 5.0)
    assert R.parse_rule("lossnotdecreasing:mode=EVAL").mode == "eval"
    assert R.parse_rule("ExplodingTensor:only_nan=True").only_nan is True
    zero = R.parse_rule("AllZero:collection_names=gradients,biases,threshold=50")
    assert (zero.collection_names, zero.threshold) == (("gradients", "biases"), 50.0)
    assert zero.collections == ("gradients", "biases")
    assert zero.reductions == {"gradients": ("zero_fraction",), "biases": ("zero_fraction",)}
    assert R.parse_rule("TensorVariance:max_threshold=10,min_threshold=0.00001").min_threshold == 1e-5
    assert R.parse_rule("VanishingGradient:exclude_regex=none").exclude_regex is None
    assert R.parse_rule("StalledTrainingRule:threshold=60").threshold == 60.0


@pytest.mark.parametrize("text, words", [
    ("NoSuchRule", ["NoSuchRule", "known:", "VanishingGradient", "StalledTrainingRule"]),
    ("LossNotDecreasing:patience=3", ["LossNotDecreasing", "'patience'", "num_steps, diff_percent"]),
    ("LossNotDecreasing:num_steps=ten", ["LossNotDecreasing", "num_steps", "integer", "'ten'"]),
    ("LossNotDecreasing:diff_percent=150", ["LossNotDecreasing", "diff_percent", "150"]),
    ("LossNotDecreasing:num_steps=0", ["num_steps", "1 or more"]),
    ("LossNotDecreasing:mode=test", ["mode", "train, eval or global"]),
    ("LossNotDecreasing:num_steps=5,num_steps=6", ["num_steps", "twice"]),
    ("LossNotDecreasing:num_steps", ["num_steps", "param=value"]),
    ("ExplodingTensor:only_nan=maybe", ["only_nan", "true or false"]),
    ("Overfit:ratio_threshold=nan", ["ratio_threshold", "a number"]),
    ("DeadRelu:tensor_regex=(relu", ["DeadRelu", "tensor_regex", "not a valid regex"]),
    ("TensorVariance", ["TensorVariance", "max_threshold or min_threshold"]),
    ("TensorVariance:collection_names=weights", ["max_threshold or min_threshold"]),
])
def test_parse_rule_errors_are_one_line_config_errors(text, words):
    with pytest.raises(ConfigError) as raised:
        R.parse_rule(text)
    message = str(raised.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_tensor_variance_without_thresholds_fails_when_evaluated():
    rule = R.TensorVariance()
    with pytest.raises(ConfigError, match="max_threshold or min_threshold"):
        rule.evaluate(rec(series("weights", "w", "std", {0: 1.0})))
    with pytest.raises(ConfigError, match="max_threshold or min_threshold"):
        R.evaluate_rules([R.VanishingGradient(), rule], rec(series("weights", "w", "std", {0: 1.0})))


def test_registry_order_and_description():
    assert list(R.RULES) == ["VanishingGradient", "ExplodingTensor", "PoorWeightInitialization", "SaturatedActivation",
                             "DeadRelu", "WeightUpdateRatio", "AllZero", "TensorVariance", "LossNotDecreasing", "Overfit",
                             "Overtraining", "ClassImbalance", "StalledTrainingRule"]
    described = R.describe_rules()
    assert [d["name"] for d in described] == list(R.RULES)
    by_name = {d["name"]: d for d in described}
    assert by_name["LossNotDecreasing"]["parameters"] == {"num_steps": 10, "diff_percent": 0.1,
                                                          "increase_threshold_percent": 5.0, "mode": "train"}
    assert by_name["VanishingGradient"]["parameters"]["threshold"] == 1e-7
    assert by_name["TensorVariance"]["parameters"]["max_threshold"] is None
    assert by_name["StalledTrainingRule"]["parameters"] == {"threshold": 1800.0}
    assert by_name["Overtraining"]["parameters"] == {"patience_train": 5, "patience_validation": 10, "delta": 0.01}
    assert by_name["ClassImbalance"]["parameters"] == {"threshold_imbalance": 10.0, "threshold_misprediction": 0.7,
                                                       "samples": 500}
    for entry in described:
        assert entry["description"] and entry["collections"] and entry["parameters"]
        assert "\n" not in entry["description"]


def test_default_rules_are_registered_and_need_only_the_default_recording():
    assert set(R.DEFAULT_RULES) <= set(R.RULES)
    default_collections = {"losses", "gradients", "weights", "optimizer", "metrics"}
    default_reductions = {"gradients": {"l2", "abs_mean", "nonfinite"}, "weights": {"l2", "nonfinite"}}
    for rule in R.default_rules():
        assert set(rule.collections) <= default_collections, rule.name
        for collection, names in rule.reductions.items():
            assert set(names) <= default_reductions.get(collection, set()), (rule.name, collection)


def test_declared_reductions_are_known():
    known = set(REDUCTIONS) | set(SPECIAL_REDUCTIONS) | set(R.EXTRA_REDUCTIONS)
    for cls in R.RULES.values():
        for collection, names in cls.reductions.items():
            assert set(names) <= known, (cls.name, collection, names)
    assert R.ExplodingTensor(only_nan=True).reductions["gradients"] == ("nan",)
    assert R.DeadRelu().outputs_regex == r"(?i)relu"
    assert R.VanishingGradient().outputs_regex is None


def test_evaluate_rules_sorts_by_step():
    recording = Recording.from_rows(
        series("gradients", "w", "abs_mean", {0: 1e-9, 100: 1e-9, 200: 1e-9})
        + [row(0, "losses", "loss", "value", 1.0, wall_time=0.0),
           row(100, "losses", "loss", "value", math.nan, wall_time=100.0),
           row(200, "losses", "loss", "value", 1.0, wall_time=5000.0)])
    rules = [R.StalledTrainingRule(), R.ExplodingTensor(), R.Overfit(), R.VanishingGradient()]
    findings = R.evaluate_rules(rules, recording)
    assert [(f.rule, f.step) for f in findings] == [("VanishingGradient", 0), ("ExplodingTensor", 100),
                                                    ("StalledTrainingRule", 200)]
    assert findings[0].to_dict() == {"rule": "VanishingGradient", "step": 0, "detail": findings[0].detail}


def test_rules_are_frozen_and_evaluate_an_empty_recording():
    empty = Recording.from_rows([])
    for cls in R.RULES.values():
        rule = cls(max_threshold=1.0) if cls is R.TensorVariance else cls()
        assert rule.evaluate(empty) is None
        with pytest.raises(AttributeError):
            rule.__setattr__(next(iter(rule.parameters())), 1)


# --- the report ---------------------------------------------------------------------------------

def _report_recording() -> Recording:
    groups = [losses({s: 1.0 / (1 + s / 100) for s in range(0, 600, 100)}),
              losses({300: 0.5, 500: 0.6}, mode="eval")]
    for i in range(20):
        groups.append(series("gradients", f"layer.{i}.weight", "l2", {s: (i + 1) * 0.01 for s in range(0, 600, 100)}))
    groups.append(series("gradients", "layer.0.weight", "nonfinite", {s: 0 for s in range(0, 600, 100)}))
    return rec(*groups)


def test_report_shows_findings_and_plots(tmp_path):
    recording = _report_recording()
    findings = [R.Finding("Overfit", 500, "validation loss 0.6 vs mean train loss 0.25: ratio 1.4 > ratio_threshold 0.1"),
                R.Finding("VanishingGradient", 300, "gradient <script> has mean |g| 1e-08 < threshold 1e-07")]
    page = render_debugger_html(recording, findings, title="Run <1>")
    assert "<title>Run &lt;1&gt;</title>" in page
    assert page.index("VanishingGradient") < page.index("Overfit")  # ordered by step
    assert "gradient &lt;script&gt; has mean |g| 1e-08 &lt; threshold 1e-07" in page
    assert "<script>" not in page
    assert page.count("<img") == 3  # the loss, gradients l2, gradients nonfinite
    assert "12 of 20 tensors drawn (largest by l2)" in page
    path = write_debugger_report(recording, findings, tmp_path / "out" / "report.html", title="Run <1>")
    assert path.read_text(encoding="utf-8") == page
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.html"]


def test_report_without_findings_or_data():
    assert "No rule fired." in render_debugger_html(_report_recording(), [])
    page = render_debugger_html(Recording.from_rows([]), [])
    assert "The recording is empty." in page and "<img" not in page


def test_report_counts_nonfinite_values():
    recording = rec(losses({0: 1.0, 100: math.nan, 200: 0.5}), series("gradients", "w", "l2", {0: 1.0, 100: math.inf}))
    page = render_debugger_html(recording, R.evaluate_rules([R.ExplodingTensor()], recording))
    assert "ExplodingTensor" in page
    assert re.search(r"<img src='data:image/png;base64,[A-Za-z0-9+/=]{100,}'", page)
