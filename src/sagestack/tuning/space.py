"""Search spaces: SageMaker's hyperparameter ranges, written on a command line.

A hyperparameter is given as ``name=spec`` (``--param``) or ``--name spec``; the spec says
whether it is searched or fixed:

- ``a:b`` — a continuous range (SageMaker's ``ContinuousParameter``, or ``IntegerParameter``
  for an integer hyperparameter). Its scale is chosen like SageMaker's ``Auto`` scaling:
  logarithmic for ``learning_rate`` and for any range with both ends above 0 and
  ``b / a >= 10``, linear otherwise; ``a:b:log`` or ``a:b:linear`` says it explicitly.
- ``x,y,z`` — a list of values (SageMaker's ``CategoricalParameter``).
- ``x`` — a fixed value, the same in every trial (SageMaker's static hyperparameters).

Values are converted to the hyperparameter's type (int, float, bool or text) and checked by
the model's own parameter class (both ends of a range, every listed value), so a space that
cannot train fails before any trial runs.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

from sagestack.errors import ConfigError
from sagestack.lazy import parse_scalar

# Always searched on a log scale (when both ends are above 0): rates span orders of magnitude.
LOG_SCALE_NAMES = frozenset({"learning_rate"})
# A positive range this wide (high / low) is searched on a log scale when no scale is given.
LOG_SCALE_RATIO = 10.0
SCALES = ("auto", "log", "linear")


@dataclass(frozen=True)
class Hyperparameters:
    """What one model kind accepts: each hyperparameter's type, and a check of a set of values.

    Attributes:
        kind: the model kind (``bert``, ``fasttext``).
        types: name -> ``int``, ``float``, ``bool`` or ``str``.
        check: builds the kind's parameter object from ``{name: value}``; raises ConfigError.
        choices: allowed values of text hyperparameters (their ``Literal`` members).
    """

    kind: str
    types: Mapping[str, type]
    check: Callable[[dict], object]
    choices: Mapping[str, tuple] = field(default_factory=dict)


# The search a user most likely wants first, for the kinds the course tunes; other kinds get one from their types.
_EXAMPLES = {"bert": "--learning-rate 1e-5:5e-5", "fasttext": "--learning-rate 0.05:0.5"}


def _example(hyperparameters: Hyperparameters) -> str:
    """A range option the kind takes, for the "nothing to search" message (its first numeric hyperparameter)."""
    for name, kind in hyperparameters.types.items():
        if kind in (int, float) and name != "seed":
            return f"--{name.replace('_', '-')} " + ("1:4" if kind is int else "0.1:1.0")
    return "--param NAME=x,y"


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter.

    Attributes:
        name: the hyperparameter.
        type: ``float``, ``int`` or ``categorical``.
        low / high: the range's ends (ranges only).
        log: whether the range is searched on a log scale.
        choices: the values (categorical only).
        spec: the text it was parsed from.
    """

    name: str
    type: Literal["float", "int", "categorical"]
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple = ()
    spec: str = ""

    def suggest(self, trial) -> Any:
        """Draw this hyperparameter's value for an Optuna trial."""
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def candidates(self) -> tuple:
        """The values to check before searching: both ends of a range, or every choice."""
        return (self.low, self.high) if self.type != "categorical" else self.choices

    def to_dict(self) -> dict:
        """JSON form."""
        if self.type == "categorical":
            return {"type": "categorical", "values": list(self.choices)}
        return {"type": self.type, "low": self.low, "high": self.high, "scale": "log" if self.log else "linear"}


