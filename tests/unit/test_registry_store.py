"""MLflow's fluent API points at a home only for the block that needs it: no process-wide URI is left behind."""

from __future__ import annotations

import os
from pathlib import Path

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


def test_a_new_home_starts_from_the_migrated_template_and_gets_its_own_default_experiment(tmp_path, monkeypatch):
    from sagestack.registry.store import _template_path, client

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    homes = [load_settings(cwd=tmp_path / name, environ={}, home=tmp_path / name / "home") for name in ("a", "b")]
    for settings in homes:
        settings.home.mkdir(parents=True)
    client(homes[0]).create_experiment("first")  # makes the template, then copies it
    assert _template_path().is_file() and _template_path().parent == tmp_path / "cache" / "sagestack"
    second = client(homes[1])  # a copy of the template: nothing of the first home in it
    assert [e.name for e in second.search_experiments()] == ["Default"]
    # made by MLflow when the copy was first opened, where MLflow puts it for a new store (not the template's)
    assert second.get_experiment("0").artifact_location == str(Path.cwd() / "mlruns" / "0")
    assert {e.name for e in client(homes[0]).search_experiments()} == {"Default", "first"}


def test_an_existing_store_file_is_never_replaced_by_the_template(tmp_path, monkeypatch):
    from sagestack.registry.store import seed_sqlite_store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    settings = load_settings(cwd=tmp_path, environ={}, home=tmp_path / "home")
    settings.home.mkdir()
    store = settings.home / "mlflow.db"
    store.write_bytes(b"the user's own bytes")
    seed_sqlite_store(settings)
    assert store.read_bytes() == b"the user's own bytes" and not (tmp_path / "cache").exists()
    assert sorted(p.name for p in settings.home.iterdir()) == ["mlflow.db"]  # no temp copy left behind
