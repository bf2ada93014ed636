"""The emulator's shared state and the request helpers every API group uses."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from membermkt.core.quotas import WECOM_MASS_DAYS_IN_MONTH, Cap
from membermkt.testing.emulator._base import CallCounter, FaultPlan
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import _INVALID, FAULTS, WELCOME_WINDOW, _Refuse


class _EmulatorBase:
    """State shared by the API-group mixins of :class:`WeComEmulator` (arguments there)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        token_ttl: float = 7200,
        mass_cap: Cap = WECOM_MASS_DAYS_IN_MONTH,
        welcome_window: float = WELCOME_WINDOW,
    ) -> None:
        self.now = clock
        self.token_ttl = token_ttl
        self.mass_cap = mass_cap
        self.welcome_window = welcome_window
        self.faults = FaultPlan(FAULTS, seed=seed)
        self.calls = CallCounter()
        self.corps: dict[str, Corp] = {}
        self.lock = threading.RLock()
        self._ids = itertools.count(5_000_000 + seed * 1000)
        self._token_owner: dict[str, str] = {}
        self.errcodes: collections.Counter[int] = collections.Counter()
        """How often each non-zero errcode was answered."""
        self._fail: collections.deque[tuple[int, str | None]] = collections.deque()
        # rule: wecom.api_rate -- any single API, per corp: 10,000 calls a minute and 150,000
        # an hour (reference §5, official 90454), then 45009. None switches a cap off.
        self.api_per_minute: int | None = 10_000
        self.api_per_hour: int | None = 150_000
        self._api_windows: dict[tuple[str, str, int], int] = {}

    def _rate(self, corpid: str, api: str) -> None:
        """Count one call of ``api`` by ``corpid``; 45009 over the minute or hour cap."""
        now = self.now()
        for span, cap in ((60, self.api_per_minute), (3600, self.api_per_hour)):
            if cap is None:
                continue
            key = (corpid, api, int(now // span) * span)
            used = self._api_windows.get(key, 0) + 1
            self._api_windows[key] = used
            if used > cap:
                raise _Refuse(45009, "api freq out of limit")
        if len(self._api_windows) > 10_000:  # forget windows that are over
            for k in [k for k in self._api_windows if now - k[2] > 3600]:
                del self._api_windows[k]

    @staticmethod
    def _content(body: Mapping[str, Any]) -> tuple[str | None, list[Any]]:
        text = (body.get("text") or {}).get("content")
        attachments = list(body.get("attachments") or ())
        if text is not None and len(str(text).encode("utf-8")) > 4000:
            raise _Refuse(_INVALID, "text content over 4000 bytes")
        if len(attachments) > 9:
            raise _Refuse(_INVALID, "too many attachments")
        for a in attachments:
            _check_attachment(a)
        if not text and not attachments:
            raise _Refuse(_INVALID, "empty message")
        return text, attachments

    @staticmethod
    def _page(
        items: list[Any], body: Mapping[str, Any], default: int, top: int
    ) -> tuple[list[Any], str]:
        limit = body.get("limit") or default
        if not isinstance(limit, int) or not 1 <= limit <= top:
            raise _Refuse(_INVALID, "invalid limit")
        start = _offset(body)
        nxt = str(start + limit) if start + limit < len(items) else ""
        return items[start : start + limit], nxt


_ATTACHMENT_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    # msgtype -> alternatives of required fields (reference §3.4)
    "image": (("media_id",), ("pic_url",)),
    "link": (("title", "url"),),
    "miniprogram": (("title", "pic_media_id", "appid", "page"),),
    "video": (("media_id",),),
    "file": (("media_id",),),
}


def _check_attachment(a: Any) -> None:
    """rule: wecom.attachment_msgtype -- every attachment names a msgtype among image, link,
    miniprogram, video, file and carries that type's fields (reference §3.4); the refusal
    code 40008 "invalid message type" is unconfirmed for this API."""
    msgtype = a.get("msgtype") if isinstance(a, Mapping) else None
    alternatives = _ATTACHMENT_FIELDS.get(str(msgtype))
    if alternatives is None:
        raise _Refuse(40008, f"invalid attachment msgtype {msgtype!r}")
    payload = a.get(msgtype)
    if not isinstance(payload, Mapping) or not any(
        all(payload.get(f) for f in needed) for needed in alternatives
    ):
        raise _Refuse(_INVALID, f"attachment {msgtype}: missing {alternatives[0]}")


def _offset(body: Mapping[str, Any]) -> int:
    cursor = body.get("cursor") or "0"
    if not isinstance(cursor, str) or not cursor.isdigit():
        raise _Refuse(_INVALID, "invalid cursor")
    return int(cursor)
