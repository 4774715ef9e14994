"""BERT fine-tuning watched by the Debugger and the Profiler, for real, with a tiny BERT on the CPU.

Broken runs trip the rule they should and the stop action halts training at the step the rule
fired; a healthy run trips none. The CLI run registers a ``bert`` version in a real MLflow
store and the registered model predicts through the registry.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import wait_until
from sagestack.bert.data import csv_splits, encode
from sagestack.bert.model import build_model
from sagestack.bert.params import BertParams
from sagestack.bert.training import train
from sagestack.debugger.config import DebuggerConfig
from sagestack.debugger.events import TrainingCallback
from sagestack.debugger.hook import DebuggerHook, RuleAction
from sagestack.debugger.recording import Recording
from sagestack.debugger.rules import DEFAULT_RULES, RULES, evaluate_rules, parse_rule
from sagestack.errors import ConfigError

LENGTH = 48
# A learning rate at which the tiny BERT learns the sample (its loss falls) without diverging.
HEALTHY_LR = 2e-3


@pytest.fixture(scope="module")
def data(sample_csv):
    """The 600-review sample, split 90/5/5 and tokenized for the tiny BERT."""
    _, tokenizer, _ = build_model(tiny=True)
    parts = csv_splits(sample_csv, seed=42)
    return {name: encode(frame, tokenizer, LENGTH) for name, frame in parts.items()}, parts


def tiny():
    return build_model(tiny=True, seed=0)[0]


def run(model, data, rules, *, params: BertParams, interval: int = 1, stop: bool = True, out: Path,
        config: DebuggerConfig | None = None):
    """Train with a Debugger hook applying ``rules`` (with the stop action when ``stop``)."""
    actions = ("log", "report", "stop") if stop else ("log", "report")
    hook = DebuggerHook(out, config or DebuggerConfig(save_interval=interval),
                        [RuleAction(parse_rule(r), actions) for r in rules], num_labels=3)
    result = train(model, data[0]["train"], data[0]["validation"], params, callbacks=[hook], device="cpu")
    return result, hook


def test_exploding_tensor_stops_training_at_the_step_it_fired(data, tmp_path):
    """No clipping and an enormous learning rate: values overflow, ExplodingTensor fires, training stops there."""
    params = BertParams(max_seq_length=LENGTH, train_batch_size=16, epochs=3, learning_rate=1e30,
                        gradient_clipping=0, warmup_ratio=0, run_validation=False)
    result, hook = run(tiny(), data, ["ExplodingTensor"], params=params, out=tmp_path)
    [finding] = hook.result.findings
    assert finding.rule == "ExplodingTensor"
    assert result.stopped and hook.result.stopped and "ExplodingTensor" in result.stop_reason
    assert result.steps == finding.step + 1  # halted right after the step the rule fired on
    assert result.steps < 3 * len(data[0]["train"]) // 16  # long before the planned end
    # The same rule re-evaluated offline on the recording on disk fires at the same step.
    [offline] = evaluate_rules([parse_rule("ExplodingTensor")], Recording.load(tmp_path))
    assert offline.step == finding.step


def test_a_nan_loss_between_save_steps_stops_training_at_its_step(data, tmp_path):
    """The issue's diverged run in small: at the default save interval (100) the default rules with
    the stop action still halt training at the first NaN loss, a few steps in."""
    from sagestack.bert.job import make_rules

    params = BertParams(max_seq_length=LENGTH, train_batch_size=16, max_steps=20, learning_rate=1e6,
                        gradient_clipping=0, run_validation=False)
    hook = DebuggerHook(tmp_path, DebuggerConfig(), make_rules(None, stop=True), num_labels=3)
    result = train(tiny(), data[0]["train"], None, params, callbacks=[hook], device="cpu")
    [finding] = hook.result.findings
    assert finding.rule == "ExplodingTensor" and 0 < finding.step <= 5 and "loss value is nan" in finding.detail
    assert result.stopped and result.steps == finding.step + 1
    assert hook.result.nonfinite_loss == {"step": finding.step, "value": "nan"}


def test_all_zero_initialisation_trips_poor_initialisation_and_all_zero(data, tmp_path):
    model = tiny()
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
    params = BertParams(max_seq_length=LENGTH, train_batch_size=16, max_steps=12, warmup_ratio=0, run_validation=False)
    result, hook = run(model, data, ["PoorWeightInitialization", "AllZero"], params=params, stop=False,
                       out=tmp_path, config=DebuggerConfig(save_interval=1).with_requirements(
                           ("gradients",), {"gradients": ("zero_fraction",), "weights": ("zero_fraction",)}))
    fired = {f.rule: f.step for f in hook.result.findings}
    assert fired == {"PoorWeightInitialization": 0, "AllZero": 0}
    assert not result.stopped and result.steps == 12  # log/report only: training went on


def test_a_normally_initialised_model_trips_neither(data, tmp_path):
    params = BertParams(max_seq_length=LENGTH, train_batch_size=16, max_steps=12, warmup_ratio=0, run_validation=False,
                        learning_rate=HEALTHY_LR)
    _, hook = run(tiny(), data, ["PoorWeightInitialization", "AllZero"], params=params, stop=False, out=tmp_path)
    assert hook.result.findings == []


def test_shuffled_labels_trip_overfit(data, tmp_path):
    """Labels shuffled: the model memorises the training rows, the validation loss rises — Overfit."""
    encoded = data[0]
    shuffled = encode(data[1]["train"].assign(sentiment=data[1]["train"]["sentiment"].sample(frac=1, random_state=1)
                                              .to_numpy()), build_model(tiny=True)[1], LENGTH)
    params = BertParams(max_seq_length=LENGTH, train_batch_size=16, epochs=30, learning_rate=HEALTHY_LR,
                        warmup_ratio=0, validation_interval=10)
    hook = DebuggerHook(tmp_path, DebuggerConfig(save_interval=5), [RuleAction(parse_rule("Overfit"),
                                                                               ("log", "report", "stop"))], num_labels=3)
    result = train(tiny(), shuffled, encoded["validation"], params, callbacks=[hook], device="cpu")
    [finding] = hook.result.findings
    assert finding.rule == "Overfit" and result.stopped and result.steps == finding.step + 1


class StopAfter(TrainingCallback):
    """Stops training after a given step (a crash at an epoch boundary, for the resume test)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state):
        if state.step == self.step:
            state.request_stop("interrupted")


