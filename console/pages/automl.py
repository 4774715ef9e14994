"""The AutoML page: an Autopilot-style job's form and the AutoML jobs so far."""

from __future__ import annotations

from fastapi import APIRouter

from sagestack.console import forms
from sagestack.console.context import Console
from sagestack.console.pages.job_form import job_form_router


def router(console: Console) -> APIRouter:
    """``GET /automl`` (the form and the jobs) and ``POST /automl`` (start an AutoML job)."""
    return job_form_router(console, "automl", forms.automl_job)
