"""The red-packet service on InMemoryStore against the WeChat Pay emulator: decisions,
budgets, ambiguous answers, callbacks, reconciliation, claim analysis, thread concurrency."""

from __future__ import annotations

import collections
import datetime as dt
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membermkt.core.events import Event
from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.core.ports import PayoutIntent
from membermkt.core.redpackets import (
    WECHATPAY_V3_TRANSFER,
    Claim,
    FixedAmount,
    RedPacketRule,
    UniformAmount,
    claim_report,
)
from membermkt.engine.redpackets import AsyncRedPacketService, ClaimOutcome, RedPacketService
from membermkt.errors import ConfigError
from membermkt.payouts.base import PayoutRequest, PayoutResult
from membermkt.payouts.wechatpay.gateway import (
    AsyncWeChatPayV3Gateway,
    MerchantCertificate,
    WeChatPayV2Gateway,
    WeChatPayV3Gateway,
    load_merchant_signer,
    load_platform_keys,
)
from membermkt.payouts.wechatpay.v2 import RedPacketConfig
from membermkt.payouts.wechatpay.v3 import TransferConfig
from membermkt.segments import did
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wechatpay import (
    Fault,
    TestCredentials,
    WeChatPayEmulator,
    make_test_credentials,
)

MCH_ID = "1900000109"
APPID = "wxd930ea5d5a258f4f"
API_KEY = "192006250b4c09247ec02edce69f6a2d"
API_V3_KEY = "0123456789ABCDEF0123456789ABCDEF"
T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)


class StepClock:
    """A test clock that moves one second per reading (deterministic, never the wall)."""

    def __init__(self, start: dt.datetime = T0, step: dt.timedelta = dt.timedelta(seconds=1)):
        self._now = start
        self._step = step
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            self._now += self._step
            return self._now

    def advance(self, delta: dt.timedelta) -> None:
        with self._lock:
            self._now += delta


def v2_config() -> RedPacketConfig:
    return RedPacketConfig(
        mch_id=MCH_ID,
        wxappid=APPID,
        api_key=API_KEY,
        send_name="榴莲小店",
        act_name="包裹红包",
        wishing="感谢购买",
        remark="扫码关注领红包",
    )


def v2_gateway(
    creds: TestCredentials, directory: Path, transport: object, **kw: object
) -> WeChatPayV2Gateway:
    files = creds.write(directory)
    cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
    return WeChatPayV2Gateway(v2_config(), cert, transport=transport, **kw)  # type: ignore[arg-type]


def v3_gateway(creds: TestCredentials, directory: Path, **kw: object) -> WeChatPayV3Gateway:
    files = creds.write(directory)
    signer = load_merchant_signer(MCH_ID, files["merchant_key"], cert_file=files["merchant_cert"])
    keys = load_platform_keys(certificates=[creds.platform_cert])
    config = TransferConfig(
        appid=APPID,
        transfer_scene_id="1000",
        transfer_remark="包裹红包",
        scene_report_infos=(("活动名称", "包裹红包"), ("奖励说明", "签收奖励")),
        notify_url="https://example.com/notify",
    )
    return WeChatPayV3Gateway(config, signer, keys, api_v3_key=API_V3_KEY, **kw)  # type: ignore[arg-type]


def rule(**kw: object) -> RedPacketRule:
    base: dict[str, object] = {
        "id": "parcel-qr",
        "mch_id": MCH_ID,
        "amount": FixedAmount(500),
        "total_budget_fen": 100 * 500,
        "per_phone_limit": None,
    }
    base.update(kw)
    return RedPacketRule(**base)  # type: ignore[arg-type]


def claim(i: int, **kw: object) -> Claim:
    return Claim(member_id=f"m{i}", address=f"o-{i}", source=kw.pop("source", "qr:parcel"), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def creds() -> TestCredentials:
    return make_test_credentials(MCH_ID)


@pytest.fixture
def emulator(creds: TestCredentials) -> WeChatPayEmulator:
    return WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, api_v3_key=API_V3_KEY)


