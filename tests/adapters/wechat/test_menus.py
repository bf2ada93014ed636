"""Conditional menus against the emulator: matchrule validation, the platform's refusals,
a declarative MenuSet kept in sync with the tag sync, trymatch per variant and click
analytics per variant."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.api.menu import Button
from membermkt.channels.wechat.api.menus import MatchRule, add_conditional, try_match
from membermkt.channels.wechat.menuset import MenuSet, MenuVariant, menu_click_report, sync_menus
from membermkt.core.events import Event
from membermkt.errors import PlatformError, UsageError
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.http import HttpRequest

from .conftest import Twin

DEFAULT = (Button.click("Shop", "shop"), Button.view("Site", "https://shop.example/"))
VIP = (Button.click("VIP deals", "deals"), Button.click("Shop", "shop"))
NEW = (Button.click("Welcome gift", "gift"),)


def raw(path: str, body: dict[str, Any]) -> ApiCall[Any]:
    return ApiCall(request=HttpRequest.post_json(path, body), parse=lambda d: dict(d))


def test_matchrule_validation() -> None:
    with pytest.raises(UsageError, match="at least one"):
        MatchRule().validate()
    with pytest.raises(UsageError, match="65320"):
        MatchRule(sex="1").validate()
    with pytest.raises(UsageError, match="a city needs a province"):
        MatchRule(tag_id="1", city="广州").validate()
    with pytest.raises(UsageError, match="tag id"):
        MatchRule(tag_id="vip").validate()
    with pytest.raises(UsageError, match="client_platform_type"):
        MatchRule(client_platform_type="9").validate()
    MatchRule(tag_id="100", client_platform_type="2").validate()
    four = tuple(Button.view(f"L{i}", f"https://d{i}.example/") for i in range(3))
    with pytest.raises(UsageError, match="domains"):
        add_conditional(
            (Button.parent("links", *four, Button.view("x", "https://d9.example/")),),
            MatchRule(tag_id="1"),
        )


async def test_emulator_refusals(twin: Twin, emu: WeChatEmulator, account) -> None:
    body = {"button": [b.to_api() for b in VIP], "matchrule": {"tag_id": "100"}}
    with pytest.raises(PlatformError) as no_default:
        await twin.call(raw("/cgi-bin/menu/addconditional", body))
    assert no_default.value.errcode == 65303
    await twin.create_menu(list(DEFAULT))
    with pytest.raises(PlatformError) as unknown_tag:
        await twin.call(raw("/cgi-bin/menu/addconditional", body))
    assert unknown_tag.value.errcode == 45159
    tag = await twin.create_tag("vip")
    privacy = {**body, "matchrule": {"tag_id": str(tag.id), "sex": "1"}}
    with pytest.raises(PlatformError) as priv:
        await twin.call(raw("/cgi-bin/menu/addconditional", privacy))
    assert priv.value.errcode == 65320
    with pytest.raises(PlatformError) as empty:
        await twin.call(raw("/cgi-bin/menu/addconditional", {**body, "matchrule": {}}))
    assert empty.value.errcode == 65304
    too_many = {
        "button": [{"type": "click", "name": "a", "key": "a"}] * 4,
        "matchrule": {"tag_id": str(tag.id)},
    }
    with pytest.raises(PlatformError) as size:
        await twin.call(raw("/cgi-bin/menu/addconditional", too_many))
    assert size.value.errcode == 40016
    links = {
        "button": [
            {
                "name": "l",
                "sub_button": [
                    {"type": "view", "name": f"d{i}", "url": f"https://d{i}.example/"}
                    for i in range(4)
                ],
            }
        ],
        "matchrule": {"tag_id": str(tag.id)},
    }
    with pytest.raises(PlatformError) as domains:
        await twin.call(raw("/cgi-bin/menu/addconditional", links))
    assert domains.value.errcode == 65316
    with pytest.raises(PlatformError) as unknown:
        await twin.call(raw("/cgi-bin/menu/delconditional", {"menuid": "404"}))
    assert unknown.value.errcode == 65301
    with pytest.raises(PlatformError) as nobody:
        await twin.call(try_match("oNobody"))
    assert nobody.value.errcode == 65302


async def test_menuset_sync_with_tags_trymatch_and_resync(
    twin: Twin, emu: WeChatEmulator, account
) -> None:
    menus = MenuSet(
        default=DEFAULT,
        variants=(
            MenuVariant(name="vip", tag="menu-vip", buttons=VIP),
            MenuVariant(name="new", tag="menu-new", buttons=NEW),
        ),
    )
    # o00001 is in both segments: the first variant wins, so one menu tag only
    desired = menus.assign(
        {"vip": ["o00001", "o00002"], "new": ["o00001", "o00003"]}, audience=["o00004"]
    )
    assert desired == {
        "o00001": {"menu-vip"},
        "o00002": {"menu-vip"},
        "o00003": {"menu-new"},
        "o00004": set(),
    }
    await twin.sync_tags(desired, managed=menus.tags)
    tag_ids = {t.name: t.id for t in await twin.list_tags()}
    result = await twin.run(sync_menus(menus, tag_ids))
    assert result.default_created
    assert set(result.added) == {"vip", "new"}
    seen = await twin.call(try_match("o00001"))
    assert [b["key"] for b in seen] == ["deals@vip", "shop@vip"]
    assert [b["key"] for b in await twin.call(try_match("o00003"))] == ["gift@new"]
    assert (await twin.call(try_match("o00009")))[0]["key"] == "shop@default"
    assert emu.ambiguous_menu_matches == 0
    # nothing changed: nothing is rewritten
    again = await twin.run(sync_menus(menus, tag_ids))
    assert not again.default_created
    assert not again.added
    assert not again.deleted
    assert set(again.kept) == {"vip", "new"}
    # one variant changes: only it is replaced
    changed = MenuSet(
        default=DEFAULT,
        variants=(
            MenuVariant(name="vip", tag="menu-vip", buttons=(Button.click("VIP", "deals"),)),
            MenuVariant(name="new", tag="menu-new", buttons=NEW),
        ),
    )
    third = await twin.run(sync_menus(changed, tag_ids))
    assert set(third.added) == {"vip"}
    assert third.deleted == (result.added["vip"],)
    assert [b["key"] for b in await twin.call(try_match("o00002"))] == ["deals@vip"]
    # o00002 leaves the VIP segment: it loses the tag, and with it the VIP menu
    await twin.sync_tags(
        changed.assign({"vip": ["o00001"]}, audience=await twin.tag_fans(tag_ids["menu-vip"])),
        managed=changed.tags,
    )
    assert (await twin.call(try_match("o00002")))[0]["key"] == "shop@default"
    with pytest.raises(UsageError, match="tag sync"):
        await twin.run(sync_menus(changed, {}))


def test_menu_click_report_per_variant() -> None:
    menus = MenuSet(default=DEFAULT, variants=(MenuVariant(name="vip", tag="t", buttons=VIP),))
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    events = [
        Event("m1", "menu_click", at, {"key": "deals@vip"}),
        Event("m2", "menu_click", at, {"key": "deals@vip"}),
        Event("m3", "menu_click", at, {"key": "shop@default"}),
        Event("m3", "menu_click", at, {"key": "shop@vip"}),
        Event("m4", "menu_click", at, {"key": "legacy"}),
        Event("m4", "view", at, {"url": "https://shop.example/"}),
    ]
    assert menu_click_report(events, menus) == {
        ("vip", "deals"): 2,
        ("default", "shop"): 1,
        ("vip", "shop"): 1,
    }


def test_menuset_refuses_bad_declarations() -> None:
    with pytest.raises(UsageError, match="distinct"):
        MenuSet(
            default=DEFAULT,
            variants=(
                MenuVariant(name="a", tag="t", buttons=VIP),
                MenuVariant(name="b", tag="t", buttons=VIP),
            ),
        )
    with pytest.raises(UsageError, match="default"):
        MenuVariant(name="default", tag="x", buttons=VIP)
    with pytest.raises(UsageError, match="@"):
        MenuSet(default=(Button.click("x", "a@b"),))
    with pytest.raises(UsageError, match="unknown menu variants"):
        MenuSet(default=DEFAULT).assign({"ghost": ["o1"]})
