"""Debugger rules: SageMaker Debugger's 13 built-in training rules, judged on a recording.

Each rule is a frozen dataclass whose fields are SageMaker's rule parameters with SageMaker's
defaults (https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html, checked
against the 2023 text of ``doc_source/debugger-built-in-rules.md`` in
``awsdocs/amazon-sagemaker-developer-guide``). A rule never sees a tensor: the hook reduces
tensors to scalars while training runs (:mod:`sagestack.debugger.recording`) and
:meth:`Rule.evaluate` judges the recording afterwards (or again after every save step, in
process). ``evaluate`` always scans the whole recording from its first step and returns the
first step, in step order, at which the rule fires, so a growing recording judged in process
and the finished one judged offline name the same step.

SageMaker's rule implementations are not public; where its parameter table leaves a choice open
the rule's docstring says which reading sagestack takes. Parameters that only make sense on
SageMaker (``base_trial``, ``training_job_name_prefix``, S3 paths) are left out.

Each rule class declares what it reads: ``collections`` (recording collections) and
``reductions`` (collection -> reduction names) so the hook knows what it must record, and
``outputs_regex`` (which modules' outputs it reads) for the rules that read ``outputs``.
"""

from __future__ import annotations

import bisect
import math
import re
import typing
from dataclasses import MISSING, dataclass, fields

import numpy as np
import pandas as pd

from sagestack.debugger.recording import SESSIONS, Recording
from sagestack.lazy import parse_scalar
from sagestack.errors import ConfigError
from sagestack.plugins import Registry

SOURCE = "https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html"

# Reductions the rules read beyond recording.REDUCTIONS; the hook computes them per tensor.
# tanh(9.4999) and sigmoid(-23), sigmoid(16.99999) are SageMaker's default saturation extremes
# (threshold_tanh_min/max, threshold_sigmoid_min/max) applied to the activation's input.
EXTRA_REDUCTIONS: dict[str, str] = {
    "saturated_fraction": (
        "share of the values y of a tanh or sigmoid module's output at which the activation is "
        "saturated: |y| >= tanh(9.4999) (= 0.99999998864) for a tanh output (any y < 0), else "
        "y <= sigmoid(-23) (= 1.026e-10) or y >= sigmoid(16.99999) (= 0.99999995861) for a "
        "sigmoid output (all y >= 0); computed in float64 on the float32 values"
    ),
}


@dataclass(frozen=True)
class Finding:
    """A rule that fired: which rule, at which step, and why (one line with the numbers)."""

    rule: str
    step: int
    detail: str

    def to_dict(self) -> dict:
        """JSON form: ``{"rule": .., "step": .., "detail": ..}``."""
        return {"rule": self.rule, "step": int(self.step), "detail": self.detail}


