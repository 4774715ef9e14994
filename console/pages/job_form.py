"""A page that is a job form (Bias, AutoML): the form filled from the chosen dataset, and its jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from sagestack.console.context import Console


def job_form_router(console: Console, kind: str, build: Callable) -> APIRouter:
    """``GET /<kind>``: the form and the jobs so far; ``POST /<kind>``: ``build`` the job, start it.

    Args:
        console: the console's shared state.
        kind: the job kind, also the page's path and template (``<kind>.html``).
        build: ``build(form, catalog, out) -> (title, argv)``, from :mod:`sagestack.console.forms`.
    """
    routes = APIRouter()

    async def form_page(request: Request, data: str | None = None):
        name, profile = await console.form_profile(data)
        return console.render(request, f"{kind}.html", datasets=console.catalog.list(), name=name, profile=profile,
                              jobs=console.jobs(kind))

    async def submit(request: Request):
        form = await console.checked_form(request)
        # The command runs in the job's folder, so its outputs land in <job folder>/out.
        title, argv = await run_in_threadpool(build, form, console.catalog, Path("out"))
        return console.start_job(kind, title, argv)

    routes.get(f"/{kind}")(form_page)
    routes.post(f"/{kind}")(submit)
    return routes
