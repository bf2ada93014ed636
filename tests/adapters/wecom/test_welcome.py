"""The welcome fast path: once per code, inside the 20-second window, never retried blindly;
channel attribution from a contact way's state to a segment."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import random
import time

import pytest

from membermkt.channels.wecom import (
    WeCom,
    WeComCallbackHandler,
    WeComEndpoint,
    WelcomeConfig,
    WelcomeMessage,
    WelcomeSender,
    WelcomeStatus,
    encode_state,
)
from membermkt.channels.wecom.state import decode_state
from membermkt.channels.wecom.welcome import WelcomeJob, percentile
from membermkt.core.identity import Identity
from membermkt.segments import attr
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wechat import Push
from membermkt.testing.emulator.wecom import Corp, WeComEmulator
from membermkt.wire.retry import RetryPolicy

from .conftest import CORPID, SECRET, ManualClock

GREETING = WelcomeMessage(text='你好 {{ customer_name | "朋友" }}，我是 {{ staff }}')
STORE_GREETING = WelcomeMessage(
    text="欢迎光临 {{ channel }}！{{ staff }} 为您服务",
    attachments=({"msgtype": "link", "link": {"title": "新人礼", "url": "https://e.x/n"}},),
)
CONFIG = WelcomeConfig(default=GREETING, by_channel={"store-12": STORE_GREETING})


def endpoint(corp: Corp) -> WeComEndpoint:
    return WeComEndpoint(
        corpid=corp.corpid, token=corp.token, encoding_aes_key=corp.encoding_aes_key
    )


def setup(
    emu: WeComEmulator,
    corp: Corp,
    clock: ManualClock | None = None,
    *,
    background: bool = False,
    **kw: object,
) -> tuple[WeComCallbackHandler, WelcomeSender, InMemoryStore, WeCom]:
    store = InMemoryStore()
    client = WeCom(
        CORPID,
        SECRET,
        transport=emu.transport(),
        clock=clock,
        retry=RetryPolicy(attempts=3, jitter=0.0),
        sleep=lambda s: None,
    )
    sender = WelcomeSender(
        client,
        CONFIG,
        store=store,
        clock=clock or time.time,
        background=background,
        **kw,  # type: ignore[arg-type]
    )
    handler = WeComCallbackHandler(
        endpoint(corp), store=store, welcome=sender, clock=clock or time.time
    )
    return handler, sender, store, client


def test_thousand_adds_each_welcomed_once_within_the_window():
    """1,000 adds arriving concurrently, each callback pushed three times (the re-pushes
    shuffled, while welcomes are in flight): every customer gets exactly one welcome, all
    inside WeCom's 20 s (emulator clock = wall clock)."""
    emu = WeComEmulator(seed=11)
    corp = emu.add_corp(CORPID, SECRET)
    corp.add_staff("clerk1", "clerk2")
    handler, sender, _, _ = setup(emu, corp, background=True, workers=16)

    def arrive(i: int) -> Push:
        state = "store-12" if i % 3 == 0 else None
        push = corp.add_customer(f"clerk{i % 2 + 1}", f"wm{i:05d}", state=state)
        assert handler.handle(push.method, dict(push.query), push.body)[0] == 200
        return push

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        pushes = list(pool.map(arrive, range(1000)))
        repushes = [p for p in pushes for _ in range(2)]
        random.Random(5).shuffle(repushes)
        statuses = list(
            pool.map(lambda p: handler.handle(p.method, dict(p.query), p.body)[0], repushes)
        )
    handler.close()
    assert statuses == [200] * 2000
    assert len(corp.welcomes) == 1000
    assert max(corp.welcome_counts.values()) == 1
    assert sum(corp.welcome_refusals.values()) == 0
    assert sender.counts() == {"sent": 1000}
    assert all(w.latency <= 20 for w in corp.welcomes)
    store_texts = {w.text for w in corp.welcomes if w.attachments}
    assert store_texts == {
        "欢迎光临 store-12！clerk1 为您服务",
        "欢迎光临 store-12！clerk2 为您服务",
    }
    lat = sender.latencies
    emu_lat = [w.latency for w in corp.welcomes]
    print(
        f"\nwelcome latency, callback receipt -> send_welcome_msg call, {len(lat)} adds: "
        f"p50 {percentile(lat, 0.5) * 1000:.2f} ms, p99 {percentile(lat, 0.99) * 1000:.2f} ms, "
        f"max {max(lat) * 1000:.2f} ms; add event -> welcome accepted (emulator): "
        f"p50 {percentile(emu_lat, 0.5) * 1000:.2f} ms, "
        f"p99 {percentile(emu_lat, 0.99) * 1000:.2f} ms"
    )


