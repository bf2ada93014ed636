"""WeChat Pay coupons (favor API) against the emulator: grants idempotent by
``out_request_no``, stock budgets under concurrency, per-user limits, ambiguous answers
resolved with the same request number, queries and ``COUPON.USE`` callbacks."""

from __future__ import annotations

import collections
import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from membermkt.core.membership import CouponGrant, CouponResult, CouponStatus, coupon_request_no
from membermkt.core.ports import CouponGateway
from membermkt.engine.coupons import COUPON_GRANTED, COUPON_USED, CouponService
from membermkt.errors import DecryptError, LedgerError, SignatureError
from membermkt.payouts.wechatpay.coupons import CouponConfig, WeChatPayCouponGateway
from membermkt.payouts.wechatpay.gateway import load_merchant_signer, load_platform_keys
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wechatpay import (
    Fault,
    TestCredentials,
    WeChatPayEmulator,
    make_test_credentials,
)

from .conftest import API_V3_KEY, APPID, MCH_ID

T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
STOCK = "9856000"


class Clock:
    def __init__(self) -> None:
        self.at = T0
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self.at

    def advance(self, delta: dt.timedelta) -> None:
        with self._lock:
            self.at += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emu(creds: TestCredentials, clock: Clock) -> WeChatPayEmulator:
    e = WeChatPayEmulator(creds, appid=APPID, api_v3_key=API_V3_KEY, clock=clock.now)
    e.create_stock(STOCK, max_coupons=10, max_coupons_per_user=1, coupon_amount_fen=2000)
    return e


def _gateway(
    emu: WeChatPayEmulator, creds: TestCredentials, pem: dict[str, str], clock: Clock
) -> WeChatPayCouponGateway:
    signer = load_merchant_signer(MCH_ID, pem["merchant_key"], cert_file=pem["merchant_cert"])
    keys = load_platform_keys(certificates=[creds.platform_cert])
    return WeChatPayCouponGateway(
        CouponConfig(appid=APPID),
        signer,
        keys,
        api_v3_key=API_V3_KEY,
        transport=emu.transport(),
        clock=clock,
    )


@pytest.fixture
def gateway(
    emu: WeChatPayEmulator, creds: TestCredentials, pem_files: dict[str, str], clock: Clock
) -> Iterator[WeChatPayCouponGateway]:
    with _gateway(emu, creds, pem_files, clock) as gw:
        yield gw


def grant(member: str, reason: str = "welcome", stock: str = STOCK) -> CouponGrant:
    return CouponGrant(
        stock_id=stock,
        request_no=coupon_request_no(stock, member, reason),
        member_id=member,
        openid=f"o-{member}",
        value_fen=2000,
    )


def test_gateway_is_a_coupon_gateway(gateway: WeChatPayCouponGateway) -> None:
    assert isinstance(gateway, CouponGateway)


def test_grant_is_idempotent_by_request_no(
    gateway: WeChatPayCouponGateway, emu: WeChatPayEmulator
) -> None:
    first = gateway.grant(grant("m1"))
    again = gateway.grant(grant("m1"))
    assert first.status is CouponStatus.GRANTED
    assert first.coupon_id
    assert again.status is CouponStatus.GRANTED
    assert again.coupon_id == first.coupon_id
    assert emu.stocks[STOCK].issued == 1
    assert [c.coupon_id for c in emu.coupons_of("o-m1")] == [first.coupon_id]


def test_per_user_limit_refuses_a_second_coupon(gateway: WeChatPayCouponGateway) -> None:
    assert gateway.grant(grant("m1", "a")).status is CouponStatus.GRANTED
    second = gateway.grant(grant("m1", "b"))
    assert second.status is CouponStatus.FAILED
    assert second.state == "RULE_LIMIT"


def test_request_no_reused_for_another_user_is_refused(gateway: WeChatPayCouponGateway) -> None:
    g = grant("m1")
    assert gateway.grant(g).status is CouponStatus.GRANTED
    other = CouponGrant(stock_id=STOCK, request_no=g.request_no, member_id="m2", openid="o-m2")
    answer = gateway.grant(other)
    assert answer.status is CouponStatus.FAILED
    assert answer.state == "INVALID_REQUEST"