def test_a_resumed_run_continues_exactly_as_an_unbroken_one(data, tmp_path):
    """Stopped after epoch 1 and resumed, a run takes the same steps with the same losses as one
    that never stopped (weights, optimizer, schedule, shuffling and dropout RNG all restored)."""
    params = BertParams(max_seq_length=LENGTH, train_batch_size=32, epochs=2, learning_rate=HEALTHY_LR)
    train_rows, validation = data[0]["train"], data[0]["validation"]
    per_epoch = -(-len(train_rows) // 32)
    unbroken = train(tiny(), train_rows, validation, params, checkpoint_dir=tmp_path / "a", device="cpu")
    first = train(tiny(), train_rows, validation, params, checkpoint_dir=tmp_path / "b", device="cpu",
                  callbacks=[StopAfter(per_epoch - 1)])
    assert first.stopped and first.epochs_completed == 1 and first.steps == per_epoch
    resumed = train(tiny(), train_rows, validation, params, checkpoint_dir=tmp_path / "b", resume=True, device="cpu")
    assert resumed.steps == unbroken.steps == 2 * per_epoch and resumed.epochs_completed == 2
    assert resumed.losses == pytest.approx(unbroken.losses[per_epoch:], rel=1e-5)
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(tiny(), train_rows, None, params, checkpoint_dir=tmp_path / "none", resume=True, device="cpu")


def test_resuming_with_another_head_is_refused_in_one_line(data, tmp_path):
    params = BertParams(max_seq_length=LENGTH, train_batch_size=32, epochs=1, train_steps_per_epoch=2,
                        run_validation=False)
    train(tiny(), data[0]["train"], None, params, checkpoint_dir=tmp_path, device="cpu")  # checkpoints epoch 1
    mean_pooled = build_model(tiny=True, seed=0, pooling="mean")[0]
    with pytest.raises(ConfigError, match="holds another model .*resume with the model and --pooling"):
        train(mean_pooled, data[0]["train"], None, params.updated(epochs=2), checkpoint_dir=tmp_path, resume=True,
              device="cpu")


def test_max_steps_part_way_through_an_epoch_does_not_complete_it(data, tmp_path):
    params = BertParams(max_seq_length=LENGTH, train_batch_size=32, epochs=3, max_steps=20, run_validation=False)
    result = train(tiny(), data[0]["train"], None, params, checkpoint_dir=tmp_path, device="cpu")
    assert result.steps == 20 and result.epochs_completed == 1  # 17 batches an epoch: epoch 2 was cut short
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] == 1


