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
