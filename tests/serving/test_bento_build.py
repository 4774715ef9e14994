"""serving/bentofile.yaml builds a Bento offline (no package locking, BENTOML_HOME outside the context)."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BENTOML = Path(sys.executable).with_name("bentoml")


def test_bento_builds_offline(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    built = subprocess.run([str(BENTOML), "build", "-f", "serving/bentofile.yaml", "."], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    bentos = list((tmp_path / "bentoml" / "bentos" / "sagestack-sentiment").glob("*/bento.yaml"))
    assert len(bentos) == 1
    manifest = bentos[0].read_text()
    assert "sagestack.bento.service:SentimentService" in manifest
    src = bentos[0].parent / "src"
    assert (src / "serving" / "service.py").is_file() and (src / "src" / "sagestack" / "models" / "baseline.py").is_file()
    # /predict_by_id needs the feature declarations and Feast inside the Bento too.
    assert (src / "feature_repo" / "reviews.py").is_file() and (src / "feature_repo" / "feature_store.yaml").is_file()
    # The Bento's requirements are the lock's versions (read from requirements/lock.txt, not copied here).
    built_pins = pins((bentos[0].parent / "env" / "python" / "requirements.txt").read_text())
    locked = pins((REPO / "requirements" / "lock.txt").read_text())
    assert {"feast", "fasttext-community", "mlflow", "torch"} <= set(built_pins)
    assert {name: version for name, version in built_pins.items() if locked.get(name) != version} == {}
    declared = yaml.safe_load((REPO / "serving" / "bentofile.yaml").read_text())["python"]["packages"]
    assert set(pins("\n".join(declared))) <= set(built_pins)


def pins(text: str) -> dict[str, str]:
    """``{normalised name: version}`` of the ``name[extras]==version`` lines of a requirements text."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        [spec] = list(requirement.specifier) or [None]
        if spec is not None and spec.operator == "==":
            found[canonicalize_name(requirement.name)] = spec.version
    return found


def test_the_bento_carries_every_model_kinds_requirements():
    """A kind added to sagestack.models must also be servable from the Bento."""
    from sagestack.models import get_kind, kind_names

    packages = set(yaml.safe_load((REPO / "serving" / "bentofile.yaml").read_text())["python"]["packages"])
    from sagestack.automl.candidates import CANDIDATES
    from sagestack.models.embeddings import EMBEDDING_REQUIREMENTS

    # An AutoML model also needs its candidate's family and, with embeddings, the encoder.
    extras = {"autogluon": (*(r for c in CANDIDATES for r in c.requirements), *EMBEDDING_REQUIREMENTS)}
    for name in kind_names():
        needed = {r for r in get_kind(name).pip_requirements(extras.get(name, ())) if not r.startswith("sagestack==")}
        assert needed <= packages, f"{name}: add {sorted(needed - packages)} to serving/bentofile.yaml"
