"""The runner's hand-off policy without `for_campaign` (#12 item 5): given the Campaign, a
plain `CampaignRunner` re-checks that campaign's consent, quiet hours and caps; given only
an id it re-checks nothing and says so; mismatches are refused with a clear UsageError."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import attrs
import pytest

from membermkt import Consent, Identity, Member, MemberState
from membermkt.core.campaigns import Campaign, QuietHours, Variant
from membermkt.core.delivery import ChannelCapabilities, Delivery, SendOutcome, SendResult
from membermkt.engine.campaigns import CampaignRunner, prepare
from membermkt.engine.handoff import CampaignPolicy
from membermkt.errors import UsageError
from membermkt.segments import TRUE
from membermkt.stores import InMemoryStore

PLAN_AT = dt.datetime(2026, 3, 10, 13, 59, tzinfo=dt.UTC)  # 21:59 in Beijing
LATE = dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.UTC)  # 23:30 in Beijing


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at


class Recorder:
    """A channel that records what it was handed."""

    name = "sms.test"
    capabilities = ChannelCapabilities(
        max_batch_size=10, address_kind="openid", address_namespace="wxpolicy", idempotent=True
    )

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        self.sent += [d.member_id for d in batch]
        return [SendResult(key=d.key, outcome=SendOutcome.SENT) for d in batch]


async def no_sleep(seconds: float) -> None:
    """Waits are skipped."""


def _world(n: int = 6) -> tuple[InMemoryStore, Campaign, list[Member]]:
    store = InMemoryStore()
    people = [
        Member(
            f"m{i}",
            identities=[Identity("openid", f"o{i}", "wxpolicy")],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    ]
    store.upsert_members(people)
    c = Campaign(
        id="quiet",
        audience=TRUE,
        channel="sms.test",
        variants=(Variant(name="A", content={"text": "hi"}),),
        address_namespace="wxpolicy",
        quiet_hours=QuietHours(start=dt.time(22), end=dt.time(8)),
    )
    assert prepare(store, c, people, {}, PLAN_AT).total_deliveries == n
    # after prepare: m0 opts out of marketing
    store.upsert_members([attrs.evolve(people[0], consent=Consent(marketing=False))])
    return store, c, people


def test_given_the_campaign_a_plain_runner_rechecks_its_policy() -> None:
    """Rule: `CampaignRunner(store, channel).run(campaign)` re-checks the campaign's policy
    at hand-off (no `for_campaign`, no `policy=`): inside quiet hours nothing is sent, an
    opt-out after prepare is honoured."""
    store, c, _ = _world()
    channel = Recorder()
    result = CampaignRunner(store, channel, sleep=no_sleep, clock=Clock(LATE)).run(c)
    assert channel.sent == []
    assert result.skips == {"no_consent": 1, "quiet_hours": 5}
    assert result.policy_checked


def test_given_only_an_id_nothing_is_rechecked_and_the_run_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rule: a bare id without `policy=` cannot know the campaign's rules: the run logs a
    warning and reports `policy_checked=False` (the documented footgun, made visible)."""
    store, c, _ = _world()
    channel = Recorder()
    with caplog.at_level(logging.WARNING, logger="membermkt.engine.runner"):
        result = CampaignRunner(store, channel, sleep=no_sleep, clock=Clock(LATE)).run(c.id)
    assert not result.policy_checked
    assert "NOT re-checked" in caplog.text
    assert len(channel.sent) == 6


def test_no_handoff_checks_on_purpose_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Rule: `policy=NO_HANDOFF_CHECKS` is the explicit opt-out: nothing re-checked, no
    warning, and the result still says `policy_checked=False`."""
    from membermkt.engine.runner import NO_HANDOFF_CHECKS

    store, c, _ = _world()
    channel = Recorder()
    runner = CampaignRunner(
        store, channel, policy=NO_HANDOFF_CHECKS, sleep=no_sleep, clock=Clock(LATE)
    )
    with caplog.at_level(logging.WARNING, logger="membermkt.engine.runner"):
        result = runner.run(c)
    assert caplog.text == ""
    assert not result.policy_checked
    assert len(channel.sent) == 6


def test_policy_mismatches_are_refused() -> None:
    """Rule: a campaign of another channel, a policy bound to another campaign, or a ledger
    that cannot read members for the policy → UsageError naming what is wrong."""
    store, c, _ = _world()
    channel = Recorder()
    other = attrs.evolve(c, channel="wechat.mass")
    with pytest.raises(UsageError, match=r"is for channel 'wechat\.mass'"):
        CampaignRunner(store, channel).run(other)
    bound = CampaignRunner(store, channel, policy=CampaignPolicy(attrs.evolve(c, id="x"), store))
    with pytest.raises(UsageError, match="policy is campaign 'x'"):
        bound.run(c)

    class LedgerOnly:
        """Only the ledger half of the store (no members)."""

        def __init__(self, inner: InMemoryStore) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> object:
            if name in ("get_members", "get_member"):
                raise AttributeError(name)
            return getattr(self._inner, name)

    from membermkt.core.ports import BatchLedger

    ledger = LedgerOnly(store)
    assert isinstance(ledger, BatchLedger)
    with pytest.raises(UsageError, match="cannot read members"):
        CampaignRunner(ledger, channel).run(c)  # type: ignore[arg-type]
    # members= supplies them
    result = CampaignRunner(store, channel, members=store, sleep=no_sleep, clock=Clock(LATE)).run(c)
    assert result.skipped == 6
