"""The registry of model kinds: each kind's predictor, trainer, parameters and how it is served.

Everything that handles a model — the MLflow pyfunc, the model registry, the pipeline's
branches, evaluate/bias/explain steps and champion selection, ``sagestack train``/``tune``,
the Katib export, the console's forms and the BentoML service — asks this registry and never
names a kind itself. Entries hold ``"module:attribute"`` references, imported on first use,
so ``import sagestack`` and the command line's help stay fast.

How to add a kind:

1. Write its predictor (a :class:`~sagestack.models.TextClassifier` with ``load(model_dir)``),
   its trainer ``train(prepared_dir, model_dir, params, context) -> {"kind", "validation_accuracy", ...}``
   (``context`` is a :class:`TrainContext`) and its parameters (a pydantic model: defaults, help
   as ``description``, bounds as ``ge``/``le``) in one package.
2. Declare ``KIND = ModelKind(name=..., predictor=..., trainer=..., params=..., ...)`` there.
3. Register it: one line in :data:`KINDS` here, or — without editing sagestack — name it in
   ``SAGESTACK_KIND_MODULES`` (comma-separated ``module`` or ``module:attribute``, default
   attribute ``KIND``; read by every sagestack process, so pipeline steps and subprocesses see it).
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Callable

from sagestack import __version__
from sagestack.errors import ConfigError, RegistryError
from sagestack.plugins import Registry, _Lazy

# What every pyfunc needs besides the kind's own packages.
COMMON_REQUIREMENTS = ("numpy", "pandas", "mlflow")
# Extra kinds to register in every process: comma-separated "module" or "module:attribute" (default KIND).
KIND_MODULES_ENV = "SAGESTACK_KIND_MODULES"
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


def _resolve(reference):
    """A ``"module:attribute"`` reference imported (anything else returned as it is)."""
    if isinstance(reference, str):
        module, _, attribute = reference.partition(":")
        return getattr(importlib.import_module(module), attribute)
    return reference


@dataclass(frozen=True)
class TrainContext:
    """What a trainer gets besides its data, output folder and parameters.

    Attributes:
        seed: seeds the split-independent randomness of the trainer.
        metric: the selection metric (``accuracy`` or ``macro_f1``) a trainer that picks among
            candidates (AutoML) ranks them by.
        reports_dir: where the trainer may write reports (one file per report, named as the step's
            artifact, e.g. ``debugger_report``); ``None`` when nobody keeps them.
        progress: called with short progress messages, or ``None``.
    """

    seed: int = 42
    metric: str = "accuracy"
    reports_dir: Path | None = None
    progress: Callable[[str], None] | None = None


class ModelKind:
    """A model kind: how it predicts, how it trains, and what its training takes.

    Args:
        name: the kind's name, as in the model card and the ``model.kind`` tag.
        predictor: its predictor class (``load(model_dir)`` -> a :class:`~sagestack.models.TextClassifier`),
            or a ``"module:Class"`` reference to it.
        requirements: the distributions its predictor needs at inference (pinned to the installed versions).
        heavy: ``True`` when one prediction costs milliseconds or more: the endpoint then runs it
            on its model thread so the event loop never blocks; cheap kinds run on the loop.
        intra_op: ``True`` when its predictor spreads one call over every core itself (PyTorch's
            intra-op threads): an endpoint serving it then runs one worker process that holds all the
            cores, unless the operator sets ``workers`` (see :mod:`sagestack.serving.threads`).
        description: one line for listings.
        file_suffixes: suffixes of single model files the kind's predictor also loads directly
            (e.g. a fastText ``.bin``), besides a model directory.
        trainer: ``train(prepared_dir, model_dir, params, context) -> dict`` or a ``"module:function"``
            reference; ``None`` for a kind that is served but not trained by sagestack.
        params: the trainer's parameters, a pydantic model (or a ``"module:Class"`` reference);
            every field needs a default.
        trainer_name: the name a pipeline branch, ``--trainers`` and the commands use (default: ``name``).
        param_prefix: prefix of its parameters among the pipeline's (default ``<trainer_name>_``).
        gpu: its branch runs on the GPU image and asks for one GPU.
        size: its pipeline step's resources on a cluster (``train`` or ``heavy``).
    """

    def __init__(self, name: str, predictor: type | str, requirements: tuple[str, ...] = (), heavy: bool = False,
                 description: str = "", file_suffixes: tuple[str, ...] = (), *, trainer: Callable | str | None = None,
                 params: type | str | None = None, trainer_name: str | None = None, param_prefix: str | None = None,
                 gpu: bool = False, size: str = "train", intra_op: bool = False) -> None:
        self.name = name
        self._predictor = predictor
        self.requirements = tuple(requirements)
        self.heavy = heavy
        self.intra_op = intra_op
        self.description = description
        self.file_suffixes = tuple(file_suffixes)
        self._trainer = trainer
        self._params = params
        self.trainer_name = trainer_name or name
        self.param_prefix = f"{self.trainer_name}_" if param_prefix is None else param_prefix
        self.gpu = gpu
        self.size = size
        if not _IDENTIFIER.match(self.trainer_name):
            raise ValueError(f"model kind {name!r}: trainer name {self.trainer_name!r} must be a lower-case identifier")

    def __repr__(self) -> str:
        return f"ModelKind({self.name!r})"

    @property
    def predictor(self) -> type:
        """The predictor class (imported on first use)."""
        return _resolve(self._predictor)

    @property
    def trainable(self) -> bool:
        """Whether sagestack trains this kind (it has a trainer)."""
        return self._trainer is not None

    @property
    def trainer(self) -> Callable:
        """The trainer function (imported on first use).

        Raises:
            ConfigError: the kind has no trainer.
        """
        if self._trainer is None:
            raise ConfigError(f"model kind {self.name!r} has no trainer")
        return _resolve(self._trainer)

    @property
    def params(self) -> type:
        """The trainer's parameters model (a pydantic model class)."""
        if self._params is None:
            raise ConfigError(f"model kind {self.name!r} has no training parameters")
        return _resolve(self._params)

    def pip_requirements(self, extra: tuple[str, ...] | list[str] = ()) -> list[str]:
        """Exact requirements of a model of this kind (explicit, so MLflow infers nothing).

        Args:
            extra: distributions this model needs beyond the kind's (its card's ``requirements``).
        """
        packages = dict.fromkeys((*self.requirements, *extra, *COMMON_REQUIREMENTS))  # ordered, no repeats
        return [f"sagestack=={__version__}", *(f"{pkg}=={package_version(pkg)}" for pkg in packages)]

    # -- parameters ----------------------------------------------------------------------------
    def param_fields(self) -> dict[str, Any]:
        """The parameters model's fields (name -> pydantic ``FieldInfo``), in declaration order."""
        return dict(self.params.model_fields)

    def make_params(self, values: dict | None = None):
        """The kind's parameters from ``values`` (``None`` values keep defaults).

        Raises:
            ConfigError: an unknown parameter or a value the model rejects, naming it.
        """
        from pydantic import ValidationError

        given = {name: value for name, value in (values or {}).items() if value is not None}
        try:
            return self.params(**given)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = f" '{err['loc'][0]}'" if err["loc"] else ""
            raise ConfigError(f"invalid {self.trainer_name} parameter{where}: {err['msg']}") from None

    def params_template(self, values: dict) -> str:
        """The parameters as one JSON object of strings with the given values interpolated (a
        pipeline passes its parameter channels here: KFP fills them in at run time)."""
        return "{" + ", ".join(f'"{name}": "{values[name]}"' for name in self.param_fields()) + "}"

    def decode_params(self, text: str):
        """Parameters back from a :meth:`params_template` filled in by KFP.

        Values are matched between the known field names, so a value holding quotes or
        backslashes still parses; numbers come as KFP renders them (``5`` may arrive as ``5.0``).

        Raises:
            ConfigError: the text is not such an object, or a value is out of range.
        """
        fields = self.param_fields()
        if not fields:
            return self.make_params({})
        pattern = "^\\{" + ", ".join(f'"{re.escape(name)}": "(.*)"' for name in fields) + "\\}$"
        match = re.match(pattern, text, re.DOTALL)
        if match is None:
            raise ConfigError(f"the {self.trainer_name} branch got parameters it cannot read: {text[:200]}")
        values = {}
        for (name, field), raw in zip(fields.items(), match.groups()):
            values[name] = _coerce(raw, field.annotation)
        return self.make_params(values)


