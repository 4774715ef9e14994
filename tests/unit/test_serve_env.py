"""Two endpoints of one sagestack home never share a BentoML home (a starting `bentoml serve` empties its
home's Prometheus folder, which would wipe the other endpoint's /metrics)."""

from __future__ import annotations

from sagestack.bento.launch import serve_env
from sagestack.config import load_settings


def test_each_port_gets_a_bentoml_home_of_its_own_and_an_explicit_one_is_kept(tmp_path):
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    base = {"PATH": "/usr/bin"}
    homes = {port: serve_env(settings, "m@champion", base, port=port)["BENTOML_HOME"] for port in (3000, 3001)}
    assert homes == {3000: str((tmp_path / "home" / "bentoml" / "3000").resolve()),
                     3001: str((tmp_path / "home" / "bentoml" / "3001").resolve())}
    assert serve_env(settings, "m@champion", base)["BENTOML_HOME"] == str((tmp_path / "home" / "bentoml").resolve())
    chosen = {**base, "BENTOML_HOME": "/srv/bentoml"}
    assert serve_env(settings, "m@champion", chosen, port=3000)["BENTOML_HOME"] == "/srv/bentoml"
