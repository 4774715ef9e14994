"""The Endpoint page: one review sent to the endpoint the console was started with, and its answer."""

from __future__ import annotations

from fastapi import APIRouter, Request

from sagestack.console import forms
from sagestack.console.context import Console


def router(console: Console) -> APIRouter:
    """``GET /endpoint`` (the form) and ``POST /endpoint`` (ask the endpoint, show the answer)."""
    routes = APIRouter()
    endpoint = console.options.endpoint  # fixed when the console starts, never taken from a browser

    @routes.get("/endpoint")
    async def endpoint_page(request: Request):
        return console.render(request, "endpoint.html", endpoint=endpoint, review="", answer=None)

    @routes.post("/endpoint")
    async def endpoint_predict(request: Request):
        form = await console.checked_form(request)
        review = forms.text(form, "review")
        if not review:
            return console.render(request, "endpoint.html", 400, endpoint=endpoint, review="", answer=None,
                                  error="type a review first")
        answer, error, status = await _ask_endpoint(endpoint, review)
        return console.render(request, "endpoint.html", status, endpoint=endpoint, review=review, answer=answer,
                              error=error)

    return routes


async def _ask_endpoint(endpoint: str, review: str) -> tuple[dict | None, str | None, int]:
    """POST one review to the endpoint's ``/predict``: (answer, error, status for the page)."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(f"{endpoint}/predict", json={"reviews": [review]})
    except httpx.HTTPError as exc:
        return None, (f"no endpoint answers at {endpoint} ({type(exc).__name__}); start one with "
                      f"`sagestack serve` or pass --endpoint to `sagestack console`"), 502
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code != 200:
        reason = body.get("error") or body.get("detail") or response.text[:200]
        return None, f"the endpoint answered {response.status_code}: {reason}", 502
    try:
        prediction = body["predictions"][0]
        answer = {"model": body.get("model") or {}, "label": prediction["label"],
                  "probabilities": sorted(prediction["probabilities"].items(), key=lambda kv: -kv[1])}
    except (KeyError, IndexError, TypeError, AttributeError):
        return None, (f"{endpoint} answered, but not as a sagestack endpoint does (no predictions); "
                      "check --endpoint"), 502
    return answer, None, 200
