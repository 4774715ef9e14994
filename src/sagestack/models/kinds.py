"""The registry of model kinds: each kind's predictor, its pip requirements and how it is served.

Everything that handles a trained model — the MLflow pyfunc, the model registry, the
pipeline's evaluate/bias/explain steps and the BentoML service — asks this registry for the
kind named in the model's card (or the registered version's ``model.kind`` tag) and never
names a kind itself. Adding a kind is one new module that defines ``KIND`` plus one line in
:data:`KIND_MODULES`. Modules are imported on first use, so ``import sagestack`` stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path

from sagestack import __version__
from sagestack.errors import RegistryError

# kind name -> the module that defines its ``KIND``.
KIND_MODULES = {
    "fasttext": "sagestack.models.fasttext",
    "baseline": "sagestack.models.baseline",
    "autogluon": "sagestack.models.autogluon",
    "bert": "sagestack.models.bert",
}
# What every pyfunc needs besides the kind's own packages.
COMMON_REQUIREMENTS = ("numpy", "pandas", "mlflow")


@dataclass(frozen=True)
class ModelKind:
    """A model kind.

    Attributes:
        name: the kind's name, as in the model card and the ``model.kind`` tag.
        predictor: its predictor class (``load(model_dir)`` -> a :class:`~sagestack.models.TextClassifier`).
        requirements: the distributions its predictor needs at inference (pinned to the installed versions).
        heavy: ``True`` when one prediction costs milliseconds or more: the endpoint then runs it
            in a worker thread so the event loop never blocks; cheap kinds run on the loop.
        description: one line for listings.
        file_suffixes: suffixes of single model files the kind's predictor also loads directly
            (e.g. a fastText ``.bin``), besides a model directory.
    """

    name: str
    predictor: type
    requirements: tuple[str, ...]
    heavy: bool
    description: str
    file_suffixes: tuple[str, ...] = ()

    def pip_requirements(self, extra: tuple[str, ...] | list[str] = ()) -> list[str]:
        """Exact requirements of a model of this kind (explicit, so MLflow infers nothing).

        Args:
            extra: distributions this model needs beyond the kind's (its card's ``requirements``).
        """
        packages = dict.fromkeys((*self.requirements, *extra, *COMMON_REQUIREMENTS))  # ordered, no repeats
        return [f"sagestack=={__version__}", *(f"{pkg}=={package_version(pkg)}" for pkg in packages)]


def kind_names() -> list[str]:
    """The names of every registered kind."""
    return list(KIND_MODULES)


def get_kind(name: str) -> ModelKind:
    """The kind registered under ``name``.

    Raises:
        RegistryError: no such kind.
    """
    module = KIND_MODULES.get(name)
    if module is None:
        raise RegistryError(f"unknown model kind {name!r}; known kinds: {', '.join(KIND_MODULES)}")
    return importlib.import_module(module).KIND


def kind_for_file(path: Path | str) -> ModelKind | None:
    """The kind whose predictor loads a single model file with this suffix, or ``None``."""
    suffix = Path(path).suffix
    for name in KIND_MODULES:
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
