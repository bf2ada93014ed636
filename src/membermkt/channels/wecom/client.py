"""WeCom customer-contact clients: :class:`WeCom` (sync) and :class:`AsyncWeCom` (async).

Both are thin façades over the official-account drivers
(:class:`~membermkt.channels.wechat.OfficialAccount` / ``AsyncOfficialAccount``): the same
sans-I/O flows, errcode-driven tenacity retries, call budgets, and single-flight token
refresh through a shared ``TokenCache`` — only the token policy (``/cgi-bin/gettoken``, one
token per (corpid, secret)), the host and the errcode table (carried by each
:class:`~membermkt.channels.wechat.api._call.ApiCall`) differ. Every method exists on both
with the same name and arguments (awaited on the async one).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.client import AsyncOfficialAccount, OfficialAccount
from membermkt.channels.wechat.flows import Op
from membermkt.channels.wechat.token import AsyncTokenProvider, TokenProvider
from membermkt.channels.wecom import flows
from membermkt.channels.wecom.api import contact_way, contacts, groupchat, mass, tags
from membermkt.channels.wecom.api._call import EC, HOST
from membermkt.channels.wecom.api.contact_way import ContactWay, ContactWayPage
from membermkt.channels.wecom.api.contacts import (
    ContactDetail,
    ContactPage,
    ExternalContact,
    FollowInfo,
)
from membermkt.channels.wecom.api.groupchat import GroupChat, GroupChatPage
from membermkt.channels.wecom.api.mass import (
    CustomerResult,
    CustomerResultPage,
    GroupMsgPage,
    MsgTemplate,
    TaskPage,
)
from membermkt.channels.wecom.api.tags import TagGroup
from membermkt.channels.wecom.api.token import GETTOKEN_PATH, CorpTokenPolicy
from membermkt.channels.wecom.flows import CorpTagSyncPlan, CustomerTagSync
from membermkt.core.ports import AsyncTokenCache, Clock, TokenCache
from membermkt.errors import ConfigError
from membermkt.wire.budget import CallBudget, CallBudgets
from membermkt.wire.retry import RetryPolicy

__all__ = ["DEFAULT_BUDGETS", "AsyncWeCom", "WeCom"]

T = TypeVar("T")

_APIS = (
    "get_follow_user_list",
    "list",
    "get",
    "batch/get_by_user",
    "get_corp_tag_list",
    "add_corp_tag",
    "edit_corp_tag",
    "del_corp_tag",
    "mark_tag",
    "add_contact_way",
    "get_contact_way",
    "update_contact_way",
    "del_contact_way",
    "list_contact_way",
    "add_msg_template",
    "get_groupmsg_list_v2",
    "get_groupmsg_task",
    "get_groupmsg_send_result",
    "remind_groupmsg_send",
    "cancel_groupmsg_send",
    "send_welcome_msg",
    "groupchat/list",
    "groupchat/get",
    "unionid_to_external_userid",
    "convert_to_openid",
)

DEFAULT_BUDGETS: tuple[CallBudget, ...] = (
    *(CallBudget(f"{EC}/{api}", per_minute=10_000) for api in _APIS),
    CallBudget(GETTOKEN_PATH, per_minute=10_000),
)
"""Client-side budgets (reference §5: any single API per corp 10,000/min; the 150,000/hour
cap is left to the platform's 45009, which the client raises at once as a ``RateLimitError``)."""


def _check(corpid: str, secret: str, http_client: object, transport: object) -> None:
    if not isinstance(corpid, str) or not corpid:
        raise ConfigError("a WeCom client needs a non-empty corpid")
    if not isinstance(secret, str) or not secret:
        raise ConfigError("a WeCom client needs the customer-contact (or app) secret")
    if http_client is not None and transport is not None:
        raise ConfigError("pass http_client= or transport=, not both")


class _Driver(OfficialAccount):
    """The official-account sync driver with the corp token policy (no OA calls are made
    through it)."""

    def __init__(self, corpid: str, secret: str, **kwargs: Any) -> None:
        super().__init__(corpid, secret, **kwargs)
        self.policy = CorpTokenPolicy(appid=corpid, secret=secret)
        self.tokens = TokenProvider(self.policy, self.tokens.cache, self.call, self._now)


class _AsyncDriver(AsyncOfficialAccount):
    """The official-account async driver with the corp token policy."""

    def __init__(self, corpid: str, secret: str, **kwargs: Any) -> None:
        super().__init__(corpid, secret, **kwargs)
        self.policy = CorpTokenPolicy(appid=corpid, secret=secret)
        self.tokens = AsyncTokenProvider(self.policy, self.tokens.cache, self.call, self._now)


class WeCom:
    """A synchronous WeCom customer-contact client.

    Args:
        corpid: the corp id.
        secret: the customer-contact secret, or a self-built app's secret listed under
            "可调用接口的应用" (reference §3.1). One token per (corpid, secret).
        token_cache: a ``TokenCache`` shared by every process using this secret (default: an
            in-process cache).
        http_client: your own ``httpx.Client`` (you close it); exclusive with ``transport``.
        transport: an httpx transport, e.g. the emulator's.
        base_url: the API host.
        retry: a :class:`~membermkt.wire.retry.RetryPolicy`.
        budgets: client-side call budgets (default :data:`DEFAULT_BUDGETS`; ``()``: none).
        clock: a ``Clock`` (token expiry and budgets).
        sleep: the sleep between retries (inject a no-op in tests).
        timeout: HTTP timeout in seconds.
        rng: randomness for retry jitter.
        max_token_replays: replays after 40014/42001 (default 1).

    Raises:
        ConfigError: for a missing corpid/secret or both ``http_client`` and ``transport``.
    """

    def __init__(
        self,
        corpid: str,
        secret: str,
        *,
        token_cache: TokenCache | None = None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        base_url: str = HOST,
        retry: RetryPolicy = RetryPolicy(),
        budgets: Iterable[CallBudget] | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 10.0,
        rng: random.Random | None = None,
        max_token_replays: int = 1,
    ) -> None:
        _check(corpid, secret, http_client, transport)
        self.corpid = corpid
        self._driver = _Driver(
            corpid,
            secret,
            token_cache=token_cache,
            http_client=http_client,
            transport=transport,
            base_url=base_url,
            retry=retry,
            budgets=DEFAULT_BUDGETS if budgets is None else budgets,
            clock=clock,
            sleep=sleep,
            timeout=timeout,
            rng=rng,
            max_token_replays=max_token_replays,
        )

    def __repr__(self) -> str:
        return f"WeCom(corpid={self.corpid!r})"

    @property
    def tokens(self) -> TokenProvider:
        """The token provider (``fetches`` counts token fetches by this client)."""
        return self._driver.tokens

    @property
    def budgets(self) -> CallBudgets:
        return self._driver.budgets

    @property
    def clock(self) -> Clock:
        return self._driver.clock

    def call(self, call: ApiCall[T]) -> T:
        """Run one API call: budget check, token, retries per WeCom's errcode table.

        Raises:
            PlatformError: the platform's refusal (``TokenError``, ``RateLimitError``,
                ``PermanentDeliveryError`` …).
            TransportError: no usable answer after the retries.
            QuotaExceeded: a client-side call budget is used up.
        """
        return self._driver.call(call)

    def run(self, op: Op[T]) -> T:
        """Run an operation flow (a generator of ``ApiCall``).

        Raises:
            PlatformError: as for :meth:`call`.
            TransportError: as for :meth:`call`.
        """
        return self._driver.run(op)

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        self._driver.close()

    def __enter__(self) -> WeCom:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- contacts

    def follow_users(self) -> tuple[str, ...]:
        """Staff members with customer contact enabled."""
        return self.call(contacts.follow_users())

    def list_contacts(self, userid: str) -> tuple[str, ...]:
        """A staff member's customers (empty when none)."""
        return self.call(contacts.list_contacts(userid))

    def get_contact(self, external_userid: str, *, cursor: str | None = None) -> ContactDetail:
        """A customer's detail and staff relations."""
        return self.call(contacts.get_contact(external_userid, cursor))

    def contacts_by_user(
        self, userids: Sequence[str], *, cursor: str | None = None, limit: int = 50
    ) -> ContactPage:
        """One page of ``batch/get_by_user``."""
        return self.call(contacts.batch_get_by_user(userids, cursor, limit))

    def contacts_of_staff(self, userids: Sequence[str]) -> list[tuple[ExternalContact, FollowInfo]]:
        """Every (customer, relation) of the staff members (paged, 100 userids per call)."""
        return self.run(flows.contacts_of_staff(userids))

    def unionid_to_external_userid(self, unionid: str, openid: str) -> str:
        """The customer's external_userid in this corp (feeds the identity graph)."""
        return self.call(contacts.unionid_to_external_userid(unionid, openid))

    def convert_to_openid(self, external_userid: str) -> str:
        return self.call(contacts.convert_to_openid(external_userid))

    # ----------------------------------------------------------------- corp tags

    def list_corp_tags(
        self, *, tag_ids: Iterable[str] = (), group_ids: Iterable[str] = ()
    ) -> tuple[TagGroup, ...]:
        return self.call(tags.list_corp_tags(tag_ids, group_ids))

    def add_corp_tags(self, names: Sequence[str], **group: Any) -> TagGroup:
        """Add tags (``group_id=`` or ``group_name=``, ``order=``, ``agentid=``)."""
        return self.call(tags.add_corp_tags(names, **group))

    def edit_corp_tag(
        self, tag_id: str, *, name: str | None = None, order: int | None = None
    ) -> None:
        self.call(tags.edit_corp_tag(tag_id, name=name, order=order))

    def delete_corp_tags(
        self, *, tag_ids: Iterable[str] = (), group_ids: Iterable[str] = ()
    ) -> None:
        self.call(tags.delete_corp_tags(tag_ids, group_ids))

    def mark_tag(
        self,
        userid: str,
        external_userid: str,
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> None:
        self.call(tags.mark_tag(userid, external_userid, add=add, remove=remove))

    def sync_corp_tags(
        self, desired: Mapping[str, Iterable[str]], *, delete_extra: bool = True
    ) -> CorpTagSyncPlan:
        """Make WeCom's corp tags match membermkt's (see :func:`flows.sync_corp_tags`)."""
        return self.run(flows.sync_corp_tags(desired, delete_extra=delete_extra))

    def sync_customer_tags(
        self, group: str, desired: Mapping[str, Iterable[str]], *, userids: Sequence[str]
    ) -> CustomerTagSync:
        """Make the customers' tags in ``group`` match membermkt's (see
        :func:`flows.sync_customer_tags`)."""
        return self.run(flows.sync_customer_tags(group, desired, userids))

    # ----------------------------------------------------------------- contact ways

    def add_contact_way(self, **options: Any) -> ContactWay:
        """Create a contact way (keywords of :func:`api.contact_way.add_contact_way`)."""
        return self.call(contact_way.add_contact_way(**options))

    def get_contact_way(self, config_id: str) -> ContactWay:
        return self.call(contact_way.get_contact_way(config_id))

    def update_contact_way(self, config_id: str, **options: Any) -> None:
        self.call(contact_way.update_contact_way(config_id, **options))

    def del_contact_way(self, config_id: str) -> None:
        self.call(contact_way.del_contact_way(config_id))

    def list_contact_ways(self, **options: Any) -> ContactWayPage:
        return self.call(contact_way.list_contact_ways(**options))

    # ----------------------------------------------------------------- mass & welcome

    def add_msg_template(self, **options: Any) -> MsgTemplate:
        """Create a customer mass-send task (keywords of :func:`api.mass.add_msg_template`);
        staff must confirm it in the client."""
        return self.call(mass.add_msg_template(**options))

    def groupmsg_list(self, **options: Any) -> GroupMsgPage:
        return self.call(mass.groupmsg_list(**options))

    def groupmsg_tasks(
        self, msgid: str, *, cursor: str | None = None, limit: int = 500
    ) -> TaskPage:
        return self.call(mass.groupmsg_tasks(msgid, cursor=cursor, limit=limit))

    def groupmsg_send_results(
        self, msgid: str, userid: str, *, cursor: str | None = None, limit: int = 500
    ) -> CustomerResultPage:
        return self.call(mass.groupmsg_send_results(msgid, userid, cursor=cursor, limit=limit))

    def mass_results(self, msgid: str) -> list[CustomerResult]:
        """Every per-customer result of a mass message (all senders, all pages)."""
        return self.run(flows.mass_results(msgid))

    def remind_groupmsg_send(self, msgid: str) -> None:
        self.call(mass.remind_groupmsg_send(msgid))

    def cancel_groupmsg_send(self, msgid: str) -> None:
        self.call(mass.cancel_groupmsg_send(msgid))

    def send_welcome(
        self,
        welcome_code: str,
        *,
        text: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Send the welcome message for an add event's ``WelcomeCode`` (once, within 20 s).

        Raises:
            PermanentDeliveryError: 41051 — the code is unusable; never retry it.
        """
        self.call(mass.send_welcome_msg(welcome_code, text=text, attachments=attachments))

    # ----------------------------------------------------------------- group chats

    def groupchats(self, **options: Any) -> GroupChatPage:
        return self.call(groupchat.groupchats(**options))

    def groupchat(self, chat_id: str, *, need_name: bool = False) -> GroupChat:
        return self.call(groupchat.groupchat(chat_id, need_name=need_name))


class AsyncWeCom:
    """The async twin of :class:`WeCom`: the same arguments and methods, awaited
    (``async with`` / :meth:`aclose`). ``token_cache`` may be async or sync.

    Raises:
        ConfigError: for a missing corpid/secret or both ``http_client`` and ``transport``.
    """

    def __init__(
        self,
        corpid: str,
        secret: str,
        *,
        token_cache: AsyncTokenCache | TokenCache | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        base_url: str = HOST,
        retry: RetryPolicy = RetryPolicy(),
        budgets: Iterable[CallBudget] | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timeout: float = 10.0,
        rng: random.Random | None = None,
        max_token_replays: int = 1,
    ) -> None:
        _check(corpid, secret, http_client, transport)
        self.corpid = corpid
        self._driver = _AsyncDriver(
            corpid,
            secret,
            token_cache=token_cache,
            http_client=http_client,
            transport=transport,
            base_url=base_url,
            retry=retry,
            budgets=DEFAULT_BUDGETS if budgets is None else budgets,
            clock=clock,
            sleep=sleep,
            timeout=timeout,
            rng=rng,
            max_token_replays=max_token_replays,
        )

    def __repr__(self) -> str:
        return f"AsyncWeCom(corpid={self.corpid!r})"

    @property
    def tokens(self) -> AsyncTokenProvider:
        return self._driver.tokens

    @property
    def budgets(self) -> CallBudgets:
        return self._driver.budgets

    @property
    def clock(self) -> Clock:
        return self._driver.clock

    async def call(self, call: ApiCall[T]) -> T:
        """Run one API call (see :meth:`WeCom.call`).

        Raises:
            PlatformError: the platform's refusal.
            TransportError: no usable answer after the retries.
            QuotaExceeded: a client-side call budget is used up.
        """
        return await self._driver.call(call)

    async def run(self, op: Op[T]) -> T:
        """Run an operation flow.

        Raises:
            PlatformError: as for :meth:`call`.
            TransportError: as for :meth:`call`.
        """
        return await self._driver.run(op)

    async def aclose(self) -> None:
        await self._driver.aclose()

    async def __aenter__(self) -> AsyncWeCom:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def follow_users(self) -> tuple[str, ...]:
        return await self.call(contacts.follow_users())

    async def list_contacts(self, userid: str) -> tuple[str, ...]:
        return await self.call(contacts.list_contacts(userid))

    async def get_contact(
        self, external_userid: str, *, cursor: str | None = None
    ) -> ContactDetail:
        return await self.call(contacts.get_contact(external_userid, cursor))

    async def contacts_by_user(
        self, userids: Sequence[str], *, cursor: str | None = None, limit: int = 50
    ) -> ContactPage:
        return await self.call(contacts.batch_get_by_user(userids, cursor, limit))

    async def contacts_of_staff(
        self, userids: Sequence[str]
    ) -> list[tuple[ExternalContact, FollowInfo]]:
        return await self.run(flows.contacts_of_staff(userids))

    async def unionid_to_external_userid(self, unionid: str, openid: str) -> str:
        return await self.call(contacts.unionid_to_external_userid(unionid, openid))

    async def convert_to_openid(self, external_userid: str) -> str:
        return await self.call(contacts.convert_to_openid(external_userid))

    async def list_corp_tags(
        self, *, tag_ids: Iterable[str] = (), group_ids: Iterable[str] = ()
    ) -> tuple[TagGroup, ...]:
        return await self.call(tags.list_corp_tags(tag_ids, group_ids))

    async def add_corp_tags(self, names: Sequence[str], **group: Any) -> TagGroup:
        return await self.call(tags.add_corp_tags(names, **group))

    async def edit_corp_tag(
        self, tag_id: str, *, name: str | None = None, order: int | None = None
    ) -> None:
        await self.call(tags.edit_corp_tag(tag_id, name=name, order=order))

    async def delete_corp_tags(
        self, *, tag_ids: Iterable[str] = (), group_ids: Iterable[str] = ()
    ) -> None:
        await self.call(tags.delete_corp_tags(tag_ids, group_ids))

    async def mark_tag(
        self,
        userid: str,
        external_userid: str,
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> None:
        await self.call(tags.mark_tag(userid, external_userid, add=add, remove=remove))

    async def sync_corp_tags(
        self, desired: Mapping[str, Iterable[str]], *, delete_extra: bool = True
    ) -> CorpTagSyncPlan:
        return await self.run(flows.sync_corp_tags(desired, delete_extra=delete_extra))

    async def sync_customer_tags(
        self, group: str, desired: Mapping[str, Iterable[str]], *, userids: Sequence[str]
    ) -> CustomerTagSync:
        return await self.run(flows.sync_customer_tags(group, desired, userids))

    async def add_contact_way(self, **options: Any) -> ContactWay:
        return await self.call(contact_way.add_contact_way(**options))

    async def get_contact_way(self, config_id: str) -> ContactWay:
        return await self.call(contact_way.get_contact_way(config_id))

    async def update_contact_way(self, config_id: str, **options: Any) -> None:
        await self.call(contact_way.update_contact_way(config_id, **options))

    async def del_contact_way(self, config_id: str) -> None:
        await self.call(contact_way.del_contact_way(config_id))

    async def list_contact_ways(self, **options: Any) -> ContactWayPage:
        return await self.call(contact_way.list_contact_ways(**options))

    async def add_msg_template(self, **options: Any) -> MsgTemplate:
        return await self.call(mass.add_msg_template(**options))

    async def groupmsg_list(self, **options: Any) -> GroupMsgPage:
        return await self.call(mass.groupmsg_list(**options))

    async def groupmsg_tasks(
        self, msgid: str, *, cursor: str | None = None, limit: int = 500
    ) -> TaskPage:
        return await self.call(mass.groupmsg_tasks(msgid, cursor=cursor, limit=limit))

    async def groupmsg_send_results(
        self, msgid: str, userid: str, *, cursor: str | None = None, limit: int = 500
    ) -> CustomerResultPage:
        return await self.call(
            mass.groupmsg_send_results(msgid, userid, cursor=cursor, limit=limit)
        )

    async def mass_results(self, msgid: str) -> list[CustomerResult]:
        return await self.run(flows.mass_results(msgid))

    async def remind_groupmsg_send(self, msgid: str) -> None:
        await self.call(mass.remind_groupmsg_send(msgid))

    async def cancel_groupmsg_send(self, msgid: str) -> None:
        await self.call(mass.cancel_groupmsg_send(msgid))

    async def send_welcome(
        self,
        welcome_code: str,
        *,
        text: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """See :meth:`WeCom.send_welcome`.

        Raises:
            PermanentDeliveryError: 41051 — the code is unusable; never retry it.
        """
        await self.call(mass.send_welcome_msg(welcome_code, text=text, attachments=attachments))

    async def groupchats(self, **options: Any) -> GroupChatPage:
        return await self.call(groupchat.groupchats(**options))

    async def groupchat(self, chat_id: str, *, need_name: bool = False) -> GroupChat:
        return await self.call(groupchat.groupchat(chat_id, need_name=need_name))
