"""Kubeflow pipelines (wiring only), found by name through :data:`PIPELINES`."""

from __future__ import annotations

import importlib

# pipeline name -> "module:function". The runner, compiler and submitter look pipelines up here.
PIPELINES = {
    "sentiment": "sagestack.pipelines.sentiment:sentiment_pipeline",
    "monitoring": "sagestack.pipelines.monitoring:monitoring_pipeline",
}
DEFAULT_PIPELINE = "sentiment"


def get_pipeline(name: str = DEFAULT_PIPELINE):
    """The ``@dsl.pipeline`` function registered under ``name``.

    Raises:
        SagestackError: no pipeline of that name.
    """
    from sagestack.errors import SagestackError

    if name not in PIPELINES:
        raise SagestackError(f"unknown pipeline {name!r}; known pipelines: {', '.join(PIPELINES)}")
    module, function = PIPELINES[name].split(":")
    return getattr(importlib.import_module(module), function)
