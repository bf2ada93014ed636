"""Flows shared by the sync and async clients (sans-I/O generators).

Two levels:

* :func:`authorized` is the HTTP-level flow of one :class:`ApiCall`: get a token, send, and
  on 40001/40014/42001 ask for a fresh token (compare-then-expire) and replay — at most
  ``max_replays`` times.
* Operation flows (``tag_users``, ``send_mass`` …) are API-level: they yield
  :class:`ApiCall` values (each run by the driver with retries) and receive their results,
  so chunking and multi-step logic are written once for both clients.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from membermkt.channels.wechat.api import messaging, tags, users
from membermkt.channels.wechat.api._call import ApiCall, decode_response
from membermkt.channels.wechat.api.messaging import MassSend
from membermkt.channels.wechat.api.users import FollowerPage, UserInfo
from membermkt.channels.wechat.tagsync import TagSyncPlan, plan_tag_sync
from membermkt.errors import PlatformError, UsageError
from membermkt.wire.errcodes import Action, decide
from membermkt.wire.http import Flow, GetToken, HttpResponse, RefreshToken, Send

__all__ = [
    "Op",
    "authorized",
    "chunks",
    "follower_pages_of_tag",
    "send_mass",
    "sync_tags",
    "tag_users",
    "untag_users",
    "user_infos",
]

T = TypeVar("T")
Op: TypeAlias = Generator[ApiCall[Any], Any, T]


def authorized(call: ApiCall[T], *, max_replays: int = 1) -> Flow[T]:
    """Run one call with an access token, replaying after a token error (capped).

    Raises:
        PlatformError: the platform's refusal (``TokenError`` when a fresh token is refused
            too).
        TransportError: when an answer is unusable.
    """
    if not call.needs_token:
        response: HttpResponse = yield Send(call.request)
        return decode_response(call, response)
    token: str = yield GetToken()
    replays = 0
    while True:
        response = yield Send(call.request.with_param("access_token", token))
        try:
            return decode_response(call, response)
        except PlatformError as exc:
            if _is_token_error(exc, call) and replays < max_replays:
                replays += 1
                token = yield RefreshToken(token)
                continue
            raise


def _is_token_error(exc: PlatformError, call: ApiCall[Any]) -> bool:
    # The call's own errcode table decides (OA: 40001/40014/42001; WeCom: 40014/42001).
    code = exc.errcode
    return isinstance(code, int) and decide(code, call.table).action is Action.REFRESH_TOKEN


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """Split into the fewest chunks of at most ``size``, balanced (sizes differ by at most
    one), so no chunk is tiny: 10,001 openids become 5,001 + 5,000, never 10,000 + 1."""
    n = len(items)
    if n == 0:
        return []
    count = -(-n // size)
    base, extra = divmod(n, count)
    out: list[Sequence[T]] = []
    i = 0
    for k in range(count):
        step = base + (1 if k < extra else 0)
        out.append(items[i : i + step])
        i += step
    return out


def user_infos(openids: Sequence[str], *, lang: str = "zh_CN") -> Op[list[UserInfo]]:
    """Info for any number of openids, 100 per call."""
    out: list[UserInfo] = []
    for part in chunks(list(openids), users.BATCH_INFO_MAX):
        out.extend((yield users.batch_user_info(part, lang=lang)))
    return out


def tag_users(tag_id: int, openids: Iterable[str]) -> Op[int]:
    """Tag any number of openids, 50 per call; returns the number of calls made."""
    unique = sorted(set(openids))
    parts = chunks(unique, tags.TAG_BATCH_MAX)
    for part in parts:
        yield tags.tag_users(tag_id, part)
    return len(parts)


def untag_users(tag_id: int, openids: Iterable[str]) -> Op[int]:
    """Untag any number of openids, 50 per call; returns the number of calls made."""
    unique = sorted(set(openids))
    parts = chunks(unique, tags.TAG_BATCH_MAX)
    for part in parts:
        yield tags.untag_users(tag_id, part)
    return len(parts)


def send_mass(
    openids: Sequence[str], message: Mapping[str, Any], *, clientmsgid: str | None = None
) -> Op[list[MassSend]]:
    """Mass-send to any number (≥ 2) of openids: balanced chunks of ≤ 10,000, each with its
    own ``clientmsgid`` derived from the given one (reference §1.4: identical content in
    several batches needs one id per batch)."""
    unique = list(dict.fromkeys(openids))
    if len(unique) < messaging.MASS_OPENIDS_MIN:
        raise UsageError("mass/send needs at least two distinct openids (40130)")
    parts = chunks(unique, messaging.MASS_OPENIDS_MAX)
    out: list[MassSend] = []
    for i, part in enumerate(parts):
        cid = clientmsgid
        if clientmsgid is not None and len(parts) > 1:
            cid = messaging.clientmsgid_for([clientmsgid, f"chunk:{i}/{len(parts)}"])
        out.append((yield messaging.send_mass(part, message, clientmsgid=cid)))
    return out


def follower_pages_of_tag(tag_id: int) -> Op[list[str]]:
    """Every fan of a tag (paging over ``next_openid``)."""
    fans: list[str] = []
    cursor: str | None = None
    while True:
        page: FollowerPage = yield tags.users_of_tag(tag_id, cursor)
        fans.extend(page.openids)
        if not page.next_openid or not page.openids:
            return fans
        cursor = page.next_openid


def sync_tags(
    desired: Mapping[str, Iterable[str]], *, managed: Iterable[str] | None = None
) -> Op[TagSyncPlan]:
    """Make WeChat's managed tags match ``desired`` (openid → tag names).

    ``managed`` (default: every name in ``desired``) are the tags membermkt owns: they are
    created when missing, added and removed; other tags are left alone but count toward the
    20-tags-per-user limit. A fan of a managed tag missing from ``desired`` (a member who
    left the rule) loses it. Reads: one ``tags/get``, the fans of each managed tag that
    exists, and ``user/info/batchget`` for the openids that gain tags; writes: see
    :class:`TagSyncPlan.calls`.
    """
    desired_sets = {o: frozenset(ts) for o, ts in desired.items()}
    managed_set = (
        frozenset(managed) if managed is not None else frozenset().union(*desired_sets.values())
    )
    existing: tuple[tags.Tag, ...] = yield tags.list_tags()
    by_name = {t.name: t for t in existing if t.name in managed_set}
    fans: dict[str, list[str]] = {}
    for name, tag in by_name.items():
        fans[name] = yield from follower_pages_of_tag(tag.id)
    plan = plan_tag_sync(desired_sets, managed=managed_set, existing=by_name.keys(), fans=fans)
    adding = sorted({o for openids in plan.add.values() for o in openids})
    if adding:
        # rule: oa.tag_limit -- tags set elsewhere count toward the 20-per-user limit (45059):
        # read each receiver's
        # tag ids (batchget, 100 per call) and plan again with them.
        managed_ids = {t.id for t in by_name.values()}
        infos: list[UserInfo] = yield from user_infos(adding)
        others = {i.openid: len(set(i.tagids) - managed_ids) for i in infos}
        plan = plan_tag_sync(
            desired_sets,
            managed=managed_set,
            existing=by_name.keys(),
            fans=fans,
            other_tag_counts=others,
        )
    ids = {name: t.id for name, t in by_name.items()}
    for name in plan.create:
        created: tags.Tag = yield tags.create_tag(name)
        ids[name] = created.id
    for name, openids in plan.remove.items():
        yield from untag_users(ids[name], openids)
    for name, openids in plan.add.items():
        yield from tag_users(ids[name], openids)
    return plan
