"""Shared fixtures: the real data (the copies embedded in the package), isolated homes, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sagestack.config import load_settings
from sagestack.data import prepare_dataset
from sagestack.data.embedded import embedded_dataset, embedded_names

# One intra-op thread for torch/OpenMP in the tests and every process they start (read when torch
# loads): the suite runs two workers on two cores, and spinning OpenMP threads on a busy machine
# made 40 tiny-BERT steps take 43.5 s instead of 3.9-5.0 s.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

REPO = Path(__file__).resolve().parents[1]

# The files that take minutes (their module fixtures start topologies, consoles, pipeline runs), longest
# first, as measured (README, "Set-up and test times"). `make test` hands whole files to two workers in
# collection order (--dist loadfile --no-loadscope-reorder); started first, they run beside the many short
# files instead of leaving one worker alone with a long file at the end. Order only: every test passes
# alone and in any order.
LONGEST_FIRST = (
    "deploy/test_topology.py",
    "pipelines/test_sentiment_pipeline.py",
    "integration/test_cli.py",
    "console/test_console_browser.py",
    "features/test_feature_store.py",
    "integration/test_tune_cli.py",
    "integration/test_bert.py",
    "integration/test_automl.py",
    "features/test_spark_offline_store.py",
    "pipelines/test_new_kind.py",
    "aws/test_course1_notebook.py",
    "aws/test_serve_aws.py",
)
SAGESTACK = Path(sys.executable).with_name("sagestack")


def pytest_collection_modifyitems(items):
    """Put the files of :data:`LONGEST_FIRST` first, in that order; the others keep theirs."""
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0].removeprefix("tests/"), len(rank)))


@pytest.fixture(autouse=True)
def _isolated_from_the_users_sagestack_env(monkeypatch):
    """No test may talk to the developer's MLflow server or home through SAGESTACK_* variables."""
    for name in list(os.environ):
        if name.startswith("SAGESTACK_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> Path:
    """The course's review CSVs, from the copies embedded in the package.

    Tests read the embedded copies even where ``../shared/data`` exists, so a bare clone and
    CI run exactly the same data (the two are byte-identical: the embedded module records the
    originals' sha256 and checks every decompressed copy against it).
    """
    cache = tmp_path_factory.mktemp("embedded-cache")
    paths = [embedded_dataset(name, cache) for name in embedded_names()]
    return paths[0].parent


@pytest.fixture(scope="session")
def blazingtext_split(shared_data: Path, tmp_path_factory) -> tuple[Path, Path]:
    """A BlazingText-style 90/10 train/validation split in fastText format (course tokenization).

    Made by sagestack's own preparation from the embedded reviews, the same proportions as the
    course's 6,399/711 split (whose files are not shipped: only the two CSVs are embedded).
    """
    out = tmp_path_factory.mktemp("blazingtext") / "split"
    prepared = prepare_dataset(shared_data / "reviews_balanced.csv", out, validation_fraction=0.1, test_fraction=0.0)
    return prepared.files["train"]["fasttext"], prepared.files["validation"]["fasttext"]


@pytest.fixture(scope="session")
def sample_csv(shared_data: Path, tmp_path_factory) -> Path:
    """A small real sample of reviews_balanced.csv: 200 reviews per sentiment (the groups in label order,
    each drawn with its own ``random_state=0``: the rows every test's expectations were set on)."""
    import warnings

    frame = pd.read_csv(shared_data / "reviews_balanced.csv")
    with warnings.catch_warnings():
        # pyproject ignores FutureWarning for the suite; here a pandas change of behaviour must fail loudly.
        warnings.simplefilter("error", FutureWarning)
        sample = pd.concat([group.sample(200, random_state=0) for _, group in frame.groupby("sentiment", sort=True)])
    path = tmp_path_factory.mktemp("sample") / "reviews_sample.csv"
    sample.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def sample_split(sample_csv: Path, tmp_path_factory) -> Path:
    """The sample prepared by ``sagestack data prepare`` (80/10/10): ``{train,validation,test}.{csv,txt}``."""
    out = tmp_path_factory.mktemp("sample-split") / "prepared"
    prepare_dataset(sample_csv, out, validation_fraction=0.1, test_fraction=0.1)
    return out


@pytest.fixture
def settings(tmp_path: Path):
    """Settings with an isolated home under tmp_path."""
    return load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")


def run_sagestack(home: Path, *args: str, env: dict | None = None, cwd: Path | None = None,
                  timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed ``sagestack`` command with ``home`` as its only ``SAGESTACK_HOME`` (no other
    ``SAGESTACK_*`` variable of the caller's leaks in), from ``cwd`` (default: ``home``'s parent)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SAGESTACK_")}
    environment["SAGESTACK_HOME"] = str(home)
    environment.update(env or {})
    return subprocess.run([str(SAGESTACK), *args], capture_output=True, text=True, env=environment,
                          cwd=cwd or home.parent, timeout=timeout)


@pytest.fixture(scope="session")
def sagestack_wheel(tmp_path_factory) -> Path:
    """The sagestack wheel, built from a copy of the sources (as ``make bento`` builds it), so no stale
    ``build/`` of the checkout takes part."""
    import shutil

    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for folder in ("src", "components", "pipelines", "serving", "console", "feature_repo"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "-w", str(root / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (root / "dist").glob("sagestack-*.whl")
    return wheel


@pytest.fixture(scope="session")
def sagestack():
    """:func:`run_sagestack`, for module-scoped fixtures that run the command with a home of their own."""
    return run_sagestack


@pytest.fixture
def cli(tmp_path: Path):
    """Run the installed ``sagestack`` command with an isolated home; returns CompletedProcess.

    ``result.json`` holds the parsed stdout when ``--json`` was passed and it parsed.
    """

    def run(*args: str, env: dict | None = None, check: bool = False):
        proc = run_sagestack(tmp_path / "home", *args, env=env, cwd=tmp_path, timeout=300)
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


def wait_until(predicate, timeout: float, message: str, interval: float = 0.05):
    """Poll ``predicate()`` until it returns something truthy, and return that; fail the test with
    ``message`` (a string, or a callable for a message read at the deadline) after ``timeout`` seconds.

    Tests wait for what they need this way, never with a fixed sleep: on a busy machine a sleep is
    either too short (flaky) or too long (slow).
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{message() if callable(message) else message} (waited {timeout:g} s)")
        time.sleep(interval)


def start_redis(port: int, folder: Path, *, persist: bool = False) -> subprocess.Popen:
    """A real ``redis-server`` on 127.0.0.1:``port``, answering PING when this returns.

    ``persist`` keeps an append-only file in ``folder``, so a restarted server has its data back.
    Fails (never skips) without redis-server: a run without it would not test the Redis store.
    """
    import shutil
    import time

    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; `make test` installs it with apt-get (or: apt-get install redis-server)")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "yes" if persist else "no", "--dir", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"redis-server did not answer on port {port}")


@pytest.fixture
def one_torch_thread():
    """Torch with one intra-op thread for the test (two spinning threads per step on a shared 2-core
    machine made a 30-step tiny-BERT run take ~50 s instead of ~4 s)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def sagestack_main(tmp_path, monkeypatch, capsys):
    """Run ``sagestack ARGS`` in this process through the console script's own entry point
    (``sagestack.cli.main``: exit codes and one-line errors as a user sees them, without a
    process start), from ``tmp_path/work``, with a home of its own. Returns ``(code, stdout, stderr)``."""
    from sagestack.cli import main

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SAGESTACK_HOME", str(tmp_path / "home"))

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["sagestack", *map(str, args)])
        with pytest.raises(SystemExit) as exited:
            main()
        captured = capsys.readouterr()
        return exited.value.code or 0, captured.out, captured.err

    run.work = work
    return run
