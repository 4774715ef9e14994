"""The Models page: the registered model's versions, one version's lineage, approve/reject/promote."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from sagestack.console.context import Console


def router(console: Console) -> APIRouter:
    """``/models``, ``/models/{version}`` and ``POST /models/{version}/{approve|reject|promote}``."""
    routes = APIRouter()
    settings, model_name = console.settings, console.options.model_name

    @routes.get("/models")
    async def models_page(request: Request):
        from sagestack.registry import version_table

        table = await run_in_threadpool(version_table, settings, model_name)
        return console.render(request, "models.html", table=table)

    @routes.get("/models/{version}")
    async def model_page(request: Request, version: str):
        from sagestack.registry import lineage

        chain = await run_in_threadpool(lineage, settings, f"{model_name}/{_version(version)}")
        return console.render(request, "model.html", chain=chain)

    @routes.post("/models/{version}/{action}")
    async def model_action(request: Request, version: str, action: str):
        from sagestack.registry import promote, set_approval

        await console.checked_form(request)
        ref = f"{model_name}/{_version(version)}"
        if action == "approve":
            info = await run_in_threadpool(set_approval, settings, ref, "Approved")
            done = f"version {info.version} is now Approved"
        elif action == "reject":
            info = await run_in_threadpool(set_approval, settings, ref, "Rejected")
            done = f"version {info.version} is now Rejected"
        elif action == "promote":
            info = await run_in_threadpool(promote, settings, ref, "champion")
            done = f"@champion now points at version {info.version}"
        else:
            raise HTTPException(404, f"unknown action '{action}'; use approve, reject or promote")
        return RedirectResponse(f"/models?{urlencode({'msg': done})}", status_code=303)

    return routes


def _version(text: str) -> str:
    if not text.isdigit():
        raise HTTPException(404, f"'{text}' is not a version number")
    return text
