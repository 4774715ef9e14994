"""serving/bentofile.yaml builds a Bento offline (no package locking, BENTOML_HOME outside the context)."""

import os
import subprocess
import sys
from pathlib import Path

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
    assert "serving.service:SentimentService" in manifest
    src = bentos[0].parent / "src"
    assert (src / "serving" / "service.py").is_file() and (src / "src" / "sagestack" / "models" / "baseline.py").is_file()
    # /predict_by_id needs the feature declarations and Feast inside the Bento too.
    assert (src / "feature_repo" / "reviews.py").is_file() and (src / "feature_repo" / "feature_store.yaml").is_file()
    requirements = (bentos[0].parent / "env" / "python" / "requirements.txt").read_text()
    assert "feast[duckdb,redis]==0.67.0" in requirements and "fasttext-community==0.11.9" in requirements


def test_the_bento_carries_every_model_kinds_requirements():
    """A kind added to sagestack.models must also be servable from the Bento."""
    import yaml

    from sagestack.models import get_kind, kind_names

    packages = set(yaml.safe_load((REPO / "serving" / "bentofile.yaml").read_text())["python"]["packages"])
    from sagestack.automl.candidates import CANDIDATES
    from sagestack.automl.embeddings import EMBEDDING_REQUIREMENTS

    # An AutoML model also needs its candidate's family and, with embeddings, the encoder.
    extras = {"autogluon": (*(r for c in CANDIDATES for r in c.requirements), *EMBEDDING_REQUIREMENTS)}
    for name in kind_names():
        needed = {r for r in get_kind(name).pip_requirements(extras.get(name, ())) if not r.startswith("sagestack==")}
        assert needed <= packages, f"{name}: add {sorted(needed - packages)} to serving/bentofile.yaml"
