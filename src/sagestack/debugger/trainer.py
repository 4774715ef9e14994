"""transformers' ``Trainer`` adapter: any sagestack training hook as a ``TrainerCallback``.

``Trainer(..., callbacks=[as_trainer_callback(DebuggerHook(...), Profiler(...))])`` gives a
Trainer run the same recordings, rules and stop action as sagestack's own loop. Trainer's events
map onto :class:`~sagestack.debugger.events.TrainingCallback`'s: ``on_pre_optimizer_step``
(gradients clipped, optimizer not yet stepped) is where gradients are read, ``on_log`` brings
the training loss (the mean of the last ``logging_steps``), ``on_evaluate`` the validation loss;
a hook's stop request becomes ``control.should_training_stop``.
"""

from __future__ import annotations

from sagestack.debugger.events import CallbackList, TrainingCallback, TrainingState


def as_trainer_callback(*callbacks: TrainingCallback):
    """Wrap sagestack training hooks as one ``transformers.TrainerCallback``."""
    from transformers import TrainerCallback

    class SagestackTrainerCallback(TrainerCallback):
        """Forwards Trainer's events to sagestack's hooks (see the module docstring)."""

        def __init__(self) -> None:
            self.hooks = CallbackList(list(callbacks))
            self.state: TrainingState | None = None

        def _sync(self, state, control) -> TrainingState:
            self.state.step = state.global_step
            self.state.epoch = int(state.epoch or 0)
            return self.state

        def _stop(self, control) -> None:
            if self.state.should_stop:
                control.should_training_stop = True

        def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
            self.state = TrainingState(model=model, optimizer=optimizer,
                                       extra={"device": str(args.device), "num_workers": args.dataloader_num_workers})
            self.hooks.on_train_begin(self._sync(state, control))

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.hooks.on_epoch_begin(self._sync(state, control))

        def on_step_begin(self, args, state, control, **kwargs):
            ts = self._sync(state, control)
            ts.loss = None
            self.hooks.on_step_begin(ts)

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            ts = self._sync(state, control)
            if ts.optimizer is None:
                ts.optimizer = kwargs.get("optimizer")
            self.hooks.on_backward(ts)
            self.hooks.on_pre_optimizer_step(ts)

        def on_step_end(self, args, state, control, **kwargs):
            ts = self._sync(state, control)
            ts.step = state.global_step - 1  # Trainer has counted this step already
            self.hooks.on_step_end(ts)
            self._stop(control)

        def on_log(self, args, state, control, logs=None, **kwargs):
            ts = self._sync(state, control)
            ts.step = max(state.global_step - 1, 0)
            self.hooks.on_log(ts, dict(logs or {}))
            self._stop(control)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            ts = self._sync(state, control)
            ts.step = max(state.global_step - 1, 0)
            renamed = {("validation_" + k.removeprefix("eval_")): float(v) for k, v in (metrics or {}).items()
                       if k in ("eval_loss", "eval_accuracy")}
            ts.metrics = renamed
            self.hooks.on_evaluate(ts, renamed)
            self._stop(control)

        def on_epoch_end(self, args, state, control, **kwargs):
            self.hooks.on_epoch_end(self._sync(state, control))

        def on_train_end(self, args, state, control, **kwargs):
            self.hooks.on_train_end(self._sync(state, control))

    return SagestackTrainerCallback()
