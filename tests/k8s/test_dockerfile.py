"""The runtime image's Dockerfile, read (no Docker engine runs here): multi-stage, pinned bases, the
lock installed, the same Python as the project, no build tools or root in the final stages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def stages() -> dict[str, list[str]]:
    """Instruction lines (continuations joined) per stage name."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", "\n".join(lines), flags=re.M))
    found: dict[str, list[str]] = {}
    current = None
    for line in lines:
        match = re.match(r"FROM (\S+) AS (\S+)", line)
        if match:
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], match.group(1))
            current = match.group(2)
            found[current] = [f"FROM {image}"]
        elif current:
            found[current].append(line)
    return found


def test_bases_are_pinned_and_run_the_projects_python():
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.search(r">=3\.(\d+)", required).group(1)
    external = {lines[0].split()[1] for lines in stages().values()} - set(stages())
    assert external, "no base image"
    for image in external:
        name, _, tag = image.rpartition("/")[2].partition(":")
        assert "@sha256:" in image or re.fullmatch(r"\d+\.\d+\.\d+(-[a-z0-9-]+)?", tag), f"{image} is not pinned"
        assert name == "python" and tag.startswith(f"3.{minor}."), f"{image} is not Python 3.{minor}"


def test_the_lock_is_installed_with_cpu_torch_and_the_gpu_variant_swaps_only_torch():
    build = " ".join(stages()["build"])
    assert "-r requirements/lock.txt" in build and "download.pytorch.org/whl/cpu" in build
    assert "pip check" in build
    gpu = " ".join(stages()["build-gpu"])
    assert "torch==2.13.0+" in gpu and "pip check" in gpu
    lock = (REPO / "requirements" / "lock.txt").read_text()
    assert "torch==2.13.0+cpu" in lock  # the version the GPU stage swaps in its CUDA build of


def test_final_stages_run_unprivileged_without_build_tools():
    all_stages = stages()
    assert list(all_stages)[-1] == "runtime"  # the default target of a plain `docker build .`
    for name in ("runtime", "gpu"):
        lines = all_stages[name]
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users and users[-1].split(":")[0] not in ("0", "root"), f"{name} runs as root"
        text = " ".join(lines)
        assert not re.search(r"apt-get install|gcc|build-essential|pip install", text), f"{name} installs tools"
        assert "COPY --from=build" in text
    assert "groupadd --gid 10001" in " ".join(all_stages["base"])