class SlowStep(TrainingCallback):
    """One step that hangs for a while (a stuck data loader or a deadlock, in small)."""

    def on_step_end(self, state):
        if state.step == 3:
            time.sleep(5)


def test_the_stall_watchdog_reports_a_step_that_hangs_and_stops_training(data, tmp_path):
    params = BertParams(max_seq_length=LENGTH, train_batch_size=32, epochs=1, run_validation=False)
    hook = DebuggerHook(tmp_path, DebuggerConfig(save_interval=1),
                        [RuleAction(parse_rule("StalledTrainingRule:threshold=2"), ("log", "report", "stop"))],
                        num_labels=3)
    result = train(tiny(), data[0]["train"], None, params, callbacks=[hook, SlowStep()], device="cpu")
    [finding] = hook.result.findings
    assert finding.rule == "StalledTrainingRule" and finding.step == 3 and "no training step began" in finding.detail
    assert result.stopped and result.steps == 4
    assert json.loads((tmp_path / "findings.json").read_text())["findings"][0]["rule"] == "StalledTrainingRule"


@pytest.fixture(scope="module")
def cli_run(sagestack, sample_csv, tmp_path_factory):
    """The healthy run: `sagestack train bert --tiny` at a learning rate where the tiny BERT learns the
    sample (its validation loss falls) for 60 steps, with the default Debugger rules and the Profiler,
    and registers it. (Longer, it starts to memorise the 540 rows, and Overfit rightly fires.)"""
    root = tmp_path_factory.mktemp("bert")
    out = root / "run"
    proc = sagestack(root / "home", "train", "bert", "--data", str(sample_csv), "--tiny", "--max-steps", "60",
                     "--learning-rate", "3e-3", "--max-seq-length", str(LENGTH), "--train-batch-size", "16",
                     "--validation-interval", "20", "--debug-interval", "10", "--profile-start-step", "2",
                     "--profile-num-steps", "3", "--approve", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "home": root / "home", "summary": json.loads(proc.stdout)}


def test_a_healthy_run_trips_no_rule_and_is_reported_and_registered(cli_run, sample_csv, one_torch_thread):
    summary, out = cli_run["summary"], cli_run["out"]
    assert summary["findings"] == [] and summary["stopped"] is False and summary["stopped_by_rule"] is False
    assert summary["nonfinite_loss"] is None and "not_registered" not in summary
    history = summary["training"]["history"]
    assert [h["step"] for h in history] == [19, 33, 39, 59]  # every 20 steps, and at the end of epoch 1 (34 batches)
    assert history[-1]["validation_loss"] < history[0]["validation_loss"]  # it learned
    # Offline, the default rules on the recording on disk agree with the in-process verdict.
    assert evaluate_rules([parse_rule(r) for r in DEFAULT_RULES], Recording.load(out / "debugger")) == []
    assert summary["registered"]["version"] == "1" and summary["kind"] == "bert"
    assert summary["device"] == "cpu"
    # The reported test accuracy is the saved model's on the job's own test split (seed 42), recomputed here.
    from sagestack.models.evaluation import evaluate_predictor
    from sagestack.models.kinds import load_model

    test = csv_splits(sample_csv, seed=42)["test"]
    recomputed = evaluate_predictor(load_model(out / "model"), test["review_body"].tolist(), test["sentiment"].tolist())
    assert summary["test_accuracy"] == pytest.approx(recomputed.accuracy, abs=1.01 / len(test))
    for path in ("debugger/tensors.jsonl", "debugger/report.html", "debugger/findings.json", "profiler/system.jsonl",
                 "profiler/framework.jsonl", "profiler/trace/trace.json", "profiler/profiler-report.html",
                 "model/bert/config.json", "model/sagestack-model.json", "summary.json", "checkpoints/checkpoint.pt"):
        assert (out / path).is_file(), path
    result = json.loads((out / "result.json").read_text())  # every trainer's result.json, the same keys
    assert result["kind"] == "bert" and result["model_path"] == str(out / "model")
    assert result["validation_accuracy"] == summary["validation_accuracy"] and result["model_bytes"] > 0
    steps = [json.loads(line) for line in (out / "profiler" / "framework.jsonl").read_text().splitlines()]
    assert len(steps) == summary["training"]["steps"]


