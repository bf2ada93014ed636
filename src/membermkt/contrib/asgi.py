"""Mount a callback handler in any ASGI framework (FastAPI, Starlette, Django ASGI…).

FastAPI / Starlette::

    app.mount("/wechat", asgi_app(handler))

With several accounts on one handler, the last path segment names the appid
(``/wechat/wx123``); otherwise the push is routed by its signature.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

from membermkt.contrib._body import BodyRefused, body_limit, declared_length

__all__ = ["asgi_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Handler(Protocol):
    endpoints: Any

    def handle(
        self, method: str, query: Any, body: bytes, *, appid: str | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]: ...


def _appid_from_path(handler: _Handler, path: str) -> str | None:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return last if last in handler.endpoints else None


def asgi_app(handler: _Handler) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app serving ``handler`` (the sync work runs in a worker thread, so the event
    loop never blocks on decryption or the store).

    The body is never buffered past the handler's ``max_body`` (default 1 MiB): a declared
    ``Content-Length`` over it is answered 413 before the body is read, and a body that
    streams past it is cut off with 413.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            body = await _read_body(scope, receive, body_limit(handler))
        except BodyRefused as refused:
            await _respond(send, *refused.response())
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        status, headers, out = await asyncio.to_thread(
            handler.handle,
            scope["method"],
            query,
            body,
            appid=_appid_from_path(handler, scope.get("path", "")),
        )
        await _respond(send, status, headers, out)

    return app


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    header: bytes | None = None
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            header = value
    length = declared_length(header, limit)
    want = limit + 1 if length is None else length
    buf = bytearray()
    more = True
    while more and len(buf) < want:
        message = await receive()
        if message.get("type") == "http.disconnect":
            raise BodyRefused(400, "client disconnected")
        buf += message.get("body", b"")
        more = message.get("more_body", False)
    if len(buf) > limit:
        raise BodyRefused(413, "request entity too large")
    return bytes(buf[:want]) if length is not None else bytes(buf)


async def _respond(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