def test_unknown_stock_and_wrong_creator_are_refused(
    gateway: WeChatPayCouponGateway, emu: WeChatPayEmulator
) -> None:
    missing = gateway.grant(grant("m1", stock="404"))
    assert missing.status is CouponStatus.FAILED
    assert missing.state == "RESOURCE_NOT_EXISTS"
    emu.create_stock("other", max_coupons=5, creator_mchid="1230000109")
    foreign = gateway.grant(grant("m1", stock="other"))
    assert foreign.status is CouponStatus.FAILED
    assert foreign.state == "NO_AUTH"


def test_unverifiable_answer_is_unknown(
    emu: WeChatPayEmulator, pem_files: dict[str, str], clock: Clock
) -> None:
    stranger = make_test_credentials(MCH_ID)
    signer = load_merchant_signer(
        MCH_ID, pem_files["merchant_key"], cert_file=pem_files["merchant_cert"]
    )
    keys = load_platform_keys(certificates=[stranger.platform_cert])
    with WeChatPayCouponGateway(
        CouponConfig(appid=APPID), signer, keys, transport=emu.transport(), clock=clock
    ) as gw:
        answer = gw.grant(grant("m1"))
    assert answer.status is CouponStatus.UNKNOWN
    assert answer.state == "BAD_SIGNATURE"
    assert emu.stocks[STOCK].issued == 1  # it did happen: only a resend can tell


def test_concurrent_grants_of_ten_left_issue_exactly_ten(
    gateway: WeChatPayCouponGateway, emu: WeChatPayEmulator, clock: Clock
) -> None:
    store = InMemoryStore()
    service = CouponService(store, gateway, clock)
    members = [f"m{i:02d}" for i in range(30)]
    # each member asked twice at once (a double click, a retried job): still one coupon
    jobs = members + members
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(
            pool.map(
                lambda m: service.grant(m, f"o-{m}", stock_id=STOCK, reason="launch"),
                jobs,
            )
        )
    granted = {o.member_id: o.coupon_id for o in outcomes if o.status is CouponStatus.GRANTED}
    assert len(granted) == 10
    assert emu.stocks[STOCK].issued == 10
    assert len(emu.coupons) == 10
    per_user = collections.Counter(c.openid for c in emu.coupons.values())
    assert max(per_user.values()) == 1
    assert {c.openid for c in emu.coupons.values()} == {f"o-{m}" for m in granted}
    refused = {o.member_id for o in outcomes if o.status is CouponStatus.FAILED}
    assert refused == set(members) - set(granted)
    assert len(store.intents(status="paid")) == 10
    events = [e for m in granted for e in store.events_for(m, types=[COUPON_GRANTED])]
    assert len(events) == 10


@pytest.mark.parametrize("fault", [Fault.SYSTEMERROR, Fault.TIMEOUT])
@pytest.mark.parametrize("seed", range(6))
def test_ambiguous_grant_resolved_with_the_same_request_no(
    creds: TestCredentials, pem_files: dict[str, str], clock: Clock, fault: Fault, seed: int
) -> None:
    emu = WeChatPayEmulator(creds, appid=APPID, api_v3_key=API_V3_KEY, clock=clock.now, seed=seed)
    emu.create_stock(STOCK, max_coupons=1)
    store = InMemoryStore()
    with _gateway(emu, creds, pem_files, clock) as gw:
        service = CouponService(store, gw, clock, max_attempts=1)
        emu.fail_next(fault)
        first = service.grant("m1", "o-m1", stock_id=STOCK, reason="launch")
        assert first.status is CouponStatus.UNKNOWN
        assert [i.status for i in store.intents()] == ["unknown"]
        # the only coupon of the stock may already be m1's: a new number would be refused
        # (NOT_ENOUGH) or, with budget left, give a second coupon; the same number settles it
        resolved = service.resolve([STOCK])
    assert [o.status for o in resolved] == [CouponStatus.GRANTED]
    assert resolved[0].request_no == first.request_no
    assert len(emu.coupons_of("o-m1")) == 1
    assert [i.status for i in store.intents()] == ["paid"]
    again = service.grant("m1", "o-m1", stock_id=STOCK, reason="launch")
    assert again.from_ledger
    assert again.coupon_id == resolved[0].coupon_id


