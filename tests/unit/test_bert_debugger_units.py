"""Pure parts of BERT training and the Debugger hook: hyperparameters, tokenizer fingerprints,
recording configuration, tensor reductions and event dispatch (tiny in-code inputs)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from sagestack.bert.data import tokenizer_fingerprint
from sagestack.bert.params import COURSE_NAMES, BertParams
from sagestack.debugger.config import DebuggerConfig
from sagestack.debugger.events import CallbackList, TrainingCallback, TrainingState
from sagestack.debugger.hook import reduce_tensor
from sagestack.errors import ConfigError


def test_params_have_the_course_names_and_check_values():
    params = BertParams()
    assert set(COURSE_NAMES) <= set(params.to_dict())
    assert params.updated(epochs=5, learning_rate=None).epochs == 5 and params.updated(learning_rate=None) == params
    with pytest.raises(ConfigError, match="^--learning-rate must be above 0, got 0"):
        params.updated(learning_rate=0)
    with pytest.raises(ConfigError, match="^--train-batch-size must be 1 or more"):
        params.updated(train_batch_size=0)
    with pytest.raises(ConfigError, match="^--gradient-clipping must be 0 or more"):
        params.updated(gradient_clipping=-1)
    with pytest.raises(ConfigError, match="^unknown BERT hyperparameter\\(s\\) lr;"):
        params.updated(lr=1e-3)
    with pytest.raises(ConfigError, match="512 or less"):
        params.updated(max_seq_length=1024)
    with pytest.raises(ConfigError, match="^--pooling must be cls or mean, got 'max'"):
        params.updated(pooling="max")


def test_the_mean_pooled_head_ignores_padding_and_reads_back_as_saved(tmp_path):
    """Padding a review changes none of its logits (the mean runs over real tokens only), and what
    ``save_pretrained`` writes, ``load_classifier`` reads back as the same model."""
    from sagestack.bert.model import build_model
    from sagestack.models.bert_network import load_classifier

    model, tokenizer, _ = build_model(tiny=True, pooling="mean")
    model.eval()
    short = tokenizer(["lovely dress"], return_tensors="pt")
    padded = tokenizer(["lovely dress"], padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        logits = model(**short).logits
        assert torch.allclose(logits, model(**padded).logits, atol=1e-5)
    model.save_pretrained(str(tmp_path))
    again = load_classifier(tmp_path).eval()
    assert type(again) is type(model) and again.config.id2label == {0: "-1", 1: "0", 2: "1"}
    with torch.no_grad():
        assert torch.allclose(again(**short).logits, logits, atol=1e-6)
    with pytest.raises(ConfigError, match="^--pooling must be one of cls, mean"):
        build_model(tiny=True, pooling="max")
    # A [CLS]-head model fine-tuned from that mean-pooled checkpoint says "cls" and reads back as one.
    tokenizer.save_pretrained(str(tmp_path))
    cls_model = build_model(tmp_path, pooling="cls")[0]
    cls_dir = tmp_path / "cls"
    cls_model.save_pretrained(str(cls_dir))
    assert type(load_classifier(cls_dir)).__name__ == "BertForSequenceClassification"


def test_tokenizer_fingerprint_changes_with_what_changes_the_ids():
    from sagestack.features.engineering import load_tokenizer

    tokenizer = load_tokenizer()
    assert tokenizer_fingerprint(tokenizer, 128) == tokenizer_fingerprint(load_tokenizer(), 128)
    assert tokenizer_fingerprint(tokenizer, 128) != tokenizer_fingerprint(tokenizer, 64)
    tokenizer(["some text"], padding="max_length", truncation=True, max_length=32)  # per-call state is not part of it
    assert tokenizer_fingerprint(tokenizer, 128) == tokenizer_fingerprint(load_tokenizer(), 128)
    cased = load_tokenizer()
    cased.backend_tokenizer.normalizer = None  # no lower-casing: other ids for "Dress" than "dress"
    assert tokenizer_fingerprint(cased, 128) != tokenizer_fingerprint(tokenizer, 128)


def test_config_validates_and_merges_rule_needs():
    config = DebuggerConfig(save_interval=10)
    assert [s for s in range(25) if config.should_save(s)] == [0, 10, 20]
    assert [s for s in range(25) if DebuggerConfig(save_steps=(3, 7)).should_save(s)] == [3, 7]
    merged = config.with_requirements(("outputs",), {"gradients": ("p05",), "weights": ("update_l2",)}, r"(?i)relu")
    assert "outputs" in merged.collections and merged.reductions_of("gradients")[-1] == "p05"
    assert "update_l2" in merged.reductions_of("weights") and merged.reductions_of("gradients")[:1] == ("l2",)
    pattern = re.compile(merged.outputs_regex)
    assert pattern.search("bert.encoder.layer.0.intermediate.dense") and pattern.search("Block.ReLU")
    assert not pattern.search("bert.encoder.layer.0.output.dense")
    with pytest.raises(ConfigError, match="unknown debugger collection\\(s\\) grads"):
        DebuggerConfig(collections=("grads",))
    with pytest.raises(ConfigError, match="unknown reduction\\(s\\) median for gradients"):
        DebuggerConfig(reductions={"gradients": ("median",)})
    with pytest.raises(ConfigError, match="save_interval must be 1 or more"):
        DebuggerConfig(save_interval=0)


def test_reductions_by_hand():
    x = torch.tensor([[0.0, 3.0], [-4.0, 1.0]])
    got = {k: float(v) for k, v in reduce_tensor(x, ("mean", "std", "min", "max", "l2", "abs_mean", "zero_fraction",
                                                        "nonfinite", "nan")).items()}
    assert got == pytest.approx({"mean": 0.0, "std": math.sqrt(6.5), "min": -4.0, "max": 3.0, "l2": math.sqrt(26),
                                 "abs_mean": 2.0, "zero_fraction": 0.25, "nonfinite": 0.0, "nan": 0.0})
    bad = torch.tensor([float("nan"), float("inf"), 1.0])
    assert float(reduce_tensor(bad, ("nonfinite",))["nonfinite"]) == 2 and float(reduce_tensor(bad, ("nan",))["nan"]) == 1
    ramp = torch.arange(101, dtype=torch.float32)
    percentiles = reduce_tensor(ramp, ("p05", "p95"))
    assert float(percentiles["p05"]) == pytest.approx(5) and float(percentiles["p95"]) == pytest.approx(95)
    # Saturation at SageMaker's limits: tanh outputs at ±1, sigmoid outputs at 0 or 1.
    tanh = torch.tanh(torch.tensor([-20.0, 0.5, 20.0, 0.0]))
    assert float(reduce_tensor(tanh, ("saturated_fraction",))["saturated_fraction"]) == 0.5
    sigmoid = torch.sigmoid(torch.tensor([-30.0, 0.0, 1.0, 30.0]))
    assert float(reduce_tensor(sigmoid, ("saturated_fraction",))["saturated_fraction"]) == 0.5


def test_callbacks_are_called_in_order_and_may_stop():
    calls = []

    class Recorder(TrainingCallback):
        def __init__(self, name):
            self.name = name

        def on_step_end(self, state):
            calls.append(self.name)
            if self.name == "second":
                state.request_stop("enough")
                state.request_stop("ignored: the first reason is kept")

    state = TrainingState(model=None)
    CallbackList([Recorder("first"), Recorder("second")]).on_step_end(state)
    assert calls == ["first", "second"] and state.should_stop and state.stop_reason == "enough"
    CallbackList([Recorder("first")]).on_train_begin(state)  # events a callback does not define are no-ops


def test_a_gap_between_a_run_and_its_resumption_is_no_stall():
    from sagestack.debugger.recording import SESSIONS, Recording
    from sagestack.debugger.rules import StalledTrainingRule

    rows = [{"step": 0, "collection": SESSIONS, "tensor": "start", "reduction": "value", "value": 0.0, "wall_time": 0.0},
            {"step": 0, "collection": "losses", "tensor": "loss", "reduction": "value", "value": 1.1, "wall_time": 1.0},
            {"step": 9, "collection": "losses", "tensor": "loss", "reduction": "value", "value": 1.0, "wall_time": 9.0},
            # resumed an hour later
            {"step": 10, "collection": SESSIONS, "tensor": "start", "reduction": "value", "value": 0.0, "wall_time": 3609.0},
            {"step": 10, "collection": "losses", "tensor": "loss", "reduction": "value", "value": 0.9, "wall_time": 3610.0}]
    rule = StalledTrainingRule(threshold=60)
    assert rule.evaluate(Recording.from_rows(rows)) is None
    stuck = rows + [{"step": 11, "collection": "losses", "tensor": "loss", "reduction": "value", "value": 0.9,
                     "wall_time": 3800.0}]
    assert rule.evaluate(Recording.from_rows(stuck)).step == 11


def test_the_refit_is_skipped_when_no_time_is_left():
    from sagestack.automl.search import REFIT_ALLOWANCE, AutoMLSpec, FitResult, refit_best

    def fit(used: float, best_fit: float) -> FitResult:
        # No AutoGluon predictor: the decision is taken before it would be touched.
        return FitResult(tabular=None, candidates=[], fitted=["CatBoost"], fit_seconds=used,
                         leaderboard=[{"name": "CatBoost", "fit_seconds": best_fit}])

    late = fit(used=120.0, best_fit=REFIT_ALLOWANCE + 20)
    assert refit_best(late, AutoMLSpec(time_limit=120)) is None
    assert late.refit_name is None and "would take about 50 s, more than the 30 s left" in late.refit_skipped
    assert refit_best(fit(used=80.0, best_fit=10.0), AutoMLSpec(time_limit=120, refit=False)) is None
