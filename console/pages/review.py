"""The Review page: the human loops' queue, one item at a time, answered under a reviewer's name."""

from __future__ import annotations

import time
from urllib.parse import quote, unquote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from sagestack.console import forms
from sagestack.console.context import Console
from sagestack.errors import SagestackError

REVIEWER_COOKIE = "sagestack_reviewer"


def router(console: Console) -> APIRouter:
    """``/review`` (a flow's queue), ``POST /review/reviewer`` (who reviews) and ``POST /review/answer``."""
    from sagestack.review import review_store

    routes = APIRouter()
    reviews = review_store(console.settings)

    @routes.get("/review")
    async def review_page(request: Request, flow: str | None = None, skip: str = ""):
        flows = await run_in_threadpool(reviews.flows)
        if not flows:
            return console.render(request, "review.html", flows=[])
        chosen = await run_in_threadpool(reviews.flow, flow) if flow else flows[0]
        reviewer = _reviewer_of(request)
        skipped = [name for name in skip.split(",") if name][:100]
        queue = await run_in_threadpool(lambda: reviews.queue(chosen.name, reviewer or "", skip=skipped))
        progress = await run_in_threadpool(reviews.progress, chosen.name, reviewer)
        tied = await run_in_threadpool(reviews.tied, chosen.name)
        item = queue[0] if reviewer and queue else None
        skip_query = urlencode({"flow": chosen.name, "skip": ",".join([*skipped, item.name] if item else skipped)})
        return console.render(request, "review.html", flows=flows, flow=chosen, reviewer=reviewer, queue=queue,
                              item=item, progress=progress,
                              total=sum(progress[s] for s in ("InProgress", "Completed", "Stopped", "Failed")),
                              mine=progress.get("yours", 0), tied=tied, shown=f"{time.time():.3f}",
                              skip_query=skip_query, skipped=",".join(skipped))

    @routes.post("/review/reviewer")
    async def review_as(request: Request):
        from sagestack.review.store import check_reviewer

        form = await console.checked_form(request)
        flow = forms.text(form, "flow")
        response = RedirectResponse(f"/review?{urlencode({'flow': flow})}" if flow else "/review", status_code=303)
        name = forms.text(form, "reviewer")
        if not name:  # "Change": forget the name, ask again
            response.delete_cookie(REVIEWER_COOKIE, path="/")
            return response
        response.set_cookie(REVIEWER_COOKIE, quote(check_reviewer(name), safe=""), path="/", httponly=True,
                            samesite="strict", max_age=30 * 86400)
        return response

    @routes.post("/review/answer")
    async def review_answer(request: Request):
        form = await console.checked_form(request)
        reviewer = _reviewer_of(request)
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

    return routes


def _reviewer_of(request: Request) -> str | None:
    """The reviewer's name from the browser's cookie; None when there is none or it is not a valid name."""
    from sagestack.review.store import check_reviewer

    try:  # percent-encoded: a cookie carries Latin-1 only, a name may be any letters
        return check_reviewer(unquote(request.cookies.get(REVIEWER_COOKIE) or ""))
    except SagestackError:
        return None