class Rule:
    """Base class of the rules: what a rule declares and the helpers all rules share.

    Class attributes:
        name: SageMaker's name of the rule.
        description: one line for ``sagestack debug rules``.
        collections: recording collections the rule reads.
        reductions: reductions the rule reads, per tensor collection.
    """

    name: typing.ClassVar[str] = ""
    description: typing.ClassVar[str] = ""
    collections: typing.ClassVar[tuple[str, ...]] = ()
    reductions: typing.ClassVar[dict[str, tuple[str, ...]]] = {}

    @property
    def outputs_regex(self) -> str | None:
        """Which modules' outputs the rule reads (``re.search`` on module names); None if it reads none."""
        return None

    def evaluate(self, recording: Recording) -> Finding | None:
        """The first step (in step order) at which the rule fires on ``recording``, or None."""
        raise NotImplementedError

    def validate(self) -> None:
        """Raise :class:`ConfigError` if the parameters cannot be evaluated (default: they can)."""

    def parameters(self) -> dict:
        """The rule's parameters and their values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def _finding(self, step, detail: str) -> Finding:
        return Finding(self.name, int(step), detail)

    def _require(self, ok: bool, parameter: str, must: str) -> None:
        if not ok:
            raise ConfigError(f"{self.name}: {parameter} must be {must}, got {getattr(self, parameter)!r}")

    def _check_regex(self, parameter: str) -> None:
        pattern = getattr(self, parameter)
        if pattern:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ConfigError(f"{self.name}: {parameter} {pattern!r} is not a valid regex ({error})") from None

    def _set_needs(self, collection_names, reduction: str) -> None:
        # Rules with collection_names read the collections they are given: the hook must record those.
        if collection_names:
            object.__setattr__(self, "collections", tuple(collection_names))
            object.__setattr__(self, "reductions", {c: (reduction,) for c in collection_names})


# --- shared reading helpers ---------------------------------------------------------------------

def _wide(recording: Recording, collection: str | None, reduction: str, mode: str | None = "train",
          tensor_regex: str | None = None) -> pd.DataFrame:
    """One reduction of many tensors as a frame: index step (sorted), one column per tensor."""
    rows = recording.select(collection, reduction, mode, tensor_regex)
    if rows.empty:
        return pd.DataFrame()
    return rows.groupby(["step", "tensor"], sort=True)["value"].last().unstack("tensor").sort_index()


def _loss(recording: Recording, mode: str) -> pd.Series:
    """The recorded loss (``losses``/``loss``/``value``) of one mode over steps."""
    return recording.series("losses", "loss", "value", mode=mode)


def _g(value: float) -> str:
    return f"{value:.4g}"


def _collections_with(recording: Recording, reduction: str, collection_names) -> list[str]:
    names = collection_names or list(dict.fromkeys(recording.select(reduction=reduction)["collection"]))
    return list(names)


def _class_id(tensor: str) -> int | str:
    suffix = tensor.rsplit("_", 1)[-1]
    return int(suffix) if suffix.isdigit() else tensor


def _inactive_bound(threshold_inactivity: float, threshold_layer: float) -> float:
    """Largest active share (in %) of a layer's values that proves SageMaker's per-unit condition.

    SageMaker counts a unit as inactive when it is active for fewer than ``t`` % of the samples
    and fires when more than ``L`` % of a layer's units are inactive. sagestack records one share
    per layer (the share of active values, the mean of the units' activity ``a``). If at most
    ``L`` % of the units were inactive, the others (at least ``1 - L/100`` of them) each have
    activity >= t, so ``a >= t (1 - L/100)``. Hence ``a < t (1 - L/100)`` proves SageMaker's
    condition: the rule never fires where SageMaker's would not, and may miss layers where only
    some units died.
    """
    return threshold_inactivity * (1 - threshold_layer / 100)


# --- the rules ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class VanishingGradient(Rule):
    """Fires when a gradient's mean absolute value falls below ``threshold``.

    Condition at step s: ``abs_mean(g_t, s) < threshold`` for some gradient tensor t not matching
    ``exclude_regex``, where ``abs_mean(g) = mean_i |g_i|`` (reduction ``abs_mean``).

    Parameters (SageMaker defaults): ``threshold`` = 1e-7.
    sagestack addition: ``exclude_regex`` skips gradients that are zero by construction, not by
    vanishing: a transformer's attention key bias b_k adds q·b_k to every score of a query, which
    softmax ignores, so its gradient is 0 up to rounding (about 1e-11 on a pretrained MiniLM);
    without the exclusion the rule fires on every BERT at step 0. Embedding tables are excluded
    too: a batch touches a few hundred of their 30,522 rows (and the positions up to its length),
    the other rows' gradients are exactly 0, so their mean |g| is tiny by sparsity, not by
    vanishing (measured: 2e-8 on a small BERT that trains normally). Set it to ``""`` to check all.
    """

    threshold: float = 1e-7
    exclude_regex: str | None = (r"attention\.self\.key\.bias$|\.k_lin\.bias$|\.k_proj\.bias$"
                                 r"|embeddings\.(word|position|token_type)_embeddings\.weight$")

    name = "VanishingGradient"
    description = "A gradient's mean absolute value drops below a threshold."
    collections = ("gradients",)
    reductions = {"gradients": ("abs_mean",)}

    def __post_init__(self) -> None:
        self._require(self.threshold >= 0, "threshold", "0 or more")
        self._check_regex("exclude_regex")

    def evaluate(self, recording: Recording) -> Finding | None:
        """First step at which some (not excluded) gradient's ``abs_mean`` is below ``threshold``."""
        wide = _wide(recording, "gradients", "abs_mean")
        if self.exclude_regex:
            wide = wide[[c for c in wide.columns if not re.search(self.exclude_regex, c)]]
        if wide.empty:
            return None
        below = wide < self.threshold
        for step, row in below.iterrows():
            if row.any():
                values = wide.loc[step][row]
                tensor = values.idxmin()
                return self._finding(step, f"gradient {tensor} has mean |g| {_g(values[tensor])} < threshold "
                                           f"{_g(self.threshold)} ({int(row.sum())} of {int(wide.loc[step].notna().sum())} "
                                           "gradient tensors below)")
        return None


@dataclass(frozen=True)
class ExplodingTensor(Rule):
    """Fires when a recorded tensor holds a non-finite value (NaN or ±inf; NaN only with ``only_nan``).

    Condition at step s, over the chosen collections and tensors: a ``nonfinite`` count > 0, a
    ``nan`` count > 0, or any recorded scalar that is itself non-finite (a NaN/inf loss, or the
    NaN/inf ``l2``/``mean`` of a tensor holding one). With ``only_nan`` only ``nan`` counts > 0 and
    NaN scalars count (an infinite norm can come from finite values too large to square).

    Parameters (SageMaker defaults): ``collection_names`` = None (all collections),
    ``tensor_regex`` = None (all tensors), ``only_nan`` = False.
    """

    collection_names: tuple[str, ...] | None = None
    tensor_regex: str | None = None
    only_nan: bool = False

    name = "ExplodingTensor"
    description = "A tensor holds NaN or infinite values (NaN only with only_nan)."
    collections = ("losses", "gradients", "weights")
    reductions = {"gradients": ("nonfinite",), "weights": ("nonfinite",)}

    def __post_init__(self) -> None:
        self._check_regex("tensor_regex")
        count = "nan" if self.only_nan else "nonfinite"
        object.__setattr__(self, "reductions", {"gradients": (count,), "weights": (count,)})
        if self.collection_names:
            object.__setattr__(self, "collections", tuple(self.collection_names))
            object.__setattr__(self, "reductions", {c: (count,) for c in self.collection_names
                                                    if c in ("gradients", "weights", "biases", "outputs")})

    def evaluate(self, recording: Recording) -> Finding | None:
        """First step with a non-finite count > 0 or a non-finite recorded value."""
        rows = recording.select(tensor_regex=self.tensor_regex)
        if self.collection_names:
            rows = rows[rows["collection"].isin(self.collection_names)]
        if rows.empty:
            return None
        values = rows["value"].to_numpy(dtype=float)
        counts = ("nan",) if self.only_nan else ("nonfinite", "nan")
        is_count = rows["reduction"].isin(counts).to_numpy()
        bad_value = np.isnan(values) if self.only_nan else ~np.isfinite(values)
        fired = (is_count & (values > 0)) | bad_value
        if not fired.any():
            return None
        hits = rows[fired].sort_values(["step", "wall_time"], kind="stable")
        hit = hits.iloc[0]
        what = "NaN" if self.only_nan else "non-finite"
        if hit["reduction"] in counts and math.isfinite(hit["value"]):
            detail = f"{hit['collection']} {hit['tensor']} has {int(hit['value'])} {what} values"
        else:
            detail = f"{hit['collection']} {hit['tensor']} {hit['reduction']} is {hit['value']}"
        return self._finding(hit["step"], f"{detail} ({int((hits['step'] == hit['step']).sum())} {what} "
                                          f"record(s) at this step)")


@dataclass(frozen=True)
class PoorWeightInitialization(Rule):
    """Fires when the first ``steps`` steps show a poorly initialised network (any of three checks).

    At each recorded step s < ``steps``:

    1. Activation inputs: with v_t = std(x_t)² for the ``outputs`` tensors matching
       ``activation_inputs_regex``, fires when ``max_t v_t / min_t v_t > threshold``; a zero
       variance (a layer whose inputs are all equal, as with all-zero weights) makes the ratio
       infinite and fires.
    2. Gradient spread: fires when ``max_t p95(g_t) - min_t p05(g_t) < distribution_range``. The
       hook records percentiles per tensor, so the spread of the whole gradient distribution is
       bounded by this envelope (the pooled p95 is at most the largest p95, the pooled p05 at
       least the smallest p05); the rule fires only if even the envelope is narrow. (A per-tensor
       minimum would fire on every BERT: some of its gradients are 0 by construction.)
    3. Loss: fires when the train loss has not reached a new lowest value for ``patience``
       recorded steps.

    Parameters (SageMaker defaults): ``threshold`` = 10.0, ``distribution_range`` = 0.001,
    ``patience`` = 5, ``steps`` = 10. ``activation_inputs_regex``: SageMaker's default is
    ``.*relu_input``; sagestack records module outputs, and a BERT's activation inputs are the
    outputs of its ``intermediate.dense`` layers (they feed the GELUs), so that is the default.
    On a pretrained MiniLM their variance ratio is about 3.
    """

    activation_inputs_regex: str = r"intermediate\.dense$"
    threshold: float = 10.0
    distribution_range: float = 0.001
    patience: int = 5
    steps: int = 10

    name = "PoorWeightInitialization"
    description = "Poor initialisation: activation-input variances differ widely, gradients are narrow, or the loss stalls early."
    collections = ("losses", "gradients", "outputs")
    reductions = {"gradients": ("p05", "p95"), "outputs": ("std",)}

    def __post_init__(self) -> None:
        self._require(self.threshold > 0, "threshold", "above 0")
        self._require(self.distribution_range >= 0, "distribution_range", "0 or more")
        self._require(self.patience >= 1, "patience", "1 or more")
        self._require(self.steps >= 1, "steps", "1 or more")
        self._check_regex("activation_inputs_regex")

    @property
    def outputs_regex(self) -> str | None:
        return self.activation_inputs_regex

    def evaluate(self, recording: Recording) -> Finding | None:
        """First step < ``steps`` at which one of the three checks fires."""
        stds = _wide(recording, "outputs", "std", tensor_regex=self.activation_inputs_regex)
        p05 = _wide(recording, "gradients", "p05")
        p95 = _wide(recording, "gradients", "p95")
        loss = _loss(recording, "train")
        candidates = sorted({*stds.index, *p05.index, *loss.index})
        best, best_step, since = math.inf, None, 0
        for step in (s for s in candidates if s < self.steps):
            if step in stds.index:
                variances = (stds.loc[step].dropna() ** 2)
                if len(variances):
                    low, high = variances.min(), variances.max()
                    if low == 0:
                        return self._finding(step, f"activation input {variances.idxmin()} has zero variance "
                                                   f"({int((variances == 0).sum())} of {len(variances)} activation inputs)")
                    if high / low > self.threshold:
                        return self._finding(step, f"activation-input variance ratio {_g(high / low)} > threshold "
                                                   f"{_g(self.threshold)} ({variances.idxmax()} {_g(high)} vs "
                                                   f"{variances.idxmin()} {_g(low)})")
            if step in p05.index and step in p95.index:
                low, high = p05.loc[step].min(), p95.loc[step].max()
                if np.isfinite(low) and np.isfinite(high) and high - low < self.distribution_range:
                    return self._finding(step, f"gradient p95 - p05 spread {_g(high - low)} < distribution_range "
                                               f"{_g(self.distribution_range)}")
            if step in loss.index:
                value = loss[step]
                if value < best:
                    best, best_step, since = value, step, 0
                else:
                    since += 1
                    if since >= self.patience:
                        return self._finding(step, f"train loss {_g(value)} has not gone below {_g(best)} (step "
                                                   f"{best_step}) for {since} recorded steps (patience {self.patience})")
        return None


@dataclass(frozen=True)
class _InactiveLayerRule(Rule):
    """What SaturatedActivation and DeadRelu share: SageMaker's per-unit thresholds judged on one
    recorded share per layer of ``outputs`` tensors matching ``tensor_regex`` (see
    :func:`_first_inactive_layer`). A subclass names the reduction it reads (``_reduction``, the
    inactive share) and how the finding calls inactive outputs (``_what``)."""

    tensor_regex: str = ""
    threshold_inactivity: float = 1.0
    threshold_layer: float = 50.0

    _reduction: typing.ClassVar[str] = ""
    _what: typing.ClassVar[str] = ""
    collections = ("outputs",)

    def __post_init__(self) -> None:
        self._require(0 < self.threshold_inactivity <= 100, "threshold_inactivity", "in (0, 100]")
        self._require(0 <= self.threshold_layer < 100, "threshold_layer", "in [0, 100)")
        self._check_regex("tensor_regex")

    @property
    def outputs_regex(self) -> str | None:
        return self.tensor_regex

    def evaluate(self, recording: Recording) -> Finding | None:
        """First step at which a layer's active share is below the proven bound."""
        return _first_inactive_layer(self, _wide(recording, "outputs", self._reduction, tensor_regex=self.tensor_regex),
                                     self._what, self.threshold_inactivity, self.threshold_layer)


@dataclass(frozen=True)
class SaturatedActivation(_InactiveLayerRule):
    """Fires when a tanh/sigmoid layer's outputs are (almost) all saturated.

    Reads the reduction ``saturated_fraction`` (:data:`EXTRA_REDUCTIONS`: the share of a tanh or
    sigmoid module's output values beyond SageMaker's default saturation extremes) of ``outputs``
    tensors matching ``tensor_regex``. SageMaker judges each unit (active when not saturated) and
    fires when more than ``threshold_layer`` % of a layer's units are active less than
    ``threshold_inactivity`` % of the time; sagestack records one share per layer, so it fires
    when the layer's active share proves that: ``(1 - saturated_fraction) * 100 <
    threshold_inactivity * (1 - threshold_layer / 100)`` (0.5 % with the defaults; see
    ``_inactive_bound``).

    Parameters (SageMaker defaults): ``threshold_inactivity`` = 1.0, ``threshold_layer`` = 50.0.
    ``tensor_regex``: SageMaker's ``.*tanh_input|.*sigmoid_input`` names TensorFlow/MXNet
    tensors; here it matches module names: BERT's pooler tanh and modules named tanh/sigmoid.
    Left out: ``threshold_tanh_min/max`` (-9.4999/9.4999) and ``threshold_sigmoid_min/max``
    (-23/16.99999): the hook reduces each tensor before a rule sees it, so these defaults are
    built into the ``saturated_fraction`` reduction. ``collection_names``: the rule reads
    ``outputs``.
    """

    tensor_regex: str = r"(?i)pooler\.activation$|tanh|sigmoid"

    name = "SaturatedActivation"
    description = "A tanh or sigmoid layer is saturated (its outputs sit at the function's extremes)."
    reductions = {"outputs": ("saturated_fraction",)}
    _reduction, _what = "saturated_fraction", "saturated"


@dataclass(frozen=True)
class DeadRelu(_InactiveLayerRule):
    """Fires when a ReLU layer's outputs are (almost) all zero.

    Reads ``zero_fraction`` of ``outputs`` tensors matching ``tensor_regex``. SageMaker counts a
    ReLU unit as dead when it is active (> 0) less than ``threshold_inactivity`` % of the time and
    fires when more than ``threshold_layer`` % of a layer's units are dead; sagestack records one
    share per layer, so it fires when the layer's active share proves that:
    ``(1 - zero_fraction) * 100 < threshold_inactivity * (1 - threshold_layer / 100)`` (0.5 % with
    the defaults; see ``_inactive_bound``). A healthy ReLU layer has about half of its outputs at
    zero and does not fire.

    Parameters (SageMaker defaults): ``threshold_inactivity`` = 1.0, ``threshold_layer`` = 50.0.
    ``tensor_regex``: SageMaker's ``.*relu_output`` names TensorFlow/MXNet tensors; here it
    matches module names containing ``relu`` (any case).
    """

    tensor_regex: str = r"(?i)relu"

    name = "DeadRelu"
    description = "A ReLU layer is dead (almost none of its units is ever active)."
    reductions = {"outputs": ("zero_fraction",)}
    _reduction, _what = "zero_fraction", "zero"


def _first_inactive_layer(rule: Rule, inactive: pd.DataFrame, what: str, threshold_inactivity: float,
                          threshold_layer: float) -> Finding | None:
    """DeadRelu/SaturatedActivation: first step where ``(1 - inactive share) * 100 < bound``."""
    if inactive.empty:
        return None
    bound = _inactive_bound(threshold_inactivity, threshold_layer)
    active = (1 - inactive) * 100
    for step, row in (active < bound).iterrows():
        if row.any():
            tensor = active.loc[step][row].idxmin()
            return rule._finding(step, f"layer {tensor}: {_g(inactive.loc[step, tensor] * 100)} % of outputs {what}, "
                                       f"active share {_g(active.loc[step, tensor])} % < {_g(bound)} % (threshold_inactivity "
                                       f"{_g(threshold_inactivity)} % x (1 - threshold_layer {_g(threshold_layer)} %))")
    return None


@dataclass(frozen=True)
class WeightUpdateRatio(Rule):
    """Fires when a weight's update is too large or too small relative to the weight.

    Condition at step s for some weight tensor w: with r = ‖Δw‖₂ / (‖w‖₂ + epsilon), where ‖Δw‖₂
    is ``update_l2`` (the norm of this step's optimizer update) and ‖w‖₂ is ``l2``:
    ``r > large_threshold`` or ``r < small_threshold``. Steps whose recorded learning rate
    (``optimizer``/``learning_rate``) is 0, such as the first step of a linear warm-up, are
    skipped: a zero update there is by design.

    Parameters (SageMaker defaults): ``large_threshold`` = 10.0, ``small_threshold`` = 1e-8,
    ``epsilon`` = 1e-9. Left out: ``num_steps`` (default None: SageMaker compares each saved
    step's weights with the previous saved step's and asks for a save interval of 1; the hook
    records the one-step update itself, which is SageMaker's default comparison at any interval).
    """

    large_threshold: float = 10.0
    small_threshold: float = 1e-8
    epsilon: float = 1e-9

    name = "WeightUpdateRatio"
    description = "The ratio of a weight's update to the weight is too large or too small."
    collections = ("weights", "optimizer")
    reductions = {"weights": ("l2", "update_l2")}

    def __post_init__(self) -> None:
        self._require(self.small_threshold >= 0, "small_threshold", "0 or more")
        self._require(self.large_threshold > self.small_threshold, "large_threshold", "above small_threshold")
        self._require(self.epsilon >= 0, "epsilon", "0 or more")

    def evaluate(self, recording: Recording) -> Finding | None:
        """First step at which some weight's update ratio is outside [small_threshold, large_threshold]."""
        updates = _wide(recording, "weights", "update_l2")
        norms = _wide(recording, "weights", "l2")
        if updates.empty or norms.empty:
            return None
        ratio = (updates / (norms.reindex_like(updates) + self.epsilon)).dropna(how="all")
        rates = recording.series("optimizer", "learning_rate", "value")
        for step, row in ratio.iterrows():
            if step in rates.index and rates[step] == 0:
                continue
            large, small = row > self.large_threshold, row < self.small_threshold
            if large.any():
                tensor = row[large].idxmax()
                return self._finding(step, f"weight {tensor} update ratio {_g(row[tensor])} > large_threshold "
                                           f"{_g(self.large_threshold)} (update {_g(updates.loc[step, tensor])}, weight norm "
                                           f"{_g(norms.loc[step, tensor])})")
            if small.any():
                tensor = row[small].idxmin()
                return self._finding(step, f"weight {tensor} update ratio {_g(row[tensor])} < small_threshold "
                                           f"{_g(self.small_threshold)} (update {_g(updates.loc[step, tensor])}, weight norm "
                                           f"{_g(norms.loc[step, tensor])})")
        return None


@dataclass(frozen=True)
class AllZero(Rule):
    """Fires when at least ``threshold`` % of a tensor's values are zero.

    Condition at step s: ``zero_fraction(t, s) * 100 >= threshold`` for a tensor t of the chosen
    collections matching ``tensor_regex``.

    Parameters (SageMaker defaults): ``collection_names`` = None (every collection with a
    recorded ``zero_fraction``; the hook records it for gradients and weights by default, not for
    biases, which many models initialise to zero), ``tensor_regex`` = None, ``threshold`` = 100.
    """

    collection_names: tuple[str, ...] | None = None
    tensor_regex: str | None = None
    threshold: float = 100.0

    name = "AllZero"
    description = "All (or threshold %) of a tensor's values are zero."
    collections = ("gradients", "weights")
    reductions = {"gradients": ("zero_fraction",), "weights": ("zero_fraction",)}

    def __post_init__(self) -> None:
        self._require(0 < self.threshold <= 100, "threshold", "in (0, 100]")
        self._check_regex("tensor_regex")
        self._set_needs(self.collection_names, "zero_fraction")

    def evaluate(self, recording: Recording) -> Finding | None:
        """First step at which some tensor's zero share reaches ``threshold`` %."""
        hits = []
        for collection in _collections_with(recording, "zero_fraction", self.collection_names):
            wide = _wide(recording, collection, "zero_fraction", mode=None, tensor_regex=self.tensor_regex)
            for step, row in (wide * 100 >= self.threshold - 1e-9).iterrows():
                if row.any():
                    tensor = wide.loc[step][row].idxmax()
                    hits.append((step, collection, tensor, wide.loc[step, tensor], int(row.sum())))
                    break
        if not hits:
            return None
        step, collection, tensor, share, count = min(hits, key=lambda h: h[0])
        return self._finding(step, f"{collection} {tensor}: {_g(share * 100)} % of values are zero >= threshold "
                                   f"{_g(self.threshold)} % ({count} {collection} tensor(s) at this step)")


@dataclass(frozen=True)
class TensorVariance(Rule):
    """Fires when a tensor's variance leaves [``min_threshold``, ``max_threshold``].

    Condition at step s: ``std(t, s)² > max_threshold`` or ``std(t, s)² < min_threshold`` for a
    tensor t of the chosen collections matching ``tensor_regex`` (reduction ``std``).

    Parameters (SageMaker defaults): ``collection_names`` = None (every collection with a
    recorded ``std``), ``tensor_regex`` = None, ``max_threshold`` = None, ``min_threshold`` = None.
    SageMaker has no default bounds: set at least one, or evaluation raises :class:`ConfigError`.
    """

    collection_names: tuple[str, ...] | None = None
    tensor_regex: str | None = None
    max_threshold: float | None = None
    min_threshold: float | None = None

    name = "TensorVariance"
    description = "A tensor's variance is above max_threshold or below min_threshold (set at least one)."
    collections = ("weights",)
    reductions = {"weights": ("std",)}

    def __post_init__(self) -> None:
        self._check_regex("tensor_regex")
        self._set_needs(self.collection_names, "std")
        if self.max_threshold is not None and self.min_threshold is not None:
            self._require(self.max_threshold >= self.min_threshold, "max_threshold", "at least min_threshold")

    def validate(self) -> None:
        """Raises:
            ConfigError: neither threshold is set.
        """
        if self.max_threshold is None and self.min_threshold is None:
            raise ConfigError("TensorVariance needs max_threshold or min_threshold (SageMaker has no default); "
                              "e.g. TensorVariance:max_threshold=10,min_threshold=0.00001")

    def evaluate(self, recording: Recording) -> Finding | None:
        """First step at which some tensor's variance is outside the bounds.

        Raises:
            ConfigError: neither threshold is set.
        """
        self.validate()
        hits = []
        for collection in _collections_with(recording, "std", self.collection_names):
            variance = _wide(recording, collection, "std", mode=None, tensor_regex=self.tensor_regex) ** 2
            never = pd.Series(False, index=variance.columns)
            for step, row in variance.iterrows():
                high = row > self.max_threshold if self.max_threshold is not None else never
                low = row < self.min_threshold if self.min_threshold is not None else never
                if high.any():
                    tensor = row[high].idxmax()
                    hits.append((step, f"{collection} {tensor} variance {_g(row[tensor])} > max_threshold {_g(self.max_threshold)}"))
                    break
                if low.any():
                    tensor = row[low].idxmin()
                    hits.append((step, f"{collection} {tensor} variance {_g(row[tensor])} < min_threshold {_g(self.min_threshold)}"))
                    break
        if not hits:
            return None
        step, detail = min(hits, key=lambda h: h[0])
        return self._finding(step, detail)


@dataclass(frozen=True)
class LossNotDecreasing(Rule):
    """Fires when the loss does not decrease enough over ``num_steps`` steps, or rises too much.

    Checks happen every ``num_steps``: the first at the first recorded step s with a recorded
    step p <= s - num_steps, the next at the first recorded step >= s + num_steps, and so on;
    each compares L_s with L_p, p the newest recorded step <= s - num_steps. With
    ``change = (L_s - L_p) / |L_p| * 100``:

    - loss went down or stayed (change <= 0): fires when ``-change < diff_percent``;
    - loss went up (change > 0): fires when ``change > increase_threshold_percent``.

    (SageMaker documents ``increase_threshold_percent`` as "the maximum threshold percent that loss
    is allowed to increase in case loss has been increasing"; this is that reading.) Checks with
    L_p = 0 or a non-finite loss are skipped (ExplodingTensor reports those).

    Parameters (SageMaker defaults): ``num_steps`` = 10, ``diff_percent`` = 0.1,
    ``increase_threshold_percent`` = 5. ``mode``: SageMaker's default is GLOBAL (every saved step);
    sagestack saves train losses at global steps, so ``global`` reads the train losses, as does
    ``train`` (the default); ``eval`` reads the validation losses.
    Left out: ``collection_names``, ``tensor_regex``, ``use_losses_collection`` (sagestack records
    one loss tensor, ``losses``/``loss``).
    """

    num_steps: int = 10
    diff_percent: float = 0.1
    increase_threshold_percent: float = 5.0
    mode: str = "train"

    name = "LossNotDecreasing"
    description = "The loss does not decrease by diff_percent % over num_steps steps, or rises by more than increase_threshold_percent %."
    collections = ("losses",)
    reductions = {}

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", str(self.mode).lower())
        self._require(self.mode in ("train", "eval", "global"), "mode", "train, eval or global")
        self._require(self.num_steps >= 1, "num_steps", "1 or more")
        self._require(0 <= self.diff_percent < 100, "diff_percent", "in [0, 100)")
        self._require(self.increase_threshold_percent >= 0, "increase_threshold_percent", "0 or more")

    def evaluate(self, recording: Recording) -> Finding | None:
        """First check step at which the loss has not decreased enough or has risen too much."""
        loss = _loss(recording, "eval" if self.mode == "eval" else "train")
        steps = list(loss.index)
        last_check = None
        for s in steps:
            if last_check is not None and s < last_check + self.num_steps:
                continue
            position = bisect.bisect_right(steps, s - self.num_steps)
            if position == 0:
                continue
            p = steps[position - 1]
            last_check = s
            before, now = loss[p], loss[s]
            if before == 0 or not (math.isfinite(before) and math.isfinite(now)):
                continue
            change = (now - before) / abs(before) * 100
            if change <= 0 and -change < self.diff_percent:
                return self._finding(s, f"{self.mode} loss went from {_g(before)} (step {p}) to {_g(now)}: decreased "
                                        f"{_g(0.0 - change)} % < diff_percent {_g(self.diff_percent)} %")
            if change > self.increase_threshold_percent:
                return self._finding(s, f"{self.mode} loss went from {_g(before)} (step {p}) to {_g(now)}: increased "
                                        f"{_g(change)} % > increase_threshold_percent {_g(self.increase_threshold_percent)} %")
        return None


@dataclass(frozen=True)
class Overfit(Rule):
    """Fires when the validation loss exceeds the training loss by more than ``ratio_threshold``.

    At each evaluation step e >= ``start_step``: V = the validation loss at e, T = the mean of
    the train losses recorded in (previous evaluation step, e] (the latest train loss at or
    before e if none was recorded in between), ``ratio = (V - T) / T``. Fires at the evaluation at
    which ``ratio > ratio_threshold`` has held for ``patience`` evaluations in a row. Evaluations
    with T <= 0 or no train loss yet are skipped.

    Parameters (SageMaker defaults): ``start_step`` = 0, ``patience`` = 1,
    ``ratio_threshold`` = 0.1. Left out: ``tensor_regex`` (the rule reads ``losses``/``loss``).
    """

    start_step: int = 0
    patience: int = 1
    ratio_threshold: float = 0.1

    name = "Overfit"
    description = "The validation loss exceeds the training loss by more than ratio_threshold (relative)."
    collections = ("losses",)
    reductions = {}

    def __post_init__(self) -> None:
        self._require(self.start_step >= 0, "start_step", "0 or more")
        self._require(self.patience >= 1, "patience", "1 or more")

    def evaluate(self, recording: Recording) -> Finding | None:
        """First evaluation step at which the overfit ratio has exceeded the threshold ``patience`` times running."""
        train, valid = _loss(recording, "train"), _loss(recording, "eval")
        previous, running = -math.inf, 0
        for step, value in valid.items():
            window = train[(train.index > previous) & (train.index <= step)]
            previous = step
            if step < self.start_step:
                continue
            if window.empty:
                window = train[train.index <= step].tail(1)
            if window.empty or not window.mean() > 0:
                continue
            mean_train = window.mean()
            ratio = (value - mean_train) / mean_train
            running = running + 1 if ratio > self.ratio_threshold else 0
            if running >= self.patience:
                return self._finding(step, f"validation loss {_g(value)} vs mean train loss {_g(mean_train)}: ratio "
                                           f"{_g(ratio)} > ratio_threshold {_g(self.ratio_threshold)} for {running} "
                                           f"evaluation(s) (patience {self.patience})")
        return None


def _stalled_since(series: pd.Series, delta: float, patience: int):
    """First (step, value, best, best_step, count) at which ``series`` has not improved on its best
    by more than ``delta`` for ``patience`` recorded steps; None if it never happens."""
    best, best_step, since = math.inf, None, 0
    for step, value in series.items():
        if value < best - delta or best_step is None:
            best, best_step, since = value, step, 0
        else:
            since += 1
            if since >= patience:
                return step, value, best, best_step, since
    return None


@dataclass(frozen=True)
class Overtraining(Rule):
    """Fires when the training or the validation loss has stopped improving.

    Early-stopping reading of SageMaker's rule: a loss improves when it goes below its best so far
    by more than ``delta`` (absolute). Fires at the recorded step at which the train loss has not
    improved for ``patience_train`` recorded steps, or the validation loss for
    ``patience_validation`` evaluations, whichever comes first.

    Parameters (SageMaker defaults): ``patience_train`` = 5, ``patience_validation`` = 10,
    ``delta`` = 0.01 (the current parameter table; an older one said 0.1).
    """

    patience_train: int = 5
    patience_validation: int = 10
    delta: float = 0.01

    name = "Overtraining"
    description = "The training or validation loss has stopped improving (by delta) for its patience."
    collections = ("losses",)
    reductions = {}

    def __post_init__(self) -> None:
        self._require(self.patience_train >= 1, "patience_train", "1 or more")
        self._require(self.patience_validation >= 1, "patience_validation", "1 or more")
        self._require(self.delta >= 0, "delta", "0 or more")

    def evaluate(self, recording: Recording) -> Finding | None:
        """First step at which either loss has gone ``patience`` recorded steps without improving."""
        hits = []
        for mode, label, patience, parameter in (("train", "train", self.patience_train, "patience_train"),
                                                 ("eval", "validation", self.patience_validation, "patience_validation")):
            hit = _stalled_since(_loss(recording, mode), self.delta, patience)
            if hit:
                step, value, best, best_step, count = hit
                hits.append((step, f"{label} loss {_g(value)} has not improved on {_g(best)} (step {best_step}) by "
                                   f"more than delta {_g(self.delta)} for {count} recorded steps ({parameter} {patience})"))
        if not hits:
            return None
        step, detail = min(hits, key=lambda h: h[0])
        return self._finding(step, detail)


@dataclass(frozen=True)
class ClassImbalance(Rule):
    """Fires when classes are too imbalanced or a class is mostly mispredicted.

    Counts are cumulative over the recorded steps: n_k = labels of class k (``labels``/
    ``class_<k>``/``count``), c_k = correct predictions of class k (``predictions``/
    ``class_<k>``/``count``). Once Σ n_k >= ``samples``, at each recorded step:

    - fires when ``max_k n_k / min_k n_k > threshold_imbalance`` (a class never seen: infinite);
    - fires when ``1 - c_k / n_k > threshold_misprediction`` for a class with n_k > 0 (only when
      predictions are recorded).

    Parameters (SageMaker defaults): ``threshold_imbalance`` = 10, ``threshold_misprediction`` =
    0.7, ``samples`` = 500. Left out: ``argmax``, ``labels_regex``, ``predictions_regex`` (the hook
    records per-class counts from the label ids and predicted ids directly).
    """

    threshold_imbalance: float = 10.0
    threshold_misprediction: float = 0.7
    samples: int = 500

    name = "ClassImbalance"
    description = "Class counts are imbalanced beyond threshold_imbalance, or a class is mostly mispredicted."
    collections = ("labels", "predictions")
    reductions = {}

    def __post_init__(self) -> None:
        self._require(self.threshold_imbalance >= 1, "threshold_imbalance", "1 or more")
        self._require(0 <= self.threshold_misprediction <= 1, "threshold_misprediction", "in [0, 1]")
        self._require(self.samples >= 1, "samples", "1 or more")

    def evaluate(self, recording: Recording) -> Finding | None:
        """First recorded step (after ``samples`` labels) at which either check fires."""
        labels = _wide(recording, "labels", "count", mode=None)
        if labels.empty:
            return None
        labels = labels.fillna(0).cumsum()
        correct = _wide(recording, "predictions", "count", mode=None)
        if not correct.empty:
            correct = correct.reindex(index=labels.index, columns=labels.columns).fillna(0).cumsum()
        order = sorted(labels.columns, key=lambda t: (isinstance(_class_id(t), str), _class_id(t)))
        for step, counts in labels[order].iterrows():
            total = counts.sum()
            if total < self.samples:
                continue
            low, high = counts.idxmin(), counts.idxmax()
            ratio = math.inf if counts[low] == 0 else counts[high] / counts[low]
            if ratio > self.threshold_imbalance:
                return self._finding(step, f"{low} has {int(counts[low])} of {int(total)} samples vs {int(counts[high])} "
                                           f"for {high}: ratio {_g(ratio)} > threshold_imbalance {_g(self.threshold_imbalance)}")
            if not correct.empty:
                seen = counts[counts > 0]
                wrong = 1 - correct.loc[step, seen.index] / seen
                worst = wrong.idxmax()
                if wrong[worst] > self.threshold_misprediction:
                    return self._finding(step, f"{worst}: {_g(wrong[worst])} of its {int(seen[worst])} samples mispredicted "
                                               f"> threshold_misprediction {_g(self.threshold_misprediction)}")
        return None


def stalled(last_wall_time: float, now: float, threshold: float = 1800) -> bool:
    """Whether training has stalled: ``now - last_wall_time > threshold`` (seconds).

    For the hook to call in process (a stall produces no new record for ``evaluate`` to see).
    """
    return now - last_wall_time > threshold


@dataclass(frozen=True)
class StalledTrainingRule(Rule):
    """Fires when no scalar was recorded for more than ``threshold`` seconds.

    Sorting every record by ``wall_time``: fires at the step of the first record that follows a
    gap ``wall_time_i - wall_time_{i-1} > threshold``; the first such step in step order.
    :func:`stalled` is the same test for the hook to apply in process.

    Parameters (SageMaker defaults): ``threshold`` = 1800. Left out: ``stop_training_on_fire``
    (give the rule the hook's ``stop`` action), ``training_job_name_prefix`` (SageMaker jobs).
    """

    threshold: float = 1800.0

    name = "StalledTrainingRule"
    description = "No tensor was recorded for more than threshold seconds."
    collections = ("losses",)
    reductions = {}

    def __post_init__(self) -> None:
        self._require(self.threshold > 0, "threshold", "above 0")

    def evaluate(self, recording: Recording) -> Finding | None:
        """The step after the first recording gap longer than ``threshold`` seconds."""
        rows = recording.frame.sort_values(["wall_time", "step"], kind="stable")
        if len(rows) < 2:
            return None
        times = rows["wall_time"].to_numpy(dtype=float)
        gaps = np.diff(times)
        # A gap that ends at a session marker is the pause between a run and its resumption.
        resumed = (rows["collection"] == SESSIONS).to_numpy()[1:]
        hits = np.flatnonzero((gaps > self.threshold) & ~resumed)
        if not len(hits):
            return None
        steps = rows["step"].to_numpy()[hits + 1]
        first = int(np.argmin(steps))
        i = hits[first]
        return self._finding(steps[first], f"no record for {_g(gaps[i])} s (steps {int(rows['step'].iloc[i])} -> "
                                           f"{int(steps[first])}) > threshold {_g(self.threshold)} s")


# --- registry -----------------------------------------------------------------------------------

RULES: Registry[type[Rule]] = Registry("debugger rule")
for _rule in (VanishingGradient, ExplodingTensor, PoorWeightInitialization, SaturatedActivation, DeadRelu,
              WeightUpdateRatio, AllZero, TensorVariance, LossNotDecreasing, Overfit, Overtraining, ClassImbalance,
              StalledTrainingRule):
    RULES.add(_rule.name, _rule)
del _rule

# What a default run (losses + gradient/weight norms every 100 steps, validation losses at each
# evaluation) evaluates: the rules whose inputs that recording has and that do not fire on a
# healthy run by noise alone.
# Left out: LossNotDecreasing (it compares two single-batch losses 100 steps apart; batch-loss
# noise of 10-20 % makes a 5 % rise near certain within a few checks on a healthy run);
# PoorWeightInitialization (judges the first 10 steps, which an interval of 100 records once, and
# needs activation outputs and gradient percentiles); SaturatedActivation, DeadRelu, AllZero,
# WeightUpdateRatio, ClassImbalance (need outputs, zero shares, update norms or class counts);
# TensorVariance (has no default bounds).
DEFAULT_RULES: tuple[str, ...] = ("VanishingGradient", "ExplodingTensor", "Overfit", "Overtraining", "StalledTrainingRule")

_PARAMETER_SPLIT = re.compile(r",(?=\s*[A-Za-z_]\w*\s*=)")
_NONE = {"none", "null", ""}


def _convert(cls: type[Rule], key: str, raw: str):
    """A CLI string as the type of parameter ``key`` of ``cls``."""
    hint = typing.get_type_hints(cls)[key]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    text = raw.strip()
    if optional and text.lower() in _NONE:
        return None
    try:
        if base in (bool, int, float):
            value = parse_scalar(text, base)
            if base is float and math.isnan(value):
                raise ValueError
            return value
        if typing.get_origin(base) is tuple:
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return text
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(base, "a value")
        raise ConfigError(f"{cls.name}: parameter {key} must be {kind}, got {raw!r}") from None


def parse_rule(text: str) -> Rule:
    """A rule from a CLI string: ``"LossNotDecreasing"`` or ``"LossNotDecreasing:num_steps=20,diff_percent=0.5"``.

    Parameters are ``name=value`` pairs separated by commas; a list value (``collection_names``)
    may itself hold commas (``AllZero:collection_names=gradients,weights,threshold=50``); ``none``
    unsets an optional parameter. Rule names match case-insensitively.

    Raises:
        ConfigError: unknown rule, unknown or repeated parameter, a value of the wrong type or
            out of range, or a rule that cannot be evaluated as given (TensorVariance without
            thresholds); the one-line message names the rule and parameter.
    """
    name, _, params = str(text).strip().partition(":")
    cls = RULES.lookup(name.strip(), ignore_case=True)
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    kwargs: dict = {}
    if params.strip():
        for item in _PARAMETER_SPLIT.split(params):
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"bad parameter {item.strip()!r} in debugger rule {text!r}; "
                                  f"write {cls.name}:param=value,param=value")
            if key not in known:
                raise ConfigError(f"{cls.name} has no parameter {key!r}; known: {', '.join(known) or '(none)'}")
            if key in kwargs:
                raise ConfigError(f"{cls.name}: parameter {key} given twice")
            kwargs[key] = _convert(cls, key, raw)
    rule = cls(**kwargs)
    rule.validate()
    return rule