def test_random_faults_never_give_two_coupons(
    creds: TestCredentials, pem_files: dict[str, str], clock: Clock
) -> None:
    emu = WeChatPayEmulator(
        creds, appid=APPID, api_v3_key=API_V3_KEY, clock=clock.now, fault_rate=0.5, seed=7
    )
    emu.create_stock(STOCK, max_coupons=15)
    store = InMemoryStore()
    members = [f"m{i}" for i in range(20)]
    with _gateway(emu, creds, pem_files, clock) as gw:
        service = CouponService(store, gw, clock, max_attempts=1)
        for m in members:
            service.grant(m, f"o-{m}", stock_id=STOCK, reason="x")
        for _ in range(40):
            if not service.resolve([STOCK]):
                break
    statuses = collections.Counter(i.status for i in store.intents())
    assert statuses["paid"] == 15
    assert statuses["failed"] == 5
    assert emu.stocks[STOCK].issued == 15
    assert max(collections.Counter(c.openid for c in emu.coupons.values()).values()) == 1


def test_query_use_callback_and_one_used_event(
    gateway: WeChatPayCouponGateway, emu: WeChatPayEmulator, clock: Clock
) -> None:
    emu.set_coupon_callback("https://example.com/favor")
    store = InMemoryStore()
    service = CouponService(store, gateway, clock)
    out = service.grant("m1", "o-m1", stock_id=STOCK, reason="durian")
    assert out.coupon_id is not None
    assert gateway.query("o-m1", out.coupon_id).status is CouponStatus.GRANTED
    clock.advance(dt.timedelta(hours=2))
    emu.use_coupon(out.coupon_id, transaction_id="4200000001")
    assert len(emu.callbacks) == 1
    emu.callbacks.append(emu.callbacks[0])  # the platform repeats callbacks
    seen: list[CouponResult] = []
    emu.deliver_callbacks(lambda h, b: seen.append(gateway.parse_use_notification(h, b)))
    assert len(seen) == 2
    assert all(r.status is CouponStatus.USED for r in seen)
    assert seen[0].transaction_id == "4200000001"
    assert seen[0].stock_id == STOCK
    for r in seen:
        service.record_use(r)
    used = store.events_for("m1", types=[COUPON_USED])
    assert len(used) == 1
    assert used[0].properties["transaction_id"] == "4200000001"
    assert used[0].at == T0 + dt.timedelta(hours=2)
    q = gateway.query("o-m1", out.coupon_id)
    assert q.status is CouponStatus.USED
    assert q.transaction_id == "4200000001"


def test_query_of_unknown_coupon_and_expiry(
    gateway: WeChatPayCouponGateway, emu: WeChatPayEmulator, clock: Clock
) -> None:
    assert gateway.query("o-m1", "nope").status is CouponStatus.NOT_FOUND
    out = gateway.grant(grant("m1"))
    assert out.coupon_id is not None
    clock.advance(dt.timedelta(days=31))
    assert gateway.query("o-m1", out.coupon_id).status is CouponStatus.EXPIRED


def test_forged_or_foreign_callbacks_are_refused(
    gateway: WeChatPayCouponGateway, emu: WeChatPayEmulator
) -> None:
    emu.set_coupon_callback("https://example.com/favor")
    out = gateway.grant(grant("m1"))
    assert out.coupon_id is not None
    emu.use_coupon(out.coupon_id, transaction_id="42")
    cb = emu.callbacks[0]
    with pytest.raises(SignatureError):
        gateway.parse_use_notification(cb.headers, cb.body.replace(b"COUPON", b"CUOPON"))
    transfer_like = dict(cb.headers)
    with pytest.raises((DecryptError, SignatureError)):
        gateway.parse_use_notification(transfer_like, b"{}")