def with_members(store: InMemoryStore, n: int = 500) -> InMemoryStore:
    """Members m0..m{n-1}, each holding the openid o-{i} the claims pay to."""
    store.upsert_members(
        Member(f"m{i}", identities=[Identity.openid(APPID, f"o-{i}")]) for i in range(n)
    )
    return store


@pytest.fixture
def store() -> InMemoryStore:
    return with_members(InMemoryStore())


@pytest.fixture
def service(
    store: InMemoryStore, emulator: WeChatPayEmulator, creds: TestCredentials, tmp_path: Path
) -> Iterator[RedPacketService]:
    with v2_gateway(creds, tmp_path, emulator.transport()) as gw:
        yield RedPacketService(
            store, gw, clock=StepClock(), rng=random.Random(7), sleep=lambda s: None
        )


def test_claim_pays_settles_and_records(
    service: RedPacketService, store: InMemoryStore, emulator: WeChatPayEmulator
) -> None:
    r = rule()
    out = service.claim(r, claim(1))
    assert out.paid
    assert out.amount_fen == 500
    assert out.bill_no is not None
    assert out.bill_no.startswith(MCH_ID)
    total = store.budget("rp:parcel-qr:total")
    assert total is not None
    assert (total.spent, total.reserved) == (500, 0)
    (intent,) = store.intents(rule_id="parcel-qr")
    assert intent.status == "paid"
    types = sorted(e.type for e in store.events_for("m1"))
    assert types == ["redpacket_claim", "redpacket_paid"]
    assert emulator.paid_per_openid() == {"o-1": 1}
    again = service.claim(r, claim(1))
    assert (again.status, again.reason) == ("denied", "member_limit")
    assert len(emulator.payments) == 1


def test_budget_caps_packets(service: RedPacketService, emulator: WeChatPayEmulator) -> None:
    r = rule(total_budget_fen=3 * 500)
    outcomes = [service.claim(r, claim(i)) for i in range(5)]
    assert [o.status for o in outcomes] == ["paid"] * 3 + ["denied"] * 2
    assert {o.reason for o in outcomes[3:]} == {"budget_exhausted"}
    assert emulator.total_paid_fen == 1500


def test_verified_purchase_by_phone_and_order(
    service: RedPacketService, store: InMemoryStore, emulator: WeChatPayEmulator
) -> None:
    """The buyer's order sits on a phone-identified member; the claimant follows under an
    openid and types the phone number and order id."""
    store.upsert_members([Member("buyer", identities=[Identity.phone("13800138000")])])
    store.append_events(
        [
            Event(
                "buyer",
                "purchase",
                T0 - dt.timedelta(days=2),
                {"order_id": "A1", "amount_fen": 9900},
            )
        ]
    )
    r = rule(require_purchase=True, per_phone_limit=1)

    def typed(i: int, phone: str | None, order: str | None) -> Claim:
        return Claim.with_phone(member_id=f"m{i}", address=f"o-{i}", phone=phone, order_id=order)

    assert service.claim(r, typed(1, None, None)).reason == "no_proof"
    assert service.claim(r, typed(1, "13900000000", None)).reason == "no_purchase"
    assert service.claim(r, typed(1, "13800138000", "B2")).reason == "no_purchase"
    assert service.claim(r, typed(1, "138-0013-8000", "A1")).paid
    assert service.claim(r, typed(2, "13800138000", None)).reason in {"phone_limit", "order_limit"}
    assert len(emulator.payments) == 1
    # the claim event carries the verified order, never the phone number
    (ev,) = [e for e in store.events_for("m1") if e.type == "redpacket_claim"]
    assert ev.properties["order_id"] == "A1"
    assert "13800138000" not in repr(ev)


def test_eligibility_segment(service: RedPacketService, store: InMemoryStore) -> None:
    store.append_events([Event("m1", "purchase", T0 - dt.timedelta(days=1), {"amount_fen": 100})])
    r = rule(eligibility=did("purchase", at_least=1))
    assert service.claim(r, claim(1)).paid
    assert service.claim(r, claim(2)).reason == "not_eligible"


