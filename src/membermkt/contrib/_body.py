"""Reading a request body without trusting it (shared by the ASGI and WSGI glue).

A callback endpoint is on the public internet, so the glue never buffers more than the
handler's ``max_body`` (default 1 MiB): a declared ``Content-Length`` over the limit is
refused before a byte of the body is read, a body without one is read only up to the limit,
and a body longer than it declared is cut at the declared length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CHUNK", "BodyRefused", "body_limit", "declared_length", "read_limited"]

CHUNK = 64 * 1024
"""Bytes read at a time."""

DEFAULT_LIMIT = 1 << 20


class BodyRefused(Exception):
    """The request body is refused before it reaches the handler (never leaves the glue)."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)

    def response(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """The ``(status, headers, body)`` answer."""
        return self.status, [("Content-Type", "text/plain; charset=utf-8")], self.reason.encode()


def body_limit(handler: Any) -> int:
    """The handler's ``max_body`` (1 MiB when it has none)."""
    limit = getattr(handler, "max_body", DEFAULT_LIMIT)
    return limit if isinstance(limit, int) and limit > 0 else DEFAULT_LIMIT


def declared_length(value: str | bytes | None, limit: int) -> int | None:
    """The ``Content-Length`` as an int (``None`` when absent).

    Raises:
        BodyRefused: 400 when it is not a plain number, 413 when it is over ``limit``.
    """
    if value is None or value == "" or value == b"":
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise BodyRefused(400, "bad Content-Length")
    length = int(text)
    if length > limit:
        raise BodyRefused(413, "request entity too large")
    return length


def read_limited(read: Callable[[int], bytes], length: int | None, limit: int) -> bytes:
    """Read the body from a file-like ``read``: exactly ``length`` bytes when declared (a
    shorter stream is what it is), otherwise up to EOF but never more than ``limit``.

    Raises:
        BodyRefused: 413 when an undeclared body runs past ``limit``.
    """
    buf = bytearray()
    want = limit + 1 if length is None else length
    while len(buf) < want:
        chunk = read(min(CHUNK, want - len(buf)))
        if not chunk:
            break
        buf += chunk
    if len(buf) > limit:
        raise BodyRefused(413, "request entity too large")
    return bytes(buf)
