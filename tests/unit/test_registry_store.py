"""MLflow's fluent API points at a home only for the block that needs it: no process-wide URI is left behind."""

from __future__ import annotations

import os

import mlflow

from sagestack.config import load_settings
from sagestack.registry.store import using_store


def test_using_store_restores_the_uris_it_found(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first, second = (load_settings(cwd=tmp_path, environ={}, home=tmp_path / name) for name in ("a", "b"))
    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    with using_store(first):
        assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == first.mlflow_uri
        with using_store(second):  # a second home while the first is in use
            assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == second.mlflow_uri
        assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == first.mlflow_uri
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ


def test_using_store_restores_the_uris_when_the_block_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    try:
        with using_store(settings):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == "sqlite:///elsewhere.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db" and "MLFLOW_REGISTRY_URI" not in os.environ
