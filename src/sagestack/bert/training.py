"""The fine-tuning loop: plain PyTorch, the same code on a GPU (bf16 autocast) and on a CPU.

Hooks (the Debugger, the Profiler, anything with :class:`~sagestack.debugger.events.TrainingCallback`'s
event methods) see every phase of every step and may stop training. The loop checkpoints at
the end of each epoch (``checkpoint.pt``: weights, optimizer, schedule, step, RNG states) and
``resume=True`` continues from the last one. It imports only torch, transformers, numpy and
pandas (plus sagestack's framework-free modules), so it runs on a stock PyTorch image.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sagestack.bert.params import BertParams
from sagestack.debugger.events import CallbackList, TrainingCallback, TrainingState
from sagestack.errors import ConfigError

logger = logging.getLogger(__name__)
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class TrainResult:
    """What a fine-tuning run did.

    Attributes:
        steps: optimizer steps taken (in all, across resumes).
        epochs_completed: whole epochs finished.
        stopped: training ended before its planned steps (a hook or early stopping).
        stop_reason: why, in one line ("" when it ran to the end).
        history: one dict per evaluation (step, epoch, validation_loss, validation_accuracy).
        best_validation_accuracy: the best evaluation's accuracy (its weights are the ones kept).
        train_seconds: wall time of the loop in this run (not counting evaluation).
        samples_per_second: training rows per second of ``train_seconds``.
        device: where it ran (``cuda``/``cpu``); bf16 whether autocast to bfloat16 was on.
        losses: the training loss of every step (float).
    """

    steps: int = 0
    epochs_completed: int = 0
    stopped: bool = False
    stop_reason: str = ""
    history: list[dict] = field(default_factory=list)
    best_validation_accuracy: float | None = None
    train_seconds: float = 0.0
    samples_per_second: float = 0.0
    device: str = "cpu"
    bf16: bool = False
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON form (without the per-step losses)."""
        return {k: v for k, v in self.__dict__.items() if k != "losses"}


def pick_device(requested: str | None = None) -> str:
    """``cuda`` when a GPU is present (or asked for), else ``cpu``.

    Raises:
        ConfigError: ``cuda`` asked for and none is present.
    """
    import torch

    if requested in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for but no CUDA GPU is visible; use --device cpu or auto")
    if requested not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {requested!r}; use auto, cpu or cuda")
    return requested


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _optimizer(model, params: BertParams):
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            # Biases and LayerNorm weights are not decayed (as BERT's recipe).
            (no_decay if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    return torch.optim.AdamW([{"params": decay, "weight_decay": params.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=params.learning_rate)


def _schedule(optimizer, total_steps: int, warmup_ratio: float):
    """Linear warmup over ``warmup_ratio`` of the steps, then linear decay to 0."""
    import torch

    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _loader(dataset, batch_size: int, shuffle: bool, seed: int, device: str, workers: int):
    import torch
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=workers, pin_memory=device == "cuda", persistent_workers=workers > 0)


def evaluate(model, loader, device: str, bf16: bool, max_batches: int = 0) -> dict[str, float]:
    """Mean cross-entropy and accuracy over (up to ``max_batches`` of) a loader."""
    import torch

    model.eval()
    total_loss, correct, rows = 0.0, 0, 0
    with torch.no_grad():
        for index, (ids, mask, labels) in enumerate(loader):
            if max_batches and index >= max_batches:
                break
            ids, mask, labels = (t.to(device, non_blocking=True) for t in (ids, mask, labels))
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=ids, attention_mask=mask).logits
            total_loss += torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item()
            correct += int((logits.argmax(-1) == labels).sum())
            rows += len(labels)
    model.train()
    if not rows:
        return {}
    return {"validation_loss": total_loss / rows, "validation_accuracy": correct / rows}


def _save_checkpoint(path: Path, model, optimizer, scheduler, state: TrainingState, best: dict) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": state.step, "epoch": state.epoch + 1, "best": best,
                "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}},
               tmp)
    os.replace(tmp, path)  # a crash while saving never leaves a half-written checkpoint


