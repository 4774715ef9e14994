"""Feast imported the fast way leaves the process as it found it: typeguard and the warning filters."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import warnings
import typeguard
checked, filters = typeguard.typechecked, list(warnings.filters)
from sagestack.features.feast_import import import_feast
feast = import_feast()
from feast import FeatureStore, FeatureView  # the classes sagestack uses, made without typeguard's rewrite
assert typeguard.typechecked is checked, "typeguard's decorator was not restored"
assert list(warnings.filters) == filters, "Feast's import changed this process's warning filters"
assert import_feast() is feast and FeatureStore.__module__ == "feast.feature_store"
print("ok")
"""


def test_import_feast_restores_typeguard_and_the_warning_filters():
    # A process of its own: this test process may have imported Feast already.
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
