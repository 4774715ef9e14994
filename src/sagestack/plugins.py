"""One registry mechanism for every plugin family: bias metrics, Debugger and Profiler rules, drift tests.

A :class:`Registry` holds named entries in registration order. A family registers with the
:meth:`Registry.register` decorator (or :meth:`Registry.add`), looks a name up with
:meth:`Registry.lookup` (an unknown name is a one-line error that lists the known ones), and
iterates like a dict. An entry may be lazy, a ``"package.module:attribute"`` reference imported on
first lookup (:meth:`Registry.add_lazy`), so a family of heavy plugins costs nothing to list.

Example::

    TESTS = Registry("drift test")

    @TESTS.register("ks", lambda fn: DriftTest("ks", "p_value", fn, "Kolmogorov-Smirnov"))
    def ks_p_value(reference, current): ...

    TESTS.lookup("kss")  # ConfigError: unknown drift test 'kss'; known: ks
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
from typing import Generic, TypeVar

from sagestack.errors import ConfigError

T = TypeVar("T")


class _Lazy:
    """An entry not imported yet: ``module:attribute`` (the module itself when no attribute is named)."""

    __slots__ = ("reference",)

    def __init__(self, reference: str):
        self.reference = reference

    def load(self):
        module, _, attribute = self.reference.partition(":")
        loaded = importlib.import_module(module)
        return getattr(loaded, attribute) if attribute else loaded


class Registry(MutableMapping[str, T], Generic[T]):
    """Named entries of one plugin family, in registration order.

    It is a mutable mapping (``registry[name]``, ``in``, ``list(registry)``, ``items()``), so code
    and tests that treat a family as a dict keep working; ``registry[name] = entry`` replaces an
    entry (tests swap one in), while :meth:`add` refuses a name twice.

    Args:
        family: what an entry is, as an error names it ("profiler rule", "bias metric").
        error: the exception class an unknown name raises (a one-line user error).
    """

    def __init__(self, family: str, *, error: type[Exception] = ConfigError):
        self.family = family
        self.error = error
        self._entries: dict[str, object] = {}

    # -- registering ---------------------------------------------------------------------------
    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name`` and return it.

        Raises:
            ValueError: ``name`` is registered already (two plugins claiming one name is a bug).
        """
        if name in self._entries:
            raise ValueError(f"{self.family} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def add_lazy(self, name: str, reference: str) -> None:
        """Register an entry imported on first lookup: ``"package.module:attribute"``, or
        ``"package.module"`` for the module itself.

        Raises:
            ValueError: ``name`` is registered already.
        """
        self.add(name, _Lazy(reference))  # type: ignore[arg-type]

    def register(self, name: str, make: Callable[[object], T] | None = None):
        """Decorator: register the decorated object (or ``make(object)``) under ``name``; the
        decorated object itself is returned unchanged.

        Args:
            name: the entry's name.
            make: builds the entry from the decorated function or class (e.g. a record that adds
                a description); the object itself when omitted.
        """

        def wrap(obj):
            self.add(name, make(obj) if make is not None else obj)
            return obj

        return wrap

    # -- looking up ----------------------------------------------------------------------------
    def name_for(self, name: str, *, ignore_case: bool = False) -> str | None:
        """The registered spelling of ``name`` (matched case-insensitively when asked), or ``None``."""
        if name in self._entries:
            return name
        if ignore_case:
            for key in self._entries:
                if key.lower() == name.lower():
                    return key
        return None

    def lookup(self, name: str, *, ignore_case: bool = False) -> T:
        """The entry registered under ``name`` (a lazy one is imported now).

        Raises:
            the registry's ``error`` (ConfigError by default): ``unknown <family> 'name'; known: a, b``.
        """
        key = self.name_for(name, ignore_case=ignore_case)
        if key is None:
            raise self.error(f"unknown {self.family} {name!r}; known: {', '.join(self._entries)}")
        return self[key]

    def check(self, names) -> None:
        """Raise the registry's error for the first of ``names`` that is not registered."""
        for name in names:
            if name not in self._entries:
                self.lookup(name)

    # -- the mapping ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> T:
        entry = self._entries[name]
        if isinstance(entry, _Lazy):
            entry = self._entries[name] = entry.load()
        return entry  # type: ignore[return-value]

    def __setitem__(self, name: str, entry: T) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, {list(self._entries)})"
