"""Sans-I/O HTTP values and flow steps shared by every platform client.

A platform call is a *flow*: a generator that yields :class:`Step` values (send this request,
give me an access token, the token failed — give me a fresh one) and receives their results.
The sync and async clients are two small drivers that execute the same flows, so their
behaviour cannot drift (httpx's ``auth_flow`` idea). Nothing here performs I/O, sleeps or
reads the clock.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from typing import Any, TypeAlias, TypeVar

import attrs

from membermkt.errors import TransportError

__all__ = [
    "Flow",
    "GetToken",
    "HttpRequest",
    "HttpResponse",
    "RefreshToken",
    "Send",
    "Step",
    "dumps",
]

T = TypeVar("T")


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (the platforms want raw UTF-8, not ``\\u`` escapes)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@attrs.frozen(slots=True, kw_only=True)
class HttpRequest:
    """A request to send, relative to the client's base URL.

    Attributes:
        method: ``"GET"`` or ``"POST"``.
        path: the path, e.g. ``"/cgi-bin/tags/create"``.
        params: query parameters (in order).
        body: the body bytes (``None`` for none).
        headers: extra headers.
        api: the API name used in errors, budgets and counters (defaults to the path).
    """

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    api: str = ""

    @classmethod
    def get(
        cls, path: str, params: Mapping[str, str] | None = None, *, api: str = ""
    ) -> HttpRequest:
        """A GET request."""
        return cls(method="GET", path=path, params=tuple((params or {}).items()), api=api or path)

    @classmethod
    def post_json(
        cls, path: str, payload: Any, params: Mapping[str, str] | None = None, *, api: str = ""
    ) -> HttpRequest:
        """A POST request with a JSON body."""
        return cls(
            method="POST",
            path=path,
            params=tuple((params or {}).items()),
            body=dumps(payload),
            headers=(("Content-Type", "application/json; charset=utf-8"),),
            api=api or path,
        )

    def with_param(self, name: str, value: str) -> HttpRequest:
        """A copy with query parameter ``name`` set (replacing an existing one)."""
        params = (*(p for p in self.params if p[0] != name), (name, value))
        return attrs.evolve(self, params=params)

    def json(self) -> Any:
        """The decoded JSON body (``None`` without a body)."""
        return None if self.body is None else json.loads(self.body)


@attrs.frozen(slots=True, kw_only=True)
class HttpResponse:
    """A received response."""

    status: int
    content: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    def json(self, api: str = "") -> Any:
        """The decoded JSON body.

        Raises:
            TransportError: when the body is not JSON (a proxy page, a truncated answer).
        """
        try:
            return json.loads(self.content)
        except ValueError:
            snippet = self.content[:80].decode("utf-8", "replace")
            raise TransportError(
                f"{api}: HTTP {self.status} answer is not JSON: {snippet!r}", api=api
            ) from None


@attrs.frozen(slots=True)
class Send:
    """Step: send this request; the flow receives the :class:`HttpResponse`."""

    request: HttpRequest


@attrs.frozen(slots=True)
class GetToken:
    """Step: the flow needs a valid access token (str)."""


@attrs.frozen(slots=True)
class RefreshToken:
    """Step: ``failed`` was refused by the platform; expire it (only if it is still the
    cached one) and hand the flow a fresh token."""

    failed: str


Step: TypeAlias = Send | GetToken | RefreshToken
Flow: TypeAlias = Generator[Step, Any, T]
