"""Policy at claim and pay time (#12 item 5, #17): consent and address ownership."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_redpackets_service import (
    API_KEY,
    APPID,
    MCH_ID,
    StepClock,
    claim,
    rule,
    v2_gateway,
    with_members,
)

from membermkt.core.identity import Identity
from membermkt.core.members import Consent, Member
from membermkt.core.redpackets import REDPACKET_CHANNEL, Claim
from membermkt.engine.redpackets import RedPacketService
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wechatpay import (
    TestCredentials,
    WeChatPayEmulator,
    make_test_credentials,
)


@pytest.fixture(scope="module")
def creds() -> TestCredentials:
    return make_test_credentials(MCH_ID)


@pytest.fixture
def emulator(creds: TestCredentials) -> WeChatPayEmulator:
    return WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY)


@pytest.fixture
def store() -> InMemoryStore:
    return with_members(InMemoryStore())


@pytest.fixture
def service(
    store: InMemoryStore, emulator: WeChatPayEmulator, creds: TestCredentials, tmp_path: Path
) -> Iterator[RedPacketService]:
    with v2_gateway(creds, tmp_path, emulator.transport()) as gw:
        yield RedPacketService(store, gw, clock=StepClock(), sleep=lambda s: None)


def test_policy_is_checked_at_claim_time(
    service: RedPacketService, store: InMemoryStore, emulator: WeChatPayEmulator
) -> None:
    """Rule pay.policy: a member who refused marketing is never paid; a claim never pays an
    openid that is not the member's own; a claim for an unknown member pays nobody."""
    store.upsert_members(
        [
            Member(
                "m1",
                identities=[Identity.openid(APPID, "o-1")],
                consent=Consent(marketing=False),
            ),
            Member(
                "m2",
                identities=[Identity.openid(APPID, "o-2")],
                consent=Consent(opted_out_channels={REDPACKET_CHANNEL}),
            ),
        ]
    )
    r = rule()
    assert (service.claim(r, claim(1)).status, service.claim(r, claim(1)).reason) == (
        "denied",
        "no_consent",
    )
    assert service.claim(r, claim(2)).reason == "no_consent"
    stolen = Claim(member_id="m3", address="o-4", source="qr")  # m4's openid
    assert (service.claim(r, stolen).status, service.claim(r, stolen).reason) == (
        "denied",
        "address_not_member",
    )
    stranger = Claim(member_id="nobody", address="o-1", source="qr")
    assert service.claim(r, stranger).reason == "unknown_member"
    assert emulator.payments == []
    assert store.intents() == []
    assert service.claim(r, claim(3)).paid  # the rightful address pays


def test_policy_is_checked_again_before_a_parked_payout_is_paid(
    store: InMemoryStore, creds: TestCredentials, tmp_path: Path
) -> None:
    """A payout parked for a top-up is not paid after the member withdrew consent or lost the
    openid: the reservation is released once the platform confirms it has no such bill."""
    emulator = WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, balance_fen=0)
    with v2_gateway(creds, tmp_path, emulator.transport()) as gw:
        svc = RedPacketService(store, gw, clock=StepClock(), sleep=lambda s: None)
        r = rule()
        waiting = [svc.claim(r, claim(i)) for i in range(3)]
        assert {o.status for o in waiting} == {"waiting_funds"}
        store.upsert_members(
            [
                Member(
                    "m0",
                    identities=[Identity.openid(APPID, "o-0")],
                    consent=Consent(marketing=False),
                ),
                Member("m1", identities=[Identity.openid(APPID, "o-other")]),
            ]
        )
        emulator.top_up(10_000)
        outcomes = {o.bill_no: o for o in svc.resume_open(r.id)}
    by_member = {i.member_id: i for i in store.intents(rule_id=r.id)}
    assert outcomes[by_member["m0"].bill_no].reason == "no_consent"
    assert outcomes[by_member["m1"].bill_no].reason == "address_not_member"
    assert outcomes[by_member["m2"].bill_no].paid
    assert [p.openid for p in emulator.payments] == ["o-2"]
    total = store.budget(f"rp:{r.id}:total")
    assert total is not None
    assert (total.spent, total.reserved) == (500, 0)
