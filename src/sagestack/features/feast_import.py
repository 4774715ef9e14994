"""Import Feast without typeguard's import-time instrumentation, and run its CLI that way.

Feast decorates its core classes (``Entity``, ``FeatureView``, the data sources, ...) with
typeguard's ``@typechecked``. Typeguard instruments a function by reading its module's source,
parsing it and compiling it again, for every decorated class, on every import: 8 of the ~10 s that
``import feast`` takes on this project's 2-core machine (cProfile: ``typeguard.typechecked`` 8.4 s
cumulative, ``compile`` and ``ast`` visits underneath). Every pipeline step, ``feast apply`` and
``sagestack features`` command paid it.

:func:`import_feast` imports Feast with ``typechecked`` left as the identity, which is what
typeguard itself does under ``python -O``. What is lost is Feast's run-time argument type checks
on those constructors; sagestack builds every Feast object from the fixed declarations in
``feature_repo/`` (covered by the test suite), and ``feast apply`` still validates the repository.
Only the import is changed: typeguard is restored for everybody else right after, and so are the
warning filters Feast's modules change when imported.

Feast also imports torch when imported (``feast.torch_wrapper``), for its ``to_tensor`` conversions
only, which sagestack never calls: 1.3 s of every Feast process (a pipeline's prepare step, ``feast
apply``). :func:`import_feast` leaves torch out of that import and lets Feast import it on the
first ``get_torch()`` instead, so a caller of ``to_tensor`` still gets it.

``python -m sagestack.features.feast_import ARGS`` is the ``feast`` CLI with Feast imported so.
"""

from __future__ import annotations

import sys
import threading
import warnings
from types import ModuleType

# One import at a time: the patches below are process-wide, so a second caller must neither save the first's
# patched typeguard as the original nor take a half-imported ``feast`` from sys.modules.
_LOCK = threading.Lock()


def _unchecked(target=None, **_options):
    """``typeguard.typechecked`` as under ``python -O``: the target unchanged (or, called with
    options only, a decorator that leaves its target unchanged)."""
    return _unchecked if target is None else target


def import_feast() -> ModuleType:
    """The ``feast`` package, imported without typeguard's instrumentation when this process has
    not imported it yet (see the module's docstring).

    While it imports (about a second), another thread's ``import torch`` raises ImportError: import
    Feast before starting threads that import torch, as sagestack's processes do.
    """
    with _LOCK:
        if "feast" in sys.modules:
            import feast  # imported, or being imported by a plain `import feast` elsewhere: Python's lock waits

            return feast
        return _import_unchecked()


def _import_unchecked() -> ModuleType:
    """:func:`import_feast`'s first import, under its lock."""
    import typeguard

    checked = typeguard.typechecked
    typeguard.typechecked = _unchecked
    defer_torch = "torch" not in sys.modules
    if defer_torch:
        sys.modules["torch"] = None  # `import torch` raises ImportError: feast.torch_wrapper records "later"
    try:
        # Feast's modules call warnings.simplefilter("once", ...) when imported, in front of the
        # process's own filters (the endpoint's silenced BentoML warning came back after the first
        # /predict_by_id): catch_warnings puts the process's filters back as they were.
        with warnings.catch_warnings():
            import feast
    finally:
        typeguard.typechecked = checked
        if defer_torch and sys.modules.get("torch", ...) is None:
            del sys.modules["torch"]
    if defer_torch:
        _torch_on_first_use()
    return feast


def _torch_on_first_use() -> None:
    """Make Feast's ``get_torch()`` import torch when first called (it was left out of the import).

    Feast's modules bind ``get_torch`` by name (``from feast.torch_wrapper import get_torch``):
    each binding of the original is replaced by one that imports torch first.
    """
    wrapper = sys.modules.get("feast.torch_wrapper")
    original = getattr(wrapper, "get_torch", None)
    if wrapper is None or original is None or getattr(wrapper, "TORCH_AVAILABLE", True):
        return  # another Feast layout, or torch imported after all: nothing to defer

    def get_torch():
        if not wrapper.TORCH_AVAILABLE:
            wrapper._import_torch()
        return original()

    for name, module in list(sys.modules.items()):
        if (name == "feast" or name.startswith("feast.")) and getattr(module, "get_torch", None) is original:
            module.get_torch = get_torch


def main() -> None:
    """The ``feast`` command line (``feast.cli.cli``), with Feast imported by :func:`import_feast`."""
    import_feast()
    from feast.cli.cli import cli

    sys.argv[0] = "feast"
    sys.exit(cli())


if __name__ == "__main__":
    main()
