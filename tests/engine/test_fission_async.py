"""The async fission red-packet gateway on the async red-packet service, against the WeChat
Pay emulator: the same ledger guarantees as the sync one — one group packet per member under
the budget/intent ledger, an ambiguous answer resolved by query without a second packet, the
budget covering the whole group — and the shares recorded as claims attributed to the
sharer (idempotent polls)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_fission import SHARES, claimants, group_rule
from test_redpackets_service import APPID, StepClock, v2_config

from membermkt.core.identity import Identity
from membermkt.core.redpackets import Claim
from membermkt.core.redpackets.fission import FISSION_CLAIM, referrals
from membermkt.engine.redpackets import AsyncRedPacketService
from membermkt.engine.redpackets.fission import arecord_fission_claims
from membermkt.errors import ConfigError, UsageError
from membermkt.payouts.base import PayoutRequest, PayoutStatus
from membermkt.payouts.wechatpay.fission import FissionConfig
from membermkt.payouts.wechatpay.gateway import MerchantCertificate
from membermkt.payouts.wechatpay.gateway.fission import (
    AsyncWeChatPayFissionGateway,
    WeChatPayFissionGateway,
)
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wechatpay import Fault, TestCredentials, WeChatPayEmulator

pytest_plugins = ["test_fission"]  # the creds and emulator fixtures


async def _noop(seconds: float) -> None:
    return None


@pytest.fixture
async def agateway(
    creds: TestCredentials, emulator: WeChatPayEmulator, tmp_path: Path
) -> AsyncIterator[AsyncWeChatPayFissionGateway]:
    files = creds.write(tmp_path)
    cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
    async with AsyncWeChatPayFissionGateway(
        v2_config(), cert, fission=FissionConfig(total_num=SHARES), transport=emulator.transport()
    ) as gw:
        yield gw


def service(store: InMemoryStore, gw: AsyncWeChatPayFissionGateway) -> AsyncRedPacketService:
    return AsyncRedPacketService(store, gw, clock=StepClock(), rng=random.Random(1), sleep=_noop)


async def test_async_group_packet_pays_once_and_claims_are_attributed(
    emulator: WeChatPayEmulator, agateway: AsyncWeChatPayFissionGateway
) -> None:
    store = claimants(InMemoryStore())
    svc = service(store, agateway)
    rule = group_rule()
    first = await svc.claim(rule, Claim(member_id="seed", address="oSeed"))
    assert first.paid
    assert first.amount_fen == 2_000
    again = await svc.claim(rule, Claim(member_id="seed", address="oSeed"))
    assert not again.paid
    assert emulator.paid_per_openid()["oSeed"] == 1
    assert first.bill_no is not None
    bill = first.bill_no
    for o in ("oSeed", "oFriend1", "oFriend2"):
        emulator.open_share(bill, o)
    now = StepClock().now()
    rec = await arecord_fission_claims(store, agateway, bill_no=bill, now=now)
    assert rec.new == 2
    friend = store.resolve(Identity.openid(APPID, "oFriend1"))
    assert friend is not None
    assert [e.type for e in store.events_for(friend)] == [FISSION_CLAIM]
    assert referrals(rec.events) == {"seed": tuple(sorted(rec.new_members))}
    assert (await arecord_fission_claims(store, agateway, bill_no=bill, now=now)).new == 0
    with pytest.raises(UsageError, match="no payout intent"):
        await arecord_fission_claims(store, agateway, bill_no="nope", now=now)


async def test_async_ambiguous_answer_is_resolved_without_a_second_group(
    emulator: WeChatPayEmulator, agateway: AsyncWeChatPayFissionGateway
) -> None:
    store = claimants(InMemoryStore())
    svc = service(store, agateway)
    emulator.fail_next(Fault.TIMEOUT)
    out = await svc.claim(group_rule(), Claim(member_id="seed", address="oSeed"))
    assert out.status in ("paid", "unknown", "pending")
    await svc.resume_open("fission")
    assert emulator.paid_per_openid()["oSeed"] == 1
    assert [i.status for i in store.intents()] == ["paid"]


async def test_async_systemerror_retries_the_same_bill(
    emulator: WeChatPayEmulator, agateway: AsyncWeChatPayFissionGateway
) -> None:
    """SYSTEMERROR: outcome unknown, the same bill number is sent again — one packet."""
    bill = "1900000109202611230000000042"
    emulator.fail_next(Fault.SYSTEMERROR)
    req = PayoutRequest(bill_no=bill, openid="oSeed", amount_fen=1_000)
    assert (await agateway.pay(req)).status is PayoutStatus.UNKNOWN
    assert (await agateway.pay(req)).status is PayoutStatus.SUCCESS
    assert (await agateway.query(bill)).status is PayoutStatus.SUCCESS
    assert emulator.paid_per_openid()["oSeed"] == 1


async def test_async_budget_covers_the_whole_group(
    emulator: WeChatPayEmulator, agateway: AsyncWeChatPayFissionGateway
) -> None:
    store = claimants(InMemoryStore())
    svc = service(store, agateway)
    rule = group_rule(total_budget_fen=3_000)
    assert (await svc.claim(rule, Claim(member_id="a", address="oA"))).paid
    assert (await svc.claim(rule, Claim(member_id="b", address="oB"))).status == "denied"
    assert emulator.paid_per_openid()["oB"] == 0


def test_services_refuse_the_wrong_twin(
    creds: TestCredentials, emulator: WeChatPayEmulator, tmp_path: Path
) -> None:
    files = creds.write(tmp_path)
    cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
    sync_gw = WeChatPayFissionGateway(v2_config(), cert, fission=FissionConfig(total_num=3))
    with pytest.raises(ConfigError):
        AsyncRedPacketService(InMemoryStore(), sync_gw, clock=StepClock())  # type: ignore[arg-type]
