"""The state every API group of the emulator shares, and the helpers more than one uses."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from membermkt.errors import UsageError
from membermkt.testing.emulator._base import CallCounter, FaultPlan
from membermkt.testing.emulator.wechat._model import (
    EMULATOR_LIMITS,
    FAULTS,
    Account,
    Receipt,
    _Refuse,
    _Tag,
)
from membermkt.wire.budget import BudgetWindowExceeded, CallBudget


class _Base:
    """State and shared helpers of :class:`~membermkt.testing.emulator.wechat.WeChatEmulator`
    (its API groups are mixins over this)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        token_ttl: float = 7200,
        token_overlap: float = 300,
        limits: Iterable[CallBudget] | None = None,
    ) -> None:
        if token_overlap >= token_ttl:
            raise UsageError("token_overlap must be shorter than token_ttl")
        self.now = clock
        self.token_ttl = token_ttl
        self.token_overlap = token_overlap
        self._limits = tuple(EMULATOR_LIMITS if limits is None else limits)
        self.faults = FaultPlan(FAULTS, seed=seed)
        self.calls = CallCounter()
        self.accounts: dict[str, Account] = {}
        self.lock = threading.RLock()
        self._ids = itertools.count(1_000_000 + seed * 1000)
        self._token_owner: dict[str, str] = {}
        self.receipts: list[Receipt] = []
        self._receipt_counts: collections.Counter[tuple[str, str, str, str]] = collections.Counter()
        self._by_openid: dict[tuple[str, str], list[Receipt]] = {}
        self.duplicates = 0
        """Receipts that repeated an earlier (appid, openid, kind, content)."""
        self.errcodes: collections.Counter[int] = collections.Counter()
        """How often each non-zero errcode was answered."""
        self._fail_next: collections.deque[tuple[int, str | None]] = collections.deque()

    def _receive(self, acct: Account, openid: str, kind: str, content: str, msg_id: str) -> None:
        key = (acct.appid, openid, kind, content)
        self._receipt_counts[key] += 1
        if self._receipt_counts[key] > 1:
            self.duplicates += 1
        receipt = Receipt(acct.appid, openid, kind, content, msg_id, self.now())
        self.receipts.append(receipt)
        self._by_openid.setdefault((acct.appid, openid), []).append(receipt)

    def _limit(self, acct: Account, api: str) -> None:
        try:
            acct.limits.take(api, self.now())
        except BudgetWindowExceeded:
            raise _Refuse(45009, "reach max api daily quota limit") from None

    def _tag(self, acct: Account, tag_id: Any, *, edit: bool = False) -> _Tag:
        if edit and tag_id in (0, 1, 2):
            raise _Refuse(45058, "can't modify sys tag")
        tag = acct.tags.get(tag_id) if isinstance(tag_id, int) else None
        if tag is None:
            raise _Refuse(45159, "invalid tag id")
        return tag
