"""The one registry mechanism (sagestack.plugins.Registry) that bias metrics, rules and drift tests share."""

import pytest

from sagestack.errors import ConfigError, RegistryError
from sagestack.plugins import Registry


def test_entries_keep_registration_order_and_the_decorator_returns_the_object():
    registry = Registry("widget")

    @registry.register("b")
    def b():
        return "b"

    @registry.register("a", lambda fn: ("record", fn))
    def a():
        return "a"

    assert list(registry) == ["b", "a"] and len(registry) == 2
    assert registry["b"] is b and registry.lookup("a") == ("record", a)
    assert b() == "b" and a() == "a"  # the decorated functions are unchanged
    assert dict(registry.items()) == {"b": b, "a": ("record", a)}


def test_an_unknown_name_is_a_one_line_error_that_names_the_known_ones():
    registry = Registry("profiler rule")
    registry.add("CPUBottleneck", 1)
    registry.add("IOBottleneck", 2)
    with pytest.raises(ConfigError) as error:
        registry.lookup("GPU")
    assert str(error.value) == "unknown profiler rule 'GPU'; known: CPUBottleneck, IOBottleneck"
    with pytest.raises(ConfigError, match="unknown profiler rule 'x'"):
        registry.check(["CPUBottleneck", "x"])
    with pytest.raises(RegistryError, match="unknown model kind 'x'; known: "):
        Registry("model kind", error=RegistryError).lookup("x")
    assert registry.get("GPU") is None and "GPU" not in registry


def test_case_insensitive_lookup_when_asked():
    registry = Registry("debugger rule")
    registry.add("Overfit", 1)
    assert registry.lookup("overfit", ignore_case=True) == 1 and registry.name_for("OVERFIT", ignore_case=True) == "Overfit"
    assert registry.name_for("overfit") is None
    with pytest.raises(ConfigError):
        registry.lookup("overfit")


def test_a_name_registered_twice_is_refused_but_an_entry_can_be_replaced():
    registry = Registry("drift test")
    registry.add("ks", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("ks", 2)
    registry["ks"] = 3  # what a test's monkeypatch.setitem does
    assert registry["ks"] == 3
    del registry["ks"]
    assert list(registry) == []


def test_a_lazy_entry_is_imported_on_first_lookup(tmp_path, monkeypatch):
    (tmp_path / "lazy_plugin_module.py").write_text("ENTRY = 'loaded'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("model kind")
    registry.add_lazy("thing", "lazy_plugin_module:ENTRY")
    registry.add_lazy("module", "lazy_plugin_module")
    import sys

    assert list(registry) == ["thing", "module"] and "lazy_plugin_module" not in sys.modules  # listing imports nothing
    assert registry.lookup("thing") == "loaded"
    assert registry["module"].ENTRY == "loaded"
