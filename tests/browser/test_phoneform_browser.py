"""The OAuth phone form in a real browser (headless Chromium): WeChat's authorize page is
the emulator's, served on loopback; the page links the phone to the follower's member,
pays the red packet once, and its beacon records a ``view`` with ``dwell_seconds``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from _asgi_server import AsgiServer, free_port
from _phoneform import APPID, OPENID, phone_form_world
from membermkt.core.identity import Identity
from membermkt.testing.phones import TEST_PHONES


def _wait(driver: Any, css: str, timeout: float = 15) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, css))
        )
    except TimeoutException:
        raise AssertionError(
            f"{css} not found at {driver.current_url}:\n{driver.page_source[:2000]}"
        ) from None


def test_phone_form_links_phone_and_pays_once(chrome: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    port = free_port()
    public = f"http://127.0.0.1:{port}/redpacket/"
    with (
        phone_form_world(tmp_path, public_url=public) as world,
        world.wechat.serve() as wechat_site,
    ):
        world.app.authorize_host = wechat_site.url
        with AsgiServer(world.app, port=port):
            chrome.delete_all_cookies()
            chrome.get(public)
            # app → emulator's authorize page → app callback → form
            phone = _wait(chrome, "#phone")
            assert chrome.current_url.split("#", 1)[0] == public
            phone.send_keys("13800138000")
            chrome.find_element(By.ID, "consent").click()
            chrome.find_element(By.ID, "submit").click()
            result = _wait(chrome, "#result")
            assert result.get_attribute("data-status") == "paid"

            mid = world.store.resolve(Identity.openid(APPID, OPENID))
            assert mid is not None
            assert world.store.resolve(TEST_PHONES.identity("13800138000")) == mid
            assert world.pay.paid_per_openid()[OPENID] == 1

            # a second visit and submit: the form comes back, no second payment
            chrome.get(public)
            _wait(chrome, "#phone").send_keys("13800138000")
            chrome.find_element(By.ID, "consent").click()
            chrome.find_element(By.ID, "submit").click()
            again = _wait(chrome, "#result")
            assert again.get_attribute("data-status") != "paid"
            assert world.pay.paid_per_openid()[OPENID] == 1

            # leaving the page sends the dwell beacon
            world.clock.advance(7)
            chrome.get("about:blank")
            views: list[Any] = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not views:
                views = [e for e in world.store.events_for(mid) if e.type == "view"]
                time.sleep(0.1)
            assert views, "no view beacon arrived"
            assert views[0].properties["url"] == public
            assert isinstance(views[0].properties["dwell_seconds"], int)


def test_verified_phone_merges_the_imported_buyer(chrome: Any, tmp_path: Path) -> None:
    """With a texted code, the follower who types and verifies the buyer's phone becomes one
    member with the buyer imported by that phone, and is paid once."""
    from selenium.webdriver.common.by import By

    from membermkt.core.members import Member

    port = free_port()
    public = f"http://127.0.0.1:{port}/redpacket/"
    phone = TEST_PHONES.identity("13800138000")
    with (
        phone_form_world(tmp_path, public_url=public, verify=True) as world,
        world.wechat.serve() as wechat_site,
    ):
        world.store.upsert_members([Member("buyer-1", identities=[phone])])
        world.app.authorize_host = wechat_site.url
        with AsgiServer(world.app, port=port):
            # cookies are per host, not per port: drop the earlier test's session first
            chrome.get(public + "beacon.js")
            chrome.delete_all_cookies()
            chrome.get(public)
            _wait(chrome, "#phone").send_keys("138 0013 8000")
            chrome.find_element(By.ID, "consent").click()
            chrome.find_element(By.ID, "submit").click()
            code_input = _wait(chrome, "#code")
            assert [n for n, _ in world.outbox] == ["8613800138000"]
            code_input.send_keys(world.outbox[-1][1])
            chrome.find_element(By.ID, "submit").click()
            result = _wait(chrome, "#result")
            assert result.get_attribute("data-status") == "paid"
        one = world.store.resolve(Identity.openid(APPID, OPENID))
        assert one is not None
        assert world.store.resolve(phone) == one
        assert [m.link.evidence.value for m in world.store.merges(one)] == ["verified_phone"]
        assert world.pay.paid_per_openid()[OPENID] == 1
