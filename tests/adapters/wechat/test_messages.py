"""parse_message: every push kind of reference §2.3, hardened XML, passive replies."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membermkt.channels.wechat import MessageCrypto, parse_message
from membermkt.channels.wechat import messages as m
from membermkt.channels.wechat.replies import Article, news_reply, text_reply
from membermkt.errors import DecryptError, UsageError


def push(body: str, *, msg_type: str = "event", openid: str = "oU1", ts: int = 1700000000) -> str:
    return (
        f"<xml><ToUserName><![CDATA[gh_abc]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{ts}</CreateTime>"
        f"<MsgType><![CDATA[{msg_type}]]></MsgType>{body}</xml>"
    )


def test_text_message():
    msg = parse_message(
        push("<Content><![CDATA[你好]]></Content><MsgId>123</MsgId>", msg_type="text")
    )
    assert isinstance(msg, m.TextMessage)
    assert (msg.type, msg.openid, msg.to_user, msg.content, msg.msg_id) == (
        "text",
        "oU1",
        "gh_abc",
        "你好",
        "123",
    )
    assert msg.created_at == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert msg.dedup_id == "123"


@pytest.mark.parametrize(
    ("msg_type", "body", "cls", "attrs_"),
    [
        (
            "image",
            "<PicUrl>http://p</PicUrl><MediaId>M</MediaId><MsgId>1</MsgId>",
            m.ImageMessage,
            {"pic_url": "http://p", "media_id": "M"},
        ),
        (
            "voice",
            "<MediaId>M</MediaId><Format>amr</Format><Recognition>hi</Recognition>",
            m.VoiceMessage,
            {"format": "amr", "recognition": "hi"},
        ),
        (
            "video",
            "<MediaId>M</MediaId><ThumbMediaId>T</ThumbMediaId>",
            m.VideoMessage,
            {"thumb_media_id": "T"},
        ),
        (
            "shortvideo",
            "<MediaId>M</MediaId><ThumbMediaId>T</ThumbMediaId>",
            m.VideoMessage,
            {"type": "shortvideo"},
        ),
        (
            "location",
            "<Location_X>23.1</Location_X><Location_Y>113.3</Location_Y><Scale>20</Scale>"
            "<Label>广州</Label>",
            m.LocationMessage,
            {"latitude": 23.1, "longitude": 113.3, "scale": 20, "label": "广州"},
        ),
        (
            "link",
            "<Title>T</Title><Description>D</Description><Url>http://u</Url>",
            m.LinkMessage,
            {"title": "T", "url": "http://u"},
        ),
        ("miniprogrampage", "<Title>T</Title>", m.UnknownMessage, {"type": "miniprogrampage"}),
    ],
)
def test_message_kinds(msg_type, body, cls, attrs_):
    msg = parse_message(push(body, msg_type=msg_type))
    assert type(msg) is cls
    for k, v in attrs_.items():
        assert getattr(msg, k) == v


def test_subscribe_with_qr_scene_and_ticket():
    msg = parse_message(
        push("<Event>subscribe</Event><EventKey>qrscene_store42</EventKey><Ticket>TK</Ticket>")
    )
    assert isinstance(msg, m.SubscribeEvent)
    assert (msg.type, msg.event, msg.key, msg.scene, msg.ticket) == (
        "event",
        "subscribe",
        "qrscene_store42",
        "store42",
        "TK",
    )
    assert msg.dedup_id == "oU1:1700000000:subscribe"


def test_plain_subscribe_has_no_scene():
    msg = parse_message(push("<Event>subscribe</Event><EventKey></EventKey>"))
    assert isinstance(msg, m.SubscribeEvent)
    assert msg.scene is None


def test_scan_unsubscribe_click_view_location():
    scan = parse_message(push("<Event>SCAN</Event><EventKey>123</EventKey><Ticket>T</Ticket>"))
    assert isinstance(scan, m.ScanEvent)
    assert (scan.event, scan.scene) == ("scan", "123")
    unsub = parse_message(push("<Event>unsubscribe</Event>"))
    assert isinstance(unsub, m.UnsubscribeEvent)
    assert unsub.key is None
    click = parse_message(push("<Event>CLICK</Event><EventKey>V1001_GOOD</EventKey>"))
    assert isinstance(click, m.ClickEvent)
    assert (click.event, click.key) == ("click", "V1001_GOOD")
    view = parse_message(
        push("<Event>VIEW</Event><EventKey>http://x/y</EventKey><MenuId>9</MenuId>")
    )
    assert isinstance(view, m.ViewEvent)
    assert (view.url, view.menu_id) == ("http://x/y", "9")
    loc = parse_message(
        push(
            "<Event>LOCATION</Event><Latitude>23.1</Latitude><Longitude>113.3</Longitude>"
            "<Precision>119.38</Precision>"
        )
    )
    assert isinstance(loc, m.LocationEvent)
    assert loc.precision == pytest.approx(119.38)


def test_job_finish_events():
    mass = parse_message(
        push(
            "<Event>MASSSENDJOBFINISH</Event><MsgID>1988</MsgID><Status>send success</Status>"
            "<TotalCount>100</TotalCount><FilterCount>80</FilterCount><SentCount>75</SentCount>"
            "<ErrorCount>5</ErrorCount><CopyrightCheckResult><Count>0</Count>"
            "<ResultList/><CheckState>1</CheckState></CopyrightCheckResult>"
        )
    )
    assert isinstance(mass, m.MassSendJobFinishEvent)
    assert (mass.job_msg_id, mass.status, mass.filter_count, mass.sent_count) == (
        "1988",
        "send success",
        80,
        75,
    )
    tpl = parse_message(
        push(
            "<Event>TEMPLATESENDJOBFINISH</Event><MsgID>200</MsgID>"
            "<Status>failed:user block</Status>"
        )
    )
    assert isinstance(tpl, m.TemplateSendJobFinishEvent)
    assert not tpl.succeeded
    assert tpl.job_msg_id == "200"


def test_subscribe_message_popup():
    msg = parse_message(
        push(
            "<Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent>"
            "<List><TemplateId>T1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString>"
            "<PopupScene>2</PopupScene></List><List><TemplateId>T2</TemplateId>"
            "<SubscribeStatusString>reject</SubscribeStatusString><PopupScene>2</PopupScene></List>"
            "</SubscribeMsgPopupEvent>"
        )
    )
    assert isinstance(msg, m.SubscribeMsgPopupEvent)
    assert [(i.template_id, i.status) for i in msg.items] == [("T1", "accept"), ("T2", "reject")]


def test_unknown_event_is_generic_not_an_error():
    msg = parse_message(push("<Event>some_future_event</Event><EventKey>k</EventKey><X>1</X>"))
    assert isinstance(msg, m.UnknownEvent)
    assert (msg.event, msg.key, msg.raw["X"]) == ("some_future_event", "k", "1")


@pytest.mark.parametrize(
    "xml",
    [
        "<xml><MsgType>text</MsgType><CreateTime>1</CreateTime></xml>",
        "<xml><FromUserName>a</FromUserName><MsgType>text</MsgType></xml>",
        "<xml><FromUserName>a</FromUserName><CreateTime>soon</CreateTime></xml>",
        "<xml><FromUserName>a</FromUserName><CreateTime>-5</CreateTime></xml>",
        "<xml><FromUserName>a",
        "not xml at all",
        "",
    ],
)
def test_malformed_pushes_raise_decrypt_error(xml):
    with pytest.raises(DecryptError):
        parse_message(xml)


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<xml><FromUserName>&lol3;</FromUserName><CreateTime>1</CreateTime></xml>"
)
XXE = (
    '<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><FromUserName>&xxe;</FromUserName><CreateTime>1</CreateTime></xml>"
)


@pytest.mark.parametrize(
    "xml",
    [
        BOMB,
        XXE,
        "\ufeff" + XXE,
        "  <!-- hi --><!DOCTYPE x><xml/>",
        "<?xml version='1.0'?>\n<?pi x?><!DOCTYPE x SYSTEM 'http://evil'><xml/>",
        "<xml><!DOCTYPE x><FromUserName>a</FromUserName><CreateTime>1</CreateTime></xml>",
        "<xml><FromUserName>&undefined;</FromUserName><CreateTime>1</CreateTime></xml>",
    ],
)
def test_dtds_and_entities_are_refused(xml):
    with pytest.raises(DecryptError):
        parse_message(xml)


def test_oversize_document_is_refused():
    xml = push("<Content>" + "a" * 2000 + "</Content>", msg_type="text")
    assert isinstance(parse_message(xml), m.TextMessage)
    with pytest.raises(DecryptError, match="limit"):
        parse_message(xml, max_size=1000)
    with pytest.raises(DecryptError, match="limit"):
        parse_message("<xml>" + "a" * (1 << 20) + "</xml>")


@settings(max_examples=200, deadline=None)
@given(content=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=200))
def test_text_reply_round_trips_through_the_parser(content):
    """Any text (including ``]]>``) survives a passive reply and parses back."""
    incoming = parse_message(push("<Content>x</Content><MsgId>1</MsgId>", msg_type="text"))
    if not content:
        with pytest.raises(UsageError):
            text_reply(incoming, content, create_time=1)
        return
    reply = parse_message(text_reply(incoming, content, create_time=1700000001))
    assert isinstance(reply, m.TextMessage)
    assert (reply.openid, reply.to_user, reply.content) == ("gh_abc", "oU1", content)


def test_news_reply_and_encrypted_envelope():
    incoming = parse_message(push("<Event>CLICK</Event><EventKey>k</EventKey>"))
    xml = news_reply(incoming, [Article(title="T", url="http://u")], create_time=5)
    assert "<ArticleCount>1</ArticleCount>" in xml
    assert "<Url><![CDATA[http://u]]></Url>" in xml
    with pytest.raises(UsageError):
        news_reply(incoming, [], create_time=5)
    crypto = MessageCrypto("tok", "a" * 43, "wxapp")
    env = crypto.encrypt(xml, "5", "nonce")
    sig = env.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    assert crypto.decrypt(env, sig, "5", "nonce") == xml


# ---------------------------------------------------------------- fast path = expat


_TAGS = st.sampled_from(["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "A_1"])
_TEXT = st.lists(
    st.sampled_from([*"ab 中]>&<\r\n\t\x01\ufffe", "]]>", "&amp;", "]]"]), max_size=8
).map("".join)


@st.composite
def _documents(draw) -> bytes:
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        tag = draw(_TAGS)
        text = draw(_TEXT)
        form = draw(st.sampled_from(["cdata", "plain", "two-cdata", "attr", "nested", "empty"]))
        if form == "cdata":
            body = f"<![CDATA[{text}]]>"
        elif form == "two-cdata":
            body = f"<![CDATA[{text}]]><![CDATA[{text}]]>"
        elif form == "nested":
            body = f"<X>{text}</X>"
        elif form == "empty":
            parts.append(f"<{tag}/>")
            continue
        else:
            body = text
        open_tag = f'<{tag} a="1">' if form == "attr" else f"<{tag}>"
        parts.append(draw(st.sampled_from(["", " ", "\n", "\t "])) + f"{open_tag}{body}</{tag}>")
    prefix = draw(st.sampled_from(["<xml>", "<xml>", "<?xml version='1.0'?><xml>", " <xml>"]))
    suffix = draw(st.sampled_from(["</xml>", "</xml>\n", "\n</xml>", "</xml>junk"]))
    return (prefix + "".join(parts) + suffix).encode("utf-8")


@settings(max_examples=600, deadline=None)
@given(doc=_documents())
def test_fast_path_agrees_with_expat(doc):
    """The flat fast path returns exactly expat's leaf fields, or defers to expat."""
    import xml.etree.ElementTree as ET

    from membermkt.channels.wechat._xml import _fast_fields

    fast = _fast_fields(doc)
    try:
        root = ET.fromstring(doc)
    except ET.ParseError:
        assert fast is None
        return
    expected = {c.tag: c.text or "" for c in root if len(c) == 0}
    if fast is not None:
        assert fast == expected
        assert all(len(c) == 0 for c in root)
