"""The WeCom sidebar example in a real browser (headless Chromium): the page loads the
customer card of the current external contact and shows their 90-day orders and the
recommended offer."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from _asgi_server import AsgiServer, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import wecom_sidebar

from membermkt import Identity, Member
from membermkt.card import customer_card
from membermkt.core.events import Event
from membermkt.stores.memory import InMemoryStore

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
CORP = "wwTEST"


def _store() -> InMemoryStore:
    s = InMemoryStore()
    s.upsert_members([Member("m1", identities=[Identity("external_userid", "wmCHAT", CORP)])])
    d = dt.timedelta(days=1)
    s.append_events(
        [
            Event(
                "m1",
                "purchase",
                NOW - k * d,
                {"amount_fen": 100 * k, "category": "durian", "order_id": f"ORD-{k}"},
                key=f"p{k}",
            )
            for k in (5, 40, 89, 120)
        ]
    )
    return s


def _wait(driver: Any, css: str, timeout: float = 15) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def test_sidebar_shows_orders_and_offer(chrome: Any) -> None:
    from selenium.webdriver.common.by import By

    store = _store()
    app = wecom_sidebar.create_app(
        store, corpid=CORP, agentid=1000002, ticket=lambda: "t-1", now=lambda: NOW
    )
    port = free_port()
    with AsgiServer(app, port=port):
        chrome.get(f"http://127.0.0.1:{port}/sidebar?external_userid=wmCHAT")
        table = _wait(chrome, "#orders")
        text = table.text
        for order in ("ORD-5", "ORD-40", "ORD-89"):
            assert order in text
        assert "ORD-120" not in text  # older than 90 days
        offer = chrome.find_element(By.ID, "offer").text
        assert offer == customer_card(store, "wmCHAT", NOW, corpid=CORP).offer == "durian-coupon"
        # an unknown contact gets a clear message, not a broken page
        chrome.get(f"http://127.0.0.1:{port}/sidebar?external_userid=wmNOBODY")
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(chrome, 15).until(lambda d: "No card" in d.find_element(By.ID, "card").text)


def test_agent_config_signature_is_the_jssdk_signature() -> None:
    import httpx

    from membermkt.channels.wechat.api.jssdk import js_signature

    app = wecom_sidebar.create_app(
        _store(), corpid=CORP, agentid=7, ticket=lambda: "ticket-x", now=lambda: NOW
    )
    port = free_port()
    with AsgiServer(app, port=port), httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        r = http.get("/sidebar/config", params={"url": "https://a.example/s?x=1#frag"})
        bad = http.get("/sidebar/config", params={"url": "ftp://x"})
    c = r.json()
    assert c["corpid"] == CORP
    assert c["agentid"] == "7"
    assert c["signature"] == js_signature(
        "ticket-x", c["nonceStr"], c["timestamp"], "https://a.example/s?x=1"
    )
    assert bad.status_code == 400
