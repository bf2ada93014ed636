"""The callback handler against InMemoryStore, with pushes made by the emulator; the
ASGI and WSGI glue through Starlette/FastAPI and Flask."""

from __future__ import annotations

import threading

import httpx
import pytest

from membermkt.channels.wechat import CallbackHandler, Endpoint, Incoming, parse_message
from membermkt.channels.wechat.crypto import MessageCrypto
from membermkt.contrib.asgi import asgi_app
from membermkt.contrib.wsgi import flask_view, wsgi_app
from membermkt.core.identity import Identity, member_id_for
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wechat import Account, WeChatEmulator

APPID = "wxhandler0000001"
NOW = lambda: 1_700_000_000.0  # noqa: E731  (the emulator clock)


@pytest.fixture
def emu():
    return WeChatEmulator(seed=3, clock=lambda: 1_700_000_000.0)


@pytest.fixture
def acct(emu) -> Account:
    return emu.add_account(APPID, "s")


@pytest.fixture
def store():
    return InMemoryStore()


def endpoint(acct: Account, **kw) -> Endpoint:
    return Endpoint(
        appid=acct.appid, token=acct.token, encoding_aes_key=acct.encoding_aes_key, **kw
    )


def post(handler: CallbackHandler, push, **kw):
    return handler.handle(push.method, dict(push.query), push.body, **kw)


def test_follow_through_qr_creates_member_with_source(acct, store):
    """A follow via QR scene creates the member (deterministic id) and records the scene
    (mapped to a channel) as the acquisition source."""
    handler = CallbackHandler(
        endpoint(acct, scene_channels={"store42": "offline:store42"}), store=store, clock=NOW
    )
    status, _, body = post(handler, acct.follow("oNEW", scene="store42"))
    assert (status, body) == (200, b"success")
    mid = member_id_for(Identity.openid(APPID, "oNEW"))
    assert store.resolve(Identity.openid(APPID, "oNEW")) == mid
    [event] = store.events_for(mid)
    assert event.type == "follow"
    assert dict(event.properties) == {
        "appid": APPID,
        "scene": "store42",
        "source": "offline:store42",
    }
    assert event.key == f"wx:{APPID}:oNEW:1700000000:subscribe"
    member = store.get_member(mid)
    assert member.state.subscribed is True
    assert member.state.source == "offline:store42"


def test_behaviour_trail(acct, store):
    """Clicks, views, scans, messages and unfollows become the member's events."""
    # The pushes are stamped at t=1..7 (1970): this test is about the trail, not freshness.
    handler = CallbackHandler(endpoint(acct), store=store, clock=NOW, freshness=None)
    acct.add_followers(["o1"])
    pushes = [
        acct.event_push("o1", "CLICK", EventKey="MENU_SALE", at=1),
        acct.event_push("o1", "VIEW", EventKey="https://shop.example/x", at=2),
        acct.event_push("o1", "SCAN", EventKey="777", Ticket="T", at=3),
        acct.event_push("o1", "LOCATION", Latitude="23.1", Longitude="113.2", Precision="5", at=4),
        acct.text_push("o1", "有优惠吗", msg_id=99, at=5),
        acct.event_push("o1", "unsubscribe", at=6),
        acct.event_push("o1", "TEMPLATESENDJOBFINISH", MsgID="5", Status="success", at=7),
    ]
    for p in pushes:
        assert post(handler, p)[0] == 200
    mid = store.resolve(Identity.openid(APPID, "o1"))
    got = [(e.type, dict(e.properties)) for e in store.events_for(mid)]
    assert got == [
        ("menu_click", {"key": "MENU_SALE", "appid": APPID}),
        ("view", {"url": "https://shop.example/x", "appid": APPID}),
        ("scan", {"appid": APPID, "scene": "777", "source": "777"}),
        ("location", {"latitude": 23.1, "longitude": 113.2, "precision": 5.0, "appid": APPID}),
        ("message", {"msgtype": "text", "appid": APPID}),
        ("unfollow", {"appid": APPID}),
    ]
    assert store.events_for(mid)[4].key == f"wx:{APPID}:99"
    assert store.get_member(mid).state.subscribed is False


def test_repushes_are_deduplicated_and_answered_once(acct, store):
    """WeChat re-pushes: the event is stored once and on_message runs once."""
    calls = []

    def on_message(incoming: Incoming):
        calls.append(incoming.message.msg_id)
        return incoming.reply_text("收到")

    handler = CallbackHandler(endpoint(acct), store=store, clock=NOW, on_message=on_message)
    push = acct.text_push("o2", "hi", msg_id=1234)
    first = post(handler, push)
    again = post(handler, push)
    assert calls == ["1234"]
    assert again == (200, [("Content-Type", "text/plain; charset=utf-8")], b"success")
    # The first answer is an encrypted passive reply to the follower.
    crypto = MessageCrypto(acct.token, acct.encoding_aes_key, APPID)
    env = parse_message_envelope(first[2])
    reply = parse_message(
        crypto.decrypt(first[2], env["MsgSignature"], env["TimeStamp"], env["Nonce"])
    )
    assert (reply.openid, reply.to_user, reply.content) == (acct.original_id, "o2", "收到")
    assert len(store.events_for(store.resolve(Identity.openid(APPID, "o2")))) == 1


def parse_message_envelope(body: bytes) -> dict[str, str]:
    import xml.etree.ElementTree as ET

    return {c.tag: c.text or "" for c in ET.fromstring(body)}


