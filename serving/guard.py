"""An ASGI middleware that refuses oversized and non-JSON request bodies before BentoML reads them.

BentoML 1.4 reads every request body whole and has no size limit (``api_server.max_request_size``
was removed), and it answers 500 for a ``multipart/form-data`` body without a boundary; this
guard turns both into a clear 4xx first.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_MEDIA_TYPE = b"application/json"


async def _reply(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", JSON_MEDIA_TYPE), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Answer 415 to a POST whose body is not JSON and 413 to one larger than ``max_bytes``.

    A body sent with ``Content-Length`` is judged by that header; a chunked body is read here, up
    to ``max_bytes``, and handed on to the app only if it fits.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check one request; pass it on unchanged when it is acceptable."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        media_type = headers.get(b"content-type", JSON_MEDIA_TYPE).split(b";")[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE:
            return await _reply(
                send, 415, f"unsupported Content-Type {media_type.decode('latin-1')!r}; send application/json"
            )
        too_large = f"request body is larger than {self.max_bytes} bytes; send fewer or shorter reviews"
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                return await _reply(send, 413, too_large)
            return await self.app(scope, receive, send)

        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _reply(send, 413, too_large)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
