"""The payout ledger of :class:`~membermkt.stores.memory.InMemoryStore`: intents keyed by bill
number, with an index by (rule, member) so a claim reads only its member's intents."""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING

import attrs

from membermkt.core.ports import PayoutIntent
from membermkt.errors import LedgerError
from membermkt.stores._common import check_intent, check_now, check_payout_status


class _MemoryPayouts:
    """Payout intents in dicts (mixed into ``InMemoryStore``; shares its lock)."""

    _lock: threading.RLock

    if TYPE_CHECKING:

        def _person_ids(self, member_id: str) -> list[str]: ...  # MemoryLinks'

    def _init_payouts(self) -> None:
        self._intents: dict[str, PayoutIntent] = {}
        self._intents_by_member: dict[tuple[str, str], set[str]] = {}

    def record_intent(self, intent: PayoutIntent) -> PayoutIntent:
        """Insert the intent unless its bill number exists; return the stored one
        (insert-or-get).

        Raises:
            UsageError: for an invalid intent.
        """
        check_intent(intent)
        with self._lock:
            stored = self._intents.get(intent.bill_no)
            if stored is not None:
                return stored
            self._intents[intent.bill_no] = intent
            key = (intent.rule_id, intent.member_id)
            self._intents_by_member.setdefault(key, set()).add(intent.bill_no)
            return intent

    def intent(self, bill_no: str) -> PayoutIntent | None:
        """The intent with this bill number, or ``None``."""
        with self._lock:
            return self._intents.get(bill_no)

    def member_intents(self, rule_id: str, member_id: str) -> list[PayoutIntent]:
        """One person's intents under one rule, by bill number: those of ``member_id`` and,
        while merges are in force, of its survivor and every id merged into it (see
        :meth:`survivors`) — so a rule's per-member limit still counts a packet paid to
        either member before they were merged. After ``unmerge`` each id has its own again.
        """
        with self._lock:
            bills = sorted(
                {
                    b
                    for mid in self._person_ids(member_id)
                    for b in self._intents_by_member.get((rule_id, mid), ())
                }
            )
            return [self._intents[b] for b in bills]

    def update_intent(
        self, bill_no: str, *, status: str, now: dt.datetime, detail: str | None = None
    ) -> None:
        """Change an intent's status (and detail, when given).

        Raises:
            LedgerError: for an unknown bill number.
            UsageError: for an unknown status or a naive ``now``.
        """
        st = check_payout_status(status)
        when = check_now(now)
        with self._lock:
            old = self._intents.get(bill_no)
            if old is None:
                raise LedgerError(f"unknown payout intent {bill_no!r}")
            self._intents[bill_no] = attrs.evolve(
                old,
                status=st,
                updated_at=when,
                detail=detail if detail is not None else old.detail,
            )

    def swap_intent(
        self,
        bill_no: str,
        *,
        expect: str,
        status: str,
        now: dt.datetime,
        detail: str | None = None,
    ) -> bool:
        """Compare-and-set: change the status only if it is still ``expect``.

        Returns:
            ``True`` when this call changed it, ``False`` when the stored status differed.

        Raises:
            LedgerError: for an unknown bill number.
            UsageError: for an unknown status or a naive ``now``.
        """
        check_payout_status(expect)
        st = check_payout_status(status)
        when = check_now(now)
        with self._lock:
            old = self._intents.get(bill_no)
            if old is None:
                raise LedgerError(f"unknown payout intent {bill_no!r}")
            if old.status != expect:
                return False
            self._intents[bill_no] = attrs.evolve(
                old,
                status=st,
                updated_at=when,
                detail=detail if detail is not None else old.detail,
            )
            return True

    def intents(
        self, *, rule_id: str | None = None, status: str | None = None
    ) -> list[PayoutIntent]:
        """Intents (optionally of one rule / status), by bill number."""
        with self._lock:
            found = [self._intents[k] for k in sorted(self._intents)]
        return [
            i
            for i in found
            if (rule_id is None or i.rule_id == rule_id) and (status is None or i.status == status)
        ]
