"""Training events: the event methods every training hook implements, and the state they see.

A training loop (sagestack's BERT loop, any plain ``torch.nn.Module`` + optimizer loop, or
transformers' ``Trainer`` through an adapter) calls the same methods on each callback in
order. Callbacks never own the loop: they read :class:`TrainingState` and may set
``state.should_stop`` to ask the loop to halt after the current step. (transformers'
``TrainerCallback`` and sagemaker-debugger's hook, without its global singleton.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainingState:
    """What a callback sees of the training run at an event.

    Attributes:
        model: the ``torch.nn.Module`` being trained.
        optimizer: its ``torch.optim.Optimizer`` (``None`` when not known).
        step: the global step, counted from 0; ``on_step_begin`` of the first batch sees 0.
        epoch: the epoch, counted from 0.
        mode: ``"train"`` or ``"eval"`` (set by the loop around evaluation).
        loss: the loss of the current batch once ``on_backward`` has run: a float or a 0-d tensor
            (loops on a GPU pass the tensor so no step waits for a host copy; ``float(state.loss)``
            reads it).
        batch_size: rows in the current batch.
        labels: the current batch's label ids (a tensor) when known, else ``None``.
        predictions: the current batch's predicted label ids (a tensor) when known, else ``None``.
        metrics: the last evaluation's figures (e.g. ``{"validation_loss": .., "validation_accuracy": ..}``).
        should_stop: set by a callback to halt training after this step.
        stop_reason: why, in one line.
        extra: anything else a loop shares (e.g. the device).
    """

    model: Any
    optimizer: Any = None
    step: int = 0
    epoch: int = 0
    mode: str = "train"
    loss: Any = None
    batch_size: int = 0
    labels: Any = None
    predictions: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    should_stop: bool = False
    stop_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current step (the first reason given is kept)."""
        if not self.should_stop:
            self.should_stop = True
            self.stop_reason = reason


class TrainingCallback:
    """Base class of training hooks: every event method is a no-op; override the ones you need.

    Order of events in one training step: ``on_step_begin`` → (forward) ``on_forward_end`` →
    (backward) ``on_backward`` → ``on_pre_optimizer_step`` → (optimizer step) ``on_step_end``.
    Phases (``"data"``, ``"forward"``, ``"backward"``, ``"optimizer"``) are also announced through
    ``on_phase_begin``/``on_phase_end`` so a profiler can time them. The ``data`` phase (loading
    the batch) comes before ``on_step_begin``, with ``state.step`` already the number of the step
    the batch is for; the other phases come between ``on_step_begin`` and ``on_step_end``.
    """

    def on_train_begin(self, state: TrainingState) -> None:
        """Before the first step."""

    def on_epoch_begin(self, state: TrainingState) -> None:
        """At the start of each epoch."""

    def on_phase_begin(self, state: TrainingState, phase: str) -> None:
        """A phase of the current step starts: ``data``, ``forward``, ``backward`` or ``optimizer``."""

    def on_phase_end(self, state: TrainingState, phase: str) -> None:
        """The phase ends."""

    def on_step_begin(self, state: TrainingState) -> None:
        """A batch has been loaded; its forward pass comes next."""

    def on_forward_end(self, state: TrainingState, outputs: Any) -> None:
        """After the forward pass (``outputs`` as the model returned them)."""

    def on_backward(self, state: TrainingState) -> None:
        """After ``loss.backward()``: gradients are in place; ``state.loss`` is set."""

    def on_pre_optimizer_step(self, state: TrainingState) -> None:
        """After gradient clipping, just before ``optimizer.step()``."""

    def on_step_end(self, state: TrainingState) -> None:
        """After ``optimizer.step()``; ``state.step`` is still this step's number."""

    def on_evaluate(self, state: TrainingState, metrics: dict[str, float]) -> None:
        """After an evaluation on the validation data (``metrics`` also in ``state.metrics``)."""

    def on_log(self, state: TrainingState, logs: dict[str, float]) -> None:
        """Figures a loop reports on its own schedule (transformers' ``Trainer`` reports the mean
        training loss of the last ``logging_steps`` here instead of a per-step loss)."""

    def on_epoch_end(self, state: TrainingState) -> None:
        """At the end of each epoch (after its evaluation, if any)."""

    def on_train_end(self, state: TrainingState) -> None:
        """After the last step, also when training stopped early or failed."""


class CallbackList(TrainingCallback):
    """Calls each callback in order: what a loop holds instead of a list."""

    def __init__(self, callbacks: list[TrainingCallback] | None = None) -> None:
        self.callbacks = list(callbacks or [])

    def __getattribute__(self, name: str):
        if name.startswith("on_") and hasattr(TrainingCallback, name):
            callbacks = object.__getattribute__(self, "callbacks")

            def dispatch(*args, **kwargs):
                for callback in callbacks:
                    getattr(callback, name)(*args, **kwargs)

            return dispatch
        return object.__getattribute__(self, name)
