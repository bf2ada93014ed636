"""The WeCom callback handler with the corp's client: a new contact's unionid is read
(externalcontact/get) off the answer path and linked, so the customer and the official-account
follower are one member; WeCom sync links the same way (never a silent move)."""

from __future__ import annotations

import datetime as dt

import pytest

from membermkt.channels.wecom import WeComCallbackHandler, WeComEndpoint
from membermkt.channels.wecom.enrich import ContactEnricher
from membermkt.channels.wecom.identity import sync_contacts
from membermkt.core.identity import Evidence, Identity
from membermkt.errors import ConfigError
from membermkt.stores.memory import InMemoryStore
from membermkt.stores.sql import SqlStore

from .conftest import CORPID

AT = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
OA = (Identity.openid("wxOA", "o-ann"), Identity.unionid("u-ann"))


def endpoint(corp) -> WeComEndpoint:
    return WeComEndpoint(corpid=CORPID, token=corp.token, encoding_aes_key=corp.encoding_aes_key)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_new_contact_is_linked_to_the_follower_by_unionid(client, corp, emu, kind) -> None:
    store = InMemoryStore() if kind == "memory" else SqlStore("sqlite://")
    follower = store.link(*OA, Evidence.UNIONID, AT, by="wechat.sync_followers").member_id
    enricher = ContactEnricher(client, store, autostart=False, now=lambda: AT)
    h = WeComCallbackHandler(
        endpoint(corp), store=store, enricher=enricher, clock=corp.emulator.now
    )
    push = corp.add_customer("clerk1", "wmAnn", unionid="u-ann", state="store-9")
    status, _, body = h.handle(push.method, dict(push.query), push.body)
    assert (status, body) == (200, b"success")
    ext = Identity.external_userid(CORPID, "wmAnn")
    assert store.resolve(ext) not in (None, follower)  # answered first, linked later
    assert emu.calls["/cgi-bin/externalcontact/get"] == 0
    assert enricher.pending == 1
    # a re-push is not queued twice
    h.handle(push.method, dict(push.query), push.body)
    assert enricher.pending == 1
    assert enricher.drain() == 1
    assert emu.calls["/cgi-bin/externalcontact/get"] == 1
    one = store.resolve(ext)
    assert one is not None
    assert one == store.resolve(OA[0]) == store.resolve(OA[1])
    member = store.get_member(one)
    assert member is not None
    assert member.state.source == "store-9"
    merges = store.merges(one)
    assert [m.link.by for m in merges] == ["wecom.callback"]
    assert (enricher.stats["linked"], enricher.stats["merges"]) == (1, 1)
    h.close()


def test_a_contact_without_unionid_stays_its_own_member(client, corp) -> None:
    store = InMemoryStore()
    enricher = ContactEnricher(client, store, autostart=False)
    h = WeComCallbackHandler(endpoint(corp), store=store, enricher=enricher)
    push = corp.add_customer("clerk1", "wmBob")
    h.handle(push.method, dict(push.query), push.body, received_at=corp.emulator.now())
    assert enricher.drain() == 1
    assert (enricher.stats["customers"], enricher.stats["with_unionid"]) == (1, 0)
    assert store.merges() == []


def test_sync_reports_a_refused_link_instead_of_moving_the_unionid(client, corp) -> None:
    """A unionid whose member already holds another external_userid of the corp: two
    people by the rules, so sync reports a conflict and moves nothing."""
    store = InMemoryStore()
    other = Identity.external_userid(CORPID, "wmOld")
    held = store.link(other, OA[1], Evidence.UNIONID, AT, by="test").member_id
    corp.add_customer("clerk1", "wmAnn", unionid="u-ann")
    report = sync_contacts(client, store, ["clerk1"], at=AT)
    assert report.conflicts == ("wmAnn",)
    assert store.resolve(OA[1]) == held
    assert store.resolve(Identity.external_userid(CORPID, "wmAnn")) is None


def test_configuration_errors(client, corp) -> None:
    store = InMemoryStore()
    with pytest.raises(ConfigError, match="not both"):
        WeComCallbackHandler(
            endpoint(corp), store=store, client=client, enricher=ContactEnricher(client, store)
        )
    with pytest.raises(ConfigError, match="another corp"):
        WeComCallbackHandler(
            WeComEndpoint(
                corpid="ww-other", token=corp.token, encoding_aes_key=corp.encoding_aes_key
            ),
            store=store,
            client=client,
        )
    with pytest.raises(ConfigError, match="WeCom client"):
        ContactEnricher(object(), store)


def test_the_first_push_of_a_customer_added_before_is_enriched_too(client, corp) -> None:
    """A customer added before the endpoint existed shows up first through another push
    (here: the clerk edits its remark); it is read once. A re-push, a further push of the
    now known customer, or a first push that is a deletion is not."""
    store = InMemoryStore()
    corp.add_customer("clerk1", "wmAnn", unionid="u-ann")  # push never delivered
    corp.add_customer("clerk1", "wmBob", unionid="u-bob")  # push never delivered
    enricher = ContactEnricher(client, store, autostart=False)
    h = WeComCallbackHandler(endpoint(corp), store=store, enricher=enricher)

    def deliver(push) -> None:
        h.handle(push.method, dict(push.query), push.body, received_at=corp.emulator.now())

    edit = corp.contact_push("edit_external_contact", "clerk1", "wmAnn")
    deliver(edit)
    assert enricher.pending == 1
    deliver(edit)  # a re-push
    assert enricher.drain() == 1
    one = store.resolve(Identity.external_userid(CORPID, "wmAnn"))
    assert one is not None
    assert one == store.resolve(Identity.unionid("u-ann"))
    deliver(
        corp.contact_push("edit_external_contact", "clerk1", "wmAnn", at=corp.emulator.now() + 1)
    )
    deliver(corp.customer_deletes_staff("clerk1", "wmBob"))
    assert enricher.pending == 0
    assert store.resolve(Identity.external_userid(CORPID, "wmBob")) is not None
