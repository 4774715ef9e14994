"""`deploy shift-traffic` gives traffic only to a variant that can serve it, and a refused shift changes nothing.

A variant with a weight above 0 needs its alias (A: ``@champion``, B: ``@challenger``) on an Approved
version; the router step writes nothing until nginx accepted the new configuration. Cheap: the registry is
a copy of one small MLflow store (versions without model files: the check reads only aliases and approval
statuses), and the router is a real nginx started alone, without the rest of the topology.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from sagestack.config import load_settings
from sagestack.deploy.topology import Topology
from sagestack.deploy.traffic import TrafficSplit
from sagestack.errors import SagestackError
from sagestack.registry import set_approval

MODEL = "reviews-sentiment"


@pytest.fixture(scope="module")
def registry_template(tmp_path_factory) -> Path:
    """An MLflow store holding reviews-sentiment 1 (Approved, @champion) and 2 (pending, @challenger)."""
    from mlflow.tracking import MlflowClient

    from sagestack.registry.models import APPROVAL_TAG

    home = tmp_path_factory.mktemp("registry")
    uri = load_settings(cwd=home, environ={}, home=home).mlflow_uri
    registry = MlflowClient(uri, uri)
    registry.create_registered_model(MODEL)
    for status, alias in (("Approved", "champion"), ("PendingManualApproval", "challenger")):
        version = registry.create_model_version(MODEL, (home / "no-model").as_uri(), tags={APPROVAL_TAG: status})
        registry.set_registered_model_alias(MODEL, alias, version.version)
    return home / "mlflow.db"


def _weights(route: Path) -> list[int]:
    return [ref["weight"] for ref in yaml.safe_load(route.read_text())["spec"]["rules"][0]["backendRefs"]]


def test_a_shift_to_a_variant_that_cannot_serve_is_one_line_and_changes_nothing(sagestack_main, registry_template,
                                                                                  tmp_path):
    home, route = tmp_path / "home", tmp_path / "httproute.yaml"
    traffic = home / "topology" / "traffic.json"

    # Nothing registered: refused, and neither the manifest, traffic.json nor an MLflow store is created.
    code, _, err = sagestack_main("deploy", "shift-traffic", "--a", "0", "--b", "100", "--route-file", route)
    assert code == 2 and err.strip() == (
        f"error: variant B has no version to take 100 % of the traffic: {MODEL}@challenger does not exist (nothing "
        f"is registered in sqlite:///{home.resolve() / 'mlflow.db'}); register and approve a version first "
        "(`sagestack pipeline run`)")
    assert not route.exists() and not home.exists()

    home.mkdir()
    shutil.copy(registry_template, home / "mlflow.db")
    # Variant B's version is pending: no traffic for it. Variant A may take everything (B at 0 % is not checked).
    code, _, err = sagestack_main("deploy", "shift-traffic", "--a", "0", "--b", "100", "--route-file", route)
    assert code == 2 and err.strip() == (
        f"error: variant B would serve {MODEL} version 2, which is PendingManualApproval; approve it first with "
        f"`sagestack models approve {MODEL}/2`")
    assert not route.exists() and not traffic.exists()
    code, out, err = sagestack_main("deploy", "shift-traffic", "--a", "100", "--b", "0", "--route-file", route)
    assert code == 0, err
    assert _weights(route) == [100, 0] and TrafficSplit.load(traffic) == TrafficSplit(100, 0)
    before = route.read_text()
    code, _, err = sagestack_main("deploy", "shift-traffic", "--a", "50", "--b", "50", "--route-file", route)
    assert code == 2 and "variant B would serve" in err
    assert route.read_text() == before and TrafficSplit.load(traffic) == TrafficSplit(100, 0)

    assert sagestack_main("models", "approve", f"{MODEL}/2")[0] == 0
    code, _, err = sagestack_main("deploy", "shift-traffic", "--a", "0", "--b", "100", "--route-file", route)
    assert code == 0, err
    assert _weights(route) == [0, 100] and TrafficSplit.load(traffic) == TrafficSplit(0, 100)

    # A rejected version loses @challenger: variant B has no version left to serve.
    assert sagestack_main("models", "approve", f"{MODEL}/2", "--reject")[0] == 0
    code, _, err = sagestack_main("deploy", "shift-traffic", "--a", "50", "--b", "50", "--route-file", route)
    assert code == 2 and err.strip() == (
        f"error: variant B has no version to take 50 % of the traffic: {MODEL}@challenger does not exist; point it at "
        f"an approved version with `sagestack models promote {MODEL}/VERSION --alias challenger`")
    assert _weights(route) == [0, 100] and TrafficSplit.load(traffic) == TrafficSplit(0, 100)


def test_a_configuration_nginx_refuses_leaves_traffic_json_the_route_and_the_router_as_they_were(registry_template,
                                                                                                 tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(registry_template, home / "mlflow.db")
    settings = load_settings(cwd=tmp_path, environ={}, home=home)
    set_approval(settings, f"{MODEL}/2", "Approved")
    topology = Topology(settings, lambda host, port: [])
    nginx_dir, route = topology.root / "nginx", tmp_path / "httproute.yaml"
    try:
        topology.start_router()
        pid = topology.pid("nginx")
        # The variants' endpoints: any live process, recorded as the topology records its services.
        for name in ("endpoint-a", "endpoint-b"):
            topology._start(name, [sys.executable, "-c", "import time; time.sleep(600)"], lambda: True, name, 10)
        assert topology.shift_traffic(TrafficSplit(100, 0), route) is True
        accepted = {path: path.read_bytes() for path in (topology.root / "traffic.json", nginx_dir / "nginx.conf", route)}
        assert TrafficSplit.load(topology.root / "traffic.json") == TrafficSplit(100, 0)
        assert "weight=100" in (nginx_dir / "nginx.conf").read_text() and _weights(route) == [100, 0]

        # nginx cannot open its error log any more: `nginx -t` refuses every new configuration.
        error_log = nginx_dir / "logs" / "nginx-error.log"
        error_log.unlink()
        error_log.mkdir()
        with pytest.raises(SagestackError) as refused:
            topology.shift_traffic(TrafficSplit(20, 80), route)
        assert {path: path.read_bytes() for path in accepted} == accepted
        assert str(refused.value) == (f'nginx refused the rendered configuration: open() "{error_log}" failed '
                                      "(21: Is a directory) (nothing was changed)")
        assert sorted(p.name for p in nginx_dir.iterdir()) == ["logs", "nginx.conf", "nginx.pid", "tmp"]  # no temporary file left
        assert topology.pid("nginx") == pid  # still routing with the split it accepted
    finally:
        topology.down()
