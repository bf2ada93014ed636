"""Small web plumbing shared by the ready pages in :mod:`membermkt.contrib`: signed session
cookies, request parsing, HTML escaping and the ASGI adapter (stdlib only)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

import attrs

from membermkt.errors import ConfigError, SignatureError

__all__ = ["Request", "Response", "SessionCodec", "asgi_adapter", "escape"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 16 * 1024
"""Form and beacon bodies are tiny; anything larger is refused (413)."""

escape = html.escape


@attrs.frozen(slots=True, kw_only=True)
class Request:
    """A request as plain values."""

    method: str
    path: str
    query: Mapping[str, str] = attrs.field(factory=dict)
    cookies: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    content_type: str = ""

    def form(self) -> dict[str, str]:
        """The urlencoded form fields (last value wins)."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


@attrs.frozen(slots=True)
class Response:
    """A response as plain values."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def html(cls, status: int, page: str, *headers: tuple[str, str]) -> Response:
        return cls(
            status,
            (
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("X-Frame-Options", "DENY"),
                *headers,
            ),
            page.encode(),
        )

    @classmethod
    def redirect(cls, location: str, *headers: tuple[str, str]) -> Response:
        return cls(302, (("Location", location), ("Cache-Control", "no-store"), *headers))


class SessionCodec:
    """A signed (not encrypted) cookie value: ``base64url(json).hmac``.

    Keep only identifiers in it (session id, openid, member id); never a phone number.

    Raises:
        ConfigError: for a secret shorter than 16 bytes.
    """

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ConfigError("the session secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, b"session\n" + payload.encode(), hashlib.sha256).hexdigest()

    def encode(self, data: Mapping[str, str]) -> str:
        raw = json.dumps(dict(data), separators=(",", ":"), sort_keys=True).encode()
        payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"{payload}.{self._mac(payload)}"

    def decode(self, value: str) -> dict[str, str]:
        """The session data.

        Raises:
            SignatureError: for a malformed or forged value.
        """
        payload, _, mac = (value or "").partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload)):
            raise SignatureError("session cookie is forged or damaged")
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            raise SignatureError("session cookie is damaged") from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise SignatureError("session cookie is damaged")
        return data

    def cookie(self, name: str, data: Mapping[str, str], *, path: str, secure: bool) -> str:
        """A ``Set-Cookie`` value (HttpOnly, SameSite=Lax: the OAuth redirect back is a
        top-level GET, which Lax lets through)."""
        attrs_ = f"; Path={path}; HttpOnly; SameSite=Lax"
        if secure:
            attrs_ += "; Secure"
        return f"{name}={self.encode(data)}{attrs_}"


def parse_cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is treated as no cookies
        return {}
    return {k: m.value for k, m in jar.items()}


def asgi_adapter(handle: Callable[[Request], Response]) -> ASGIApp:
    """An ASGI app around a sync ``handle`` (run in a worker thread: it talks to the store
    and the platforms)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= MAX_BODY:
                chunks.append(chunk)
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if size > MAX_BODY:
            response = Response(413, (("Content-Type", "text/plain"),), b"body too large")
        else:
            path = scope.get("path", "/")
            root = scope.get("root_path", "")
            if root and not path.startswith(root):  # servers that strip the mount point
                path = root.rstrip("/") + path
            request = Request(
                method=scope["method"],
                path=path,
                query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
                cookies=parse_cookies(headers.get("cookie", "")),
                body=b"".join(chunks),
                content_type=headers.get("content-type", ""),
            )
            response = await asyncio.to_thread(handle, request)
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        raw.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": raw})
        await send({"type": "http.response.body", "body": response.body})

    return app