def _coerce(raw: str, annotation) -> Any:
    """A pipeline parameter rendered as text, back to the field's type."""
    if annotation is bool:
        return raw.strip().lower() in ("true", "1", "yes")
    if annotation is int:
        return int(float(raw))
    if annotation is float:
        return float(raw)
    return raw


class _KindRegistry(Registry[ModelKind]):
    """Kinds by name; assigning a module name (``KINDS["x"] = "pkg.mod"``) registers that module's ``KIND``."""

    def __setitem__(self, name: str, entry) -> None:
        if isinstance(entry, str):
            entry = _Lazy(entry if ":" in entry else f"{entry}:KIND")
        super().__setitem__(name, entry)


KINDS: Registry[ModelKind] = _KindRegistry("model kind", error=RegistryError)
KINDS.add("fasttext", ModelKind(
    name="fasttext", predictor="sagestack.models.fasttext:FastTextPredictor", requirements=("fasttext-community",),
    heavy=False,  # well under a millisecond a review: cheaper on the event loop than handed to a thread
    description="BlazingText-equivalent fastText classifier", file_suffixes=(".bin", ".ftz"),
    trainer="sagestack.text.training:train_prepared", params="sagestack.text.params:FastTextTrainParams",
    param_prefix="",  # the pipeline's fastText parameters keep BlazingText's bare names (epochs, ...)
))
KINDS.add("baseline", ModelKind(
    name="baseline", predictor="sagestack.models.baseline:BaselinePredictor", requirements=("scikit-learn", "joblib", "scipy"),
    heavy=True,  # a sparse transform + matrix product per request: milliseconds, off the event loop
    description="TF-IDF word + character n-grams with logistic regression (scikit-learn)",
    trainer="sagestack.models.baseline:train_prepared", params="sagestack.models.baseline_params:BaselineTrainParams",
))
KINDS.add("autogluon", ModelKind(
    name="autogluon", predictor="sagestack.models.autogluon:AutoGluonPredictor",
    # What every AutoGluon model needs; the chosen family's packages (and the sentence encoder's)
    # come from the model's card (ModelCard.requirements).
    requirements=("autogluon-tabular", "autogluon-core", "autogluon-features", "autogluon-common", "scikit-learn"),
    heavy=True,  # AutoGluon's feature pipeline + a model per request: milliseconds, off the event loop
    description="the best candidate of an AutoML job (AutoGluon: TF-IDF linear, LightGBM, CatBoost, ...)",
    trainer="sagestack.automl.search:train_prepared", params="sagestack.automl.spec:AutoMLTrainParams",
    trainer_name="automl", size="heavy",
))
KINDS.add("bert", ModelKind(
    name="bert", predictor="sagestack.models.bert:BertPredictor",
    requirements=("torch", "transformers", "tokenizers", "safetensors"),
    heavy=True,  # a transformer forward pass per request: milliseconds, off the event loop
    intra_op=True,  # PyTorch runs a call on every core's threads
    description="a fine-tuned BERT sequence classifier (default: the 6-layer MiniLM shipped on PyPI)",
    trainer="sagestack.bert.job:train_prepared", params="sagestack.bert.params:BertTrainParams", gpu=True, size="heavy",
))
# The name tests and older code patch to add a kind by module (``KIND_MODULES["x"] = "module"``).
KIND_MODULES = KINDS
_loaded_extras: set[str] = set()


