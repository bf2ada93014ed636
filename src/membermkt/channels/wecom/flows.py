"""WeCom operation flows (sans-I/O): paging, result collection and the corp-tag sync.

Like :mod:`membermkt.channels.wechat.flows`, each flow yields
:class:`~membermkt.channels.wechat.api._call.ApiCall` values and receives their results, so
the sync and the async client run the same logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from membermkt.channels.wechat.flows import Op, chunks
from membermkt.channels.wecom.api import contacts, mass, tags
from membermkt.channels.wecom.api.contacts import ContactPage, ExternalContact, FollowInfo
from membermkt.channels.wecom.api.mass import CustomerResult, CustomerResultPage, TaskPage
from membermkt.channels.wecom.api.tags import TagGroup
from membermkt.errors import UsageError

__all__ = [
    "CorpTagSyncPlan",
    "CustomerTagSync",
    "contacts_of_staff",
    "mass_results",
    "plan_corp_tag_sync",
    "sync_corp_tags",
    "sync_customer_tags",
]


def contacts_of_staff(
    userids: Sequence[str], *, limit: int = contacts.BATCH_LIMIT_MAX
) -> Op[list[tuple[ExternalContact, FollowInfo]]]:
    """Every (customer, relation) of the staff members, 100 userids per call, following
    ``next_cursor``."""
    out: list[tuple[ExternalContact, FollowInfo]] = []
    for part in chunks(list(dict.fromkeys(userids)), contacts.BATCH_USERIDS_MAX):
        cursor: str | None = None
        while True:
            page: ContactPage = yield contacts.batch_get_by_user(part, cursor, limit)
            out.extend(page.items)
            if not page.next_cursor or not page.items:
                break
            cursor = page.next_cursor
    return out


def mass_results(msgid: str) -> Op[list[CustomerResult]]:
    """Every per-customer result of a mass message: the senders' tasks, then each sender's
    results (both paged)."""
    senders: list[str] = []
    cursor: str | None = None
    while True:
        tpage: TaskPage = yield mass.groupmsg_tasks(msgid, cursor=cursor, limit=1000)
        senders.extend(t.userid for t in tpage.items)
        if not tpage.next_cursor or not tpage.items:
            break
        cursor = tpage.next_cursor
    out: list[CustomerResult] = []
    for userid in dict.fromkeys(senders):
        cursor = None
        while True:
            rpage: CustomerResultPage = yield mass.groupmsg_send_results(
                msgid, userid, cursor=cursor, limit=1000
            )
            out.extend(rpage.items)
            if not rpage.next_cursor or not rpage.items:
                break
            cursor = rpage.next_cursor
    return out


@attrs.frozen(slots=True, kw_only=True)
class CorpTagSyncPlan:
    """What a corp-tag sync does (and did).

    Attributes:
        create: group name → tag names to create in it.
        delete: tag ids to delete (tags of managed groups membermkt no longer has).
        ids: (group name, tag name) → tag id, after the sync.
    """

    create: Mapping[str, tuple[str, ...]]
    delete: tuple[str, ...]
    ids: Mapping[tuple[str, str], str] = attrs.field(factory=dict)

    @property
    def calls(self) -> int:
        """Write calls the plan needs."""
        return len(self.create) + (1 if self.delete else 0)


def plan_corp_tag_sync(
    desired: Mapping[str, Iterable[str]],
    existing: Iterable[TagGroup],
    *,
    delete_extra: bool = True,
    max_tags: int = tags.MAX_CORP_TAGS,
) -> CorpTagSyncPlan:
    """The pure plan: make the managed groups (``desired``'s keys) hold exactly
    ``desired``'s tag names; groups not named are never touched.

    Raises:
        UsageError: when the result would exceed the 3000-corp-tag limit.
    """
    groups = {g.group_name: g for g in existing}
    want = {g: tuple(dict.fromkeys(names)) for g, names in desired.items()}
    create: dict[str, tuple[str, ...]] = {}
    delete: list[str] = []
    ids: dict[tuple[str, str], str] = {}
    for gname, names in want.items():
        have = {t.name: t.id for t in groups[gname].tags} if gname in groups else {}
        missing = tuple(n for n in names if n not in have)
        if missing:
            create[gname] = missing
        for n, tid in have.items():
            if n in names:
                ids[(gname, n)] = tid
            elif delete_extra:
                delete.append(tid)
    total = sum(len(g.tags) for g in groups.values())
    after = total + sum(len(v) for v in create.values()) - len(delete)
    if after > max_tags:
        raise UsageError(f"corp tag sync would leave {after} tags, over the {max_tags} limit")
    return CorpTagSyncPlan(create=create, delete=tuple(delete), ids=ids)


def sync_corp_tags(
    desired: Mapping[str, Iterable[str]], *, delete_extra: bool = True
) -> Op[CorpTagSyncPlan]:
    """Make WeCom's corp tags match membermkt's: ``desired`` maps a tag-group name to the
    tag names it must hold. Missing tags are created (the group too), extra tags of those
    groups deleted (``delete_extra``); other groups are left alone."""
    existing: tuple[TagGroup, ...] = yield tags.list_corp_tags()
    plan = plan_corp_tag_sync(desired, existing, delete_extra=delete_extra)
    ids = dict(plan.ids)
    by_name = {g.group_name: g for g in existing}
    for gname, names in plan.create.items():
        g = by_name.get(gname)
        group: TagGroup = yield (
            tags.add_corp_tags(names, group_id=g.group_id)
            if g is not None
            else tags.add_corp_tags(names, group_name=gname)
        )
        for t in group.tags:
            ids[(gname, t.name)] = t.id
    if plan.delete:
        yield tags.delete_corp_tags(plan.delete)
    return attrs.evolve(plan, ids=ids)


@attrs.frozen(slots=True, kw_only=True)
class CustomerTagSync:
    """What :func:`sync_customer_tags` did: ``mark_tag`` calls, tags added and removed."""

    calls: int
    added: int
    removed: int
    definitions: CorpTagSyncPlan


def sync_customer_tags(
    group: str, desired: Mapping[str, Iterable[str]], userids: Sequence[str]
) -> Op[CustomerTagSync]:
    """Make the customers' corp tags in ``group`` match membermkt's member tags.

    ``desired`` maps an external_userid to the tag names it should carry in ``group``
    (customers not listed are left alone). Missing tag definitions are created (existing
    extra ones are kept), then each relation of the staff members ``userids`` gets one
    ``mark_tag`` adding what is missing and removing the group's tags it should not have;
    tags of other groups are never touched.

    Raises:
        UsageError: when ``desired`` is empty.
    """
    want = {ext: frozenset(names) for ext, names in desired.items()}
    if not want:
        raise UsageError("sync_customer_tags needs at least one customer")
    names = sorted(frozenset().union(*want.values()))
    plan: CorpTagSyncPlan = yield from sync_corp_tags({group: names}, delete_extra=False)
    groups: tuple[TagGroup, ...] = yield tags.list_corp_tags()
    managed = {t.id: t.name for g in groups if g.group_name == group for t in g.tags}
    by_name = {n: i for i, n in managed.items()}
    relations = yield from contacts_of_staff(userids)
    calls = added = removed = 0
    for contact, follow in relations:
        names_wanted = want.get(contact.external_userid)
        if names_wanted is None:
            continue
        have = {t for t in follow.tag_ids if t in managed}
        target = {by_name[n] for n in names_wanted if n in by_name}
        add, remove = sorted(target - have), sorted(have - target)
        if not add and not remove:
            continue
        yield tags.mark_tag(follow.userid, contact.external_userid, add=add, remove=remove)
        calls += 1
        added += len(add)
        removed += len(remove)
    return CustomerTagSync(calls=calls, added=added, removed=removed, definitions=plan)
