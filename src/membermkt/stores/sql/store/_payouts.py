"""Payout intents in SQL (one row per bill number)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.ports import PayoutIntent
from membermkt.errors import LedgerError
from membermkt.stores._common import check_intent, check_now, check_payout_status
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.compile import to_epoch_us
from membermkt.stores.sql.store._survivors import _SurvivorsMixin


class _PayoutsMixin(_SurvivorsMixin):
    """Record, update and list payout intents."""

    def record_intent(self, intent: PayoutIntent) -> PayoutIntent:
        """Insert the intent unless its bill number exists; return the stored one.

        Raises:
            UsageError: for an invalid intent.
            StoreUnavailable: when the database cannot be reached.
        """
        row = rows.intent_row(check_intent(intent))
        t = self.tables.payouts

        def run(conn: Connection) -> PayoutIntent:
            conn.execute(self._insert_ignore(t).values(**row))
            got = conn.execute(sa.select(t).where(t.c.bill_no == intent.bill_no)).mappings()
            return rows.intent_from_row(got.one())

        return self._write(run)

    def update_intent(
        self, bill_no: str, *, status: str, now: dt.datetime, detail: str | None = None
    ) -> None:
        """Change an intent's status (and detail, when given).

        Raises:
            LedgerError: for an unknown bill number.
            UsageError: for an unknown status or a naive ``now``.
            StoreUnavailable: when the database cannot be reached.
        """
        st = check_payout_status(status)
        when = to_epoch_us(check_now(now))
        t = self.tables.payouts
        values: dict[str, Any] = {"status": st, "updated_at": when}
        if detail is not None:
            values["detail"] = detail

        def run(conn: Connection) -> None:
            res = conn.execute(sa.update(t).where(t.c.bill_no == bill_no).values(**values))
            if res.rowcount != 1:
                raise LedgerError(f"unknown payout intent {bill_no!r}")

        self._write(run)

    def intent(self, bill_no: str) -> PayoutIntent | None:
        """The intent with this bill number, or ``None``.

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        t = self.tables.payouts
        with self._tx() as conn:
            got = conn.execute(sa.select(t).where(t.c.bill_no == bill_no)).mappings().first()
        return rows.intent_from_row(got) if got is not None else None

    def member_intents(self, rule_id: str, member_id: str) -> list[PayoutIntent]:
        """One person's intents under one rule, by bill number (an indexed read): those of
        ``member_id`` and, while merges are in force, of its survivor and every id merged
        into it — so per-member limits still count a packet paid before a merge (see
        :meth:`membermkt.stores.memory.InMemoryStore.member_intents`).

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        t = self.tables.payouts
        with self._tx() as conn:
            ids = self._person_ids(conn, member_id)
            q = (
                sa.select(t)
                .where(t.c.rule_id == rule_id, t.c.member_id.in_(ids))
                .order_by(t.c.bill_no)
            )
            return [rows.intent_from_row(r) for r in conn.execute(q).mappings()]

    def swap_intent(
        self,
        bill_no: str,
        *,
        expect: str,
        status: str,
        now: dt.datetime,
        detail: str | None = None,
    ) -> bool:
        """Compare-and-set: change the status only if it is still ``expect`` (one
        conditional ``UPDATE``).

        Returns:
            ``True`` when this call changed it, ``False`` when the stored status differed.

        Raises:
            LedgerError: for an unknown bill number.
            UsageError: for an unknown status or a naive ``now``.
            StoreUnavailable: when the database cannot be reached.
        """
        check_payout_status(expect)
        st = check_payout_status(status)
        when = to_epoch_us(check_now(now))
        t = self.tables.payouts
        values: dict[str, Any] = {"status": st, "updated_at": when}
        if detail is not None:
            values["detail"] = detail

        def run(conn: Connection) -> bool:
            res = conn.execute(
                sa.update(t).where(t.c.bill_no == bill_no, t.c.status == expect).values(**values)
            )
            if res.rowcount == 1:
                return True
            found = conn.execute(sa.select(t.c.bill_no).where(t.c.bill_no == bill_no)).first()
            if found is None:
                raise LedgerError(f"unknown payout intent {bill_no!r}")
            return False

        return self._write(run)

    def intents(
        self, *, rule_id: str | None = None, status: str | None = None
    ) -> list[PayoutIntent]:
        """Intents (optionally of one rule / status), by bill number.

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        t = self.tables.payouts
        q = sa.select(t).order_by(t.c.bill_no)
        if rule_id is not None:
            q = q.where(t.c.rule_id == rule_id)
        if status is not None:
            q = q.where(t.c.status == status)
        with self._tx() as conn:
            return [rows.intent_from_row(r) for r in conn.execute(q).mappings()]
