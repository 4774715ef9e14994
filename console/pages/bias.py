"""The Bias page: a Clarify-style bias job's form and the bias jobs so far."""

from __future__ import annotations

from fastapi import APIRouter

from sagestack.console import forms
from sagestack.console.context import Console
from sagestack.console.pages.job_form import job_form_router


def router(console: Console) -> APIRouter:
    """``GET /bias`` (the form and the jobs) and ``POST /bias`` (start a bias job)."""
    return job_form_router(console, "bias", forms.bias_job)
