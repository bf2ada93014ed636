"""Claiming: resume an open payout, decide, reserve every budget row atomically, write the
intent (insert-if-absent by bill number), then pay."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import attrs

from membermkt.core.events import Event
from membermkt.core.ports import PayoutIntent
from membermkt.core.redpackets import (
    Claim,
    ClaimState,
    Deny,
    DenyReason,
    FixedAmount,
    Grant,
    RedPacketRule,
    UniformAmount,
    budget_keys,
    claim_event,
    decide,
    policy_denial,
)
from membermkt.engine.redpackets._base import OPEN_STATUSES, Flow
from membermkt.engine.redpackets.outcome import ClaimOutcome
from membermkt.engine.redpackets.paying import _PayFlows
from membermkt.errors import ConfigError, UsageError

_MAX_COLLISIONS = 5


_ROLE_REASON = {
    "total": DenyReason.BUDGET_EXHAUSTED,
    "day": DenyReason.DAILY_BUDGET_EXHAUSTED,
    "packets": DenyReason.PACKETS_EXHAUSTED,
    "member": DenyReason.MEMBER_LIMIT,
    "phone": DenyReason.PHONE_LIMIT,
    "order": DenyReason.ORDER_LIMIT,
    "user_day_count": DenyReason.PLATFORM_USER_LIMIT,
    "user_day_fen": DenyReason.PLATFORM_USER_LIMIT,
}


class _ClaimFlows(_PayFlows):
    """One claim end to end, and a repeated claim meeting an open payout."""

    def _claim_flow(self, rule: RedPacketRule, claim: Claim) -> Flow[ClaimOutcome]:
        if rule.product.name != self.product:
            raise ConfigError(
                f"rule {rule.id!r} pays through {rule.product.name}, the gateway is {self.product}"
            )
        # A keyed read of this member's intents (not a scan of the rule's): the claim path
        # stays O(own intents) however many packets the rule has paid.
        mine = self.store.member_intents(rule.id, claim.member_id)
        for intent in mine:
            if intent.status in OPEN_STATUSES:
                return (yield from self._continue_flow(intent))

        salt = 0
        while True:
            now = self.clock.now()
            state = self._state(rule, claim, now, mine, salt)
            member = self.store.get_member(claim.member_id)
            if member is None:
                # Consent and address ownership cannot be checked: never pay a stranger.
                return ClaimOutcome(status="denied", reason=DenyReason.UNKNOWN_MEMBER.value)
            # rule: pay.policy -- consent, and the address must be the member's own openid
            policy = policy_denial(member, claim.address)
            if policy is not None:
                return ClaimOutcome(status="denied", reason=policy.value)
            decision = decide(rule, member, claim, state, now, self.rng)
            if isinstance(decision, Deny):
                return ClaimOutcome(status="denied", reason=decision.reason.value)
            denied = self._reserve(rule, claim, decision, now)
            if denied is not None:
                return ClaimOutcome(status="denied", reason=denied.value)
            token = f"owner:{uuid.uuid4().hex}"
            intent = PayoutIntent(
                bill_no=decision.bill_no,
                rule_id=rule.id,
                member_id=claim.member_id,
                address=claim.address,
                amount_fen=decision.amount_fen,
                status="reserved",
                reservations=decision.items,
                detail=token,
                created_at=now,
                updated_at=now,
            )
            stored = self.store.record_intent(intent)
            if stored.detail == token:
                break
            # Someone else owns this bill number: give our reservation back first.
            self.store.release(decision.items)
            if stored.rule_id == rule.id and stored.member_id == claim.member_id:
                # The same business key claimed concurrently: one payout, driven by its owner.
                return (yield from self._continue_flow(stored))
            salt += 1  # a hash collision with another key (v2's 10 digits): derive again
            if salt > _MAX_COLLISIONS:
                raise UsageError(f"rule {rule.id!r}: bill numbers keep colliding; check mch_id")

        events = [claim_event(rule, claim, decision, now)] if self.record_events else []
        return (yield from self._pay_flow(stored, first=True, events=events))

    def _state(
        self,
        rule: RedPacketRule,
        claim: Claim,
        now: dt.datetime,
        mine: Sequence[PayoutIntent],
        salt: int,
    ) -> ClaimState:
        # Only the rule-wide money row is read (amount strategies and the budget pre-check
        # need it); the other limits are enforced by the atomic reservation, and a refused
        # reservation is diagnosed afterwards. Fewer reads = fewer round trips per claim.
        keys = budget_keys(
            rule,
            as_of=now,
            member_id=claim.member_id,
            phone_digest=claim.phone_digest,
            order_id=claim.order_id,
            address=claim.address,
        )

        def used(role: str) -> int:
            key = keys.get(role)
            row = self.store.budget(key) if key is not None else None
            return row.reserved + row.spent if row is not None else 0

        events: list[Event] = []
        purchases: list[Event] = []
        owners: set[str] = set()
        if rule.eligibility is not None or rule.require_purchase:
            events = self.store.events_for(claim.member_id)
            purchases = [e for e in events if e.type == "purchase"]
        phone = claim.phone_identity
        if rule.require_purchase and phone is not None:
            owner = self.store.resolve(phone)
            if owner is not None:
                owners.add(owner)
                if owner != claim.member_id:
                    purchases.extend(self.store.events_for(owner, types=["purchase"]))
        if rule.max_packets is not None:
            granted_count = used("packets")
        elif isinstance(rule.amount, (FixedAmount, UniformAmount)):
            granted_count = 0  # these strategies never look at the count: skip the scan
        else:
            live = [i for i in self.store.intents(rule_id=rule.id) if i.status != "failed"]
            granted_count = len(live)
        return ClaimState(
            events=tuple(events),
            purchases=tuple(purchases),
            phone_owner_ids=frozenset(owners),
            member_claims=sum(1 for i in mine if i.status != "failed"),
            member_attempts=len(mine),
            granted_count=granted_count,
            granted_fen=used("total"),
            bill_salt=salt,
        )

    def _reserve(
        self, rule: RedPacketRule, claim: Claim, grant: Grant, now: dt.datetime
    ) -> DenyReason | None:
        for r in grant.reservations:
            self._ensure(r.key, r.limit)
        self._ensure(f"rp:final:{grant.bill_no}", 1)
        if self.store.reserve(grant.items):
            return None
        roles = {
            v: k
            for k, v in budget_keys(
                rule,
                as_of=now,
                member_id=claim.member_id,
                phone_digest=claim.phone_digest,
                order_id=grant.order_id,
                address=claim.address,
            ).items()
        }
        for r in grant.reservations:
            row = self.store.budget(r.key)
            if row is not None and row.remaining < r.amount:
                return _ROLE_REASON.get(roles.get(r.key, "total"), DenyReason.BUDGET_EXHAUSTED)
        return DenyReason.BUDGET_EXHAUSTED  # a concurrent release raced the diagnosis

    def _continue_flow(self, intent: PayoutIntent) -> Flow[ClaimOutcome]:
        """A repeated claim meets an open payout: drive it only when its worker looks gone
        (no update for ``stale_after``); otherwise report it in progress and leave it to its
        owner, so two workers never settle or release the same reservation."""
        touched = intent.updated_at or intent.created_at
        if touched is None or self.clock.now() - touched >= self.stale_after:
            outcome = yield from self._resume_flow(intent)
            return attrs.evolve(outcome, resumed=True)
        return ClaimOutcome(
            status="pending",
            reason="in_progress",
            bill_no=intent.bill_no,
            amount_fen=intent.amount_fen,
            resumed=True,
        )