def test_inline_mode_and_repush_after_success(emu, corp, clock):
    """Inline: the welcome is sent inside the callback request; a later re-push of the same
    event (WeCom's retry) sends nothing."""
    handler, sender, store, _ = setup(emu, corp, clock)
    p = corp.add_customer("clerk1", "wmA", state=encode_state("store-12", "c1"))
    handler.handle(p.method, dict(p.query), p.body)
    clock.advance(6)
    handler.handle(p.method, dict(p.query), p.body)
    assert emu.calls["/cgi-bin/externalcontact/send_welcome_msg"] == 1
    assert corp.welcome_counts["wmA"] == 1
    mid = store.resolve(Identity.external_userid(CORPID, "wmA"))
    assert mid is not None
    (rec,) = store.events_for(mid, types=["wecom_welcome"])
    assert rec.properties["status"] == "sent"
    assert rec.properties["source"] == "store-12"
    for i in range(300):  # one at a time: the path's own latency, without queueing
        p = corp.add_customer("clerk2", f"wmS{i}")
        handler.handle(p.method, dict(p.query), p.body)
    lat = sender.latencies[1:]
    assert len(lat) == 300
    print(
        f"\ninline welcome latency (sequential, {len(lat)} adds): "
        f"p50 {percentile(lat, 0.5) * 1000:.2f} ms, p99 {percentile(lat, 0.99) * 1000:.2f} ms"
    )


def test_41051_is_recorded_and_not_retried(emu, corp, clock):
    """The customer started chatting before the welcome: 41051 → rejected, one call only."""
    handler, sender, store, _ = setup(emu, corp, clock)
    p = corp.add_customer("clerk1", "wmB")
    corp.start_chat("clerk1", "wmB")
    handler.handle(p.method, dict(p.query), p.body)
    (out,) = sender.outcomes
    assert out.status is WelcomeStatus.REJECTED
    assert out.reason == "errcode:41051"
    assert emu.calls["/cgi-bin/externalcontact/send_welcome_msg"] == 1
    mid = store.resolve(Identity.external_userid(CORPID, "wmB"))
    assert mid is not None
    (rec,) = store.events_for(mid, types=["wecom_welcome"])
    assert (rec.properties["status"], rec.properties["reason"]) == ("rejected", "errcode:41051")


def test_missed_deadline_is_recorded_without_a_call(emu, corp, clock):
    """A callback processed 19 s after receipt (margin 2 s) is not welcomed: 'late'."""
    handler, sender, _, _ = setup(emu, corp, clock)
    p = corp.add_customer("clerk1", "wmC")
    handler.handle(p.method, dict(p.query), p.body, received_at=clock() - 19)
    (out,) = sender.outcomes
    assert out.status is WelcomeStatus.LATE
    assert out.reason is not None
    assert out.reason.startswith("deadline")
    assert emu.calls["/cgi-bin/externalcontact/send_welcome_msg"] == 0


def test_emulator_enforces_the_20_second_single_use_code(emu, corp, clock, client):
    """The emulator's window: after 20 s, or on a second use, the code answers 41051."""
    from membermkt.errors import PermanentDeliveryError

    first = corp.add_customer("clerk1", "wmD")
    code_d = _code(corp, "wmD")
    corp.add_customer("clerk1", "wmE")
    code_e = _code(corp, "wmE")
    client.send_welcome(code_d, text="hi")
    with pytest.raises(PermanentDeliveryError) as used:
        client.send_welcome(code_d, text="hi")
    assert used.value.errcode == 41051
    clock.advance(20.5)
    with pytest.raises(PermanentDeliveryError):
        client.send_welcome(code_e, text="hi")
    assert dict(corp.welcome_refusals) == {"used": 1, "expired": 1}
    assert first.method == "POST"


def test_lost_answer_is_unknown_never_resent(emu, corp, clock):
    """A timeout after WeCom took the call: 'unknown', not retried (the code is single-use)."""
    handler, sender, _, _ = setup(emu, corp, clock)
    p = corp.add_customer("clerk1", "wmF")
    emu.faults.next("timeout", api="/cgi-bin/externalcontact/send_welcome_msg")
    handler.handle(p.method, dict(p.query), p.body)
    (out,) = sender.outcomes
    assert out.status is WelcomeStatus.UNKNOWN
    assert emu.calls["/cgi-bin/externalcontact/send_welcome_msg"] == 1
    assert corp.welcome_counts["wmF"] == 1