def test_plaintext_mode_and_url_verification(acct, store):
    handler = CallbackHandler(
        Endpoint(appid=APPID, token=acct.token),
        store=store,
        clock=NOW,
        on_message=lambda i: i.reply_text("plain"),
    )
    status, _, body = post(handler, acct.verification_push("abc"))
    assert (status, body) == (200, b"abc")
    status, _, body = post(handler, acct.text_push("o3", "x", encrypted=False))
    assert status == 200
    assert parse_message(body).content == "plain"
    enc = acct.text_push("o3", "y")
    assert post(handler, enc)[0] == 400  # no key configured for safe mode


def test_bad_pushes_are_refused(acct, store):
    handler = CallbackHandler(endpoint(acct), store=store, clock=NOW, max_body=4096)
    push = acct.text_push("o4", "x")
    bad_sig = dict(push.query, msg_signature="0" * 40)
    assert handler.handle("POST", bad_sig, push.body)[0] == 403
    assert handler.handle("POST", dict(push.query), push.body[:-20])[0] in (400, 403)
    big = acct.text_push("o4", "y" * 5000)
    assert post(handler, big)[0] == 413
    assert handler.handle("PUT", dict(push.query), push.body)[0] == 405
    verify = acct.verification_push()
    assert handler.handle("GET", dict(verify.query, signature="x"), b"")[0] == 403
    assert store.resolve(Identity.openid(APPID, "o4")) is None


def test_slow_handler_still_answers_in_time(acct, store):
    """on_message past the deadline: the push is answered 'success' and the handler
    finishes in the background."""
    gate = threading.Event()
    done = threading.Event()

    def slow(incoming: Incoming):
        gate.wait(5)
        done.set()
        return incoming.reply_text("late")

    handler = CallbackHandler(
        endpoint(acct), store=store, clock=NOW, on_message=slow, reply_timeout=0.05
    )
    assert post(handler, acct.text_push("o5", "x"))[2] == b"success"
    gate.set()
    assert done.wait(5)
    handler.close()


def test_failing_handler_does_not_fail_the_push(acct, store):
    def boom(incoming: Incoming):
        raise RuntimeError("user bug")

    handler = CallbackHandler(endpoint(acct), store=store, clock=NOW, on_message=boom)
    assert post(handler, acct.text_push("o6", "x"))[:1] == (200,)
    handler.close()


def test_two_accounts_on_one_handler(emu, store):
    """Pushes are routed by appid (URL) or by whose token signs them; identities are
    per appid, so one openid string in two accounts is two identities."""
    a = emu.add_account("wxA00000000000001", "sa", token="ta")
    b = emu.add_account("wxB00000000000002", "sb", token="tb")
    handler = CallbackHandler([endpoint(a), endpoint(b)], store=store, clock=NOW)
    assert post(handler, a.follow("same"))[0] == 200
    assert post(handler, b.follow("same"), appid=b.appid)[0] == 200
    ma = store.resolve(Identity.openid(a.appid, "same"))
    mb = store.resolve(Identity.openid(b.appid, "same"))
    assert ma
    assert mb
    assert ma != mb
    assert post(handler, a.follow("other"), appid=b.appid)[0] == 403


async def test_asgi_mount_in_fastapi(acct, store):
    from fastapi import FastAPI

    app = FastAPI()
    handler = CallbackHandler(endpoint(acct), store=store, clock=NOW, on_message=lambda i: None)
    app.mount("/wechat", asgi_app(handler))
    push = acct.follow("oASGI", scene="s1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/wechat/", params=dict(push.query), content=push.body)
        v = acct.verification_push("hello")
        g = await c.get("/wechat/", params=dict(v.query))
    assert (r.status_code, r.text) == (200, "success")
    assert (g.status_code, g.text) == (200, "hello")
    assert store.resolve(Identity.openid(APPID, "oASGI"))


def test_wsgi_and_flask(acct, store):
    from flask import Flask

    handler = CallbackHandler(endpoint(acct), store=store, clock=NOW)
    flask = Flask(__name__)
    flask.add_url_rule("/wechat", view_func=flask_view(handler), methods=["GET", "POST"])
    push = acct.follow("oFlask")
    with httpx.Client(transport=httpx.WSGITransport(app=flask), base_url="http://t") as c:
        r = c.post("/wechat", params=dict(push.query), content=push.body)
    assert (r.status_code, r.text) == (200, "success")
    raw = wsgi_app(handler)
    push2 = acct.follow("oWSGI")
    with httpx.Client(transport=httpx.WSGITransport(app=raw), base_url="http://t") as c:
        r2 = c.post("/cb", params=dict(push2.query), content=push2.body)
    assert r2.status_code == 200
    assert store.resolve(Identity.openid(APPID, "oFlask"))
    assert store.resolve(Identity.openid(APPID, "oWSGI"))


def test_job_results_create_no_member_and_reach_on_message_once(acct, store):
    """A MASSSENDJOBFINISH push is passed to on_message (once) but records nothing."""
    seen = []
    handler = CallbackHandler(endpoint(acct), store=store, clock=NOW, on_message=seen.append)
    push = acct.event_push("sysuser", "MASSSENDJOBFINISH", MsgID="77", Status="send success")
    assert post(handler, push)[2] == b"success"
    assert post(handler, push)[2] == b"success"
    handler.close()
    assert [i.member_id for i in seen] == [None]
    assert seen[0].message.job_msg_id == "77"
    assert store.resolve(Identity.openid(APPID, "sysuser")) is None
