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
