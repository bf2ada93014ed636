"""One test per official-account and WeCom emulator rule added for #17: break the rule and
assert the platform's answer (docstrings name the rule id, ``Rule <id>``; the inventory test
checks that every ``# rule:`` marker has its test)."""

from __future__ import annotations

from typing import Any

import httpx

from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.testing.emulator.wecom import WeComEmulator

APPID = "wx17rules00000001"
CORPID, SECRET = "ww0000000000000017", "contact-secret"
EC = "/cgi-bin/externalcontact"


class Clock:
    def __init__(self) -> None:
        self.t = 1_780_000_000.0

    def __call__(self) -> float:
        return self.t


def oa() -> tuple[WeChatEmulator, httpx.Client, Clock]:
    clock = Clock()
    emu = WeChatEmulator(clock=clock)
    emu.add_account(APPID, "s").add_followers(["o1"])
    return emu, httpx.Client(transport=emu.transport(), base_url="https://api.weixin.qq.com"), clock


def stable(http: httpx.Client, force: bool = False) -> dict[str, Any]:
    body = {
        "grant_type": "client_credential",
        "appid": APPID,
        "secret": "s",
        "force_refresh": force,
    }
    return dict(http.post("/cgi-bin/stable_token", json=body).json())


def test_oa_cs_window() -> None:
    """Rule oa.cs_window: a menu click after a message opens its own 1-minute window beside
    the 48-hour one instead of replacing it: 5 + 3 sends, then 45047."""
    emu, http, _ = oa()
    token = stable(http)["access_token"]
    account = emu.accounts[APPID]
    account.interact("o1", "message")
    account.interact("o1", "click")

    def send() -> int:
        body = {"touser": "o1", "msgtype": "text", "text": {"content": "hi"}}
        answer = http.post(f"/cgi-bin/message/custom/send?access_token={token}", json=body)
        return int(answer.json().get("errcode", 0))

    assert [send() for _ in range(8)] == [0] * 8
    assert send() == 45047


def test_oa_cs_window_closes() -> None:
    """Rule oa.cs_window: outside every window the platform answers 45015."""
    emu, http, clock = oa()
    token = stable(http)["access_token"]
    emu.accounts[APPID].interact("o1", "click")
    clock.t += 61
    body = {"touser": "o1", "msgtype": "text", "text": {"content": "hi"}}
    answer = http.post(f"/cgi-bin/message/custom/send?access_token={token}", json=body)
    assert answer.json()["errcode"] == 45015


def test_oa_force_refresh() -> None:
    """Rule oa.force_refresh: stable_token force_refresh at most every 30 s and 20 a day."""
    _, http, clock = oa()
    assert "access_token" in stable(http, force=True)
    assert stable(http, force=True)["errcode"] == 45009  # within 30 s
    for _ in range(19):
        clock.t += 31
        assert "access_token" in stable(http, force=True)
    clock.t += 31
    assert stable(http, force=True)["errcode"] == 45009  # the 21st today
    clock.t += 86_400
    assert "access_token" in stable(http, force=True)


def test_oa_qr_scene_id() -> None:
    """Rule oa.qr_scene_id: a temporary QR_SCENE scene_id is a non-zero 32-bit integer."""
    _, http, _ = oa()
    token = stable(http)["access_token"]

    def create(scene_id: object) -> int:
        body = {
            "action_name": "QR_SCENE",
            "expire_seconds": 600,
            "action_info": {"scene": {"scene_id": scene_id}},
        }
        answer = http.post(f"/cgi-bin/qrcode/create?access_token={token}", json=body)
        return int(answer.json().get("errcode", 0))

    assert create(2**32 - 1) == 0
    assert create(2**32) != 0
    assert create(0) != 0
    assert create(True) != 0


def test_oa_replaced_token() -> None:
    """Rule oa.replaced_token: a classic token replaced by a newer one answers 40001 once the
    5-minute overlap is over (42001 only for a token that outlived its 7,200 s)."""
    _, http, clock = oa()
    creds = {"grant_type": "client_credential", "appid": APPID, "secret": "s"}
    first = http.get("/cgi-bin/token", params=creds).json()["access_token"]
    second = http.get("/cgi-bin/token", params=creds).json()["access_token"]
    clock.t += 301

    def errcode(token: str) -> int:
        answer = http.get("/cgi-bin/user/info", params={"access_token": token, "openid": "o1"})
        return int(answer.json().get("errcode", 0))

    assert errcode(first) == 40001
    assert errcode(second) == 0
    clock.t += 7200
    assert errcode(second) == 42001


# --------------------------------------------------------------------------- WeCom


def wecom() -> tuple[WeComEmulator, httpx.Client, str, Clock]:
    clock = Clock()
    emu = WeComEmulator(clock=clock)
    corp = emu.add_corp(CORPID, SECRET)
    corp.add_staff("clerk1")
    corp.add_customers("clerk1", ["wm1", "wm2"])
    http = httpx.Client(transport=emu.transport(), base_url="https://qyapi.weixin.qq.com")
    token = http.get("/cgi-bin/gettoken", params={"corpid": CORPID, "corpsecret": SECRET}).json()[
        "access_token"
    ]
    return emu, http, token, clock


def test_wecom_api_rate() -> None:
    """Rule wecom.api_rate: one API answers 45009 past 10,000 calls a minute per corp (10,050
    calls in a minute used to pass); the next minute it answers again."""
    emu, http, token, clock = wecom()
    emu.api_per_minute = 50  # the same rule at a test-sized cap; the default is 10,000
    assert WeComEmulator(clock=clock).api_per_minute == 10_000
    codes = [
        http.post(f"{EC}/get_follow_user_list?access_token={token}", json={}).json()["errcode"]
        for _ in range(51)
    ]
    assert codes[:50] == [0] * 50
    assert codes[50] == 45009
    clock.t += 60
    assert (
        http.post(f"{EC}/get_follow_user_list?access_token={token}", json={}).json()["errcode"] == 0
    )


def test_wecom_attachment_msgtype() -> None:
    """Rule wecom.attachment_msgtype: attachments must be image / link / miniprogram / video /
    file with their fields."""
    _, http, token, _ = wecom()

    def send(attachment: dict[str, Any]) -> int:
        body = {"external_userid": ["wm1"], "sender": "clerk1", "attachments": [attachment]}
        answer = http.post(f"{EC}/add_msg_template?access_token={token}", json=body)
        return int(answer.json()["errcode"])

    assert send({"msgtype": "image", "image": {"media_id": "M1"}}) == 0
    assert send({"msgtype": "voice", "voice": {"media_id": "M1"}}) == 40008
    assert send({"msgtype": "link", "link": {"title": "t"}}) != 0  # no url


def test_wecom_way_expires() -> None:
    """Rule wecom.way_expires: a temporary contact way lives at most 14 days."""
    _, http, token, _ = wecom()

    def add(expires_in: int) -> int:
        body = {
            "type": 1,
            "scene": 2,
            "user": ["clerk1"],
            "is_temp": True,
            "expires_in": expires_in,
        }
        answer = http.post(f"{EC}/add_contact_way?access_token={token}", json=body)
        return int(answer.json()["errcode"])

    assert add(14 * 86_400) == 0
    assert add(15 * 86_400) != 0
