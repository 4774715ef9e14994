"""The Monitoring page: baselines and monitoring runs under ``HOME/monitoring``, the monitoring job's form."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from sagestack.console import forms
from sagestack.console.context import Console, serve_file


def router(console: Console) -> APIRouter:
    """``GET/POST /monitoring`` (what was recorded and the form; start a job) and ``/monitoring/files``."""
    routes = APIRouter()
    root = console.home / "monitoring"

    @routes.get("/monitoring")
    async def monitoring_page(request: Request):
        from sagestack.monitor.job import list_monitoring

        found = await run_in_threadpool(list_monitoring, root)
        return console.render(request, "monitoring.html", baselines=found["baselines"], runs=found["runs"],
                              jobs=console.jobs("monitor"), datasets=console.catalog.list())

    @routes.post("/monitoring")
    async def monitoring_run(request: Request):
        form = await console.checked_form(request)
        title, argv = await run_in_threadpool(forms.monitor_job, form, console.catalog, root, Path("out"))
        return console.start_job("monitor", title, argv)

    @routes.get("/monitoring/files")
    async def monitoring_file(path: str):
        return serve_file(root, path)

    return routes