def test_busy_is_retried_within_the_window(emu, corp, clock):
    """-1 (busy) means nothing happened: the client retries and the welcome goes out."""
    handler, sender, _, _ = setup(emu, corp, clock)
    p = corp.add_customer("clerk1", "wmG")
    emu.faults.next("busy", api="/cgi-bin/externalcontact/send_welcome_msg")
    handler.handle(p.method, dict(p.query), p.body)
    assert [o.status for o in sender.outcomes] == [WelcomeStatus.SENT]
    assert emu.calls["/cgi-bin/externalcontact/send_welcome_msg"] == 2


def test_no_code_no_welcome(emu, corp, clock):
    """With a console welcome configured WeCom pushes no WelcomeCode: nothing is sent."""
    handler, sender, _, _ = setup(emu, corp, clock)
    corp.console_welcome = True
    p = corp.add_customer("clerk1", "wmH")
    handler.handle(p.method, dict(p.query), p.body)
    assert list(sender.outcomes) == []
    assert emu.calls["/cgi-bin/externalcontact/send_welcome_msg"] == 0


def test_duplicate_job_is_refused_by_the_sender(emu, corp, clock):
    """The sender itself claims codes once (defence in depth behind the store's dedup)."""
    _, sender, _, _ = setup(emu, corp, clock)
    corp.add_customer("clerk1", "wmI")
    job = WelcomeJob(
        corpid=CORPID,
        staff="clerk1",
        external_userid="wmI",
        member_id="m1",
        welcome_code=_code(corp, "wmI"),
        state=decode_state("store-12"),
        received_at=clock(),
        received_perf=time.perf_counter(),
    )
    assert sender.send(job).status is WelcomeStatus.SENT
    assert sender.send(job).status is WelcomeStatus.DUPLICATE
    assert corp.welcome_counts["wmI"] == 1


def test_channel_code_attribution_end_to_end(emu, corp, clock):
    """contact way with a state → add event → the member's source is that channel → a
    segment on source selects exactly them."""
    handler, _, store, client = setup(emu, corp, clock)
    way = client.add_contact_way(users=["clerk2"], state=encode_state("store-12", "spring26"))
    other = client.add_contact_way(users=["clerk3"], state=encode_state("mall-3"))
    for push in (
        corp.scan(way.config_id, "wmJ1"),
        corp.scan(way.config_id, "wmJ2"),
        corp.scan(other.config_id, "wmK1"),
        corp.add_customer("clerk1", "wmL1"),
    ):
        assert handler.handle(push.method, dict(push.query), push.body)[0] == 200
    ids = {
        e: store.resolve(Identity.external_userid(CORPID, e))
        for e in ("wmJ1", "wmJ2", "wmK1", "wmL1")
    }
    as_of = dt.datetime.fromtimestamp(clock() + 60, dt.UTC)
    selected = set(store.select(attr("source") == "store-12", as_of))
    assert selected == {ids["wmJ1"], ids["wmJ2"]}
    assert set(store.select(attr("source") == "mall-3", as_of)) == {ids["wmK1"]}
    detail = client.get_contact("wmJ1")
    assert detail.follow_users[0].state == "store-12~spring26"
    ev = store.events_for(ids["wmJ1"] or "", types=["contact_added"])[0]
    assert ev.properties["campaign"] == "spring26"
    assert ev.properties["staff"] == "clerk2"


def _code(corp: Corp, external_userid: str) -> str:
    return next(c for c, w in corp.welcome_codes.items() if w.external_userid == external_userid)


def test_window_starts_at_the_event_and_name_lookup(emu, corp, clock):
    """A re-push arriving 19 s after the event (first push lost) is late even though it was
    just received; with fetch_name the welcome greets the customer by name."""
    store = InMemoryStore()
    client = WeCom(CORPID, SECRET, transport=emu.transport(), clock=clock)
    cfg = WelcomeConfig(default=GREETING, fetch_name=True)
    sender = WelcomeSender(client, cfg, store=store, clock=clock, background=False)
    h = WeComCallbackHandler(endpoint(corp), store=store, welcome=sender, clock=clock)
    late = corp.add_customer("clerk1", "wmLate")
    clock.advance(19)
    h.handle(late.method, dict(late.query), late.body)
    ok = corp.add_customer("clerk1", "wmAnn", name="Ann")
    h.handle(ok.method, dict(ok.query), ok.body)
    assert [o.status for o in sender.outcomes] == [WelcomeStatus.LATE, WelcomeStatus.SENT]
    (w,) = corp.welcomes
    assert w.text == "你好 Ann，我是 clerk1"
