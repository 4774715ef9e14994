"""serving/bentofile.yaml builds a Bento offline (no package locking, BENTOML_HOME outside the context) that
installs sagestack from its wheel."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

import sagestack

REPO = Path(__file__).resolve().parents[2]
# The adapter folders installed under sagestack (setup.py); the rest of the wheel is src/sagestack.
ADAPTERS = {"components", "pipelines", "bento", "console", "feature_repo"}
BENTOML = Path(sys.executable).with_name("bentoml")


def test_bento_builds_offline_and_carries_the_sagestack_wheel(tmp_path, sagestack_wheel):
    # `make bento` in a build context of its own (the checkout gets no dist/): the wheel, then the Bento.
    context = tmp_path / "context"
    (context / "serving").mkdir(parents=True)
    (context / "dist").mkdir()
    shutil.copy(REPO / "serving" / "bentofile.yaml", context / "serving")
    shutil.copy(sagestack_wheel, context / "dist")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    built = subprocess.run([str(BENTOML), "build", "-f", "serving/bentofile.yaml", "."], cwd=context, env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    bentos = list((tmp_path / "bentoml" / "bentos" / "sagestack-sentiment").glob("*/bento.yaml"))
    assert len(bentos) == 1
    manifest = bentos[0].read_text()
    assert "sagestack.bento.service:SentimentService" in manifest
    # The workers' layout the service declares is decided where the Bento is served: never baked into its image.
    declared_envs = {env["name"]: env for env in yaml.safe_load(manifest)["envs"]}
    assert "SAGESTACK_WORKERS" in declared_envs
    assert all(declared_envs[name].get("stage") == "runtime" for name in ("SAGESTACK_WORKERS", "OMP_WAIT_POLICY")
               if name in declared_envs)
    # The Bento installs the wheel of this version, which holds the service and, for /predict_by_id, the
    # feature declarations, under the one top-level name.
    [shipped] = (bentos[0].parent / "env" / "python" / "wheels").glob("sagestack-*.whl")
    assert shipped.name == f"sagestack-{sagestack.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(shipped) as archive:
        names = set(archive.namelist())
    # Exactly the library's modules of the checkout: nothing deleted or renamed since still ships.
    library = {f"sagestack/{path.relative_to(REPO / 'src' / 'sagestack').as_posix()}"
               for path in (REPO / "src" / "sagestack").rglob("*.py") if "__pycache__" not in path.parts}
    assert {name for name in names if name.endswith(".py") and name.split("/")[1] not in ADAPTERS} == library
    assert {"sagestack/bento/service.py", "sagestack/models/baseline.py", "sagestack/feature_repo/reviews.py",
            "sagestack/feature_repo/feature_store.yaml"} <= names
    assert {name.split("/")[0] for name in names} == {"sagestack", f"sagestack-{sagestack.__version__}.dist-info"}
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


def test_the_bento_pins_what_the_sagestack_wheel_requires():
    """The wheel's own requirements (pyproject.toml's dependencies) are pinned in the Bento, so installing the
    wheel there resolves nothing new."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    required = {canonicalize_name(Requirement(r).name)
                for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    declared = yaml.safe_load((REPO / "serving" / "bentofile.yaml").read_text())["python"]["packages"]
    assert required - set(pins("\n".join(declared))) == set()
