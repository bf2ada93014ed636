"""Budgets in SQL: all-or-nothing reservations by conditional updates."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from membermkt.core.ports import BudgetState
from membermkt.errors import UsageError
from membermkt.stores._common import check_items, check_limit
from membermkt.stores.sql import _rows as rows
from membermkt.stores.sql.store._bulk import _Bulk


class _BudgetsMixin(_Bulk):
    """Create, reserve, release, settle and read budgets."""

    def ensure_budget(self, key: str, *, limit: int) -> None:
        """Create the budget row if absent (an existing row keeps its limit).

        Raises:
            UsageError: for an empty key or a negative limit.
            StoreUnavailable: when the database cannot be reached.
        """
        if not isinstance(key, str) or not key:
            raise UsageError(f"budget key must be a non-empty str, got {key!r}")
        rows.check_text("budget key", key)
        lim = check_limit(limit)
        t = self.tables.budgets
        self._write(
            lambda conn: conn.execute(
                self._insert_ignore(t).values(key=key, budget_limit=lim, reserved=0, spent=0)
            )
        )

    def _known(self, conn: Connection, keys: Iterable[str]) -> None:
        t = self.tables.budgets
        wanted = sorted(keys)
        have = {
            r["key"]
            for r in self._in(conn, lambda c: sa.select(t.c.key).where(t.c.key.in_(c)), wanted)
        }
        for k in wanted:
            if k not in have:
                raise UsageError(f"unknown budget {k!r}; create it with ensure_budget")

    def reserve(self, items: Sequence[tuple[str, int]]) -> bool:
        """Reserve every ``(key, amount)`` or none, in one transaction of conditional
        updates (``reserved + spent + amount <= limit``).

        Returns:
            ``False`` (and nothing reserved) when any budget would exceed its limit.

        Raises:
            UsageError: for an unknown budget or a malformed item.
            StoreUnavailable: when the database cannot be reached.
        """
        wanted = check_items(items)
        t = self.tables.budgets

        class _Refused(Exception):
            pass

        def run(conn: Connection) -> bool:
            self._known(conn, wanted)
            for key in sorted(wanted):
                amount = wanted[key]
                res = conn.execute(
                    sa.update(t)
                    .where(t.c.key == key, t.c.reserved + t.c.spent + amount <= t.c.budget_limit)
                    .values(reserved=t.c.reserved + amount)
                )
                if res.rowcount != 1:
                    raise _Refused
            return True

        try:
            return self._write(run)
        except _Refused:
            return False

    def release(self, items: Sequence[tuple[str, int]]) -> None:
        """Give reserved amounts back.

        Raises:
            UsageError: for an unknown budget or more than is reserved.
            StoreUnavailable: when the database cannot be reached.
        """
        self._move(items, settle=False)

    def settle(self, items: Sequence[tuple[str, int]]) -> None:
        """Turn reserved amounts into spent.

        Raises:
            UsageError: for an unknown budget or more than is reserved.
            StoreUnavailable: when the database cannot be reached.
        """
        self._move(items, settle=True)

    def _move(self, items: Sequence[tuple[str, int]], *, settle: bool) -> None:
        wanted = check_items(items)
        t = self.tables.budgets

        def run(conn: Connection) -> None:
            self._known(conn, wanted)
            for key in sorted(wanted):
                amount = wanted[key]
                values: dict[str, Any] = {"reserved": t.c.reserved - amount}
                if settle:
                    values["spent"] = t.c.spent + amount
                res = conn.execute(
                    sa.update(t).where(t.c.key == key, t.c.reserved >= amount).values(**values)
                )
                if res.rowcount != 1:
                    raise UsageError(
                        f"budget {key!r}: cannot {'settle' if settle else 'release'} {amount}, "
                        "more than is reserved"
                    )

        self._write(run)

    def budget(self, key: str) -> BudgetState | None:
        """The budget row, or ``None``.

        Raises:
            StoreUnavailable: when the database cannot be reached.
        """
        t = self.tables.budgets
        with self._tx() as conn:
            r = conn.execute(sa.select(t).where(t.c.key == key)).mappings().first()
        if r is None:
            return None
        return BudgetState(
            key=r["key"],
            limit=int(r["budget_limit"]),
            reserved=int(r["reserved"]),
            spent=int(r["spent"]),
        )
