"""Linking official-account followers to their unionid in bulk.

:func:`sync_followers` reads followers (``user/get``, paged) and their info
(``user/info/batchget``, 100 per call) and links each follower's openid to the unionid the
platform reports (``store.link(openid, unionid, "unionid", ...)``), so the same person
following two official accounts — or known to WeCom by unionid — is one member. Followers
whose unionid would join two different people are counted as conflicts, never merged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

import attrs

from membermkt.channels.wechat.api.users import UserInfo
from membermkt.core.identity import Evidence, Identity
from membermkt.core.ports import IdentityLinks
from membermkt.errors import IdentityConflict

__all__ = ["FollowerSyncReport", "LinkTally", "sync_followers"]

log = logging.getLogger(__name__)


class _Client(Protocol):
    appid: str

    def iter_followers(self) -> Iterable[str]: ...

    def user_infos(self, openids: Sequence[str], *, lang: str = "zh_CN") -> list[UserInfo]: ...


@attrs.frozen(slots=True, kw_only=True)
class FollowerSyncReport:
    """What :func:`sync_followers` did."""

    followers: int
    with_unionid: int
    linked: int
    merges: int
    conflicts: tuple[str, ...] = ()


def sync_followers(
    client: _Client,
    store: IdentityLinks,
    *,
    openids: Iterable[str] | None = None,
    at: dt.datetime | None = None,
    batch: int = 100,
) -> FollowerSyncReport:
    """Link followers' openids to their unionids.

    Args:
        client: an :class:`~membermkt.channels.wechat.OfficialAccount`.
        store: a store with ``link`` (``InMemoryStore``, ``SqlStore``).
        openids: the followers to sync (default: every follower, ``user/get``).
        at: the time recorded on the links (default: now, UTC).
        batch: openids per ``user/info/batchget`` call (at most 100, the platform's limit).

    Raises:
        UsageError: for a batch size outside 1..100 or a naive ``at``.
        PlatformError: when the platform refuses a call.
        TransportError: when it cannot be reached.
    """
    from membermkt.errors import UsageError

    if not isinstance(batch, int) or not 1 <= batch <= 100:
        raise UsageError(f"batch must be 1..100 (user/info/batchget limit), got {batch!r}")
    when = at if at is not None else dt.datetime.now(dt.UTC)
    if when.utcoffset() is None:
        raise UsageError(f"at must be timezone-aware, got {when!r}")
    ids = list(openids) if openids is not None else list(client.iter_followers())
    tally = LinkTally()
    for i in range(0, len(ids), batch):
        tally.add(client.appid, client.user_infos(ids[i : i + batch]), store, when, BY_SYNC)
    return tally.report()


BY_SYNC = "wechat.sync_followers"
BY_CALLBACK = "wechat.callback"


class LinkTally:
    """Links followers' openids to the unionids ``user/info`` reported, counting what
    happened (shared by :func:`sync_followers` and the callback's
    :class:`~membermkt.channels.wechat.enrich.FollowerEnricher`)."""

    def __init__(self) -> None:
        self.followers = self.with_unionid = self.linked = self.merges = 0
        self.conflicts: list[str] = []

    def add(
        self, appid: str, infos: Iterable[UserInfo], store: IdentityLinks, at: dt.datetime, by: str
    ) -> None:
        """Link each follower that has a unionid (a conflict is counted, never merged)."""
        for info in infos:
            self.followers += 1
            if not info.unionid:
                continue
            self.with_unionid += 1
            try:
                out = store.link(
                    Identity.openid(appid, info.openid),
                    Identity.unionid(info.unionid),
                    Evidence.UNIONID,
                    at,
                    by=by,
                )
            except IdentityConflict as exc:
                log.warning("%s: not linking %s: %s", by, info.openid, exc)
                self.conflicts.append(info.openid)
                continue
            self.linked += out.changed
            self.merges += out.merge is not None

    def report(self) -> FollowerSyncReport:
        """The counts as a :class:`FollowerSyncReport`."""
        return FollowerSyncReport(
            followers=self.followers,
            with_unionid=self.with_unionid,
            linked=self.linked,
            merges=self.merges,
            conflicts=tuple(self.conflicts),
        )
