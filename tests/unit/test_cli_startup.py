"""The command line starts without the heavy frameworks: each command imports what it runs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "numpy", "torch", "mlflow", "feast", "kfp", "bentoml", "sklearn", "autogluon", "transformers")


def test_importing_the_command_line_loads_no_heavy_framework():
    """A structural check, not a timing: `sagestack --help` and `--version` pay only for typer and pydantic."""
    probe = f"import json, sys; import sagestack.cli; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(loaded) == []
