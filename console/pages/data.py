"""The Data page: the datasets, uploads, and one dataset's profile."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from sagestack.console.context import Console
from sagestack.data.catalog import UploadTooLarge
from sagestack.errors import DataError


def router(console: Console) -> APIRouter:
    """``/`` (to the Data page), ``GET/POST /data`` (list, upload) and ``/data/view`` (a profile)."""
    routes = APIRouter()
    catalog, profiles = console.catalog, console.profiles
    limit_mb = console.options.max_upload_bytes / 1e6

    @routes.get("/")
    async def home_page():
        return RedirectResponse("/data", status_code=303)

    @routes.get("/data")
    async def data_page(request: Request):
        return console.render(request, "data.html", datasets=catalog.list(), limit_mb=limit_mb)

    @routes.post("/data")
    async def upload(request: Request):
        form = await console.checked_form(request)
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise DataError("choose a CSV file to upload")
        try:
            dataset = await run_in_threadpool(catalog.add_upload, upload.filename, upload.file)
        except DataError as exc:
            status = 413 if isinstance(exc, UploadTooLarge) else 400
            return console.render(request, "data.html", status, datasets=catalog.list(), error=str(exc),
                                  limit_mb=limit_mb)
        return RedirectResponse(f"/data/view?{urlencode({'name': dataset.name})}", status_code=303)

    @routes.get("/data/view")
    async def dataset_page(request: Request, name: str, label: str | None = None):
        path = catalog.path(name)
        columns = await run_in_threadpool(profiles.get, path, None)
        names = [c["name"] for c in columns["columns"]]
        label = label if label is not None else ("sentiment" if "sentiment" in names else None)
        profile = await run_in_threadpool(profiles.get, path, label or None)
        return console.render(request, "dataset.html", name=name, profile=profile, label=label)

    return routes
