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
    loop never blocks on decryption or the store)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        status, headers, body = await asyncio.to_thread(
            handler.handle,
            scope["method"],
            query,
            b"".join(chunks),
            appid=_appid_from_path(handler, scope.get("path", "")),
        )
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    return app