def test_a_diverged_run_is_caught_within_five_steps_and_never_registered(sagestack, cli_run, sample_csv):
    """The issue's run: no clipping, an enormous learning rate, the default save interval (100) and
    no stop action, asked to register as champion in the healthy run's home: the NaN loss is a
    finding a few steps in, and the registry gets no new version."""
    from sagestack.config import load_settings
    from sagestack.registry.models import list_models

    home, out = cli_run["home"], cli_run["out"].parent / "diverged"
    proc = sagestack(home, "train", "bert", "--data", str(sample_csv), "--tiny", "--max-steps", "8",
                     "--learning-rate", "1e6", "--gradient-clipping", "0", "--max-seq-length", str(LENGTH),
                     "--train-batch-size", "16", "--no-profile", "--approve", "--out", str(out), "--json",
                     env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    [finding] = [f for f in summary["findings"] if f["rule"] == "ExplodingTensor"]
    step = finding["step"]
    assert step <= 5 and "loss value is nan" in finding["detail"]
    assert summary["nonfinite_loss"] == {"step": step, "value": "nan"} and summary["stopped"] is False
    assert summary["registered"] is None
    assert summary["not_registered"].startswith(f"training loss became non-finite (nan) at step {step}; ")
    assert "training loss became non-finite (nan) at step" in (out / "debugger" / "report.html").read_text()
    assert json.loads((out / "debugger" / "findings.json").read_text())["nonfinite_loss"]["step"] == step
    [model] = list_models(load_settings(cwd=home.parent, environ={}, home=home))
    assert [v["version"] for v in model["versions"]] == ["1"]  # the healthy run's, and nothing new


@pytest.fixture(scope="module")
def minilm_run(sagestack, sample_csv, tmp_path_factory):
    """The default pretrained MiniLM BERT with a mean-pooled head, a few steps, registered as champion."""
    root = tmp_path_factory.mktemp("minilm")
    proc = sagestack(root / "home", "train", "bert", "--data", str(sample_csv), "--max-steps", "6", "--pooling", "mean",
                     "--max-seq-length", str(LENGTH), "--train-batch-size", "16", "--no-profile", "--approve",
                     "--out", str(root / "run"), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"home": root / "home", "summary": json.loads(proc.stdout)}


REVIEWS = ["The dress fits well and the fabric is lovely", "Cheap material, it tore after one wash"]


def test_registered_bert_predicts_through_the_registry_and_over_http(minilm_run):
    """The registered version reads back as the mean-pooled classifier it was trained as, and the
    same BentoML service that serves every kind serves it: in one worker process that holds every core
    (no worker count set), with OpenMP's own waits; a heavy kind, predicted off the event loop, so the
    one worker's /livez answers within 50 ms while slow predictions are in flight."""
    import os
    import threading

    import httpx
    import psutil

    from sagestack.config import load_settings
    from sagestack.registry import load_predictor, resolve_ref
    from sagestack.serving.requests import MAX_REVIEW_CHARS, MAX_REVIEWS_PER_REQUEST
    from sagestack.bento.launch import running_server

    assert minilm_run["summary"]["params"]["pooling"] == "mean"
    home = minilm_run["home"]
    settings = load_settings(cwd=home.parent, environ={}, home=home)
    assert resolve_ref(settings, "reviews-sentiment@champion").kind == "bert"
    predictor, _ = load_predictor(settings, "reviews-sentiment@champion")
    assert type(predictor.model).__name__ == "MeanPoolingClassifier"
    predictions = predictor.predict(REVIEWS)
    for prediction in predictions:
        assert prediction.label in (-1, 0, 1) and sum(prediction.probabilities.values()) == pytest.approx(1, abs=1e-4)
    with running_server(settings, "reviews-sentiment@champion", timeout=180) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        body = client.post("/predict", json={"reviews": REVIEWS}).json()
        assert body["model"]["kind"] == "bert" and body["model"]["alias"] == "champion"
        served = body["predictions"]
        assert [p["label"] for p in served] == [p.label for p in predictions]
        for answer, local in zip(served, predictions):
            assert answer["probabilities"] == pytest.approx(local.probabilities, abs=1e-4)
        assert client.post("/predict", json={"reviews": []}).status_code == 400
        workers = []
        for child in psutil.Process().children(recursive=True):  # BentoML's service workers
            try:  # a child that ended meanwhile (or a zombie not reaped yet) is no worker
                if child.status() != psutil.STATUS_ZOMBIE and "_bentoml_impl.worker.service" in " ".join(child.cmdline()):
                    workers.append(child)
            except psutil.Error:
                continue
        assert len(workers) == 1
        assert workers[0].environ().get("OMP_WAIT_POLICY") == os.environ.get("OMP_WAIT_POLICY")  # none added

        # The largest requests there are, two at once: seconds of CPU for the one worker.
        largest = {"reviews": [("The fabric is soft but the fit runs small. " * 200)[:MAX_REVIEW_CHARS]]
                   * MAX_REVIEWS_PER_REQUEST}
        statuses, in_flight = [], []

        def predict_largest() -> None:
            with httpx.Client(base_url=url, timeout=120) as own:
                statuses.append(own.post("/predict", json=largest).status_code)

        def predictions_in_progress() -> float:
            metrics = client.get("/metrics").text
            return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                       if line.startswith("bentoml_service_request_in_progress") and '"/predict"' in line)

        senders = [threading.Thread(target=predict_largest) for _ in range(2)]
        predicting = time.perf_counter()
        for sender in senders:
            sender.start()
        # Probe only once the server itself says both predictions are being served (not after a guessed sleep).
        wait_until(lambda: predictions_in_progress() >= 2 or not any(s.is_alive() for s in senders), 60,
                   "the server never had the two predictions in progress")
        while any(sender.is_alive() for sender in senders):
            started = time.perf_counter()
            assert client.get("/livez").status_code == 200
            in_flight.append(time.perf_counter() - started)
            time.sleep(0.05)
        predicted = time.perf_counter() - predicting
        assert statuses == [200] * 2
        assert len(in_flight) >= 3, f"the predictions finished too soon to test anything ({len(in_flight)} probes)"
        # Blocked behind a prediction, a probe would wait for its end (seconds). Answered from a free event
        # loop, each probe takes a small part of that, however busy the 2 cores are.
        assert max(in_flight) <= min(0.5, predicted / 4), (predicted, sorted(in_flight)[-5:])