def test_record_use_of_a_coupon_not_in_the_ledger_raises(
    gateway: WeChatPayCouponGateway, emu: WeChatPayEmulator, clock: Clock
) -> None:
    out = gateway.grant(grant("m9"))  # granted outside the service
    assert out.coupon_id is not None
    emu.use_coupon(out.coupon_id, transaction_id="1")
    used = gateway.query("o-m9", out.coupon_id)
    with pytest.raises(LedgerError):
        CouponService(InMemoryStore(), gateway, clock).record_use(used)


def test_coupon_channel_is_a_campaign_action(
    gateway: WeChatPayCouponGateway, emu: WeChatPayEmulator
) -> None:
    from membermkt.core.delivery import Delivery, SendOutcome
    from membermkt.core.ports import Channel
    from membermkt.engine.coupons import CouponChannel

    channel = CouponChannel(gateway, appid=APPID)
    assert isinstance(channel, Channel)
    batch = [
        Delivery(
            key=f"camp1:m{i}:A",
            campaign_id="camp1",
            member_id=f"m{i}",
            channel=channel.name,
            address=f"o-m{i}",
            variant="A",
            payload={"stock_id": STOCK, "value_fen": 2000},
        )
        for i in range(12)
    ]
    bad = Delivery(
        key="camp1:x",
        campaign_id="camp1",
        member_id="x",
        channel=channel.name,
        address="o-x",
        variant="A",
        payload={},
    )
    first = channel.send([*batch, bad])
    assert [r.outcome for r in first].count(SendOutcome.SENT) == 10
    assert [r.reason for r in first[10:12]] == ["NOT_ENOUGH", "NOT_ENOUGH"]
    assert first[12].outcome is SendOutcome.PERMANENT
    again = channel.send(batch[:10])  # a resent batch: the same coupons, none new
    assert [r.platform_id for r in again] == [r.platform_id for r in first[:10]]
    assert emu.stocks[STOCK].issued == 10


def test_coupons_as_an_offer_result(
    gateway: WeChatPayCouponGateway, emu: WeChatPayEmulator, clock: Clock
) -> None:
    from membermkt.core.analytics.offers import OfferResult
    from membermkt.engine.coupons import grant_offers

    offers = OfferResult(
        as_of=T0,
        offers=("durian-coupon", "membership"),
        recommendations=(("m1", "durian-coupon"), ("m2", "membership"), ("m3", "durian-coupon")),
    )
    service = CouponService(InMemoryStore(), gateway, clock)
    out = grant_offers(
        service, offers, {"durian-coupon": STOCK}, {"m1": "o-m1", "m2": "o-m2"}, reason="2026-12"
    )
    assert [(o.member_id, o.status) for o in out] == [("m1", CouponStatus.GRANTED)]
    assert grant_offers(
        service, offers, {"durian-coupon": STOCK}, {"m1": "o-m1"}, reason="2026-12"
    )[0].from_ledger


async def test_async_gateway_grants_idempotently_and_queries(
    emu: WeChatPayEmulator, creds: TestCredentials, pem_files: dict[str, str], clock: Clock
) -> None:
    from membermkt.payouts.wechatpay.coupons import AsyncWeChatPayCouponGateway

    signer = load_merchant_signer(
        MCH_ID, pem_files["merchant_key"], cert_file=pem_files["merchant_cert"]
    )
    keys = load_platform_keys(certificates=[creds.platform_cert])
    async with AsyncWeChatPayCouponGateway(
        CouponConfig(appid=APPID), signer, keys, transport=emu.transport(), clock=clock
    ) as gw:
        emu.fail_next(Fault.TIMEOUT)
        first = await gw.grant(grant("m1"))
        again = await gw.grant(grant("m1"))
        assert first.status is CouponStatus.UNKNOWN
        assert first.state == "TIMEOUT"
        assert again.status is CouponStatus.GRANTED
        assert again.coupon_id is not None
        assert (await gw.query("o-m1", again.coupon_id)).status is CouponStatus.GRANTED
    assert len(emu.coupons_of("o-m1")) == 1
