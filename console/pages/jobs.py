"""The Jobs page: every job, one job's page (status, log, a bias job's metrics), its files, its JSON."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi import Path as PathParameter
from starlette.exceptions import HTTPException

from sagestack.console.context import Console, serve_file

# A job number as SQLite can hold it: anything else is a 400 before the job table is asked.
JobId = PathParameter(ge=1, le=2**63 - 1)


def router(console: Console) -> APIRouter:
    """``/jobs``, ``/jobs/{id}``, ``/jobs/{id}/files/{path}`` and ``/api/jobs/{id}``."""
    routes = APIRouter()
    store = console.store

    def job_or_404(job_id: int):
        store.reconcile()
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, f"there is no job {job_id}; see the Jobs page")
        return job

    @routes.get("/jobs")
    async def jobs_page(request: Request):
        return console.render(request, "jobs.html", jobs=console.jobs(limit=200))

    @routes.get("/jobs/{job_id}")
    async def job_page(request: Request, job_id: int = JobId):
        job = job_or_404(job_id)
        return console.render(request, "job.html", job=job, log=job.log_tail(15), bias=_bias_metrics(job))

    @routes.get("/api/jobs/{job_id}")
    async def job_api(job_id: int = JobId):
        job = job_or_404(job_id)
        return {"id": job.id, "kind": job.kind, "title": job.title, "status": job.status, "error": job.error,
                "seconds": round(job.seconds, 1), "result": job.result}

    @routes.get("/jobs/{job_id}/files/{path:path}")
    async def job_file(job_id: int = JobId, path: str = ""):
        job = job_or_404(job_id)
        return serve_file(job.folder, path)

    return routes


def _bias_metrics(job) -> list[dict] | None:
    """The bias job's metrics per facet value (from its analysis.json), for the job page's table."""
    if job.kind != "bias" or job.status != "succeeded":
        return None
    from sagestack.bias.report import metric_rows

    try:
        document = json.loads((job.folder / "out" / "analysis.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metric_rows(document)
