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

    @staticmethod
    def _content(body: Mapping[str, Any]) -> tuple[str | None, list[Any]]:
        text = (body.get("text") or {}).get("content")
        attachments = list(body.get("attachments") or ())
        if text is not None and len(str(text).encode("utf-8")) > 4000:
            raise _Refuse(_INVALID, "text content over 4000 bytes")
        if len(attachments) > 9:
            raise _Refuse(_INVALID, "too many attachments")
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


def _offset(body: Mapping[str, Any]) -> int:
    cursor = body.get("cursor") or "0"
    if not isinstance(cursor, str) or not cursor.isdigit():
        raise _Refuse(_INVALID, "invalid cursor")
    return int(cursor)
