"""The A/B traffic split and the two routers rendered from it (pure functions, no server)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from sagestack.deploy.traffic import TrafficSplit, check_servable, httproute, nginx_config
from sagestack.errors import ConfigError, RegistryError


def test_a_split_is_two_whole_percentages_adding_up_to_100(tmp_path):
    assert TrafficSplit().weights() == {"A": 50, "B": 50}
    with pytest.raises(ConfigError, match="^--a and --b must add up to 100, got 30 \\+ 80 = 110$"):
        TrafficSplit(30, 80)
    with pytest.raises(ConfigError, match="^--a must be a whole percentage from 0 to 100, got 105"):
        TrafficSplit(105, -5)  # --a is checked first
    with pytest.raises(ConfigError, match="^--b must be a whole percentage from 0 to 100, got -5"):
        TrafficSplit(50, -5)
    with pytest.raises(ConfigError, match="^--a must be a whole percentage from 0 to 100, got 49.5$"):
        TrafficSplit(49.5, 50.5)
    TrafficSplit(0, 100).save(tmp_path / "traffic.json")
    assert TrafficSplit.load(tmp_path / "traffic.json") == TrafficSplit(0, 100)
    assert TrafficSplit.load(tmp_path / "none.json") == TrafficSplit(50, 50)


def test_the_httproute_and_nginx_carry_the_same_weights():
    route = httproute(TrafficSplit(20, 80))
    assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]] == [
        ("sentiment-a", 20), ("sentiment-b", 80)]
    config = nginx_config(TrafficSplit(20, 80), {"A": "127.0.0.1:1", "B": "127.0.0.1:2"}, listen="127.0.0.1:3",
                          state_dir=Path("/state"))
    assert "server 127.0.0.1:1 weight=20 " in config and "server 127.0.0.1:2 weight=80 " in config
    # nginx has no weight 0: a variant at 0 % is left out of the upstream (the HTTPRoute keeps it at 0).
    shifted = nginx_config(TrafficSplit(0, 100), {"A": "127.0.0.1:1", "B": "127.0.0.1:2"}, listen="127.0.0.1:3",
                           state_dir=Path("/state"))
    assert "127.0.0.1:1" not in shifted and "server 127.0.0.1:2 weight=100 " in shifted
    assert [b["weight"] for b in httproute(TrafficSplit(0, 100))["spec"]["rules"][0]["backendRefs"]] == [0, 100]


def test_only_an_approved_version_may_serve_a_variant():
    approved = SimpleNamespace(name="m", version="2", status="Approved")
    check_servable("B", approved)
    with pytest.raises(RegistryError, match="^variant B would serve m version 2, which is PendingManualApproval; "
                                            "approve it first with `sagestack models approve m/2`$"):
        check_servable("B", SimpleNamespace(name="m", version="2", status="PendingManualApproval"))


USERS_ROUTE = """\
# my route: hostnames and a timeout that sagestack does not render
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: prod}
spec:
  parentRefs: [{name: edge}]
  hostnames: [shop.example.com]
  rules:
  - backendRefs:
    - {name: sentiment-a, port: 3000, weight: 50}
    - {name: sentiment-b, port: 3000, weight: 50}
    timeouts: {request: 10s}
---
apiVersion: v1
kind: Service
metadata: {name: other}
"""


def test_a_users_httproute_is_patched_not_replaced_and_anything_else_is_refused(tmp_path):
    import yaml

    from sagestack.deploy.traffic import ROUTE_HEADER, route_text, write_route

    route = tmp_path / "route.yaml"
    route.write_text(USERS_ROUTE)
    write_route(route, TrafficSplit(10, 90))
    patched, service = yaml.safe_load_all(route.read_text())
    assert [(r["name"], r["weight"]) for r in patched["spec"]["rules"][0]["backendRefs"]] == [
        ("sentiment-a", 10), ("sentiment-b", 90)]
    assert patched["spec"]["hostnames"] == ["shop.example.com"] and patched["metadata"]["namespace"] == "prod"
    assert patched["spec"]["rules"][0]["timeouts"] == {"request": "10s"} and service["metadata"]["name"] == "other"
    # A new file, or one sagestack wrote, gets the whole rendering.
    assert route_text(tmp_path / "new.yaml", TrafficSplit(0, 100)).startswith(ROUTE_HEADER)
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    with pytest.raises(ConfigError, match=f"^{deployment} has no HTTPRoute whose backendRefs name both sentiment-a and "
                                          "sentiment-b; pass the route"):
        write_route(deployment, TrafficSplit(0, 100))
    assert deployment.read_text() == "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"


def test_shift_traffic_with_nothing_to_change_is_an_error(sagestack_main, tmp_path):
    """Outside the checkout, without --route-file and without a local topology: exit 2, one line, nothing written.
    (A --route-file shift, allowed or refused, is tests/deploy/test_shift_traffic.py.)"""
    code, _, err = sagestack_main("deploy", "shift-traffic", "--a", "50", "--b", "50")
    assert code == 2 and err.strip() == (
        f"error: nothing to shift: no HTTPRoute manifest here and no local topology in {(tmp_path / 'home').resolve()}; "
        "run it in the sagestack checkout (it patches k8s/base/endpoint/httproute.yaml), pass --route-file PATH to "
        "the HTTPRoute to patch, or start the topology with `sagestack up`")
    assert not (tmp_path / "home").exists()