def test_debug_rules_and_analyze(sagestack, cli_run, tmp_path):
    listed = sagestack(tmp_path / "home", "debug", "rules", "--json")
    assert listed.returncode == 0, listed.stderr
    listing = json.loads(listed.stdout)
    names = [r["name"] for r in listing["rules"]]
    assert sorted(names) == sorted(RULES) and len(names) == len(RULES)  # every registered rule, once
    assert listing["default"] == list(DEFAULT_RULES) and {"VanishingGradient", "StalledTrainingRule"} <= set(names)
    analyzed = sagestack(tmp_path / "home", "debug", "analyze", str(cli_run["out"]), "--rule",
                         "LossNotDecreasing:num_steps=2,diff_percent=90", "--json")
    assert analyzed.returncode == 0, analyzed.stderr
    result = json.loads(analyzed.stdout)
    # The loss fell, but by far less than 90 % within two records: the rule, asked to, fires.
    assert [f["rule"] for f in result["findings"]] == ["LossNotDecreasing"]
    assert Path(result["report"]).is_file() and "LossNotDecreasing" in Path(result["report"]).read_text()


def test_cli_user_errors_are_one_line(sagestack, cli_run, sample_csv, tmp_path):
    used = sagestack(tmp_path / "home", "train", "bert", "--data", str(sample_csv), "--tiny", "--out", str(cli_run["out"]))
    assert used.returncode == 2 and "pass a new --out, or --resume" in used.stderr and "Traceback" not in used.stderr
    for option, value, message in (("--profile-num-steps", "0", "--profile-num-steps must be 1 or more"),
                                   ("--device", "cuda", "no CUDA GPU is visible"),
                                   ("--resume", None, "holds no checkpoint")):
        out = tmp_path / f"out{option}"
        proc = sagestack(tmp_path / "home", "train", "bert", "--data", str(sample_csv), "--tiny", option,
                         *([value] if value else []), "--out", str(out))
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not out.exists()  # nothing written
    bad_rule = sagestack(tmp_path / "home", "train", "bert", "--data", str(sample_csv), "--tiny", "--rule", "NoSuchRule",
                         "--out", str(tmp_path / "x"))
    assert bad_rule.returncode == 2 and "NoSuchRule" in bad_rule.stderr and "Traceback" not in bad_rule.stderr
    assert not (tmp_path / "x").exists()


