"""The Debugger hook: records reductions of tensors while training runs and applies the rules.

:class:`DebuggerHook` is a :class:`~sagestack.debugger.events.TrainingCallback`: any loop that
calls the event methods (sagestack's BERT loop, a plain ``torch.nn.Module`` + optimizer loop,
or transformers' ``Trainer`` through :mod:`sagestack.debugger.trainer`) gets recordings and
in-process rule evaluation. On a save step it reduces each tensor to a few scalars on the
tensor's own device and moves them to the host in one transfer, so recording costs a sync per
save step, not one per tensor. Rules run on the recording after every save step and
evaluation; a finding is logged, kept for the report and, when its rule's action says so,
stops training at that step.

Whatever the save interval, the loss of every step is checked: the first non-finite one is
recorded at its own step (a ``losses`` scalar, so ExplodingTensor judges it as it judges any
other) and the rules run at once. On a GPU the check reads an asynchronous host copy of the
loss when it has landed (a step or two later, never waiting), so no step pays a host sync.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from sagestack.debugger.config import DebuggerConfig
from sagestack.debugger.events import TrainingCallback, TrainingState
from sagestack.debugger.recording import SESSIONS, TENSORS_FILE, Recording, RecordingWriter

logger = logging.getLogger(__name__)

FINDINGS_FILE = "findings.json"
# Percentiles are taken over at most this many values of a tensor (an even stride through it).
PERCENTILE_SAMPLE = 100_000
ACTIONS = ("log", "report", "stop")


def reduce_tensor(tensor, names) -> dict:
    """Reductions of one tensor as 0-d tensors on its device (no host sync here).

    ``mean``, ``std`` (population), ``min``, ``max``, ``l2`` (‖x‖₂), ``abs_mean`` (mean |x|),
    ``zero_fraction`` (share of exact zeros), ``nonfinite`` (count of NaN/±inf), ``nan`` (count
    of NaN), ``p05``/``p95`` (percentiles of an even sample of at most 100,000 values).
    """
    import torch

    x = tensor.detach()
    x = x.float() if x.dtype != torch.float32 else x
    out = {}
    for name in names:
        if name == "mean":
            out[name] = x.mean()
        elif name == "std":
            out[name] = x.std(correction=0)
        elif name == "min":
            out[name] = x.min()
        elif name == "max":
            out[name] = x.max()
        elif name == "l2":
            out[name] = torch.linalg.vector_norm(x)
        elif name == "abs_mean":
            out[name] = x.abs().mean()
        elif name == "zero_fraction":
            out[name] = (x == 0).float().mean()
        elif name == "nonfinite":
            out[name] = (~torch.isfinite(x)).sum().float()
        elif name == "nan":
            out[name] = torch.isnan(x).sum().float()
        elif name in ("p05", "p95"):
            flat = x.flatten()
            if flat.numel() > PERCENTILE_SAMPLE:
                flat = flat[:: flat.numel() // PERCENTILE_SAMPLE + 1]
            out[name] = torch.quantile(flat, 0.05 if name == "p05" else 0.95)
        elif name == "saturated_fraction":
            out[name] = _saturated_fraction(x)
    return out


# SageMaker's saturation limits (SaturatedActivation's threshold_tanh/sigmoid defaults), as outputs.
TANH_SATURATED = math.tanh(9.4999)
SIGMOID_LOW, SIGMOID_HIGH = 1 / (1 + math.exp(23)), 1 / (1 + math.exp(-16.99999))


def _saturated_fraction(x):
    """Share of a tanh/sigmoid output's values at saturation (see ``rules.EXTRA_REDUCTIONS``):
    |y| ≥ tanh(9.4999) for tanh outputs (any y < 0), else y ≤ σ(−23) or y ≥ σ(16.99999)."""
    y = x.double()
    if bool((y < 0).any()):
        return (y.abs() >= TANH_SATURATED).float().mean()
    return ((y <= SIGMOID_LOW) | (y >= SIGMOID_HIGH)).float().mean()


@dataclass
class RuleAction:
    """A rule and what to do when it fires (any of ``log``, ``report``, ``stop``)."""

    rule: object
    actions: tuple[str, ...] = ("log", "report")


@dataclass
class HookResult:
    """What a finished run's hook saw: its findings, whether a rule stopped training, and the
    first non-finite training loss (``{"step", "value"}``, the value as text: ``nan``, ``inf``)."""

    findings: list = field(default_factory=list)
    stopped: bool = False
    stop_reason: str = ""
    nonfinite_loss: dict | None = None

    @property
    def divergence(self) -> str:
        """One line saying when the training loss became non-finite ("" if it never did)."""
        if not self.nonfinite_loss:
            return ""
        return f"training loss became non-finite ({self.nonfinite_loss['value']}) at step {self.nonfinite_loss['step']}"

    def to_dict(self) -> dict:
        """JSON form: ``{"findings": [{rule, step, detail}], "stopped": bool, "stop_reason": str,
        "nonfinite_loss": {step, value} | None}``."""
        return {"findings": [f.to_dict() for f in self.findings], "stopped": self.stopped,
                "stop_reason": self.stop_reason, "nonfinite_loss": self.nonfinite_loss}


class DebuggerHook(TrainingCallback):
    """Records tensors per :class:`DebuggerConfig` into ``out_dir`` and evaluates rules in-process.

    Args:
        out_dir: the recording folder (``tensors.jsonl``, ``run.json``, ``findings.json``).
        config: what to record; the rules' own needs are added to it.
        rules: :class:`RuleAction`s (or bare rules, which log and report).
        num_labels: classes, for the ``labels``/``predictions`` collections.
    """

    def __init__(self, out_dir: Path | str, config: DebuggerConfig | None = None, rules=(), num_labels: int = 0) -> None:
        self.out_dir = Path(out_dir)
        self.rules = [r if isinstance(r, RuleAction) else RuleAction(r) for r in rules]
        for action in self.rules:
            bad = set(action.actions) - set(ACTIONS)
            if bad:
                from sagestack.errors import ConfigError

                raise ConfigError(f"unknown rule action(s) {', '.join(sorted(bad))}; known: {', '.join(ACTIONS)}")
        config = config or DebuggerConfig()
        for action in self.rules:
            config = config.with_requirements(tuple(getattr(action.rule, "collections", ())),
                                              dict(getattr(action.rule, "reductions", {}) or {}),
                                              getattr(action.rule, "outputs_regex", None))
        self.config = config
        self.num_labels = num_labels
        self.result = HookResult()
        self._rows: list[dict] = []
        self._writer: RecordingWriter | None = None
        self._handles = []
        self._saving = False
        self._pending = []  # (collection, tensor name, {reduction: 0-d tensor})
        self._before_step: dict = {}
        self._fired: set[str] = set()
        self._include = re.compile(config.include_regex) if config.include_regex else None
        self._loss_sum, self._loss_count = None, 0
        self._watch_loss = True  # until the first non-finite loss is recorded
        self._loss_copies = deque()  # (step, host copy, CUDA event) of GPU losses on their way to the host
        self._last_event = time.time()
        self._lock = threading.Lock()  # the stall watchdog thread and the loop both apply rules
        self._state: TrainingState | None = None
        self._watchdog: threading.Thread | None = None
        self._done = threading.Event()

    # --- events -------------------------------------------------------------------------------
    def on_train_begin(self, state: TrainingState) -> None:
        self._state = state
        self._last_event = time.time()
        self._continue_recording()
        stall = [a for a in self.rules if self._rule_name(a.rule) == "StalledTrainingRule"]
        if stall:
            self._watchdog = threading.Thread(target=self._watch_stall, args=(stall[0],), daemon=True,
                                              name="debugger-stall-watchdog")
            self._watchdog.start()
        self._writer = RecordingWriter(self.out_dir)
        # A session marker: a resumed run's gap between sessions is not a stall.
        self._record(state.step, "train", SESSIONS, "start", "value", time.time())
        self._writer.write_run({"config": self.config.to_dict(), "rules": [self._rule_name(a.rule) for a in self.rules],
                                "num_labels": self.num_labels, "started": time.time()})
        if "outputs" in self.config.collections:
            pattern = re.compile(self.config.outputs_regex)
            for name, module in state.model.named_modules():
                if name and pattern.search(name):
                    self._handles.append(module.register_forward_hook(self._output_hook(name)))

    def on_phase_begin(self, state: TrainingState, phase: str) -> None:
        self._last_event = time.time()

    def on_epoch_end(self, state: TrainingState) -> None:
        self._last_event = time.time()  # after the epoch's evaluation and checkpoint

    def on_step_begin(self, state: TrainingState) -> None:
        self._last_event = time.time()
        self._saving = state.mode == "train" and self.config.should_save(state.step)

    def on_backward(self, state: TrainingState) -> None:
        if state.loss is not None:
            # The recorded train loss is the mean over the steps since the last record: one
            # batch's loss swings by 10-20 %, which would make the loss rules fire on noise.
            # Summed where it lives (a GPU tensor stays there): no host sync between records.
            self._loss_sum = state.loss if self._loss_sum is None else self._loss_sum + state.loss
            self._loss_count += 1
            self._check_loss(state)
        if not self._saving:
            return
        if "losses" in self.config.collections and self._loss_sum is not None:
            self._record(state.step, "train", "losses", "loss", "value", float(self._loss_sum) / self._loss_count)
            self._loss_sum, self._loss_count = None, 0
        if "gradients" in self.config.collections:
            names = self.config.reductions_of("gradients")
            for name, param in self._parameters(state.model):
                if param.grad is not None:
                    self._pending.append(("gradients", name, reduce_tensor(param.grad, names)))

    def on_pre_optimizer_step(self, state: TrainingState) -> None:
        # The learning rate this step uses (a scheduler steps right after the optimizer).
        if self._saving and "optimizer" in self.config.collections and state.optimizer is not None:
            self._record(state.step, "train", "optimizer", "learning_rate", "value", state.optimizer.param_groups[0]["lr"])
        if self._saving and self._wants("update_l2"):
            self._before_step = {name: p.detach().clone() for name, p in self._parameters(state.model)}

    def on_step_end(self, state: TrainingState) -> None:
        if not self._saving:
            return
        import torch

        for collection in ("weights", "biases"):
            if collection not in self.config.collections:
                continue
            names = self.config.reductions_of(collection)
            for name, param in self._parameters(state.model):
                if (collection == "biases") != name.endswith("bias"):
                    continue
                reductions = reduce_tensor(param, names)
                if name in self._before_step:
                    reductions["update_l2"] = torch.linalg.vector_norm(param.detach().float() - self._before_step[name].float())
                self._pending.append((collection, name, reductions))
        self._before_step = {}
        if state.labels is not None and self.num_labels:
            labels = state.labels.detach().flatten().long()
            if "labels" in self.config.collections:
                self._pending.append(("labels", None, torch.bincount(labels, minlength=self.num_labels)))
            if "predictions" in self.config.collections and state.predictions is not None:
                correct = labels[state.predictions.detach().flatten().long() == labels]
                self._pending.append(("predictions", None, torch.bincount(correct, minlength=self.num_labels)))
        self._flush(state.step, "train")
        self._saving = False
        self._apply_rules(state)

    def on_log(self, state: TrainingState, logs: dict[str, float]) -> None:
        # A loop that reports its loss here (transformers' Trainer: the mean over logging_steps)
        # gives no per-step loss to on_backward: record this one instead.
        if "loss" not in logs or self._loss_sum is not None:
            return
        if "losses" in self.config.collections:
            self._record(state.step, "train", "losses", "loss", "value", logs["loss"])
            self._watch_loss = self._watch_loss and math.isfinite(logs["loss"])
            self._apply_rules(state)
        else:
            self._loss_seen(state.step, float(logs["loss"]), state)

    def on_evaluate(self, state: TrainingState, metrics: dict[str, float]) -> None:
        self._last_event = time.time()
        if "losses" in self.config.collections and "validation_loss" in metrics:
            self._record(state.step, "eval", "losses", "loss", "value", metrics["validation_loss"])
        if "metrics" in self.config.collections:
            for key, value in metrics.items():
                self._record(state.step, "eval", "metrics", key, "value", value)
        self._apply_rules(state)

    def on_train_end(self, state: TrainingState) -> None:
        self._done.set()
        while self._loss_copies:
            step, host, event = self._loss_copies.popleft()
            event.synchronize()
            self._loss_seen(step, float(host), state)
        from sagestack.debugger.rules import first_nonfinite_loss

        first = first_nonfinite_loss(self.recording())
        # The value as text: JSON has no NaN, and "nan"/"inf" is what a person reads anyway.
        self.result.nonfinite_loss = {"step": first[0], "value": str(first[1])} if first else None
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._writer is not None:
            self._writer.close()
        with self._lock:
            (self.out_dir / FINDINGS_FILE).write_text(json.dumps(self.result.to_dict(), indent=2), encoding="utf-8")

    def _continue_recording(self) -> None:
        """On a resumed run, start from what the folder already holds: the scalars (so the rules
        judge the whole run, as offline analysis does) and the findings (a rule that fired before
        is not acted on again)."""
        from sagestack.lazy import read_jsonl

        if (self.out_dir / TENSORS_FILE).is_file():
            self._rows = read_jsonl(self.out_dir / TENSORS_FILE)
        if (self.out_dir / FINDINGS_FILE).is_file():
            from sagestack.debugger.rules import Finding

            earlier = json.loads((self.out_dir / FINDINGS_FILE).read_text(encoding="utf-8"))
            self.result.findings = [Finding(**f) for f in earlier.get("findings", [])]
            self._fired = {f.rule for f in self.result.findings}
            self._watch_loss = not earlier.get("nonfinite_loss")

    # --- the loss of every step -----------------------------------------------------------------
    def _check_loss(self, state: TrainingState) -> None:
        """Check this step's loss for NaN/inf, whatever the save interval. A host-side loss is read
        now; a GPU one is copied to the host asynchronously and read once the copy has landed."""
        if not self._watch_loss:
            return
        loss = state.loss
        if not getattr(loss, "is_cuda", False):
            self._loss_seen(state.step, float(loss), state)
            return
        import torch

        host = loss.detach().float().to("cpu", non_blocking=True)  # pinned and asynchronous
        event = torch.cuda.Event()
        event.record()
        self._loss_copies.append((state.step, host, event))
        while self._loss_copies and self._loss_copies[0][2].query():
            step, host, _ = self._loss_copies.popleft()
            self._loss_seen(step, float(host), state)

    def _loss_seen(self, step: int, value: float, state: TrainingState) -> None:
        """Record the first non-finite loss at its own step and judge the recording at once."""
        if not self._watch_loss or math.isfinite(value):
            return
        self._watch_loss = False
        self._loss_copies.clear()
        if step == state.step and self._saving and "losses" in self.config.collections:
            return  # this save step records the loss (the window's mean, non-finite too) and runs the rules
        self._record(step, "train", "losses", "loss", "value", value)
        self._apply_rules(state)

    # --- recording ----------------------------------------------------------------------------
    def _wants(self, reduction: str) -> bool:
        return any(reduction in self.config.reductions_of(c) for c in ("weights", "biases"))

    def _parameters(self, model):
        for name, param in model.named_parameters():
            if param.requires_grad and (self._include is None or self._include.search(name)):
                yield name, param

    def _output_hook(self, name: str):
        def hook(module, inputs, output):
            if not self._saving:
                return
            tensor = output[0] if isinstance(output, (tuple, list)) else getattr(output, "logits", output)
            if hasattr(tensor, "detach"):
                self._pending.append(("outputs", name, reduce_tensor(tensor, self.config.reductions_of("outputs"))))
        return hook

    def _record(self, step: int, mode: str, collection: str, tensor: str, reduction: str, value: float) -> None:
        row = {"step": step, "mode": mode, "collection": collection, "tensor": tensor, "reduction": reduction,
               "value": float(value), "wall_time": time.time()}
        self._rows.append(row)
        if self._writer is not None:
            self._writer.write(**row)

    def _flush(self, step: int, mode: str) -> None:
        """Move every pending 0-d tensor to the host in one transfer, then write the scalars."""
        import torch

        if not self._pending:
            return
        keys, values = [], []
        for collection, name, reductions in self._pending:
            if name is None:  # per-class counts
                for label, count in enumerate(reductions):
                    keys.append((collection, f"class_{label}", "count"))
                    values.append(count.float())
            else:
                for reduction, value in reductions.items():
                    keys.append((collection, name, reduction))
                    values.append(value.float())
        host = torch.stack([v.to(values[0].device) for v in values]).cpu().tolist()
        self._pending = []
        for (collection, name, reduction), value in zip(keys, host):
            self._record(step, mode, collection, name, reduction, value)

    # --- rules --------------------------------------------------------------------------------
    @staticmethod
    def _rule_name(rule) -> str:
        return getattr(rule, "name", type(rule).__name__)

    def recording(self) -> Recording:
        """The scalars recorded so far."""
        return Recording.from_rows(list(self._rows), {"num_labels": self.num_labels})

    def _watch_stall(self, action: RuleAction) -> None:
        """In-process StalledTrainingRule: a stuck step records nothing, so a timer must notice it."""
        from sagestack.debugger.rules import Finding, stalled

        threshold = float(getattr(action.rule, "threshold", 1800))
        while not self._done.wait(min(60.0, max(0.05, threshold / 10))):
            now = time.time()
            if stalled(self._last_event, now, threshold):
                state = self._state
                finding = Finding(action.rule.name, state.step,
                                  f"no training step began for {now - self._last_event:.0f} s > threshold {threshold:g} s")
                with self._lock:
                    self._act(action, finding, state)
                return

    def _apply_rules(self, state: TrainingState) -> None:
        with self._lock:
            self._apply_rules_locked(state)

    def _act(self, action: RuleAction, finding, state: TrainingState) -> None:
        """Do what the rule's actions say with a finding (once per rule)."""
        if finding.rule in self._fired:
            return
        self._fired.add(finding.rule)
        if "report" in action.actions or "stop" in action.actions:
            self.result.findings.append(finding)
            self.result.findings.sort(key=lambda f: f.step)
        if "log" in action.actions:
            logger.warning("Debugger rule %s fired at step %s: %s", finding.rule, finding.step, finding.detail)
        if "stop" in action.actions and not self.result.stopped:
            self.result.stopped = True
            self.result.stop_reason = f"{finding.rule} fired at step {finding.step}: {finding.detail}"
            state.request_stop(self.result.stop_reason)

    def _apply_rules_locked(self, state: TrainingState) -> None:
        waiting = [a for a in self.rules if self._rule_name(a.rule) not in self._fired]
        if not waiting:
            return
        recording = self.recording()
        for action in waiting:
            finding = action.rule.evaluate(recording)
            if finding is not None:
                self._act(action, finding, state)
