"""The distribution's metadata agrees with the locked stack, and the clone carries what it declares."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]


def _stack_in() -> list[Requirement]:
    lines = (REPO / "requirements" / "stack.in").read_text(encoding="utf-8").splitlines()
    return [Requirement(line.split("#", 1)[0].strip()) for line in lines if line.split("#", 1)[0].strip()]


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def _without_local_versions(specifier: SpecifierSet) -> SpecifierSet:
    """``torch==2.13.0+cpu`` in the lock's input is ``torch==2.13.0`` on PyPI: compare without the local part."""
    return SpecifierSet(",".join(f"{s.operator}{s.version.split('+', 1)[0]}" for s in specifier))


def test_the_stack_extra_names_every_runtime_requirement_of_stack_in_with_the_same_versions():
    """``pip install 'sagestack[stack]'`` must give every command: it installs what requirements/stack.in names.

    Test-only packages (pytest, moto, Playwright, ...) go to the ``test`` extra instead; every other
    name of stack.in is a base dependency or in ``stack`` (there with the same extras and version range).
    """
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    base = {_canonical(Requirement(r).name) for r in project["dependencies"]}
    stack = {_canonical(r.name): r for r in map(Requirement, extras["stack"])}
    test_only = {_canonical(Requirement(r).name) for r in extras["test"]} - set(stack)

    missing, different = [], []
    for wanted in _stack_in():
        name = _canonical(wanted.name)
        if name in test_only or (name in base and name not in stack):
            continue
        declared = stack.get(name)
        if declared is None:
            missing.append(str(wanted))
        elif declared.extras != wanted.extras or (
            _without_local_versions(declared.specifier) != _without_local_versions(wanted.specifier)
        ):
            different.append(f"{declared} (stack.in: {wanted})")
    assert not missing, f"requirements/stack.in names these, pyproject's stack extra does not: {missing}"
    assert not different, f"pyproject and requirements/stack.in disagree: {different}"


def test_every_requirement_of_pyproject_is_pinned_in_the_lock():
    """The other way round: nothing installs from pyproject that the lock was not resolved with."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    lock = (REPO / "requirements" / "lock.txt").read_text(encoding="utf-8").splitlines()
    pinned = {_canonical(line.split("==", 1)[0]) for line in lock if "==" in line and not line.startswith(" ")}
    declared = [Requirement(r) for r in project["dependencies"] + extras["stack"] + extras["test"]]
    assert [str(r) for r in declared if _canonical(r.name) not in pinned] == []


def test_the_declared_licence_ships_as_a_root_licence_file():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_wheel_installs_only_the_sagestack_namespace(sagestack_wheel):
    """The built wheel's only top-level name is ``sagestack``: the adapter folders install as its sub-packages
    (``serving/`` as ``sagestack.bento``) with their data, so installing sagestack shadows no ``serving`` or
    ``console`` of another distribution. Built from a copy, so no stale ``build/`` of the clone takes part."""
    import zipfile

    wheel = sagestack_wheel
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == {"sagestack"}
    for shipped in ("sagestack/components/sentiment.py", "sagestack/pipelines/runner.py", "sagestack/bento/service.py",
                    "sagestack/bento/bentofile.yaml", "sagestack/console/pages/data.py",
                    "sagestack/console/templates/base.html", "sagestack/console/static/console.css",
                    "sagestack/feature_repo/reviews.py", "sagestack/feature_repo/feature_store.yaml",
                    "sagestack/serving/endpoint.py"):
        assert shipped in names