def _json_default(value):
    return list(value) if isinstance(value, tuple) else value


def describe_rules() -> list[dict]:
    """Every rule for ``sagestack debug rules``: name, description, parameters with their
    defaults (None where SageMaker has none), collections and reductions read, source."""
    described = []
    for cls in RULES.values():
        parameters = {f.name: _json_default(f.default) for f in fields(cls)  # type: ignore[arg-type]
                      if f.default is not MISSING}
        described.append({"name": cls.name, "description": cls.description, "parameters": parameters,
                          "collections": list(cls.collections),
                          "reductions": {k: list(v) for k, v in cls.reductions.items()},
                          "default": cls.name in DEFAULT_RULES, "source": SOURCE})
    return described


def default_rules() -> list[Rule]:
    """The :data:`DEFAULT_RULES` with SageMaker's default parameters."""
    return [RULES[name]() for name in DEFAULT_RULES]


def first_nonfinite_loss(recording: Recording) -> tuple[int, float] | None:
    """The first step at which the recorded training loss is non-finite (NaN or ±inf), and that loss.

    ExplodingTensor's condition on the train-mode ``losses`` alone. The hook records the loss of
    any step at which it turns non-finite, whatever the save interval, so the step is exact; a
    model trained through such a step is never registered.
    """
    train = recording.select("losses", mode="train")
    finding = ExplodingTensor(collection_names=("losses",), tensor_regex="^loss$").evaluate(Recording(train, recording.run))
    if finding is None:
        return None
    return finding.step, float(recording.series("losses", "loss", "value").loc[finding.step])


def evaluate_rules(rules, recording: Recording) -> list[Finding]:
    """Every rule's first finding on ``recording``, sorted by step (ties keep the rules' order).

    Raises:
        ConfigError: a rule cannot be evaluated as configured (TensorVariance without thresholds).
    """
    findings = [finding for rule in rules if (finding := rule.evaluate(recording)) is not None]
    return sorted(findings, key=lambda f: f.step)
