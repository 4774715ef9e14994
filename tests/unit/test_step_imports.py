"""What a pipeline step's imports leave out: Feast without torch (imported on first use), SHAP's
numba helpers as plain Python (no per-process compile) with numba's JIT left on for everybody else."""

from __future__ import annotations

import subprocess
import sys

FEAST = """
import sys
from sagestack.features.feast_import import import_feast
import_feast()
assert "torch" not in sys.modules, "importing Feast imported torch"
import feast.infra.offline_stores.offline_store as offline_store
torch = offline_store.get_torch()  # Feast's to_tensor path: torch comes on first use
assert torch is sys.modules["torch"] and sys.modules["feast.torch_wrapper"].TORCH_AVAILABLE
print("ok")
"""

SHAP = """
import numba
from sagestack.explain.shap_import import import_shap
shap = import_shap()
assert not numba.config.DISABLE_JIT, "numba's JIT was not restored"
from shap.explainers import _partition
from shap.utils import _masked_model
from numba.core.dispatcher import Dispatcher
assert not isinstance(_partition.lower_credit, Dispatcher), "SHAP's helpers were compiled"
assert not isinstance(_masked_model._build_fixed_multi_output, Dispatcher)
assert import_shap() is shap

@numba.njit
def later(x):
    return x + 1

assert isinstance(later, Dispatcher), "a function decorated after the import lost numba's JIT"
print("ok")
"""


def _run(code: str) -> None:
    # A process of its own: this test process may have imported Feast, torch or SHAP already.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_feast_imports_without_torch_and_gets_it_on_first_use():
    _run(FEAST)


def test_shap_helpers_stay_python_and_numba_keeps_its_jit():
    _run(SHAP)


CONCURRENT = """
import threading, time
import typeguard
from sagestack.features.feast_import import import_feast
from sagestack.explain.shap_import import import_shap
original = typeguard.typechecked
got, errors = [], []

def call(importer, attribute):
    try:
        got.append(getattr(importer(), attribute))
    except BaseException as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=call, args=(import_feast, "FeatureStore")),
           threading.Thread(target=call, args=(import_shap, "Explainer"))]
threads += [threading.Thread(target=call, args=(import_feast, "FeatureStore")),
            threading.Thread(target=call, args=(import_shap, "Explainer"))]
for thread in threads:
    thread.start()
    time.sleep(0.2)  # the second of each starts while the first is importing
for thread in threads:
    thread.join()
assert not errors, errors
assert len(got) == 4 and typeguard.typechecked is original, "typeguard was not restored"
print("ok")
"""


def test_concurrent_first_imports_wait_for_one_whole_import():
    """Two threads importing Feast (or SHAP) at once both get the whole module, and typeguard comes back as it
    was: the second waits for the first instead of taking a half-imported module or the patched decorator."""
    _run(CONCURRENT)
