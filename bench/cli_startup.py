"""How long the command line takes to start, against two anchors measured in the same run.

Times (median of 5 runs each, after one warm-up run) `sagestack --version`, `sagestack --help`,
`sagestack models list` on a home that already has its MLflow database, and the anchors
`mlflow --version` and `feast version`. Targets (issue 25): --help and --version <= 0.5 s;
`models list` on an existing home <= `mlflow --version` + 1 s.
Run: .venv/bin/python bench/cli_startup.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
RUNS = 5


def seconds(argv: list[str], env: dict) -> float:
    """The median wall time of ``argv`` over RUNS runs (after a warm-up), failing loudly if it fails."""
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SAGESTACK_HOME": str(Path(tmp) / "home")}
        subprocess.run([str(BIN / "sagestack"), "models", "list"], env=env, capture_output=True, check=True)  # the home
        rows = [
            ("mlflow --version (anchor)", seconds([str(BIN / "mlflow"), "--version"], env)),
            ("feast version (anchor)", seconds([str(BIN / "feast"), "version"], env)),
            ("sagestack --version", seconds([str(BIN / "sagestack"), "--version"], env)),
            ("sagestack --help", seconds([str(BIN / "sagestack"), "--help"], env)),
            ("sagestack models list (existing home)", seconds([str(BIN / "sagestack"), "models", "list"], env)),
        ]
    width = max(len(name) for name, _ in rows)
    print(f"{'command':{width}}  median s  ({RUNS} runs, load {os.getloadavg()[0]:.1f})")
    for name, value in rows:
        print(f"{name:{width}}  {value:8.2f}")
    times = dict(rows)
    mlflow = times["mlflow --version (anchor)"]
    print(f"targets: --help {times['sagestack --help']:.2f} s and --version {times['sagestack --version']:.2f} s "
          f"<= 0.5 s; models list {times['sagestack models list (existing home)']:.2f} s <= mlflow --version + 1 s "
          f"= {mlflow + 1:.2f} s")


if __name__ == "__main__":
    main()
