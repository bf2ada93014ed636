"""Customer groups as member attributes, read through the emulator's groupchat APIs."""

from __future__ import annotations

import datetime as dt

from membermkt.channels.wecom.groups import (
    GROUP_COUNT_ATTR,
    GROUPS_ATTR,
    apply_group_attributes,
    fetch_group_chats,
    group_memberships,
)
from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.segments import attr
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wecom import Corp

from .conftest import CORPID, Twin


def _member(ext: str) -> dict[str, object]:
    return {"userid": ext, "type": 2, "join_time": 1, "join_scene": 1}


async def test_groups_become_member_attributes(twin: Twin, corp: Corp) -> None:
    corp.chats["wrA"] = {
        "status": 0,
        "owner": "clerk1",
        "name": "VIP",
        "member_list": [_member("wmX"), _member("wmY"), {"userid": "clerk1", "type": 1}],
    }
    corp.chats["wrB"] = {
        "status": 0,
        "owner": "clerk2",
        "name": "B",
        "member_list": [_member("wmX")],
    }
    chats = await twin.run(fetch_group_chats(page_size=1))  # paged one by one
    assert sorted(c.chat_id for c in chats) == ["wrA", "wrB"]
    memberships = group_memberships(chats)
    assert memberships == {"wmX": ("wrA", "wrB"), "wmY": ("wrA",)}  # staff are not customers

    store = InMemoryStore()
    store.upsert_members(
        [
            Member("mX", identities=(Identity.external_userid(CORPID, "wmX"),)),
            Member("mOld", attributes={GROUPS_ATTR: "wrGone", GROUP_COUNT_ATTR: 1}),
        ]
    )
    result = apply_group_attributes(store, CORPID, memberships, clear=["mOld"])
    assert result.unknown == ("wmY",)
    assert set(result.updated) == {"mX", "mOld"}
    mx = store.get_member("mX")
    assert mx is not None
    assert mx.attributes[GROUPS_ATTR] == "wrA,wrB"
    assert mx.attributes[GROUP_COUNT_ATTR] == 2
    old = store.get_member("mOld")
    assert old is not None
    assert old.attributes[GROUP_COUNT_ATTR] == 0
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert list(store.select(attr(GROUPS_ATTR).contains("wrB"), now)) == ["mX"]
    # a second run changes nothing
    again = apply_group_attributes(store, CORPID, memberships, clear=["mOld"])
    assert again.updated == ()