def train(
    model,
    train_data,
    validation_data=None,
    params: BertParams | None = None,
    *,
    callbacks: list[TrainingCallback] | tuple = (),
    device: str | None = None,
    checkpoint_dir: Path | str | None = None,
    resume: bool = False,
    bf16: bool | None = None,
    progress=None,
) -> TrainResult:
    """Fine-tune ``model`` (a Hugging Face sequence classifier) on tokenized data.

    Args:
        model: the model; trained in place, and left holding the best validation weights.
        train_data / validation_data: :class:`~sagestack.bert.data.Encoded` splits (or any
            ``torch`` dataset of (input_ids, attention_mask, labels)).
        params: hyperparameters (default :class:`BertParams`).
        callbacks: training hooks, called in order at every event.
        device: ``auto``/``None``, ``cpu`` or ``cuda``.
        checkpoint_dir: where ``checkpoint.pt`` is written after each epoch (``None``: no checkpoints).
        resume: continue from ``checkpoint_dir``'s checkpoint.
        bf16: autocast to bfloat16 (``None``: on a GPU that supports it; never on a CPU).
        progress: ``progress(message)`` for one-line updates, or ``None``.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ConfigError: ``resume`` without a checkpoint, or a device that is not there.
    """
    import torch

    params = params or BertParams()
    device = pick_device(device)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported() and bf16 is not False
    workers = params.num_workers if params.num_workers >= 0 else (2 if device == "cuda" else 0)
    seed_everything(params.seed)
    train_set = train_data.dataset() if hasattr(train_data, "dataset") else train_data
    loader = _loader(train_set, params.train_batch_size, True, params.seed, device, workers)
    validation_loader = None
    if params.run_validation and validation_data is not None and len(validation_data):
        validation_set = validation_data.dataset() if hasattr(validation_data, "dataset") else validation_data
        validation_loader = _loader(validation_set, params.validation_batch_size, False, params.seed, device, workers)
    steps_per_epoch = len(loader) if not params.train_steps_per_epoch else min(len(loader), params.train_steps_per_epoch)
    total_steps = steps_per_epoch * params.epochs
    if params.max_steps:
        total_steps = min(total_steps, params.max_steps)

    model.to(device)
    model.train()
    optimizer = _optimizer(model, params)
    scheduler = _schedule(optimizer, total_steps, params.warmup_ratio)
    hooks = CallbackList(list(callbacks))
    state = TrainingState(model=model, optimizer=optimizer,
                          extra={"device": device, "bf16": bf16, "num_workers": workers, "total_steps": total_steps})
    result = TrainResult(device=device, bf16=bf16)
    best = {"accuracy": None, "weights": None, "stale": 0}
    start_epoch = 0
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir else None
    if resume:
        if checkpoint is None or not checkpoint.is_file():
            raise ConfigError(f"--resume: no checkpoint in {checkpoint_dir}; train without --resume first")
        # Map to the CPU first: RNG states must stay CPU byte tensors; load_state_dict moves weights.
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        try:
            model.load_state_dict(saved["model"])
        except RuntimeError:  # missing/unexpected keys or shapes: another architecture or head
            raise ConfigError(f"--resume: the checkpoint in {checkpoint_dir} holds another model (architecture or "
                              "--pooling); resume with the model and --pooling it was trained with") from None
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state.step, start_epoch = saved["step"], saved["epoch"]
        best.update(saved["best"])
        random.setstate(saved["rng"]["python"])
        np.random.set_state(saved["rng"]["numpy"])
        torch.set_rng_state(saved["rng"]["torch"].cpu())
        if device == "cuda" and saved["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all([state.cpu() for state in saved["rng"]["cuda"]])
        # Each epoch reshuffles from a seed of its own, so a resumed run sees the batches an unbroken one would.
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)

    def run_evaluation() -> None:
        if validation_loader is None or state.step == 0:
            return
        state.mode = "eval"
        metrics = evaluate(model, validation_loader, device, bf16, params.validation_steps_per_epoch)
        state.mode = "train"
        if not metrics:
            return
        state.metrics = metrics
        # An evaluation belongs to the step it follows: a rule that fires on it stops training
        # there, as a rule firing on a step's own tensors does.
        state.step -= 1
        result.history.append({"step": state.step, "epoch": state.epoch, **metrics})
        if progress:
            # key=value, so a log scraper (Katib's StdOut metrics collector) reads it.
            progress(f"step {state.step}: validation_loss={metrics['validation_loss']:.4f} "
                     f"validation_accuracy={metrics['validation_accuracy']:.4f}")
        hooks.on_evaluate(state, metrics)
        state.step += 1
        if not math.isfinite(metrics["validation_loss"]):
            return  # diverged weights (NaN logits argmax to class 0) are never kept as the best
        if best["accuracy"] is None or metrics["validation_accuracy"] > best["accuracy"]:
            best.update(accuracy=metrics["validation_accuracy"], stale=0,
                        weights={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
        else:
            best["stale"] += 1
            if params.early_stopping_patience and best["stale"] >= params.early_stopping_patience:
                state.request_stop(f"early stopping: no better validation accuracy in "
                                   f"{params.early_stopping_patience} evaluations")

    seen_rows, loop_seconds = 0, 0.0
    hooks.on_train_begin(state)
    try:
        for epoch in range(start_epoch, params.epochs):
            if state.should_stop or (params.max_steps and state.step >= params.max_steps):
                break
            state.epoch = epoch
            loader.generator.manual_seed(params.seed + epoch)
            hooks.on_epoch_begin(state)
            started = time.perf_counter()
            first_step = state.step
            batches = iter(loader)
            for _ in range(steps_per_epoch):
                hooks.on_phase_begin(state, "data")
                ids, mask, labels = next(batches)
                ids, mask, labels = (t.to(device, non_blocking=True) for t in (ids, mask, labels))
                hooks.on_phase_end(state, "data")
                state.batch_size, state.labels, state.loss = len(labels), labels, None
                hooks.on_step_begin(state)

                hooks.on_phase_begin(state, "forward")
                with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(input_ids=ids, attention_mask=mask).logits
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
                hooks.on_phase_end(state, "forward")
                state.predictions = logits.detach().argmax(-1)
                hooks.on_forward_end(state, logits)

                hooks.on_phase_begin(state, "backward")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                hooks.on_phase_end(state, "backward")
                state.loss = loss.detach()
                hooks.on_backward(state)

                hooks.on_phase_begin(state, "optimizer")
                if params.gradient_clipping:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), params.gradient_clipping)
                hooks.on_pre_optimizer_step(state)
                optimizer.step()
                scheduler.step()
                hooks.on_phase_end(state, "optimizer")
                hooks.on_step_end(state)
                result.losses.append(state.loss)
                seen_rows += state.batch_size
                state.step += 1
                if params.validation_interval and state.step % params.validation_interval == 0:
                    loop_seconds += time.perf_counter() - started
                    run_evaluation()
                    started = time.perf_counter()
                if state.should_stop or (params.max_steps and state.step >= params.max_steps):
                    break
            loop_seconds += time.perf_counter() - started
            if not (params.validation_interval and state.step % params.validation_interval == 0):
                run_evaluation()
            # An epoch counts (and is checkpointed) only when all its batches ran: a run stopped
            # by a hook or by max_steps part-way resumes at the start of that epoch.
            if state.step - first_step == steps_per_epoch:
                result.epochs_completed = epoch + 1
                if checkpoint is not None:
                    _save_checkpoint(checkpoint, model, optimizer, scheduler, state, best)
            hooks.on_epoch_end(state)
            if progress:
                progress(f"epoch {epoch + 1}/{params.epochs} done at step {state.step}")
    finally:
        result.losses = [float(v) for v in result.losses]  # one host copy at the end, not one per step
        hooks.on_train_end(state)
    if best["weights"] is not None:
        model.load_state_dict(best["weights"])
    result.steps = state.step
    result.stopped = state.should_stop
    result.stop_reason = state.stop_reason
    result.best_validation_accuracy = best["accuracy"]
    result.train_seconds = round(loop_seconds, 3)
    result.samples_per_second = round(seen_rows / loop_seconds, 2) if loop_seconds else 0.0
    if any(not math.isfinite(v) for v in result.losses[-1:]):
        logger.warning("the training loss ended non-finite; the kept weights are %s",
                       "the best validation ones" if best["weights"] is not None
                       else "the diverged ones (no evaluation had a finite loss)")
    return result
