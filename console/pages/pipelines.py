"""The Pipelines page: the recorded runs (:mod:`sagestack.pipeline_runs`), the run form, one run's page
and the files runs wrote."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from sagestack.console import forms
from sagestack.console.context import Console, inside_path, serve_file
from sagestack.pipeline_runs import SUMMARY_FILE, list_runs, pipelines_folder, read_summary, run_trainers, runs_folder, work_steps


def router(console: Console) -> APIRouter:
    """``GET/POST /pipelines`` (runs and the form; start a run), ``/pipelines/runs/{run}`` and ``/pipelines/files``."""
    routes = APIRouter()
    settings = console.settings
    root = pipelines_folder(settings)

    @routes.get("/pipelines")
    async def pipelines_page(request: Request):
        from sagestack.workflows.params import DEFAULT_TRAINERS, TRAINERS

        runs = await run_in_threadpool(list_runs, settings, limit=100)
        return console.render(request, "pipelines.html", runs=runs, jobs=console.jobs("pipeline", 10),
                              trainers=TRAINERS, default_trainers=DEFAULT_TRAINERS, datasets=console.catalog.list())

    @routes.post("/pipelines")
    async def pipeline_run(request: Request):
        form = await console.checked_form(request)
        title, argv = await run_in_threadpool(forms.pipeline_job, form, console.catalog)
        return console.start_job("pipeline", title, argv)

    @routes.get("/pipelines/runs/{run}")
    async def pipeline_run_page(request: Request, run: str):
        summary = read_summary(inside_path(runs_folder(settings), f"{run}/{SUMMARY_FILE}"))
        if summary is None:
            raise HTTPException(404, f"no pipeline run named '{run}'; see the Pipelines page")
        steps = work_steps(summary)
        return console.render(request, "pipeline_run.html", summary=summary, root=str(root), steps=steps,
                              trainers=run_trainers(summary), hidden=len(summary.get("steps", [])) - len(steps))

    @routes.get("/pipelines/files")
    async def pipeline_file(request: Request, path: str):
        target = inside_path(root, path)
        if target.is_dir():
            entries = sorted(p.relative_to(root) for p in target.rglob("*") if p.is_file())[:500]
            return console.render(request, "listing.html", folder=str(target.relative_to(root)), entries=entries)
        return serve_file(root, path)

    return routes