def test_the_hook_watches_a_transformers_trainer_and_stops_it(data, tmp_path):
    """The same hook as a TrainerCallback: Trainer's own loop, no clipping, an enormous learning
    rate → ExplodingTensor fires and Trainer stops at that step."""
    from transformers import Trainer, TrainingArguments

    from sagestack.debugger.trainer import as_trainer_callback

    train_rows = data[0]["train"]
    rows = [{"input_ids": torch.as_tensor(train_rows.input_ids[i]), "attention_mask": torch.as_tensor(train_rows.attention_mask[i]),
             "labels": torch.as_tensor(train_rows.labels[i])} for i in range(len(train_rows))]
    hook = DebuggerHook(tmp_path / "rec", DebuggerConfig(save_interval=1),
                        [RuleAction(parse_rule("ExplodingTensor"), ("log", "report", "stop"))], num_labels=3)
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=16, max_steps=30,
                             learning_rate=1e30, max_grad_norm=0.0, warmup_steps=0, logging_steps=1, save_strategy="no",
                             report_to=[], use_cpu=True, disable_tqdm=True, seed=0)
    trainer = Trainer(model=tiny(), args=args, train_dataset=rows, callbacks=[as_trainer_callback(hook)])
    trainer.train()
    [finding] = hook.result.findings
    assert finding.rule == "ExplodingTensor" and hook.result.stopped
    assert trainer.state.global_step == finding.step + 1 < 30
    recording = Recording.load(tmp_path / "rec")
    assert set(recording.frame["collection"]) >= {"gradients", "weights", "losses"}


def test_a_diverged_bert_branch_fails_its_pipeline_step_instead_of_competing(sample_split, tmp_path, one_torch_thread):
    """The pipeline's BERT step refuses a model whose training loss became non-finite, as `train bert` does."""
    from sagestack.errors import DataError
    from sagestack.models.kinds import get_kind
    from sagestack.workflows.sentiment import train_step

    params = get_kind("bert").params_template(dict(model="tiny", epochs=1, learning_rate=1e6, train_batch_size=16,
                                                   max_steps=4, max_seq_length=32))
    with pytest.raises(DataError, match="the BERT branch diverged: training loss became non-finite"):
        train_step("bert", sample_split, tmp_path / "model", tmp_path / "reports", params, seed=0)
    assert not (tmp_path / "model").exists()