@pytest.mark.parametrize("fault", list(Fault))
def test_ambiguous_answer_pays_once_with_the_same_bill(
    service: RedPacketService, emulator: WeChatPayEmulator, fault: Fault
) -> None:
    emulator.fail_next(fault)
    out = service.claim(rule(), claim(1))
    assert out.paid
    assert [p.bill_no for p in emulator.payments] == [out.bill_no]


def test_unknown_stays_reserved_then_resume_pays_once(
    service: RedPacketService, store: InMemoryStore, emulator: WeChatPayEmulator
) -> None:
    emulator.fail_next(Fault.SYSTEMERROR, times=3 * 2)
    out = service.claim(rule(), claim(1))
    assert out.status == "unknown"
    total = store.budget("rp:parcel-qr:total")
    assert total is not None
    assert total.reserved == 500
    # the member presses "claim" again right away: the open payout is not touched
    assert service.claim(rule(), claim(1)).reason == "in_progress"
    assert out.bill_no is not None
    done = service.resume(out.bill_no)
    assert done.paid
    assert len(emulator.payments) == 1
    total = store.budget("rp:parcel-qr:total")
    assert total is not None
    assert (total.reserved, total.spent) == (0, 500)


def test_stale_open_payout_is_taken_over_by_a_repeated_claim(
    store: InMemoryStore, emulator: WeChatPayEmulator, creds: TestCredentials, tmp_path: Path
) -> None:
    clock = StepClock()
    with v2_gateway(creds, tmp_path, emulator.transport()) as gw:
        svc = RedPacketService(store, gw, clock=clock, sleep=lambda s: None, max_attempts=1)
        emulator.fail_next(Fault.TIMEOUT, times=2)
        assert svc.claim(rule(), claim(1)).status == "unknown"
        clock.advance(dt.timedelta(minutes=5))
        again = svc.claim(rule(), claim(1))
    assert again.paid
    assert again.resumed
    assert len(emulator.payments) == 1


def test_definitive_failure_releases_and_a_new_claim_gets_a_new_bill(
    store: InMemoryStore, emulator: WeChatPayEmulator, creds: TestCredentials, tmp_path: Path
) -> None:
    files = creds.write(tmp_path)
    cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
    bad = attrs.evolve(v2_config(), api_key="0" * 32)
    with WeChatPayV2Gateway(bad, cert, transport=emulator.transport()) as gw:
        svc = RedPacketService(store, gw, clock=StepClock(), sleep=lambda s: None)
        failed = svc.claim(rule(), claim(1))
    assert (failed.status, failed.reason) == ("failed", "SIGN_ERROR")
    total = store.budget("rp:parcel-qr:total")
    assert total is not None
    assert (total.reserved, total.spent) == (0, 0)
    with WeChatPayV2Gateway(v2_config(), cert, transport=emulator.transport()) as gw:
        svc = RedPacketService(store, gw, clock=StepClock(), sleep=lambda s: None)
        ok = svc.claim(rule(), claim(1))
    assert ok.paid
    assert ok.bill_no != failed.bill_no
    assert len(emulator.payments) == 1


def test_rule_product_must_match_gateway(service: RedPacketService) -> None:
    with pytest.raises(ConfigError, match="pays through"):
        service.claim(rule(product=WECHATPAY_V3_TRANSFER), claim(1))


def test_v3_wait_for_user_then_callback(
    store: InMemoryStore, creds: TestCredentials, tmp_path: Path
) -> None:
    emulator = WeChatPayEmulator(creds, appid=APPID, api_v3_key=API_V3_KEY, auto_confirm=False)
    with v3_gateway(creds, tmp_path, transport=emulator.transport()) as gw:
        svc = RedPacketService(store, gw, clock=StepClock(), sleep=lambda s: None)
        r = rule(product=WECHATPAY_V3_TRANSFER, amount=UniformAmount(100, 300))
        out = svc.claim(r, claim(1))
        assert out.status == "pending"
        assert out.result is not None
        assert out.result.package_info
        assert out.bill_no is not None
        assert len(out.bill_no) == 32
        emulator.confirm(out.bill_no)
        results = []
        emulator.deliver_callbacks(lambda h, b: results.append(gw.parse_notification(h, b)))
        (result,) = results
        assert svc.apply_result(result).paid
        assert svc.apply_result(result).paid  # callbacks repeat: idempotent
    total = store.budget(f"rp:{r.id}:total")
    assert total is not None
    assert total.spent == out.amount_fen
    assert total.reserved == 0


