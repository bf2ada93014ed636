"""WeCom callbacks: the official vectors (WC-1, WC-2), recorded XML for every ChangeType,
the core events each one means, and the handler's verification / decryption paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from membermkt.channels.wechat import MessageCrypto
from membermkt.channels.wechat import parse_message as oa_parse_message
from membermkt.channels.wechat.messages import TextMessage
from membermkt.channels.wecom import (
    ExternalChatEvent,
    ExternalContactEvent,
    ExternalTagEvent,
    WeComCallbackHandler,
    WeComEndpoint,
    events_for,
    parse_message,
)
from membermkt.channels.wecom.messages import CHANGE_TYPES
from membermkt.core.identity import Identity
from membermkt.errors import DecryptError, SignatureError
from membermkt.stores.memory import InMemoryStore

DATA = Path(__file__).parent / "data"

# ---------------------------------------------------------------- WC-1 (official Sample.cs)

WC1 = MessageCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
WC1_ECHO = (
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
)
WC1_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUp"
    "j911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue"
    "06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+"
    "3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH"
    "27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8"
    "R07+qN+E7Q=="
)
WC1_PLAIN = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    "<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
    "<CreateTime>1409659813</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[hello]]></Content>\n"
    "<MsgId>4561255354251345929</MsgId>\n"
    "<AgentID>218</AgentID>\n"
    "</xml>"
)


def test_wc1_url_verification():
    """WC-1: msg_signature over echostr checks, the echo decrypts to the official body."""
    echo = WC1.verify_url(
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", WC1_ECHO
    )
    assert echo == "1616140317555161061"


def test_wc1_message_decrypt():
    """WC-1: the official pushed message decrypts (receive id = corpid) to the exact XML."""
    body = (
        "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
        f"<Encrypt><![CDATA[{WC1_ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
    )
    plain = WC1.decrypt(
        body, "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149"
    )
    assert plain == WC1_PLAIN
    msg = parse_message(plain)
    assert isinstance(msg, TextMessage)
    assert (msg.content, msg.openid, msg.raw["AgentID"]) == ("hello", "mycreate", "218")


def test_wc1_through_the_handler():
    """The handler answers the WC-1 verification GET with the bare echo (no newline)."""
    h = WeComCallbackHandler(
        WeComEndpoint(
            corpid="wx5823bf96d3bd56c7",
            token="QDG6eK",
            encoding_aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        ),
        store=InMemoryStore(),
        clock=lambda: 1409659589.0,  # the vector's timestamp (the freshness window)
    )
    q = {
        "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        "timestamp": "1409659589",
        "nonce": "263014780",
        "echostr": WC1_ECHO,
    }
    assert h.handle("GET", q, b"") == (
        200,
        [("Content-Type", "text/plain; charset=utf-8")],
        b"1616140317555161061",
    )
    assert h.handle("GET", {**q, "nonce": "263014781"}, b"")[0] == 403
    plus_as_space = {**q, "echostr": WC1_ECHO.replace("+", " ")}  # form-decoded '+'
    assert "+" in WC1_ECHO
    assert h.handle("GET", plus_as_space, b"")[2] == b"1616140317555161061"


# ---------------------------------------------------------------- WC-2 (wechatpy tests)

WC2 = MessageCrypto("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
WC2_ECHO = (
    "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
)


def test_wc2_verify_and_wrong_nonce():
    """WC-2: the echo decrypts; the same request with nonce 437374424 must fail."""
    sig = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    assert WC2.verify_url(sig, "1411443780", "437374425", WC2_ECHO) == "5927782489442352469"
    with pytest.raises(SignatureError):
        WC2.verify_url(sig, "1411443780", "437374424", WC2_ECHO)


def test_wc2_encrypt_vector():
    """WC-2: with the fixed random prefix the envelope carries the exact Encrypt and
    MsgSignature."""
    msg = (
        "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
        "<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n"
        "<CreateTime>1411525903</CreateTime>\n</xml>"
    )
    env = WC2.encrypt(msg, "1411525903", "461056294", random_prefix=b"1234567890123456")
    assert (
        "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcB"
        in env
    )
    assert (
        "<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>" in env
    )


def test_wc2_decrypt_vector():
    """WC-2: the pushed message decrypts to the documented fields."""
    enc = (
        "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHC"
        "rsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpX"
        "aG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQi"
        "MS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQi"
        "pvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
    )
    body = (
        "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>"
        f"<Encrypt><![CDATA[{enc}]]></Encrypt><AgentID><![CDATA[1]]></AgentID></xml>"
    )
    plain = WC2.decrypt(body, "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294")
    msg = parse_message(plain)
    assert isinstance(msg, TextMessage)
    assert msg.content == "test"
    assert msg.openid == "messense"
    assert msg.to_user == "wx49f0ab532d5d035a"
    assert msg.raw["MsgId"] == "4363689963896700987"
    assert msg.raw["AgentID"] == "1"


def test_receive_id_must_be_the_corpid():
    """A push for another corp does not decrypt (the trailing receive id is checked)."""
    other = MessageCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwOTHER")
    with pytest.raises(DecryptError):
        other.verify_url(
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", WC1_ECHO
        )


# ---------------------------------------------------------------- recorded XML


@pytest.mark.parametrize("change_type", CHANGE_TYPES)
def test_every_change_type_parses(change_type: str):
    """Each change_external_contact ChangeType parses into ExternalContactEvent with its
    fields — through both the WeCom parser and the contract parse_message."""
    xml = (DATA / f"{change_type}.xml").read_bytes()
    for parse in (parse_message, oa_parse_message):
        ev = parse(xml)
        assert isinstance(ev, ExternalContactEvent)
        assert ev.event == "change_external_contact"
        assert ev.change_type == change_type
        assert ev.user_id == "zhangsan"
        assert ev.external_userid == "woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"
        assert ev.corpid == "ww5823bf96d3bd56c7"
        assert ev.openid == "sys"
        assert ev.create_time == 1403610513
    adds = ("add_external_contact", "add_half_external_contact")
    assert (ev.welcome_code == "WELCOMECODE") == (change_type in adds)
    assert (ev.state is not None) == (change_type in adds)
    assert ev.fail_reason == ("customer_refused" if change_type == "transfer_fail" else None)
    assert ev.source == ("DELETE_BY_TRANSFER" if change_type == "del_external_contact" else None)


def test_chat_and_tag_events_parse():
    chat = parse_message((DATA / "change_external_chat.xml").read_bytes())
    assert isinstance(chat, ExternalChatEvent)
    assert (chat.change_type, chat.update_detail) == ("update", "add_member")
    assert chat.chat_id == "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"
    tag = oa_parse_message((DATA / "change_external_tag.xml").read_bytes())
    assert isinstance(tag, ExternalTagEvent)
    assert (tag.tag_type, tag.change_type) == ("tag", "create")


EXPECTED = {
    "add_external_contact": ("contact_added", {"source": "store-12", "campaign": "spring26"}),
    "add_half_external_contact": ("contact_added", {"source": "teststate", "half": True}),
    "edit_external_contact": ("tags_changed", {}),
    "del_external_contact": ("contact_deleted", {"by": "staff", "reason": "DELETE_BY_TRANSFER"}),
    "del_follow_user": ("contact_deleted", {"by": "customer"}),
    "transfer_fail": ("contact_transfer_failed", {"reason": "customer_refused"}),
}


@pytest.mark.parametrize("change_type", CHANGE_TYPES)
def test_core_event_for_every_change_type(change_type: str):
    """Each ChangeType becomes the documented core event, with the staff member."""
    ev = parse_message((DATA / f"{change_type}.xml").read_bytes())
    (core,) = events_for(ev, corpid="ww5823bf96d3bd56c7", member_id="m1")
    kind, props = EXPECTED[change_type]
    assert core.type == kind
    assert core.properties["staff"] == "zhangsan"
    for k, v in props.items():
        assert core.properties[k] == v
    assert core.key
    assert core.key.startswith("wc:ww5823bf96d3bd56c7:")


def test_handler_records_events_once(corp, emu):
    """Emulator pushes decrypt and record; a re-push is de-duplicated; the customer's member
    carries the external_userid identity; customer-deleted-staff is a churn signal."""
    store = InMemoryStore()
    h = WeComCallbackHandler(
        WeComEndpoint(corpid=corp.corpid, token=corp.token, encoding_aes_key=corp.encoding_aes_key),
        store=store,
        clock=corp.emulator.now,
    )
    assert h.handle(*_args(corp.verification_push("abc")))[2] == b"abc"
    add = corp.add_customer("clerk1", "wmC1", state="store-7")
    for _ in range(3):
        assert h.handle(*_args(add))[0] == 200
    mid = store.resolve(Identity.external_userid(corp.corpid, "wmC1"))
    assert mid is not None
    assert [e.type for e in store.events_for(mid)] == ["contact_added"]
    gone = corp.customer_deletes_staff("clerk1", "wmC1", at=emu.now() + 5)
    assert h.handle(*_args(gone))[0] == 200
    last = store.events_for(mid)[-1]
    assert (last.type, last.properties["by"]) == ("contact_deleted", "customer")
    member = store.get_member(mid)
    assert member is not None
    assert member.state.wecom_contact is False
    assert member.state.source == "store-7"
    bad = dict(add.query, msg_signature="0" * 40)
    assert h.handle("POST", bad, add.body)[0] == 403
    assert h.handle("POST", add.query, b"<xml><Encrypt>!!</Encrypt></xml>")[0] in (400, 403)


def _args(push):
    return push.method, dict(push.query), push.body


def test_mounts_with_the_wsgi_glue(corp):
    """The handler has the shape membermkt.contrib expects (endpoints, appid=)."""
    import io

    from membermkt.contrib.wsgi import wsgi_app

    store = InMemoryStore()
    ep = WeComEndpoint(corpid=corp.corpid, token=corp.token, encoding_aes_key=corp.encoding_aes_key)
    app = wsgi_app(WeComCallbackHandler(ep, store=store, clock=corp.emulator.now))
    push = corp.add_customer("clerk1", "wmW", state="s1")
    seen: list[str] = []
    env = {
        "REQUEST_METHOD": "POST",
        "QUERY_STRING": push.query_string,
        "CONTENT_LENGTH": str(len(push.body)),
        "wsgi.input": io.BytesIO(push.body),
        "PATH_INFO": f"/wecom/{corp.corpid}",
    }
    assert b"".join(app(env, lambda status, headers: seen.append(status))) == b"success"
    assert seen == ["200 OK"]
    assert store.resolve(Identity.external_userid(corp.corpid, "wmW")) is not None
    h = WeComCallbackHandler(ep, store=store, clock=corp.emulator.now)
    assert h.handle("POST", dict(push.query), push.body, appid="wwOther")[0] == 403


def test_hardened_parsing_and_unknown_change_types():
    """DTDs are refused; a ChangeType WeCom adds later keeps its string and maps to a
    generic contact_changed event; unknown events stay UnknownEvent."""
    from membermkt.channels.wechat.messages import UnknownEvent

    dtd = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml><A>&a;</A></xml>'
    with pytest.raises(DecryptError):
        parse_message(dtd)
    xml = (
        (DATA / "edit_external_contact.xml")
        .read_text()
        .replace("edit_external_contact", "future_change")
    )
    ev = parse_message(xml)
    assert isinstance(ev, ExternalContactEvent)
    assert ev.change_type == "future_change"
    (core,) = events_for(ev, corpid="ww5823bf96d3bd56c7", member_id="m1")
    assert (core.type, core.properties["change_type"]) == ("contact_changed", "future_change")
    other = parse_message(xml.replace("change_external_contact", "something_new"))
    assert isinstance(other, UnknownEvent)
