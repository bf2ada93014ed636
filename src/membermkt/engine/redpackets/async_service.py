"""The async driver: :class:`AsyncRedPacketService` over an
:class:`~membermkt.payouts.base.AsyncPayoutGateway`."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import cast

from membermkt.core.ports import Clock
from membermkt.core.redpackets import Claim, RedPacketRule
from membermkt.engine.redpackets._base import Flow, RedPacketStore, T
from membermkt.engine.redpackets.flows import _RedPacketFlows
from membermkt.engine.redpackets.outcome import ClaimOutcome
from membermkt.engine.redpackets.reconciliation import ReconciliationReport
from membermkt.errors import ConfigError
from membermkt.payouts.base import AsyncPayoutGateway, PayoutResult


class AsyncRedPacketService(_RedPacketFlows):
    """The async twin of :class:`RedPacketService`: the same flows, driven with an
    :class:`~membermkt.payouts.base.AsyncPayoutGateway` and ``asyncio.sleep``; every method
    is awaited. Store calls are the store's own (sync) calls, made from the event loop: they
    are short single-statement transactions, but run the service in a worker thread if your
    database is far away.

    Args:
        store, clock, rng, phone_key, max_attempts, retry_interval, record_events,
        stale_after: as for :class:`RedPacketService`.
        gateway: an async payout gateway (``AsyncWeChatPayV2Gateway`` /
            ``AsyncWeChatPayV3Gateway``).
        sleep: an async sleeping function (default ``asyncio.sleep``).

    Raises:
        ConfigError: when the gateway is not an async payout gateway.
        UsageError: for ``max_attempts < 1`` or a negative ``retry_interval``.
    """

    def __init__(
        self,
        store: RedPacketStore,
        gateway: AsyncPayoutGateway,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        phone_key: str = "",
        max_attempts: int = 3,
        retry_interval: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        record_events: bool = True,
        stale_after: dt.timedelta = dt.timedelta(minutes=2),
    ) -> None:
        if not isinstance(gateway, AsyncPayoutGateway) or not inspect.iscoroutinefunction(
            gateway.pay
        ):
            raise ConfigError(
                f"gateway must be an async PayoutGateway, got {gateway!r} "
                "(use RedPacketService with a sync gateway)"
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

    async def _run(self, flow: Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                kind, arg = step
                if kind == "pay":
                    step = flow.send(await self.gateway.pay(arg))
                elif kind == "query":
                    step = flow.send(await self.gateway.query(arg))
                else:
                    await self.sleep(arg)
                    step = flow.send(None)
        except StopIteration as stop:
            return cast(T, stop.value)

    async def claim(self, rule: RedPacketRule, claim: Claim) -> ClaimOutcome:
        """Handle one claim end to end (see :meth:`RedPacketService.claim`).

        Raises:
            ConfigError: when the rule pays through another product than the gateway.
            StoreError: when storage fails (nothing is paid without a written intent).
        """
        return await self._run(self._claim_flow(rule, claim))

    async def resume(self, bill_no: str) -> ClaimOutcome:
        """See :meth:`RedPacketService.resume`.

        Raises:
            UsageError: for an unknown bill number.
        """
        return await self._run(self._resume_flow(self._intent(bill_no)))

    async def resume_open(self, rule_id: str) -> list[ClaimOutcome]:
        """See :meth:`RedPacketService.resume_open`."""
        return await self._run(self._resume_open_flow(rule_id))

    async def apply_result(self, result: PayoutResult) -> ClaimOutcome:
        """See :meth:`RedPacketService.apply_result`.

        Raises:
            UsageError: for an unknown bill number.
        """
        return await self._run(self._apply_flow(result))

    async def reconcile(
        self,
        rule: RedPacketRule,
        *,
        resolve: bool = True,
        platform_bills: Iterable[str] | None = None,
    ) -> ReconciliationReport:
        """See :meth:`RedPacketService.reconcile`."""
        return await self._run(self._reconcile_flow(rule, resolve, platform_bills))
