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
