"""Import SHAP with its numba helpers left as plain Python.

SHAP decorates a few small helpers with numba's ``@njit`` (the partition explainer's
``lower_credit``, the masked model's ``_build_fixed_*_output``, the clustering masks, the link
functions), without numba's on-disk cache: every process that explains anything compiled them
again, 6-8 s of LLVM work on this project's 2-core machine for a 10-review explanation whose model
calls take 0.3 s. Imported with numba's ``DISABLE_JIT`` set, they stay the Python functions they
are written as (what ``NUMBA_DISABLE_JIT=1`` does), which give the same values (checked: the
pipeline's SHAP analysis is identical to the last digit) and are faster at sagestack's sizes
(60 reviews: 1.8 s against 2.0 s once compiled), since the model calls dominate.

Only SHAP's own functions, decorated while it is imported, are affected: numba's setting is put
back right after, so any other package keeps its JIT.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()


def import_shap() -> ModuleType:
    """The ``shap`` package, imported with its numba helpers as plain Python when this process has
    not imported it yet (see the module's docstring)."""
    with _LOCK:  # the setting is process-wide: one import at a time, and nobody takes a half-imported shap
        if "shap" in sys.modules:
            import shap  # imported, or being imported by a plain `import shap` elsewhere: Python's lock waits

            return shap
        import numba

        disabled = numba.config.DISABLE_JIT
        numba.config.DISABLE_JIT = True
        try:
            import shap
        finally:
            numba.config.DISABLE_JIT = disabled
    return shap