@dataclass(frozen=True)
class SearchSpace:
    """The searched hyperparameters and the fixed ones of a tuning job.

    Attributes:
        kind: the model kind the space is for.
        dimensions: the searched hyperparameters, in the order given.
        fixed: the hyperparameters every trial shares.
    """

    kind: str
    dimensions: tuple[Dimension, ...]
    fixed: dict[str, Any]

    def sample(self, trial) -> dict[str, Any]:
        """All of a trial's hyperparameters: the fixed ones plus a value drawn for each dimension."""
        return {**self.fixed, **{d.name: d.suggest(trial) for d in self.dimensions}}

    def specs(self) -> dict[str, str]:
        """``{name: spec text}`` of every hyperparameter given (how a resumed study is compared)."""
        return {**{k: _text(v) for k, v in self.fixed.items()}, **{d.name: d.spec for d in self.dimensions}}

    def to_dict(self) -> dict:
        """JSON form: ``{"searched": {name: range or values}, "fixed": {name: value}}``."""
        return {"searched": {d.name: d.to_dict() for d in self.dimensions}, "fixed": dict(self.fixed)}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def convert(name: str, text: str, kind_type: type) -> Any:
    """One value of hyperparameter ``name`` from text, as its type.

    Raises:
        ConfigError: the text is not a value of that type.
    """
    text = text.strip()
    try:
        if kind_type in (bool, int, float):
            value = parse_scalar(text, kind_type)
            if kind_type is float and not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        expected = {bool: "true or false", int: "an integer", float: "a number"}[kind_type]
        raise ConfigError(f"hyperparameter {name}: {text!r} is not {expected}") from None
    if not text:
        raise ConfigError(f"hyperparameter {name}: empty value")
    return text


def parse_spec(name: str, text: str, kind_type: type) -> Dimension | Any:
    """A :class:`Dimension` for a range or list spec, or the converted value of a fixed one.

    Raises:
        ConfigError: a malformed spec, a range of a non-numeric hyperparameter, ``low >= high``,
            a log scale over a range that reaches 0 or below, or a repeated list value.
    """
    spec = str(text).strip()
    if not spec:
        raise ConfigError(f"hyperparameter {name}: empty spec; write a value, a range a:b or a list x,y")
    if "," in spec:
        values = [convert(name, part, kind_type) for part in spec.split(",") if part.strip()]
        if len(values) < 2:
            raise ConfigError(f"hyperparameter {name}={spec}: a list needs two or more values")
        if len(set(values)) != len(values):
            raise ConfigError(f"hyperparameter {name}={spec}: a value is listed twice")
        return Dimension(name, "categorical", choices=tuple(values), spec=spec)
    if ":" in spec:
        if kind_type not in (int, float):
            raise ConfigError(f"hyperparameter {name}={spec}: a range a:b needs a numeric hyperparameter; "
                              f"list the values instead (x,y)")
        parts = [p.strip() for p in spec.split(":")]
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in SCALES):
            raise ConfigError(f"hyperparameter {name}={spec}: write a range as low:high or low:high:log|linear")
        low, high = convert(name, parts[0], kind_type), convert(name, parts[1], kind_type)
        if low >= high:
            raise ConfigError(f"hyperparameter {name}={spec}: the low end must be below the high end")
        scale = parts[2] if len(parts) == 3 else "auto"
        if scale == "log" and low <= 0:
            raise ConfigError(f"hyperparameter {name}={spec}: a log scale needs a range above 0")
        log = scale == "log" or (scale == "auto" and low > 0
                                 and (name in LOG_SCALE_NAMES or high / low >= LOG_SCALE_RATIO))
        return Dimension(name, "int" if kind_type is int else "float", low, high, log, spec=spec)
    return convert(name, spec, kind_type)


