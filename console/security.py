"""The console's guard: an access token when it listens beyond loopback, CSRF tokens on every
state change, a request-size limit, and headers that keep served reports from reaching the console.

One ASGI middleware in front of the app:
- **host**: without a token (loopback) only requests addressed to a loopback name are answered, so
  a web page cannot reach the console by rebinding its own domain to 127.0.0.1 (DNS rebinding).
- **token**: with a token configured, a request needs ``Authorization: Bearer TOKEN``, the
  console's cookie, or ``?token=TOKEN`` (which sets the cookie and redirects to the same page
  without it, as Jupyter does); anything else gets 401.
- **CSRF** (signed double-submit): every browser gets a ``sagestack_csrf`` cookie (SameSite=Strict,
  HttpOnly) holding a random nonce signed with the console's secret; pages put its value in each
  form; :func:`check_csrf` compares the two on POST. A cookie planted by someone else fails the
  signature and is replaced. A cross-site (or ``null``) ``Origin`` is refused too.
- **size**: a POST must say its ``Content-Length`` and stay under the limit (413 / 411 otherwise),
  before any of it is read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from http.cookies import SimpleCookie
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers

CSRF_COOKIE = "sagestack_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
TOKEN_COOKIE = "sagestack_console_token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class CSRFError(Exception):
    """A state-changing request without a matching CSRF token."""


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def check_csrf(scope_state: dict, submitted: str | None) -> None:
    """Raise :class:`CSRFError` unless ``submitted`` equals the browser's CSRF cookie."""
    if not _same(scope_state.get("csrf_cookie"), submitted):
        raise CSRFError("this form is missing its security token (CSRF) or it is stale; "
                        "reload the page and submit it again")


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _host_name(host_header: str) -> str:
    """``127.0.0.1:8080`` → ``127.0.0.1``; ``[::1]:8080`` → ``::1``."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _page(title: str, message: str) -> str:
    from html import escape

    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)} · sagestack console</title>"
            f"<body><main><h1>{escape(title)}</h1><p role=alert>{escape(message)}</p></main></body></html>")


class ConsoleGuard:
    """The middleware described in the module docstring.

    Args:
        app: the ASGI app behind it.
        token: the access token, or None on loopback (no token needed).
        max_upload_bytes: the largest upload; a body may be 1 MiB larger (the form's other fields).
        secret: the key that signs CSRF cookies.
        allowed_hosts: host names the console answers to (None: any, as with a token).
    """

    def __init__(self, app, *, token: str | None, max_upload_bytes: int, secret: bytes,
                 allowed_hosts: frozenset[str] | None):
        self.app = app
        self.token = token
        self.max_upload_bytes = max_upload_bytes
        self.max_body_bytes = max_upload_bytes + (1 << 20)
        self.secret = secret
        self.allowed_hosts = allowed_hosts

    def _sign(self, nonce: str) -> str:
        return f"{nonce}.{hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]}"

    def _valid_csrf(self, value: str | None) -> str | None:
        if not value or "." not in value:
            return None
        return value if _same(self._sign(value.split(".", 1)[0]), value) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check one request, then pass it on with the CSRF cookie's value in ``scope['state']``."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            return await _plain(send, 400, _page("Wrong address", "this console answers only on this machine: "
                                                 "open it as http://127.0.0.1:PORT/ (or localhost); to reach it "
                                                 "by another name, start it with --token"))
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is treated as no cookies
            cookies = SimpleCookie()
        cookie = {key: morsel.value for key, morsel in cookies.items()}
        set_cookies: list[tuple[bytes, bytes]] = []

        if self.token:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
            if _same(query.get("token"), self.token):
                rest = urlencode({k: v for k, v in query.items() if k != "token"})
                location = scope["path"] + (f"?{rest}" if rest else "")
                return await _plain(send, 303, "", [
                    (b"location", location.encode()),
                    (b"set-cookie", f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode())])
            if not (_same(cookie.get(TOKEN_COOKIE), self.token) or _same(bearer, self.token)):
                return await _plain(send, 401, _page("Token needed", "This console needs its access token: open the "
                                                     "URL that `sagestack console` printed (it ends in ?token=…)."))

        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            if origin and (origin == "null" or urlsplit(origin).netloc != headers.get("host")):
                return await _plain(send, 403, _page("Refused", f"a request from another site ({origin}) may not "
                                                     "change anything here"))
            length = headers.get("content-length")
            if length is None and headers.get("transfer-encoding"):
                return await _plain(send, 411, _page("Length required", "send the request with a Content-Length"))
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                return await _plain(send, 413, _page("Too large", f"the request is larger than the upload limit of "
                                                     f"{self.max_upload_bytes / 1e6:g} MB; upload a smaller file"))

        sent = self._valid_csrf(cookie.get(CSRF_COOKIE))
        csrf = sent
        if not csrf:
            csrf = self._sign(secrets.token_urlsafe(24))
            set_cookies.append((b"set-cookie", f"{CSRF_COOKIE}={csrf}; Path=/; HttpOnly; SameSite=Strict".encode()))
        scope.setdefault("state", {})
        scope["state"]["csrf_cookie"] = sent  # what the browser sent, if genuine: what POSTs are checked against
        scope["state"]["csrf"] = csrf  # what pages put into their forms

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                         (b"x-frame-options", b"SAMEORIGIN")]
                message = {**message, "headers": [*message.get("headers", []), *set_cookies, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
