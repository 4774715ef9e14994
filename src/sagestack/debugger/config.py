"""What the Debugger hook records: save steps, collections and reductions (configuration only).

Kept apart from the rules that judge the recording (``sagestack.debugger.rules``), as
SageMaker Debugger keeps ``DebuggerHookConfig``/``SaveConfig`` apart from ``Rule``s.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field, replace

from sagestack.debugger.recording import REDUCTIONS, SPECIAL_REDUCTIONS
from sagestack.errors import ConfigError

# Collections the hook knows how to record; ``outputs`` goes through forward hooks on modules.
COLLECTIONS = ("losses", "gradients", "weights", "biases", "outputs", "optimizer", "labels", "predictions", "metrics")
DEFAULT_SAVE_INTERVAL = 100
# The default: losses plus gradient and weight norms every 100 steps (and what the default rules read).
DEFAULT_COLLECTIONS = ("losses", "gradients", "weights", "optimizer", "metrics")
DEFAULT_REDUCTIONS = {
    "gradients": ("l2", "abs_mean", "nonfinite"),
    "weights": ("l2", "nonfinite"),
    "biases": ("l2", "nonfinite"),
    "outputs": ("std", "nonfinite"),
}
# Modules whose outputs the ``outputs`` collection records by default: activation inputs of a BERT
# (the intermediate dense layers feeding its GELUs) and the classifier's logits.
DEFAULT_OUTPUTS_REGEX = r"intermediate\.dense$|classifier$"


def _scoped(pattern: str) -> str:
    """A regex as a group that can be joined with ``|``: leading global flags such as ``(?i)``
    become scoped ones (``(?i:...)``), which Python allows anywhere in a pattern."""
    match = re.match(r"^\(\?([imsx]+)\)", pattern)
    if match:
        return f"(?{match.group(1)}:{pattern[match.end():]})"
    return pattern if pattern.startswith("(?:") and pattern.endswith(")") else f"(?:{pattern})"


@dataclass(frozen=True)
class DebuggerConfig:
    """What to record and when.

    Attributes:
        save_interval: record every this many steps (step 0 included).
        save_steps: explicit steps to record instead of the interval (empty: use the interval).
        collections: the collections to record (:data:`COLLECTIONS`).
        reductions: reductions per tensor collection (keys ``gradients``, ``weights``, ``biases``,
            ``outputs``); a rule that needs more adds them (:meth:`with_requirements`).
        outputs_regex: which modules' outputs the ``outputs`` collection records (``re.search`` on
            the module's name).
        include_regex: only parameters whose name matches are recorded (empty: all).
    """

    save_interval: int = DEFAULT_SAVE_INTERVAL
    save_steps: tuple[int, ...] = ()
    collections: tuple[str, ...] = DEFAULT_COLLECTIONS
    reductions: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_REDUCTIONS))
    outputs_regex: str = DEFAULT_OUTPUTS_REGEX
    include_regex: str = ""

    def __post_init__(self) -> None:
        if self.save_interval < 1:
            raise ConfigError(f"debugger save_interval must be 1 or more, got {self.save_interval}")
        unknown = sorted(set(self.collections) - set(COLLECTIONS))
        if unknown:
            raise ConfigError(f"unknown debugger collection(s) {', '.join(unknown)}; known: {', '.join(COLLECTIONS)}")
        for collection, names in self.reductions.items():
            bad = sorted(set(names) - set(REDUCTIONS) - set(SPECIAL_REDUCTIONS) - set(EXTRA_REDUCTION_NAMES))
            if bad:
                raise ConfigError(f"unknown reduction(s) {', '.join(bad)} for {collection}; known: {', '.join(REDUCTIONS)}")

    def should_save(self, step: int) -> bool:
        """Whether ``step`` is recorded."""
        return step in self.save_steps if self.save_steps else step % self.save_interval == 0

    def reductions_of(self, collection: str) -> tuple[str, ...]:
        """The reductions recorded for a tensor collection."""
        return tuple(self.reductions.get(collection, ()))

    def with_requirements(self, collections: tuple[str, ...], reductions: dict[str, tuple[str, ...]],
                          outputs_regex: str | None = None) -> "DebuggerConfig":
        """This config plus what a rule needs (its collections, reductions and the modules whose
        outputs it reads), nothing removed."""
        merged = {name: tuple(dict.fromkeys((*self.reductions.get(name, ()), *reductions.get(name, ()))))
                  for name in {*self.reductions, *reductions}}
        pattern = self.outputs_regex
        if outputs_regex and _scoped(outputs_regex) not in pattern:
            pattern = f"{_scoped(pattern)}|{_scoped(outputs_regex)}" if pattern else outputs_regex
        return replace(self, collections=tuple(dict.fromkeys((*self.collections, *collections))), reductions=merged,
                       outputs_regex=pattern)

    @classmethod
    def everything(cls, save_interval: int = 1) -> "DebuggerConfig":
        """Every collection with every reduction (the costly end of the overhead benchmark)."""
        tensor_reductions = tuple(REDUCTIONS)
        return cls(save_interval=save_interval, collections=COLLECTIONS,
                   reductions={c: tensor_reductions for c in ("gradients", "weights", "biases", "outputs")})

    def to_dict(self) -> dict:
        """A JSON form (for ``run.json``)."""
        return {"save_interval": self.save_interval, "save_steps": list(self.save_steps),
                "collections": list(self.collections), "reductions": {k: list(v) for k, v in self.reductions.items()},
                "outputs_regex": self.outputs_regex, "include_regex": self.include_regex}


# Reductions some rules need beyond REDUCTIONS: the saturated share of tanh/sigmoid outputs
# (SaturatedActivation; computed by sagestack.debugger.hook.reduce_tensor).
EXTRA_REDUCTION_NAMES: tuple[str, ...] = ("saturated_fraction",)
