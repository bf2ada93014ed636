"""The sync driver: :class:`RedPacketService` over a
:class:`~membermkt.payouts.base.PayoutGateway`."""

from __future__ import annotations

import datetime as dt
import inspect
import random
import time
from collections.abc import Callable, Iterable
from typing import cast

from membermkt.core.ports import Clock
from membermkt.core.redpackets import Claim, RedPacketRule
from membermkt.engine.redpackets._base import Flow, RedPacketStore, T
from membermkt.engine.redpackets.flows import _RedPacketFlows
from membermkt.engine.redpackets.outcome import ClaimOutcome
from membermkt.engine.redpackets.reconciliation import ReconciliationReport
from membermkt.errors import ConfigError
from membermkt.payouts.base import PayoutGateway, PayoutResult


class RedPacketService(_RedPacketFlows):
    """Claims → decisions → atomic reservations → payout intents → payments → records.

    Args:
        store: a :class:`RedPacketStore` (members, events, budgets, payout intents).
        gateway: the :class:`~membermkt.payouts.base.PayoutGateway` paying the rule's product.
        clock: where ``now`` comes from.
        rng: draws random amounts (seed it for reproducible runs).
        phone_key: the key used for phone digests (as in ``Identity.phone``).
        max_attempts: payment attempts per bill in one call (each ambiguous answer is
            followed by a query; only ``NOT_FOUND`` or another ambiguous answer leads to a
            retry with the same bill number).
        retry_interval: seconds to wait before retrying one bill (the v2 doc asks ≥ 1 s).
        sleep: the sleeping function (inject a no-op in tests).
        record_events: append ``redpacket_claim`` / ``redpacket_paid`` events to the store.
        stale_after: a repeated claim takes over an open payout only when it has not been
            updated for this long (its worker is presumed gone); :meth:`resume`,
            :meth:`resume_open` and :meth:`reconcile` are for when no worker is running.

    Raises:
        ConfigError: when the gateway is not a sync payout gateway.
        UsageError: for ``max_attempts < 1`` or a negative ``retry_interval``.
    """

    def __init__(
        self,
        store: RedPacketStore,
        gateway: PayoutGateway,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        phone_key: str = "",
        max_attempts: int = 3,
        retry_interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        record_events: bool = True,
        stale_after: dt.timedelta = dt.timedelta(minutes=2),
    ) -> None:
        if not isinstance(gateway, PayoutGateway) or inspect.iscoroutinefunction(gateway.pay):
            raise ConfigError(
                f"gateway must be a sync PayoutGateway, got {gateway!r} "
                "(use AsyncRedPacketService with an async gateway)"
            )
        super().__init__(
            store,
            product=gateway.product,
            clock=clock,
            rng=rng,
            phone_key=phone_key,
            max_attempts=max_attempts,
            retry_interval=retry_interval,
            record_events=record_events,
            stale_after=stale_after,
        )
        self.gateway = gateway
        self.sleep = sleep

    def _run(self, flow: Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                kind, arg = step
                if kind == "pay":
                    step = flow.send(self.gateway.pay(arg))
                elif kind == "query":
                    step = flow.send(self.gateway.query(arg))
                else:
                    self.sleep(arg)
                    step = flow.send(None)
        except StopIteration as stop:
            return cast(T, stop.value)

    def claim(self, rule: RedPacketRule, claim: Claim) -> ClaimOutcome:
        """Handle one claim end to end (see the module docstring).

        Raises:
            ConfigError: when the rule pays through another product than the gateway.
            StoreError: when storage fails (nothing is paid without a written intent).
        """
        return self._run(self._claim_flow(rule, claim))

    def resume(self, bill_no: str) -> ClaimOutcome:
        """Drive an unfinished payout (reserved / paying / unknown) towards an end: query,
        then pay again with the same bill number only if the platform has no such bill.

        Raises:
            UsageError: for an unknown bill number.
        """
        return self._run(self._resume_flow(self._intent(bill_no)))

    def resume_open(self, rule_id: str) -> list[ClaimOutcome]:
        """:meth:`resume` every open intent of a rule (after a crash or a timeout storm)."""
        return self._run(self._resume_open_flow(rule_id))

    def apply_result(self, result: PayoutResult) -> ClaimOutcome:
        """Apply a platform notification (e.g. a v3 callback parsed by the gateway) to its
        intent. Idempotent: a final intent is left as it is.

        Raises:
            UsageError: for an unknown bill number.
        """
        return self._run(self._apply_flow(result))

    def reconcile(
        self,
        rule: RedPacketRule,
        *,
        resolve: bool = True,
        platform_bills: Iterable[str] | None = None,
    ) -> ReconciliationReport:
        """Compare the rule's intents with the platform's records.

        Every intent is queried. Open intents are finished when the platform has a definite
        answer (``resolve=True``; ``NOT_FOUND`` on an open intent not updated for
        ``stale_after`` releases its reservation: the payment never arrived and the member
        may claim again). Final intents that disagree with the platform are reported, never
        silently changed. ``platform_bills`` (e.g. from a downloaded statement) adds an
        orphan check.
        """
        return self._run(self._reconcile_flow(rule, resolve, platform_bills))
