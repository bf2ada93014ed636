"""Customer groups as member attributes: which groups each customer is in.

:func:`fetch_group_chats` (an operation flow: ``wecom.run(fetch_group_chats())``) lists
every customer group (``groupchat/list``, pages of ≤ 1000; reference §3.7) and reads each
one's members (``groupchat/get``). :func:`group_memberships` keeps the external members
(``type`` 2: customers; ``type`` 1 is staff), and :func:`apply_group_attributes` writes two
custom attributes on the customers' members, so segments can target groups:

* ``wecom_groups`` — the chat ids, sorted, joined by ``","`` (``attr("wecom_groups")
  .contains("wrXXXX")``);
* ``wecom_group_count`` — how many groups.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from typing import Any, Protocol

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wecom.api.groupchat import GroupChat, groupchat, groupchats
from membermkt.core.identity import Identity
from membermkt.core.members import Member

__all__ = [
    "GROUPS_ATTR",
    "GROUP_COUNT_ATTR",
    "GroupAttributeSync",
    "apply_group_attributes",
    "fetch_group_chats",
    "group_memberships",
]

GROUPS_ATTR = "wecom_groups"
GROUP_COUNT_ATTR = "wecom_group_count"
_EXTERNAL = 2


def fetch_group_chats(
    *, owners: Iterable[str] = (), page_size: int = 1000
) -> Generator[ApiCall[Any], Any, list[GroupChat]]:
    """Operation flow: every customer group (optionally of these owners) with its members."""
    owner_list = list(owners)
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = yield groupchats(owners=owner_list, cursor=cursor, limit=page_size)
        ids.extend(c.chat_id for c in page.items)
        if not page.next_cursor or not page.items:
            break
        cursor = page.next_cursor
    chats: list[GroupChat] = []
    for chat_id in dict.fromkeys(ids):
        chat: GroupChat = yield groupchat(chat_id)
        chats.append(chat)
    return chats


def group_memberships(chats: Iterable[GroupChat]) -> dict[str, tuple[str, ...]]:
    """external_userid → the chat ids of the groups the customer is in (sorted)."""
    out: dict[str, set[str]] = {}
    for chat in chats:
        for m in chat.members:
            if m.get("type") == _EXTERNAL and m.get("userid"):
                out.setdefault(str(m["userid"]), set()).add(chat.chat_id)
    return {k: tuple(sorted(v)) for k, v in sorted(out.items())}


class _Store(Protocol):
    def resolve(self, identity: Identity) -> str | None: ...

    def get_member(self, member_id: str) -> Member | None: ...

    def upsert_members(self, members: list[Member]) -> int: ...


@attrs.frozen(slots=True, kw_only=True)
class GroupAttributeSync:
    """What :func:`apply_group_attributes` changed."""

    updated: tuple[str, ...]
    """member ids whose group attributes changed."""
    unknown: tuple[str, ...]
    """external_userids with no member in the store (ingest the contact first)."""


def apply_group_attributes(
    store: _Store,
    corpid: str,
    memberships: Mapping[str, Iterable[str]],
    *,
    clear: Iterable[str] = (),
) -> GroupAttributeSync:
    """Write ``wecom_groups`` / ``wecom_group_count`` on the customers' members.

    Args:
        store: the member store.
        corpid: the corp the external_userids belong to.
        memberships: from :func:`group_memberships` (a full listing).
        clear: member ids that had group attributes before: those no longer in any group
            get ``wecom_groups=""`` and ``wecom_group_count=0``.
    """
    updated: list[str] = []
    unknown: list[str] = []
    seen: set[str] = set()
    changed: list[Member] = []

    def put(mid: str, chat_ids: tuple[str, ...]) -> None:
        member = store.get_member(mid)
        if member is None:
            return
        attrs_new = dict(member.attributes)
        attrs_new[GROUPS_ATTR] = ",".join(chat_ids)
        attrs_new[GROUP_COUNT_ATTR] = len(chat_ids)
        if attrs_new != dict(member.attributes):
            changed.append(attrs.evolve(member, attributes=attrs_new))
            updated.append(mid)

    for ext, chat_ids in sorted(memberships.items()):
        mid = store.resolve(Identity.external_userid(corpid, ext))
        if mid is None:
            unknown.append(ext)
            continue
        seen.add(mid)
        put(mid, tuple(sorted(set(chat_ids))))
    for mid in clear:
        if mid not in seen:
            put(mid, ())
    if changed:
        store.upsert_members(changed)
    return GroupAttributeSync(updated=tuple(updated), unknown=tuple(unknown))
