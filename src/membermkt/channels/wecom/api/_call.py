"""Helpers shared by the WeCom API modules: the host, the errcode table, call builders."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from membermkt.channels.wechat.api._call import ApiCall, need
from membermkt.channels.wecom._errcodes import WECOM_ERRCODES
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = ["EC", "HOST", "get", "need", "post", "strs"]

T = TypeVar("T")

HOST: Final = "https://qyapi.weixin.qq.com"
"""The WeCom API host (reference §3; paths start with ``/cgi-bin``)."""
EC: Final = "/cgi-bin/externalcontact"
"""The customer-contact path prefix."""


def post(
    path: str,
    payload: Mapping[str, Any],
    parse: Callable[[Mapping[str, Any]], T],
    *,
    idempotent: bool = False,
    ok_codes: Iterable[int] = (),
) -> ApiCall[T]:
    """A POST call with a JSON body, decoded with WeCom's errcode table."""
    body = {k: v for k, v in payload.items() if v is not None}
    return ApiCall(
        request=HttpRequest.post_json(path, body),
        parse=parse,
        idempotent=idempotent,
        ok_codes=frozenset(ok_codes),
        table=WECOM_ERRCODES,
    )


def get(
    path: str,
    params: Mapping[str, str],
    parse: Callable[[Mapping[str, Any]], T],
    *,
    ok_codes: Iterable[int] = (),
) -> ApiCall[T]:
    """A GET call (reads are idempotent), decoded with WeCom's errcode table."""
    return ApiCall(
        request=HttpRequest.get(path, params),
        parse=parse,
        idempotent=True,
        ok_codes=frozenset(ok_codes),
        table=WECOM_ERRCODES,
    )


def strs(values: Iterable[str], what: str, *, max_items: int | None = None) -> list[str]:
    """A list of non-empty strings (a lone ``str`` is refused: it is iterable).

    Raises:
        UsageError: for a str instead of a collection, an empty item, or too many items.
    """
    if isinstance(values, str):
        raise UsageError(f"{what} must be a collection of str, not a str ({values!r})")
    out = list(values)
    for v in out:
        if not isinstance(v, str) or not v:
            raise UsageError(f"{what} must hold non-empty str, got {v!r}")
    if max_items is not None and len(out) > max_items:
        raise UsageError(f"{what} takes at most {max_items} items, got {len(out)}")
    return out