def build_space(entries: list[tuple[str, str]], hyperparameters: Hyperparameters) -> SearchSpace:
    """Parse ``(name, spec)`` pairs into a search space and check it against the kind's parameters.

    Raises:
        ConfigError: an unknown or repeated name, a bad spec, no searched hyperparameter, or a
            value the kind's parameters reject (checked for both ends of every range, every
            listed value and the fixed values) — all before any trial runs.
    """
    known = hyperparameters.types
    seen: set[str] = set()
    dimensions: list[Dimension] = []
    fixed: dict[str, Any] = {}
    for raw_name, text in entries:
        name = raw_name.strip().lstrip("-").replace("-", "_")
        if name not in known:
            raise ConfigError(f"unknown {hyperparameters.kind} hyperparameter {name!r}; known: {', '.join(sorted(known))}")
        if name in seen:
            raise ConfigError(f"hyperparameter {name} given twice")
        seen.add(name)
        parsed = parse_spec(name, text, known[name])
        if isinstance(parsed, Dimension):
            dimensions.append(parsed)
        else:
            fixed[name] = parsed
    if not dimensions:
        example = _EXAMPLES.get(hyperparameters.kind) or _example(hyperparameters)
        raise ConfigError(f"nothing to search: give at least one {hyperparameters.kind} hyperparameter a range "
                          f"(a:b) or a list (x,y), e.g. {example}")
    _check(hyperparameters, "fixed values", fixed)
    for dimension in dimensions:
        for value in dimension.candidates():
            _check(hyperparameters, f"{dimension.name}={dimension.spec}", {**fixed, dimension.name: value})
    return SearchSpace(hyperparameters.kind, tuple(dimensions), fixed)


def _check(hyperparameters: Hyperparameters, what: str, values: dict) -> None:
    try:
        hyperparameters.check(values)
    except ConfigError as exc:
        raise ConfigError(f"search space {what}: {exc}") from None


def parse_cli_args(args: list[str]) -> list[tuple[str, str]]:
    """``(name, spec)`` pairs from extra command-line words: ``--name spec`` or ``--name=spec``.

    Raises:
        ConfigError: a word that is not an option, or an option without its spec.
    """
    pairs: list[tuple[str, str]] = []
    words = list(args)
    while words:
        word = words.pop(0)
        if not word.startswith("--") or len(word) < 3:
            raise ConfigError(f"unexpected argument {word!r}; give hyperparameters as --name spec or --param name=spec")
        name, sep, value = word[2:].partition("=")
        if not sep:
            if not words or words[0].startswith("--"):
                raise ConfigError(f"--{name} needs a value, a range a:b or a list x,y")
            value = words.pop(0)
        pairs.append((name, value))
    return pairs


def parse_params(params: list[str] | None) -> list[tuple[str, str]]:
    """``(name, spec)`` pairs from ``--param name=spec`` options.

    Raises:
        ConfigError: an item without ``=``.
    """
    pairs = []
    for item in params or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param {item!r}: write --param name=spec, e.g. --param warmup_ratio=0:0.2")
        pairs.append((name.strip(), value))
    return pairs


def field_types(model) -> tuple[dict[str, type], dict[str, tuple]]:
    """A pydantic model's fields as hyperparameter types (``Optional`` unwrapped, a ``Literal`` as
    text) and the allowed values of its ``Literal`` fields."""
    found: dict[str, type] = {}
    choices: dict[str, tuple] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        if typing.get_origin(annotation) is Literal:
            choices[name] = typing.get_args(annotation)
            annotation = str
        found[name] = annotation
    return found, choices


def kind_hyperparameters(kind) -> Hyperparameters:
    """What tuning a registered kind searches: its parameters model's ``search_space()`` when the
    model declares one (fastText: BlazingText's supervised hyperparameters; BERT: every
    :class:`~sagestack.bert.params.BertParams` field), else the model's fields plus ``seed`` (the
    trainer's seed), checked by the kind's parameters model.

    Args:
        kind: a :class:`~sagestack.models.kinds.ModelKind` with training parameters.
    """
    model = kind.params
    declared = getattr(model, "search_space", None)
    if declared is not None:
        return declared()
    found, choices = field_types(model)
    found.setdefault("seed", int)

    def check(values: dict) -> object:
        return kind.make_params({k: v for k, v in values.items() if k != "seed" or "seed" in model.model_fields})

    return Hyperparameters(kind.trainer_name, found, check, choices)