def test_reconciliation_reports_mismatches(
    service: RedPacketService, store: InMemoryStore, emulator: WeChatPayEmulator
) -> None:
    r = rule()
    paid = [service.claim(r, claim(i)) for i in range(3)]
    emulator.fail_next(Fault.SYSTEMERROR, times=6)
    open_ = service.claim(r, claim(9))
    assert open_.status == "unknown"
    assert paid[0].bill_no is not None
    assert paid[1].bill_no is not None
    emulator.set_status(paid[0].bill_no, "REFUND")
    # a bill we gave up on that the platform did pay (e.g. an operator's manual fix)
    store.record_intent(
        PayoutIntent(
            bill_no=paid[1].bill_no[:-1] + "X",
            rule_id=r.id,
            member_id="ghost",
            address="o-ghost",
            amount_fen=500,
            status="failed",
        )
    )
    report = service.reconcile(r, platform_bills=[p.bill_no for p in emulator.payments] + ["999"])
    kinds = collections.Counter(m.kind for m in report.mismatches)
    assert kinds == {"refunded": 1, "orphan": 1}
    assert [status for _, status in report.resolved] == ["paid"]
    assert report.budget_used_fen == report.intents_fen == 4 * 500
    assert len(emulator.payments) == 4


def test_claim_report(service: RedPacketService, store: InMemoryStore) -> None:
    r = rule()
    service.claim(r, claim(1, source="qr:parcel"))
    service.claim(r, claim(2, source="menu"))
    store.append_events([Event("m1", "purchase", T0 + dt.timedelta(days=3), {"amount_fen": 1999})])
    events = [e for m in ("m1", "m2") for e in store.events_for(m)]
    report = claim_report(events, r.id, T0 + dt.timedelta(days=10))
    assert (report.claims, report.paid, report.paid_fen) == (2, 2, 1000)
    assert dict(report.by_source) == {"menu": (1, 1, 0), "qr:parcel": (1, 1, 1)}
    assert report.repurchase_rate == 0.5
    assert dict(report.by_hour) == {12: 2}  # 04:00 UTC is noon in Beijing


def run_concurrently(
    svc: RedPacketService, r: RedPacketRule, claims: list[Claim], workers: int = 64
) -> list[ClaimOutcome]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda c: svc.claim(r, c), claims))


@pytest.mark.parametrize("fault_rate", [0.0, 0.3])
def test_threads_never_overspend_or_double_pay(
    store: InMemoryStore, creds: TestCredentials, tmp_path: Path, fault_rate: float
) -> None:
    """64 threads, 500 claims (450 members, 50 repeat claims), budget for 100 packets."""
    # 64 threads on the wall clock send far more than sendredpack's 30 requests/s: this test
    # is about concurrency safety, so the rate rule (tested in test_emulator_rules) is off.
    emulator = WeChatPayEmulator(
        creds, appid=APPID, api_key=API_KEY, fault_rate=fault_rate, seed=11, v2_rate_per_s=None
    )
    with v2_gateway(creds, tmp_path, emulator.transport()) as gw:
        clock = StepClock(step=dt.timedelta(milliseconds=1))
        svc = RedPacketService(store, gw, clock=clock, sleep=lambda s: None, max_attempts=8)
        claims = [claim(i % 450) for i in range(500)]
        random.Random(3).shuffle(claims)
        outcomes = run_concurrently(svc, rule(), claims)
        for _ in range(3):
            svc.resume_open("parcel-qr")
    total = store.budget("rp:parcel-qr:total")
    assert total is not None
    assert total.reserved + total.spent == 100 * 500
    assert emulator.total_paid_fen == total.spent == 100 * 500
    assert max(emulator.paid_per_openid().values()) == 1
    assert len({o.bill_no for o in outcomes if o.paid}) <= 100
    assert sum(o.status == "denied" for o in outcomes) >= 350
    emulator.fault_rate = 0.0
    assert svc.reconcile(rule()).ok


