"""The unit every API module produces: a request plus how to read its answer (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from membermkt.errors import PlatformError, TransportError
from membermkt.wire.errcodes import OA_ERRCODES, Action, ErrcodeTable, decide, error_for
from membermkt.wire.http import HttpRequest, HttpResponse

__all__ = ["ApiCall", "decode_json", "decode_response"]

T = TypeVar("T")

HOST = "https://api.weixin.qq.com"
"""The official-account API host (reference §1)."""


@attrs.frozen(slots=True, kw_only=True)
class ApiCall(Generic[T]):
    """One platform call: the request (without access token) and its answer parser.

    Attributes:
        request: the :class:`~membermkt.wire.http.HttpRequest`.
        parse: turns the decoded JSON answer (errcode already checked) into the model.
        idempotent: ``True`` when repeating the call after an ambiguous failure cannot
            cause a second effect (reads; mass sends carrying a ``clientmsgid``).
        needs_token: ``False`` for the token endpoints themselves.
        ok_codes: errcodes that mean success for this call (mass send 45065).
        table: the platform's errcode decision table (WeCom calls carry their own).
    """

    request: HttpRequest
    parse: Callable[[Mapping[str, Any]], T]
    idempotent: bool = False
    needs_token: bool = True
    ok_codes: frozenset[int] = frozenset()
    table: ErrcodeTable = attrs.field(default=OA_ERRCODES, repr=False)

    @property
    def api(self) -> str:
        return self.request.api


def decode_json(response: HttpResponse, api: str) -> Mapping[str, Any]:
    """The JSON object of an answer; HTTP failures become errors.

    Raises:
        PlatformError: (retryable) on HTTP 5xx.
        TransportError: on another non-200 status or a non-JSON body.
    """
    if response.status >= 500:
        raise PlatformError(
            f"http{response.status}", f"HTTP {response.status}", api, retryable=True
        )
    if response.status != 200:
        raise TransportError(f"{api}: unexpected HTTP {response.status}", api=api, ambiguous=False)
    data = response.json(api)
    if not isinstance(data, dict):
        raise TransportError(f"{api}: answer is not a JSON object", api=api)
    return data


def decode_response(
    call: ApiCall[T], response: HttpResponse, *, table: ErrcodeTable | None = None
) -> T:
    """Check the errcode of an answer and parse it (``table`` defaults to ``call.table``).

    Raises:
        PlatformError: (or a subclass from :func:`membermkt.wire.errcodes.error_for`) when
            the errcode is not a success.
        TransportError: when the answer is not a JSON object.
    """
    table = call.table if table is None else table
    data = decode_json(response, call.api)
    code = data.get("errcode", 0)
    if code and code not in call.ok_codes:
        if not isinstance(code, int):
            raise TransportError(f"{call.api}: errcode is not an int: {code!r}", api=call.api)
        if decide(code, table).action is not Action.OK:
            raise error_for(code, str(data.get("errmsg", "")), call.api, payload=data, table=table)
    return call.parse(data)


def need(data: Mapping[str, Any], key: str, api: str) -> Any:
    """``data[key]``, or a clear error naming the missing field.

    Raises:
        TransportError: when the platform's answer lacks ``key``.
    """
    try:
        return data[key]
    except KeyError:
        raise TransportError(f"{api}: answer lacks {key!r}", api=api, ambiguous=False) from None
