"""Shared fixtures: the real data (through the project's resolver), isolated homes, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sagestack.config import load_settings
from sagestack.data.resolver import shared_data_dirs

REPO = Path(__file__).resolve().parents[1]
SAGESTACK = Path(sys.executable).with_name("sagestack")


@pytest.fixture(autouse=True)
def _isolated_from_the_users_sagestack_env(monkeypatch):
    """No test may talk to the developer's MLflow server or home through SAGESTACK_* variables."""
    for name in list(os.environ):
        if name.startswith("SAGESTACK_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The course data folder (../shared/data), found as the resolver finds it."""
    for directory in shared_data_dirs():
        if (directory / "reviews_balanced.csv").is_file():
            return directory
    pytest.fail("../shared/data/reviews_balanced.csv not found beside the checkout")


@pytest.fixture(scope="session")
def blazingtext_split(shared_data: Path) -> tuple[Path, Path]:
    """The course's own BlazingText train/validation files."""
    return shared_data / "blazingtext" / "train.txt", shared_data / "blazingtext" / "validation.txt"


@pytest.fixture(scope="session")
def sample_csv(shared_data: Path, tmp_path_factory) -> Path:
    """A small real sample of reviews_balanced.csv: 200 reviews per sentiment."""
    frame = pd.read_csv(shared_data / "reviews_balanced.csv")
    sample = frame.groupby("sentiment", group_keys=False).apply(lambda g: g.sample(200, random_state=0))
    path = tmp_path_factory.mktemp("sample") / "reviews_sample.csv"
    sample.to_csv(path, index=False)
    return path


@pytest.fixture
def settings(tmp_path: Path):
    """Settings with an isolated home under tmp_path."""
    return load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")


@pytest.fixture
def cli(tmp_path: Path):
    """Run the installed ``sagestack`` command with an isolated home; returns CompletedProcess.

    ``result.json`` holds the parsed stdout when ``--json`` was passed and it parsed.
    """

    def run(*args: str, env: dict | None = None, check: bool = False):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SAGESTACK_")}
        environment["SAGESTACK_HOME"] = str(tmp_path / "home")
        environment.update(env or {})
        proc = subprocess.run(
            [str(SAGESTACK), *args], capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300
        )
        proc.json = None
        if "--json" in args and proc.stdout.strip():
            try:
                proc.json = json.loads(proc.stdout)
            except json.JSONDecodeError:
                pass
        if check and proc.returncode != 0:
            raise AssertionError(f"sagestack {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    return run