def _load_extras() -> None:
    """Register the kinds named in ``SAGESTACK_KIND_MODULES`` not registered yet."""
    for reference in filter(None, (part.strip() for part in os.environ.get(KIND_MODULES_ENV, "").split(","))):
        if reference in _loaded_extras:
            continue
        try:
            kind = _resolve(reference if ":" in reference else f"{reference}:KIND")
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{KIND_MODULES_ENV}: cannot load {reference!r} ({exc})") from None
        _loaded_extras.add(reference)
        if kind.name not in KINDS:
            KINDS.add(kind.name, kind)


def kind_names() -> list[str]:
    """The names of every registered kind."""
    _load_extras()
    return list(KINDS)


def get_kind(name: str) -> ModelKind:
    """The kind registered under ``name``.

    Raises:
        RegistryError: no such kind.
    """
    _load_extras()
    if name not in KINDS:
        raise RegistryError(f"unknown model kind {name!r}; known kinds: {', '.join(KINDS)}")
    return KINDS[name]


def trainer_kinds() -> list[ModelKind]:
    """The kinds sagestack trains, in registration order (the order a tie between branches is broken)."""
    return [kind for kind in (get_kind(name) for name in kind_names()) if kind.trainable]


def trainer_names() -> list[str]:
    """The trainer names of :func:`trainer_kinds` (``fasttext, baseline, automl, bert, ...``)."""
    return [kind.trainer_name for kind in trainer_kinds()]


def kind_for_trainer(name: str) -> ModelKind:
    """The trainable kind a trainer name (or kind name, e.g. ``autogluon`` for ``automl``) stands for.

    Raises:
        ConfigError: no such trainer.
    """
    for kind in trainer_kinds():
        if name in (kind.trainer_name, kind.name):
            return kind
    raise ConfigError(f"unknown trainer {name!r}; choose from {', '.join(trainer_names())}")


def kind_for_file(path: Path | str) -> ModelKind | None:
    """The kind whose predictor loads a single model file with this suffix, or ``None``."""
    suffix = Path(path).suffix
    for name in kind_names():
        kind = get_kind(name)
        if suffix in kind.file_suffixes:
            return kind
    return None


def load_model(model_dir: Path | str):
    """Load any trained model directory with its kind's predictor (the kind comes from its card).

    Raises:
        RegistryError: not a sagestack model directory, an unknown kind, or not a classifier.
    """
    from sagestack.models.base import ModelCard

    card = ModelCard.load(Path(model_dir))
    if not card.servable:
        raise RegistryError(f"{model_dir} holds {card.kind} word vectors, not a classifier; train in supervised mode")
    predictor = get_kind(card.kind).predictor.load(Path(model_dir))
    predictor.source_path = Path(model_dir)
    return predictor
