"""What every page of the console shares, built once per app and handed to each page's routes.

:class:`Console` holds the settings, the job table, the data catalog, the templates and the
helpers every page uses (render a template, check a form's CSRF token, start a job); the file
helpers serve what lies under a folder, refusing anything outside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from sagestack.console.security import CSRF_FIELD, CSRF_HEADER, check_csrf
from sagestack.config import Settings
from sagestack.data.catalog import DataCatalog
from sagestack.jobs import JobStore

if TYPE_CHECKING:
    from sagestack.console.app import ConsoleOptions

HERE = Path(__file__).resolve().parent
# Sent with every report or artifact the console serves: it may render, never script the console.
SANDBOX = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
NAV = [("data", "Data"), ("bias", "Bias"), ("automl", "AutoML"), ("pipelines", "Pipelines"),
       ("models", "Models"), ("endpoint", "Endpoint"), ("review", "Review"), ("monitoring", "Monitoring"), ("jobs", "Jobs")]


class Profiles:
    """Data profiles, kept while their file is unchanged (the Bias and AutoML forms ask often)."""

    def __init__(self):
        self._cache: dict[tuple, dict] = {}

    def get(self, path: Path, label: str | None) -> dict:
        """The profile of the CSV at ``path`` (with ``label`` as its label column), computed once per file state."""
        from sagestack.data.profile import profile_csv

        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, label)
        profile = self._cache.get(key)
        if profile is None:  # two threads may both compute it: harmless, and no lock held over a read
            profile = profile_csv(path, label=label)
            if len(self._cache) > 32:
                self._cache.clear()
            self._cache[key] = profile
        return profile


@dataclass(frozen=True)
class Console:
    """One console's shared state and helpers (see :func:`sagestack.console.app.create_app`).

    Attributes:
        options: how the console runs (endpoint, model name, upload limit, ...).
        settings: sagestack's settings.
        home: the resolved sagestack home.
        store: the job table (``HOME/console/jobs``).
        catalog: the datasets the forms offer (uploads and the known datasets).
        profiles: cached data profiles.
        templates: the Jinja2 templates.
        job_env: the environment jobs run with (the settings, since a job runs in its own folder).
    """

    options: ConsoleOptions
    settings: Settings
    home: Path
    store: JobStore
    catalog: DataCatalog
    profiles: Profiles
    templates: Jinja2Templates
    job_env: dict

    @classmethod
    def build(cls, options: ConsoleOptions) -> Console:
        """The shared state of a console run with ``options``; jobs whose process is gone (a console
        that stopped mid-job) are marked failed."""
        settings = options.settings
        home = settings.home.resolve()
        store = JobStore(home / "console" / "jobs")
        store.reconcile()
        catalog = DataCatalog(options.data_dir or home / "console" / "data", settings,
                              max_upload_bytes=options.max_upload_bytes)
        templates = Jinja2Templates(directory=str(HERE / "templates"))
        templates.env.filters["fromtimestamp"] = (
            lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "–")
        # Jobs run in their own folder: no sagestack.toml of ours reaches them.
        return cls(options=options, settings=settings, home=home, store=store, catalog=catalog, profiles=Profiles(),
                   templates=templates, job_env=settings.to_env())

    def render(self, request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        """``template`` rendered with the navigation, the CSRF token, ``?msg=`` as the message and ``context``."""
        context.setdefault("error", None)
        context.setdefault("message", request.query_params.get("msg"))
        return self.templates.TemplateResponse(request, template, {
            "nav": NAV, "page": template.split(".")[0].split("_")[0], "csrf": request.state.csrf,
            "csrf_field": CSRF_FIELD, **context}, status_code=status)

    async def checked_form(self, request: Request):
        """The request's form, once its CSRF token matches (:class:`~sagestack.console.security.CSRFError` otherwise)."""
        form = await request.form()
        check_csrf(request.scope["state"], form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER))
        return form

    def start_job(self, kind: str, title: str, argv: list[str]) -> RedirectResponse:
        """Submit and start a ``sagestack`` job; a redirect to its page."""
        job = self.store.submit(kind, title, argv)
        # On the event loop's thread, which lives as long as the console: the runner is told to
        # stop when the thread that started it ends (see JobStore.start).
        self.store.start(job, environ=self.job_env)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    def jobs(self, kind: str | None = None, limit: int = 20) -> list:
        """The latest jobs (of one ``kind``), newest first."""
        self.store.reconcile()  # a job whose runner is gone is shown failed, not running
        return self.store.list(kind=kind, limit=limit)

    async def form_profile(self, name: str | None) -> tuple[str | None, dict | None]:
        """The dataset a form is filled from (``name``, else the first listed) and its profile."""
        listed = [d.name for d in self.catalog.list()]
        name = name or (listed[0] if listed else None)
        if not name:
            return None, None
        return name, await run_in_threadpool(self.profiles.get, self.catalog.path(name), None)


def inside_path(root: Path, relative: str) -> Path:
    """``root/relative``, refusing (404) anything that resolves outside ``root``."""
    root = root.resolve()
    try:
        target = (root / relative).resolve()
        found = target.is_relative_to(root) and target.exists()
    except (ValueError, OSError, RuntimeError):  # a NUL byte, a name too long, a symlink loop: no such file
        found = False
    if not found:
        raise HTTPException(404, f"no file '{relative[:200]}' here")
    return target


def serve_file(root: Path, relative: str) -> FileResponse:
    """A file under ``root`` served sandboxed (reports render but cannot script the console)."""
    target = inside_path(root, relative)
    if not target.is_file():
        raise HTTPException(404, f"'{relative}' is not a file")
    media = "text/html" if target.suffix == ".html" else None if target.suffix in (".png", ".svg", ".json") else "text/plain"
    return FileResponse(target, media_type=media, headers=SANDBOX)
