"""Errors as a page with the message and a 4xx (JSON under ``/api/``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from sagestack.console.context import Console
from sagestack.console.security import CSRFError
from sagestack.data.catalog import UploadTooLarge
from sagestack.errors import SagestackError
from sagestack.jobs import JobConflict


def register(app: FastAPI, console: Console) -> None:
    """Install the console's exception handlers on ``app``: a refused CSRF token is a 403, a user
    error a 400 (409 for a conflict, 404 for an unknown loop, 413 for an upload too large)."""

    @app.exception_handler(CSRFError)
    async def _csrf(request: Request, exc: CSRFError):
        return console.render(request, "error.html", 403, title="Refused", error=str(exc))

    @app.exception_handler(SagestackError)
    async def _user_error(request: Request, exc: SagestackError):
        from sagestack.review import AlreadyAnswered, LoopClosed, UnknownLoop

        status = (409 if isinstance(exc, (JobConflict, LoopClosed, AlreadyAnswered)) else 404 if isinstance(exc, UnknownLoop)
                  else 413 if isinstance(exc, UploadTooLarge) else 400)
        return console.render(request, "error.html", status, title="That did not work", error=str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return console.render(request, "error.html", exc.status_code, title="Not here", error=str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        error = f"bad request: {exc.errors()[0]['msg']}"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": error}, status_code=400)
        return console.render(request, "error.html", 400, title="Bad request", error=error)
