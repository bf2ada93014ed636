"""Fission (group) red packets on the red-packet service against the WeChat Pay emulator:
one payout per group under the budget/intent ledger, the platform's refusals (fewer than
3 shares, another amt_type), ambiguous answers resolved without a second packet, and the
shares opened by friends recorded as claims attributed to the sharer."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_redpackets_service import API_KEY, API_V3_KEY, APPID, MCH_ID, StepClock, v2_config

from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.core.redpackets import Claim, FixedAmount, RedPacketRule
from membermkt.core.redpackets.fission import (
    FISSION_CLAIM,
    group_redpack_product,
    referrals,
)
from membermkt.engine.redpackets import RedPacketService
from membermkt.engine.redpackets.fission import record_fission_claims
from membermkt.errors import UsageError
from membermkt.payouts.base import HttpRequest, HttpResponse, PayoutRequest
from membermkt.payouts.wechatpay.fission import FissionConfig
from membermkt.payouts.wechatpay.gateway import MerchantCertificate
from membermkt.payouts.wechatpay.gateway.fission import WeChatPayFissionGateway
from membermkt.payouts.wechatpay.signing import from_xml, to_xml, v2_sign
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wechatpay import (
    Fault,
    TestCredentials,
    WeChatPayEmulator,
    make_test_credentials,
)


def claimants(store: InMemoryStore) -> InMemoryStore:
    """The claiming members, holding the openids they are paid at (checked at claim time)."""
    store.upsert_members(
        Member(m, identities=[Identity.openid(APPID, o)])
        for m, o in (("seed", "oSeed"), ("a", "oA"), ("b", "oB"))
    )
    return store


SHARES = 5


@pytest.fixture(scope="module")
def creds() -> TestCredentials:
    return make_test_credentials(MCH_ID)


@pytest.fixture
def emulator(creds: TestCredentials) -> WeChatPayEmulator:
    return WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, api_v3_key=API_V3_KEY)


@pytest.fixture
def gateway(
    creds: TestCredentials, emulator: WeChatPayEmulator, tmp_path: Path
) -> Iterator[WeChatPayFissionGateway]:
    files = creds.write(tmp_path)
    cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
    with WeChatPayFissionGateway(
        v2_config(), cert, fission=FissionConfig(total_num=SHARES), transport=emulator.transport()
    ) as gw:
        yield gw


def group_rule(**kw: object) -> RedPacketRule:
    base: dict[str, object] = {
        "id": "fission",
        "mch_id": MCH_ID,
        "amount": FixedAmount(2_000),
        "total_budget_fen": 5 * 2_000,
        "product": group_redpack_product(SHARES),
        "per_phone_limit": None,
    }
    base.update(kw)
    return RedPacketRule(**base)  # type: ignore[arg-type]


def test_group_packet_pays_once_and_claims_are_attributed(
    emulator: WeChatPayEmulator, gateway: WeChatPayFissionGateway
) -> None:
    store = claimants(InMemoryStore())
    clock = StepClock()
    service = RedPacketService(
        store, gateway, clock=clock, rng=random.Random(1), sleep=lambda s: None
    )
    rule = group_rule()
    first = service.claim(rule, Claim(member_id="seed", address="oSeed"))
    assert first.paid
    assert first.amount_fen == 2_000
    again = service.claim(rule, Claim(member_id="seed", address="oSeed"))
    assert not again.paid
    assert emulator.paid_per_openid()["oSeed"] == 1
    assert first.bill_no is not None
    bill = first.bill_no
    amounts = [emulator.open_share(bill, o) for o in ("oSeed", "oFriend1", "oFriend2")]
    assert all(a >= 100 for a in amounts)
    rec = record_fission_claims(store, gateway, bill_no=bill, now=clock.now())
    assert rec.new == 2
    assert len(rec.new_members) == 2
    friend = store.resolve(Identity.openid(APPID, "oFriend1"))
    assert friend is not None
    assert [e.type for e in store.events_for(friend)] == [FISSION_CLAIM]
    assert referrals(rec.events) == {"seed": tuple(sorted(rec.new_members))}
    # polling again stores nothing twice
    assert record_fission_claims(store, gateway, bill_no=bill, now=clock.now()).new == 0
    # the rest of the shares: the split adds up to the total, no sixth share
    rest = [emulator.open_share(bill, o) for o in ("oFriend3", "oFriend4")]
    assert sum(amounts) + sum(rest) == 2_000
    with pytest.raises(UsageError, match="every share"):
        emulator.open_share(bill, "oLate")
    with pytest.raises(UsageError, match="already opened"):
        emulator.open_share(bill, "oFriend1")
    assert record_fission_claims(store, gateway, bill_no=bill, now=clock.now()).new == 2


def test_ambiguous_answer_is_resolved_without_a_second_group(
    emulator: WeChatPayEmulator, gateway: WeChatPayFissionGateway
) -> None:
    store = claimants(InMemoryStore())
    service = RedPacketService(
        store, gateway, clock=StepClock(), rng=random.Random(1), sleep=lambda s: None
    )
    emulator.fail_next(Fault.TIMEOUT)
    out = service.claim(group_rule(), Claim(member_id="seed", address="oSeed"))
    assert out.status in ("paid", "unknown", "pending")
    service.resume_open("fission")
    assert emulator.paid_per_openid()["oSeed"] == 1
    assert [i.status for i in store.intents()] == ["paid"]


def test_budget_covers_the_whole_group(
    emulator: WeChatPayEmulator, gateway: WeChatPayFissionGateway
) -> None:
    store = claimants(InMemoryStore())
    service = RedPacketService(
        store, gateway, clock=StepClock(), rng=random.Random(1), sleep=lambda s: None
    )
    rule = group_rule(total_budget_fen=3_000)  # one group of 2,000 fits, a second does not
    assert service.claim(rule, Claim(member_id="a", address="oA")).paid
    second = service.claim(rule, Claim(member_id="b", address="oB"))
    assert second.status == "denied"
    assert emulator.paid_per_openid()["oB"] == 0


def test_product_and_config_refuse_what_the_platform_refuses() -> None:
    with pytest.raises(UsageError, match=r"3\.\.20"):
        group_redpack_product(2)
    with pytest.raises(UsageError, match="total_num"):
        FissionConfig(total_num=2)
    with pytest.raises(UsageError, match="ALL_RAND"):
        FissionConfig(total_num=3, amt_type="ALL_SAME")
    with pytest.raises(UsageError):  # 5 shares of less than 1 CNY on average
        group_rule(amount=FixedAmount(400))


@pytest.mark.parametrize(
    ("override", "des"),
    [({"total_num": 2}, "total_num"), ({"amt_type": "ALL_SAME"}, "amt_type")],
)
def test_emulator_refuses_bad_group_requests(
    gateway: WeChatPayFissionGateway, override: dict[str, object], des: str
) -> None:
    cfg = v2_config()
    params: dict[str, object] = {
        "nonce_str": "n1",
        "mch_billno": f"{MCH_ID}202611230000000001",
        "mch_id": MCH_ID,
        "wxappid": APPID,
        "send_name": cfg.send_name,
        "re_openid": "oSeed",
        "total_amount": 1_000,
        "total_num": 3,
        "amt_type": "ALL_RAND",
        "wishing": cfg.wishing,
        "act_name": cfg.act_name,
        "remark": cfg.remark,
        **override,
    }
    params["sign"] = v2_sign(params, API_KEY)
    req = HttpRequest(
        method="POST",
        path="/mmpaymkttransfers/sendgroupredpack",
        headers={"Content-Type": "text/xml"},
        body=to_xml(params),
    )
    resp = gateway._send("x", req)
    assert isinstance(resp, HttpResponse)
    fields = from_xml(resp.body)
    assert fields["err_code"] == "PARAM_ERROR"
    assert des in fields["err_code_des"]


def test_pay_request_needs_a_total_covering_every_share(
    gateway: WeChatPayFissionGateway,
) -> None:
    with pytest.raises(UsageError, match="cover"):
        gateway.pay(PayoutRequest(bill_no=f"{MCH_ID}202611230000000009", openid="o", amount_fen=4))