def test_reconcile_releases_a_crashed_intent_only_once_it_is_stale(
    store: InMemoryStore, emulator: WeChatPayEmulator, creds: TestCredentials, tmp_path: Path
) -> None:
    """A worker crashed after writing the intent and before paying: the platform has no bill.
    A fresh intent may still have its request on the way, so it is left alone; a stale one is
    released and the member may claim again."""
    clock = StepClock()
    r = rule()
    items = (("rp:parcel-qr:total", 500), ("rp:parcel-qr:member:m1", 1))
    for key, limit in (("rp:parcel-qr:total", r.total_budget_fen), ("rp:parcel-qr:member:m1", 1)):
        store.ensure_budget(key, limit=limit)
    assert store.reserve(items)
    store.record_intent(
        PayoutIntent(
            bill_no="1900000109202611230000000042",
            rule_id=r.id,
            member_id="m1",
            address="o-1",
            amount_fen=500,
            reservations=items,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
    )
    with v2_gateway(creds, tmp_path, emulator.transport()) as gw:
        svc = RedPacketService(store, gw, clock=clock, sleep=lambda s: None)
        fresh = svc.reconcile(r)
        assert [m.kind for m in fresh.mismatches] == ["unresolved"]
        clock.advance(dt.timedelta(minutes=5))
        stale = svc.reconcile(r)
        assert stale.resolved == (("1900000109202611230000000042", "failed"),)
        assert stale.ok
        assert svc.claim(r, claim(1)).paid
    total = store.budget("rp:parcel-qr:total")
    assert total is not None
    assert (total.reserved, total.spent) == (0, 500)
    assert len(emulator.payments) == 1


async def test_async_service_runs_the_same_flows(
    store: InMemoryStore, creds: TestCredentials, tmp_path: Path
) -> None:
    """The async service pays once through ambiguous answers and applies callbacks."""
    emulator = WeChatPayEmulator(creds, appid=APPID, api_v3_key=API_V3_KEY, fault_rate=0.4, seed=2)
    files = creds.write(tmp_path)
    signer = load_merchant_signer(MCH_ID, files["merchant_key"], cert_file=files["merchant_cert"])
    keys = load_platform_keys(certificates=[creds.platform_cert])
    config = TransferConfig(
        appid=APPID,
        transfer_scene_id="1000",
        transfer_remark="包裹红包",
        scene_report_infos=(("活动名称", "包裹红包"), ("奖励说明", "签收奖励")),
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    r = rule(product=WECHATPAY_V3_TRANSFER, amount=FixedAmount(300))
    async with AsyncWeChatPayV3Gateway(
        config, signer, keys, api_v3_key=API_V3_KEY, transport=emulator.transport()
    ) as gw:
        svc = AsyncRedPacketService(store, gw, clock=StepClock(), sleep=sleep, max_attempts=6)
        outcomes = [await svc.claim(r, claim(i)) for i in range(20)]
        for _ in range(3):
            await svc.resume_open(r.id)
        emulator.fault_rate = 0.0
        report = await svc.reconcile(r)
    assert report.ok
    assert len({o.bill_no for o in outcomes}) == 20
    assert max(emulator.paid_per_openid().values()) == 1
    assert emulator.total_paid_fen == 20 * 300
    total = store.budget(f"rp:{r.id}:total")
    assert total is not None
    assert (total.reserved, total.spent) == (0, 20 * 300)


def test_services_refuse_the_wrong_kind_of_gateway(
    store: InMemoryStore, creds: TestCredentials, tmp_path: Path
) -> None:
    emulator = WeChatPayEmulator(creds, appid=APPID)
    files = creds.write(tmp_path)
    signer = load_merchant_signer(MCH_ID, files["merchant_key"], cert_file=files["merchant_cert"])
    keys = load_platform_keys(certificates=[creds.platform_cert])
    config = TransferConfig(
        appid=APPID,
        transfer_scene_id="1000",
        transfer_remark="x",
        scene_report_infos=(("活动名称", "包裹红包"), ("奖励说明", "签收奖励")),
    )
    agw = AsyncWeChatPayV3Gateway(config, signer, keys, transport=emulator.transport())
    with pytest.raises(ConfigError, match="sync PayoutGateway"):
        RedPacketService(store, agw, clock=StepClock())  # type: ignore[arg-type]
    with (
        v2_gateway(creds, tmp_path, emulator.transport()) as gw,
        pytest.raises(ConfigError, match="async PayoutGateway"),
    ):
        AsyncRedPacketService(store, gw, clock=StepClock())  # type: ignore[arg-type]


def test_claims_are_a_segment(service: RedPacketService, store: InMemoryStore) -> None:
    """ "Claimed from the parcel QR code and bought again" selects members from the events."""
    r = rule()
    service.claim(r, claim(1, source="qr:parcel"))
    service.claim(r, claim(2, source="qr:parcel"))
    service.claim(r, claim(3, source="menu"))
    later = T0 + dt.timedelta(days=2)
    store.append_events([Event(m, "purchase", later, {"amount_fen": 1999}) for m in ("m1", "m3")])
    came_back = did("redpacket_claim", where={"rule": r.id, "source": "qr:parcel"}) & did(
        "purchase", within=dt.timedelta(days=30)
    )
    assert list(store.select(came_back, T0 + dt.timedelta(days=3))) == ["m1"]
    paid = did("redpacket_paid", where={"rule": r.id})
    assert store.count(paid, T0 + dt.timedelta(days=3)) == 3


class _Crash(Exception):
    """The worker process dies (raised through the service, like a kill)."""


class CrashingGateway:
    """Wraps a real gateway; dies before or after a platform call when told to."""

    def __init__(self, inner: WeChatPayV2Gateway, plan: list[str]) -> None:
        self.inner = inner
        self.product = inner.product
        self.plan = plan

    def _step(self) -> str:
        return self.plan.pop(0) if self.plan else "ok"

    def pay(self, request: PayoutRequest) -> PayoutResult:
        step = self._step()
        if step == "before":
            raise _Crash
        result = self.inner.pay(request)
        if step == "after":
            raise _Crash
        return result

    def query(self, bill_no: str) -> PayoutResult:
        return self.inner.query(bill_no)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(st.sampled_from(["ok", "ok", "before", "after"]), max_size=30),
    order=st.lists(st.integers(0, 7), min_size=5, max_size=25),
    seed=st.integers(0, 1000),
)
def test_crashes_faults_and_resumes_never_double_pay(
    creds: TestCredentials, tmp_path: Path, plan: list[str], order: list[int], seed: int
) -> None:
    """Random claims (with repeats), random platform faults, workers dying before or after
    the money call, then recovery: never two payments for one member, never more than the
    budget, and after recovery the budget equals what the platform paid."""
    store = InMemoryStore()
    emulator = WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, fault_rate=0.3, seed=seed)
    clock = StepClock()
    r = rule(total_budget_fen=4 * 500)
    with v2_gateway(creds, tmp_path, emulator.transport()) as inner:
        gw = CrashingGateway(inner, list(plan))
        svc = RedPacketService(store, gw, clock=clock, sleep=lambda s: None, max_attempts=2)
        for i in order:
            try:
                svc.claim(r, claim(i))
            except _Crash:
                clock.advance(dt.timedelta(minutes=3))  # a new worker starts later
        assert max(emulator.paid_per_openid().values(), default=0) <= 1
        assert emulator.total_paid_fen <= r.total_budget_fen
        emulator.fault_rate = 0.0
        recovery = RedPacketService(store, inner, clock=clock, sleep=lambda s: None)
        clock.advance(dt.timedelta(minutes=3))
        recovery.resume_open(r.id)
        report = recovery.reconcile(r)
    assert report.ok, report
    total = store.budget(f"rp:{r.id}:total")
    spent = total.spent if total is not None else 0
    assert spent == emulator.total_paid_fen
    assert max(emulator.paid_per_openid().values(), default=0) <= 1
