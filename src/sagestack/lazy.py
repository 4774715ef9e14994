"""Small standard-library helpers shared by packages that must stay cheap to import."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` (PEP 562) that imports ``exports[name]`` on first use.

    A package's ``__init__`` then names its public API without importing it, so importing one
    submodule (e.g. the BERT training code on a GPU machine with only torch and transformers)
    does not pull in the rest.
    """

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__


def read_jsonl(path: Path | str) -> list[dict]:
    """The JSON objects of a JSON-lines file, skipping a line cut short (a crash mid-write).

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    rows = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


TRUE_WORDS, FALSE_WORDS = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


def parse_scalar(text: str, kind: type):
    """A command-line word as ``bool``, ``int`` or ``float`` (other kinds: the stripped text).

    Raises:
        ValueError: the word is not a value of that kind (callers turn it into their one-line error).
    """
    text = text.strip()
    if kind is bool:
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise ValueError(text)
    if kind in (int, float):
        return kind(text)
    return text
