"""The console's pages: FastAPI routes over sagestack's library, rendered with Jinja2.

Every route maps the request to one library call (a data profile, the registry's version table,
a pipeline run's summary) or to a background job (:mod:`sagestack.jobs`), and renders a
template. User errors (:class:`~sagestack.errors.SagestackError`), unknown paths and malformed
parameters become a page with the message and a 4xx status.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

from fastapi import FastAPI, Request
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from console import forms
from console.security import CSRF_FIELD, CSRF_HEADER, LOOPBACK_HOSTS, ConsoleGuard, CSRFError, check_csrf
from sagestack.config import Settings, settings_env
from sagestack.data.catalog import DataCatalog, UploadTooLarge
from sagestack.errors import DataError, SagestackError
from sagestack.jobs import JobConflict, JobStore
from sagestack.registry import DEFAULT_MODEL_NAME

HERE = Path(__file__).resolve().parent
# A job number as SQLite can hold it: anything else is a 400 before the job table is asked.
JobId = PathParameter(ge=1, le=2**63 - 1)
DEFAULT_ENDPOINT = "http://127.0.0.1:3000"
# Sent with every report or artifact the console serves: it may render, never script the console.
SANDBOX = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
NAV = [("data", "Data"), ("bias", "Bias"), ("automl", "AutoML"), ("pipelines", "Pipelines"),
       ("models", "Models"), ("endpoint", "Endpoint"), ("review", "Review"), ("monitoring", "Monitoring"), ("jobs", "Jobs")]
REVIEWER_COOKIE = "sagestack_reviewer"


@dataclass(frozen=True)
class ConsoleOptions:
    """How a console runs.

    Attributes:
        settings: sagestack's settings (the home holds the job table, uploads and everything shown).
        data_dir: the data directory (uploads land here); default ``HOME/console/data``.
        endpoint: the endpoint the Endpoint page asks (fixed here, never taken from a browser).
        token: the access token (required when listening beyond loopback).
        max_upload_bytes: the largest upload.
        model_name: the registered model the Models page shows.
    """

    settings: Settings
    data_dir: Path | None = None
    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    max_upload_bytes: int = 100 << 20
    model_name: str = DEFAULT_MODEL_NAME


class _Profiles:
    """Data profiles, kept while their file is unchanged (the Bias and AutoML forms ask often)."""

    def __init__(self):
        self._cache: dict[tuple, dict] = {}

    def get(self, path: Path, label: str | None) -> dict:
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


def create_app(options: ConsoleOptions) -> FastAPI:
    """The console as an ASGI app (wrapped in :class:`~console.security.ConsoleGuard`).

    On start it marks jobs whose process is gone (a console that stopped mid-job) as failed.
    """
    settings = options.settings
    home = settings.home.resolve()
    store = JobStore(home / "console" / "jobs")
    store.reconcile()
    catalog = DataCatalog(options.data_dir or home / "console" / "data", settings,
                          max_upload_bytes=options.max_upload_bytes)
    profiles = _Profiles()
    pipelines_root = home / "pipelines"
    job_env = settings_env(settings)  # jobs run in their own folder: no sagestack.toml of ours reaches them
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["fromtimestamp"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "–"

    app = FastAPI(title="sagestack console", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        context.setdefault("error", None)
        context.setdefault("message", request.query_params.get("msg"))
        return templates.TemplateResponse(request, template, {
            "nav": NAV, "page": template.split(".")[0].split("_")[0], "csrf": request.state.csrf,
            "csrf_field": CSRF_FIELD, **context}, status_code=status)

    async def checked_form(request: Request):
        form = await request.form()
        check_csrf(request.scope["state"], form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER))
        return form

    def start_job(kind: str, title: str, argv: list[str]) -> RedirectResponse:
        job = store.submit(kind, title, argv)
        # On the event loop's thread, which lives as long as the console: the runner is told to
        # stop when the thread that started it ends (see JobStore.start).
        store.start(job, environ=job_env)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    def jobs(kind: str | None = None, limit: int = 20) -> list:
        store.reconcile()  # a job whose runner is gone is shown failed, not running
        return store.list(kind=kind, limit=limit)

    # ---- errors: a page with the message and a 4xx -------------------------------------------------
    @app.exception_handler(CSRFError)
    async def _csrf(request: Request, exc: CSRFError):
        return render(request, "error.html", 403, title="Refused", error=str(exc))

    @app.exception_handler(SagestackError)
    async def _user_error(request: Request, exc: SagestackError):
        from sagestack.review import AlreadyAnswered, LoopClosed, UnknownLoop

        status = (409 if isinstance(exc, (JobConflict, LoopClosed, AlreadyAnswered)) else 404 if isinstance(exc, UnknownLoop)
                  else 413 if isinstance(exc, UploadTooLarge) else 400)
        return render(request, "error.html", status, title="That did not work", error=str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return render(request, "error.html", exc.status_code, title="Not here", error=str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        error = f"bad request: {exc.errors()[0]['msg']}"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": error}, status_code=400)
        return render(request, "error.html", 400, title="Bad request", error=error)

    # ---- Data --------------------------------------------------------------------------------------
    @app.get("/")
    async def home_page():
        return RedirectResponse("/data", status_code=303)

    @app.get("/data")
    async def data_page(request: Request):
        return render(request, "data.html", datasets=catalog.list(), limit_mb=options.max_upload_bytes / 1e6)

    @app.post("/data")
    async def upload(request: Request):
        form = await checked_form(request)
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise DataError("choose a CSV file to upload")
        try:
            dataset = await run_in_threadpool(catalog.add_upload, upload.filename, upload.file)
        except DataError as exc:
            status = 413 if isinstance(exc, UploadTooLarge) else 400
            return render(request, "data.html", status, datasets=catalog.list(), error=str(exc),
                          limit_mb=options.max_upload_bytes / 1e6)
        return RedirectResponse(f"/data/view?{urlencode({'name': dataset.name})}", status_code=303)

    @app.get("/data/view")
    async def dataset_page(request: Request, name: str, label: str | None = None):
        path = catalog.path(name)
        columns = await run_in_threadpool(profiles.get, path, None)
        names = [c["name"] for c in columns["columns"]]
        label = label if label is not None else ("sentiment" if "sentiment" in names else None)
        profile = await run_in_threadpool(profiles.get, path, label or None)
        return render(request, "dataset.html", name=name, profile=profile, label=label)

    # ---- Bias and AutoML: a form filled from the chosen dataset, a job, its list ------------------
    async def _form_profile(name: str | None) -> tuple[str | None, dict | None]:
        listed = [d.name for d in catalog.list()]
        name = name or (listed[0] if listed else None)
        if not name:
            return None, None
        return name, await run_in_threadpool(profiles.get, catalog.path(name), None)

    def job_pages(kind: str, build) -> None:
        """``GET /<kind>``: the form and the jobs so far; ``POST /<kind>``: ``build`` the job, start it."""

        async def form_page(request: Request, data: str | None = None):
            name, profile = await _form_profile(data)
            return render(request, f"{kind}.html", datasets=catalog.list(), name=name, profile=profile, jobs=jobs(kind))

        async def submit(request: Request):
            form = await checked_form(request)
            # The command runs in the job's folder, so its outputs land in <job folder>/out.
            title, argv = await run_in_threadpool(build, form, catalog, Path("out"))
            return start_job(kind, title, argv)

        app.get(f"/{kind}")(form_page)
        app.post(f"/{kind}")(submit)

    job_pages("bias", forms.bias_job)
    job_pages("automl", forms.automl_job)

    # ---- Jobs --------------------------------------------------------------------------------------
    def job_or_404(job_id: int):
        store.reconcile()
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, f"there is no job {job_id}; see the Jobs page")
        return job

    @app.get("/jobs")
    async def jobs_page(request: Request):
        return render(request, "jobs.html", jobs=jobs(limit=200))

    @app.get("/jobs/{job_id}")
    async def job_page(request: Request, job_id: int = JobId):
        job = job_or_404(job_id)
        return render(request, "job.html", job=job, log=job.log_tail(15), bias=_bias_metrics(job))

    @app.get("/api/jobs/{job_id}")
    async def job_api(job_id: int = JobId):
        job = job_or_404(job_id)
        return {"id": job.id, "kind": job.kind, "title": job.title, "status": job.status, "error": job.error,
                "seconds": round(job.seconds, 1), "result": job.result}

    @app.get("/jobs/{job_id}/files/{path:path}")
    async def job_file(job_id: int = JobId, path: str = ""):
        job = job_or_404(job_id)
        return _inside(job.folder, path)

    # ---- Pipelines ---------------------------------------------------------------------------------
    @app.get("/pipelines")
    async def pipelines_page(request: Request):
        from pipelines.runner import list_runs
        from sagestack.workflows.params import DEFAULT_TRAINERS, TRAINERS

        runs = await run_in_threadpool(list_runs, settings, limit=100)
        return render(request, "pipelines.html", runs=runs, jobs=jobs("pipeline", 10),
                      trainers=TRAINERS, default_trainers=DEFAULT_TRAINERS, datasets=catalog.list())

    @app.post("/pipelines")
    async def pipeline_run(request: Request):
        form = await checked_form(request)
        title, argv = await run_in_threadpool(forms.pipeline_job, form, catalog)
        return start_job("pipeline", title, argv)

    @app.get("/pipelines/runs/{run}")
    async def pipeline_run_page(request: Request, run: str):
        summary_path = _inside_path(pipelines_root / "runs", f"{run}/summary.json")
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise HTTPException(404, f"no pipeline run named '{run}'; see the Pipelines page") from None
        return render(request, "pipeline_run.html", summary=summary, root=str(pipelines_root))

    @app.get("/pipelines/files")
    async def pipeline_file(request: Request, path: str):
        target = _inside_path(pipelines_root, path)
        if target.is_dir():
            entries = sorted(p.relative_to(pipelines_root) for p in target.rglob("*") if p.is_file())[:500]
            return render(request, "listing.html", folder=str(target.relative_to(pipelines_root)), entries=entries)
        return _inside(pipelines_root, path)

    # ---- Models ------------------------------------------------------------------------------------
    @app.get("/models")
    async def models_page(request: Request):
        from sagestack.registry import version_table

        table = await run_in_threadpool(version_table, settings, options.model_name)
        return render(request, "models.html", table=table)

    @app.get("/models/{version}")
    async def model_page(request: Request, version: str):
        from sagestack.registry import lineage

        chain = await run_in_threadpool(lineage, settings, f"{options.model_name}/{_version(version)}")
        return render(request, "model.html", chain=chain)

    @app.post("/models/{version}/{action}")
    async def model_action(request: Request, version: str, action: str):
        from sagestack.registry import promote, set_approval

        await checked_form(request)
        ref = f"{options.model_name}/{_version(version)}"
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

    # ---- Monitoring --------------------------------------------------------------------------------
    monitoring_root = home / "monitoring"

    @app.get("/monitoring")
    async def monitoring_page(request: Request):
        from sagestack.monitor.job import list_monitoring

        found = await run_in_threadpool(list_monitoring, monitoring_root)
        return render(request, "monitoring.html", baselines=found["baselines"], runs=found["runs"],
                      jobs=jobs("monitor"), datasets=catalog.list())

    @app.post("/monitoring")
    async def monitoring_run(request: Request):
        form = await checked_form(request)
        title, argv = await run_in_threadpool(forms.monitor_job, form, catalog, monitoring_root, Path("out"))
        return start_job("monitor", title, argv)

    @app.get("/monitoring/files")
    async def monitoring_file(path: str):
        return _inside(monitoring_root, path)

    # ---- Review: the human loops' queue, one item at a time ------------------------------------------
    from sagestack.review import review_store

    reviews = review_store(settings)

    def reviewer_of(request: Request) -> str | None:
        from sagestack.review.store import check_reviewer

        try:  # percent-encoded: a cookie carries Latin-1 only, a name may be any letters
            return check_reviewer(unquote(request.cookies.get(REVIEWER_COOKIE) or ""))
        except SagestackError:
            return None

    @app.get("/review")
    async def review_page(request: Request, flow: str | None = None, skip: str = ""):
        flows = await run_in_threadpool(reviews.flows)
        if not flows:
            return render(request, "review.html", flows=[])
        chosen = await run_in_threadpool(reviews.flow, flow) if flow else flows[0]
        reviewer = reviewer_of(request)
        skipped = [name for name in skip.split(",") if name][:100]
        queue = await run_in_threadpool(lambda: reviews.queue(chosen.name, reviewer or "", skip=skipped))
        progress = await run_in_threadpool(reviews.progress, chosen.name, reviewer)
        tied = await run_in_threadpool(reviews.tied, chosen.name)
        item = queue[0] if reviewer and queue else None
        skip_query = urlencode({"flow": chosen.name, "skip": ",".join([*skipped, item.name] if item else skipped)})
        return render(request, "review.html", flows=flows, flow=chosen, reviewer=reviewer, queue=queue, item=item,
                      progress=progress, total=sum(progress[s] for s in ("InProgress", "Completed", "Stopped", "Failed")),
                      mine=progress.get("yours", 0), tied=tied, shown=f"{time.time():.3f}", skip_query=skip_query,
                      skipped=",".join(skipped))

    @app.post("/review/reviewer")
    async def review_as(request: Request):
        from sagestack.review.store import check_reviewer

        form = await checked_form(request)
        flow = forms.text(form, "flow")
        response = RedirectResponse(f"/review?{urlencode({'flow': flow})}" if flow else "/review", status_code=303)
        name = forms.text(form, "reviewer")
        if not name:  # "Change": forget the name, ask again
            response.delete_cookie(REVIEWER_COOKIE, path="/")
            return response
        response.set_cookie(REVIEWER_COOKIE, quote(check_reviewer(name), safe=""), path="/", httponly=True,
                            samesite="strict", max_age=30 * 86400)
        return response

    @app.post("/review/answer")
    async def review_answer(request: Request):
        form = await checked_form(request)
        reviewer = reviewer_of(request)
        if reviewer is None:
            raise HTTPException(400, "say who is reviewing first (the Review page asks for a name)")
        loop, label, flow = forms.text(form, "loop"), forms.text(form, "label"), forms.text(form, "flow")
        try:
            shown = float(forms.text(form, "shown") or "nan")
        except ValueError:
            shown = float("nan")
        accepted = shown if 0 < shown <= time.time() else None  # when the item was shown: time spent, as A2I records
        done = await run_in_threadpool(lambda: reviews.answer(loop, reviewer, label, accepted=accepted))
        said = (f"{done.name}: completed as {done.label}" if done.status == "Completed"
                else f"{done.name}: your {label} recorded ({len(done.answers)}/{done.needed} answers)")
        skipped = forms.text(form, "skip")[:10_000]  # items skipped earlier stay at the back of the queue
        return RedirectResponse(f"/review?{urlencode({'flow': flow or done.flow, 'skip': skipped, 'msg': said})}",
                                status_code=303)

    # ---- Endpoint ----------------------------------------------------------------------------------
    @app.get("/endpoint")
    async def endpoint_page(request: Request):
        return render(request, "endpoint.html", endpoint=options.endpoint, review="", answer=None)

    @app.post("/endpoint")
    async def endpoint_predict(request: Request):
        form = await checked_form(request)
        review = forms.text(form, "review")
        if not review:
            return render(request, "endpoint.html", 400, endpoint=options.endpoint, review="", answer=None,
                          error="type a review first")
        answer, error, status = await _ask_endpoint(options.endpoint, review)
        return render(request, "endpoint.html", status, endpoint=options.endpoint, review=review, answer=answer,
                      error=error)

    return ConsoleGuard(app, token=options.token, max_upload_bytes=options.max_upload_bytes,
                        secret=_secret(home / "console" / "secret.key"),
                        allowed_hosts=None if options.token else LOOPBACK_HOSTS)


def _secret(path: Path) -> bytes:
    """The console's signing key (32 random bytes, 0600), kept in the home so a restart keeps
    browsers' CSRF cookies valid; a missing, short or readable-by-others key is made anew."""
    import secrets

    try:
        if path.stat().st_mode & 0o077 == 0:
            key = path.read_bytes()
            if len(key) == 32:
                return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".secret.", dir=path.parent)  # mkstemp makes it 0600
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
    os.replace(tmp, path)  # whole or not at all; two consoles starting at once: the last one wins
    return path.read_bytes()


def _version(text: str) -> str:
    if not text.isdigit():
        raise HTTPException(404, f"'{text}' is not a version number")
    return text


def _inside_path(root: Path, relative: str) -> Path:
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


def _inside(root: Path, relative: str) -> FileResponse:
    """A file under ``root`` served sandboxed (reports render but cannot script the console)."""
    target = _inside_path(root, relative)
    if not target.is_file():
        raise HTTPException(404, f"'{relative}' is not a file")
    media = "text/html" if target.suffix == ".html" else None if target.suffix in (".png", ".svg", ".json") else "text/plain"
    return FileResponse(target, media_type=media, headers=SANDBOX)


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
