"""Unit checks of the guards: redaction, routing, mode, freshness, body limits."""

from __future__ import annotations

import asyncio
import logging

import pytest

from membermkt.channels.wechat import CallbackHandler, Endpoint
from membermkt.channels.wechat.api.token import AccessToken
from membermkt.contrib.asgi import asgi_app
from membermkt.errors import ConfigError
from membermkt.security.redact import REDACTED, RedactingFilter, install_redaction, redact
from membermkt.stores.memory import InMemoryStore

from ._hostile import KEY, NOW, TOKEN, Hostile, genuine_xml


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("GET https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww1&corpsecret=S3CRET", "S3CRET"),
        ("POST https://api.weixin.qq.com/cgi-bin/tags/get?access_token=TOK_123-x", "TOK_123-x"),
        ('{"appid":"wx1","secret":"S3C\\"RET"}', 'S3C\\"RET'),
        ("<xml><sign><![CDATA[ABCDEF]]></sign></xml>", "ABCDEF"),
        ("<xml><key>ABCDEF</key></xml>", "ABCDEF"),
        ('mchid="1",signature="SIGN+/==",serial_no="2"', "SIGN+/=="),
        ("a?sign=ABCDEF&b=1", "ABCDEF"),
        ("call 138 0013 8000 now", "0013 8000"),
    ],
)
def test_redact(raw, secret):
    out = redact(raw)
    assert secret not in out
    assert REDACTED in out or "********" in out


def test_redact_leaves_other_names_alone():
    assert redact("keyword=1&monkey=2&corpid=ww1") == "keyword=1&monkey=2&corpid=ww1"


def test_filter_on_httpx_loggers_rewrites_records(caplog):
    install_redaction()
    install_redaction()  # idempotent
    httpx_logger = logging.getLogger("httpx")
    assert sum(isinstance(f, RedactingFilter) for f in httpx_logger.filters) == 1
    with caplog.at_level(logging.DEBUG, logger="httpx"):
        httpx_logger.info("HTTP Request: %s %s", "GET", "https://x/y?access_token=SECRETTOKEN")
    assert "SECRETTOKEN" not in caplog.text
    assert "access_token=[REDACTED]" in caplog.text


def test_access_token_repr_hides_the_token():
    assert "SECRETTOKEN" not in repr(AccessToken("SECRETTOKEN", 7200))


def test_shared_token_needs_url_routing():
    a = Endpoint(appid="wxA", token="same")
    b = Endpoint(appid="wxB", token="same")
    with pytest.raises(ConfigError):
        CallbackHandler([a, b], store=InMemoryStore())
    h = CallbackHandler([a, b], store=InMemoryStore(), route_by_signature=False)
    # without the appid in the URL the push cannot be routed: refused, never misrouted
    assert h.handle("GET", {"timestamp": str(NOW), "signature": "x"}, b"", now=NOW)[0] == 403


def test_safe_mode_endpoint_refuses_plaintext_unless_compatibility():
    push = Hostile("wxC", wecom=False).sealed("x", genuine_xml().encode())
    plain_q = {k: v for k, v in push.query.items() if k not in ("encrypt_type", "msg_signature")}
    body = genuine_xml().encode()
    strict = CallbackHandler(
        Endpoint(appid="wxC", token=TOKEN, encoding_aes_key=KEY), store=InMemoryStore()
    )
    assert strict.handle("POST", plain_q, body, now=NOW)[0] == 403
    compat = CallbackHandler(
        Endpoint(appid="wxC", token=TOKEN, encoding_aes_key=KEY, compatibility=True),
        store=InMemoryStore(),
    )
    assert compat.handle("POST", plain_q, body, now=NOW)[0] == 200
    with pytest.raises(ConfigError):
        Endpoint(appid="wxC", token=TOKEN, compatibility=True)


@pytest.mark.parametrize(
    ("skew", "window", "status"),
    [(299, 300, 200), (301, 300, 403), (-301, 300, 403), (86400 * 30, None, 200), (60, 30, 403)],
)
def test_freshness_window(skew, window, status):
    h = CallbackHandler(
        Endpoint(appid="wxD", token=TOKEN, encoding_aes_key=KEY),
        store=InMemoryStore(),
        freshness=window,
    )
    push = Hostile("wxD", wecom=False).sealed("x", genuine_xml().encode(), skew=skew)
    assert h.handle("POST", push.query, push.body, now=NOW)[0] == status


def test_asgi_refuses_a_large_declared_body_without_reading_it():
    h = CallbackHandler(Endpoint(appid="wxE", token=TOKEN), store=InMemoryStore(), max_body=1000)
    app = asgi_app(h)
    sent: list[dict] = []
    received = [0]

    async def receive():
        received[0] += 1
        return {"type": "http.request", "body": b"A" * 65536, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/wechat",
        "query_string": b"",
        "headers": [(b"content-length", b"209715200")],
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert received[0] == 0
    # undeclared: read only up to the limit, then refused
    scope["headers"] = []
    sent.clear()
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert received[0] == 1


def test_token_entry_and_transport_error_hide_the_token():
    import datetime as dt

    import httpx

    from membermkt.channels.wechat.client._base import _transport_error
    from membermkt.core.ports import TokenEntry

    assert "SECRETTOKEN" not in repr(TokenEntry("SECRETTOKEN", dt.datetime(2026, 1, 1)))
    err = _transport_error(httpx.ConnectError("to https://x/y?access_token=SECRETTOKEN"), "api")
    assert "SECRETTOKEN" not in str(err)
