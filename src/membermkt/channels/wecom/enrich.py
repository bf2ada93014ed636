"""Linking new WeCom customers by unionid, off the callback's 5-second path.

An ``add_external_contact`` push carries the customer's ``ExternalUserID`` but not its
unionid. :class:`ContactEnricher` takes the external_userids the
:class:`~membermkt.channels.wecom.WeComCallbackHandler` submits for new contacts, reads each
customer (``externalcontact/get``) at most ``rate`` calls per second and links the
external_userid to the unionid WeCom reports
(:func:`~membermkt.channels.wecom.identity.link_contact`, ``by="wecom.callback"``), so the
customer and the official-account follower with that unionid are one member. WeCom reports
a unionid only for WeChat users, and only when the corp is bound to the Open Platform
account (reference §WeCom contacts).

The worker runs as described in :mod:`membermkt.channels._enrich`: a daemon thread with a
sync :class:`~membermkt.channels.wecom.WeCom` client, ``await enricher.run()`` with an
``AsyncWeCom``, or :meth:`~membermkt.channels._enrich.Enricher.drain` from a job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from membermkt.channels._enrich import ClientEnricher, _utcnow
from membermkt.channels.wecom.api.contacts import ContactDetail
from membermkt.channels.wecom.identity import link_contact
from membermkt.errors import ConfigError, IdentityConflict

__all__ = ["ContactEnricher"]

log = logging.getLogger(__name__)

BY_CALLBACK = "wecom.callback"


class ContactEnricher(ClientEnricher):
    """Links new customers' external_userids to their unionids, asynchronously and
    rate-limited (one ``externalcontact/get`` per customer).

    Args:
        client: the corp's ``WeCom`` (a worker thread drains the queue) or ``AsyncWeCom``
            (run :meth:`run` as a task).
        store: a store with ``link`` (``InMemoryStore``, ``SqlStore``).
        rate: calls per second, at most (default 10).
        max_pending / retry_after / max_attempts / clock / sleep: see
            :class:`~membermkt.channels._enrich.Enricher`.
        now: the time stamped on the links (default: the wall clock, UTC).
        autostart: start the worker thread on the first submission (sync client). ``False``:
            nothing runs until :meth:`drain` or :meth:`start` is called.

    Raises:
        ConfigError: for a client without a corpid or a setting out of range.
    """

    name = "wecom-contact-enricher"

    def __init__(
        self,
        client: Any,
        store: Any,
        *,
        rate: float = 10.0,
        max_pending: int = 10_000,
        retry_after: float = 30.0,
        max_attempts: int = 3,
        now: Callable[[], dt.datetime] = _utcnow,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        autostart: bool = True,
    ) -> None:
        corpid = getattr(client, "corpid", None)
        if not isinstance(corpid, str) or not corpid:
            raise ConfigError(f"ContactEnricher needs a WeCom client, got {client!r}")
        super().__init__(
            client,
            store,
            probe="get_contact",
            batch=1,
            rate=rate,
            max_pending=max_pending,
            retry_after=retry_after,
            max_attempts=max_attempts,
            now=now,
            clock=clock,
            sleep=sleep,
            autostart=autostart,
        )
        self.corpid = corpid

    def __repr__(self) -> str:
        return f"ContactEnricher(corpid={self.corpid!r}, pending={self.pending})"

    def _link(self, detail: ContactDetail) -> None:
        contact = detail.contact
        self.stats.add("customers")
        if not contact.unionid:
            return
        self.stats.add("with_unionid")
        try:
            _, merges = link_contact(
                self.store, self.corpid, contact, at=self.now(), by=BY_CALLBACK
            )
        except IdentityConflict as exc:
            self.stats.add("conflicts")
            log.warning("%s: not linking %s: %s", BY_CALLBACK, contact.external_userid, exc)
            return
        self.stats.add("linked")
        if merges:
            self.stats.add("merges")

    def _process(self, ids: list[str]) -> None:
        for external_userid in ids:
            self._link(self.client.get_contact(external_userid))

    async def _aprocess(self, ids: list[str]) -> None:
        for external_userid in ids:
            detail = await self.client.get_contact(external_userid)
            await asyncio.to_thread(self._link, detail)
