"""The layering rules of the README's "Architecture" section, read from the code's imports (no import runs).

- ``sagestack.registry`` is the only package that imports MLflow (one door to MLflow).
- The library (``src/sagestack``) imports no kfp, BentoML or FastAPI: those belong to the adapters
  (``components/``, ``pipelines/``, ``serving/``, ``console/``).
- No import cycles: between the library's packages at import time, and between its modules counting the
  imports made inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "src" / "sagestack"
# an adapter's folder -> the sub-package of sagestack it installs as (setup.py)
ADAPTERS = {"components": "sagestack.components", "pipelines": "sagestack.pipelines", "serving": "sagestack.bento",
            "console": "sagestack.console", "feature_repo": "sagestack.feature_repo"}


def _module_name(path: Path) -> str:
    """``src/sagestack/a/b.py`` -> ``sagestack.a.b``; an adapter's ``serving/x.py`` -> ``sagestack.bento.x``."""
    if LIBRARY in path.parents:
        parts = ["sagestack", *path.relative_to(LIBRARY).with_suffix("").parts]
    else:
        folder, *rest = path.relative_to(REPO).with_suffix("").parts
        parts = [*ADAPTERS[folder].split("."), *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    """The absolute names ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    nodes = tree.body if module_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def _files(*roots: Path):
    for root in roots:
        yield from (p for p in sorted(root.rglob("*.py")) if ".venv" not in p.parts)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_only_the_registry_imports_mlflow():
    roots = [LIBRARY, *(REPO / name for name in ADAPTERS)]
    offenders = [str(p.relative_to(REPO)) for p in _files(*roots)
                 if any(name == "mlflow" or name.startswith("mlflow.") for name in _imports(p, module_level_only=False))
                 and LIBRARY / "registry" not in p.parents]
    assert offenders == [], f"only sagestack.registry may import mlflow: {offenders}"


def test_the_library_imports_no_web_or_pipeline_framework():
    frameworks = ("kfp", "bentoml", "_bentoml_impl", "_bentoml_sdk", "fastapi", "starlette")
    offenders = sorted(f"{p.relative_to(REPO)}: {name}" for p in _files(LIBRARY)
                       for name in _imports(p, module_level_only=False) if name.split(".")[0] in frameworks)
    assert offenders == [], f"the library must leave these to the adapters: {offenders}"


def test_no_import_cycles_between_packages_or_modules():
    modules = {_module_name(p): p for p in _files(LIBRARY)}

    def package(name: str) -> str:
        return ".".join(name.split(".")[:2])

    def known(name: str) -> str | None:  # the library module an imported name lives in
        if any(name == adapter or name.startswith(f"{adapter}.") for adapter in ADAPTERS.values()):
            return None  # an adapter, installed inside the sagestack namespace but not part of the library
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    packages: dict[str, set[str]] = {}
    module_edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        for imported in _imports(path, module_level_only=True):
            target = known(imported)
            if target and package(target) != package(name):
                packages.setdefault(package(name), set()).add(package(target))
        for imported in _imports(path, module_level_only=False):
            target = known(imported)
            # a module and the package __init__ above it are one unit here (the package re-exports it)
            if target and target != name and not name.startswith(f"{target}.") and not target.startswith(f"{name}."):
                module_edges.setdefault(name, set()).add(target)
    assert _cycles(packages) == [], "packages that import each other when imported"
    assert _cycles(module_edges) == [], "modules that import each other (counting imports inside functions)"
