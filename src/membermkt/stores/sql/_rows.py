"""Conversions between core values and SQL rows (not public API)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from membermkt.core._frozen import Scalar
from membermkt.core.delivery import Delivery, DeliveryRecord, DeliveryStatus
from membermkt.core.identity import Identity
from membermkt.core.members import (
    Consent,
    Member,
    MemberState,
    Profile,
    PurchaseStats,
    Relation,
)
from membermkt.core.ports import PayoutIntent
from membermkt.core.segments import member_hash
from membermkt.errors import UsageError
from membermkt.stores.sql._codec import (
    PROFILE_COLS,
    STATE_COLS,
    _dt,
    _tb_in,
    _tb_out,
    _us,
    check_text,
    dumps,
)
from membermkt.stores.sql._event_rows import (
    EVENT_COLS,
    event_from_row,
    event_row,
    fold_events,
    fold_events_reference,
    fold_state_values,
)
from membermkt.stores.sql.compile import from_epoch_us, to_epoch_us
from membermkt.stores.sql.schema import ATTR_TEXT_LEN, ID_LEN, TOKEN_LEN

__all__ = [
    "EVENT_COLS",
    "PROFILE_COLS",
    "STATE_COLS",
    "attribute_rows",
    "check_text",
    "delivery_record",
    "delivery_row",
    "dumps",
    "event_from_row",
    "event_row",
    "fold_events",
    "fold_events_reference",
    "fold_state_values",
    "intent_from_row",
    "intent_row",
    "member_from_rows",
    "member_row",
    "new_member_values",
    "state_from_row",
    "state_row",
]


def state_row(s: MemberState) -> dict[str, Any]:
    """The state columns of a member row."""
    p = s.purchases
    return {
        "subscribed": s.subscribed,
        "sub_at": _us(s.subscription_version[0]) if s.subscription_version else None,
        "sub_tb": _tb_out(s.subscription_version[1]) if s.subscription_version else None,
        "followed_at": _us(s.followed_at),
        "source": s.source,
        "source_at": _us(s.source_version[0]) if s.source_version else None,
        "source_tb": _tb_out(s.source_version[1]) if s.source_version else None,
        "last_active_at": _us(s.last_active_at),
        "orders_count": p.count,
        "orders_total_fen": p.total_fen,
        "first_order_at": _us(p.first_at),
        "last_order_at": _us(p.last_at),
        "categories": dumps(sorted(p.categories)) if p.categories else None,
        "wecom_contact": s.wecom_contact,
        "contact_at": _us(s.contact_version[0]) if s.contact_version else None,
        "contact_tb": _tb_out(s.contact_version[1]) if s.contact_version else None,
        "last_event_at": _us(s.last_event_at),
        "relations": _relations_out(s.relations) if s.relations else None,
    }


def _relations_out(rels: tuple[Relation, ...]) -> str:
    return dumps(
        [
            [
                r.staff,
                _us(r.added[0]) if r.added else None,
                r.added[1] if r.added else None,
                r.state,
                _us(r.deleted[0]) if r.deleted else None,
                r.deleted[1] if r.deleted else None,
            ]
            for r in rels
        ]
    )


def _relations_in(text: str | None) -> tuple[Relation, ...]:
    if not text:
        return ()
    out = []
    for staff, a_at, a_tb, state, d_at, d_tb in json.loads(text):
        added = (from_epoch_us(int(a_at)), a_tb) if a_at is not None else None
        deleted = (from_epoch_us(int(d_at)), d_tb) if d_at is not None else None
        out.append(Relation(staff=staff, added=added, state=state, deleted=deleted))
    return tuple(out)


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def state_from_row(r: Mapping[Any, Any]) -> MemberState:
    """The :class:`MemberState` held by a member row."""

    def version(at: str, tb: str) -> tuple[dt.datetime, str] | None:
        if r[at] is None:
            return None
        when = _dt(r[at])
        assert when is not None
        return (when, _tb_in(r[tb] or ""))

    return MemberState(
        subscribed=_bool(r["subscribed"]),
        subscription_version=version("sub_at", "sub_tb"),
        followed_at=_dt(r["followed_at"]),
        source=r["source"],
        source_version=version("source_at", "source_tb"),
        last_active_at=_dt(r["last_active_at"]),
        purchases=PurchaseStats(
            count=int(r["orders_count"]),
            total_fen=int(r["orders_total_fen"]),
            first_at=_dt(r["first_order_at"]),
            last_at=_dt(r["last_order_at"]),
            categories=frozenset(json.loads(r["categories"])) if r["categories"] else (),
        ),
        wecom_contact=_bool(r["wecom_contact"]),
        contact_version=version("contact_at", "contact_tb"),
        last_event_at=_dt(r["last_event_at"]),
        relations=_relations_in(r["relations"]),
    )


def member_row(m: Member, state: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The member row of ``m`` (``state``: stored state columns to keep instead).

    Raises:
        UsageError: for text too long for its column.
    """
    p = m.profile
    for name in ("city", "province", "country", "income_band", "tier"):
        check_text(f"member {m.id!r} profile.{name}", getattr(p, name))
    if m.state.source is not None:
        check_text(f"member {m.id!r} state.source", m.state.source)
    row: dict[str, Any] = {
        "id": m.id,
        "member_hash": member_hash(m.id),
        "gender": p.gender,
        "city": p.city,
        "province": p.province,
        "country": p.country,
        "birthday": p.birthday.toordinal() if p.birthday is not None else None,
        "income_band": p.income_band,
        "tier": p.tier,
        "marketing": m.consent.marketing,
        "opted_out": dumps(sorted(m.consent.opted_out_channels))
        if m.consent.opted_out_channels
        else None,
    }
    row.update(state if state is not None else state_row(m.state))
    return row


_NEW_MEMBER: dict[str, Any] | None = None


def new_member_row(member_id: str) -> dict[str, Any]:
    """The row of a member first seen through an event."""
    global _NEW_MEMBER
    if _NEW_MEMBER is None:
        _NEW_MEMBER = member_row(Member("template"))
    row = dict(_NEW_MEMBER)
    row["id"] = member_id
    row["member_hash"] = member_hash(member_id)
    return row


MEMBER_COLS: tuple[str, ...] = tuple(new_member_row("template"))
"""Every column of a member row, in :func:`new_member_values` order (state columns last)."""
_NEW_HEAD = tuple(new_member_row("template")[c] for c in MEMBER_COLS[2 : -len(STATE_COLS)])
EMPTY_STATE_VALUES: tuple[Any, ...] = tuple(state_row(MemberState()).values())
"""The state columns of a member no event has touched, in ``STATE_COLS`` order."""


def new_member_values(
    member_id: str, state: tuple[Any, ...] = EMPTY_STATE_VALUES
) -> tuple[Any, ...]:
    """The row of a member first seen through an event, as a tuple in :data:`MEMBER_COLS`
    order, with the ``STATE_COLS`` values ``state``."""
    return (member_id, member_hash(member_id), *_NEW_HEAD, *state)


def attribute_rows(m: Member) -> list[dict[str, Any]]:
    """The attribute-table rows of ``m``.

    Raises:
        UsageError: for a name or text too long, or an int beyond 64 bits.
    """
    out = []
    for name, v in m.attributes.items():
        check_text(f"member {m.id!r} attribute name", name, 64)
        row: dict[str, Any] = {"member_id": m.id, "name": name, "s": None, "i": None, "n": None}
        if isinstance(v, bool):
            row.update(kind="b", i=int(v))
        elif isinstance(v, int):
            if not -(2**63) <= v < 2**63:
                raise UsageError(f"member {m.id!r} attribute {name!r}: int out of the 64-bit range")
            row.update(kind="i", i=v, n=float(v))
        elif isinstance(v, float):
            row.update(kind="f", n=v)
        else:
            check_text(f"member {m.id!r} attribute {name!r}", v, ATTR_TEXT_LEN)
            row.update(kind="s", s=v)
        out.append(row)
    return out


def _attr_value(r: Mapping[Any, Any]) -> Scalar:
    kind = r["kind"]
    if kind == "b":
        return bool(r["i"])
    if kind == "i":
        return int(r["i"])
    if kind == "f":
        return float(r["n"])
    return str(r["s"])


def identity_rows(m: Member) -> list[dict[str, Any]]:
    """The identity rows of ``m``.

    Raises:
        UsageError: for an identity token too long.
    """
    out = []
    for i in m.identities:
        check_text(f"member {m.id!r} identity", i.token, TOKEN_LEN)
        out.append({"token": i.token, "member_id": m.id})
    return out


def tag_rows(m: Member) -> list[dict[str, Any]]:
    """The tag rows of ``m``.

    Raises:
        UsageError: for a tag name too long.
    """
    for t in m.tags:
        check_text(f"member {m.id!r} tag", t)
    return [{"member_id": m.id, "tag": t} for t in sorted(m.tags)]


def member_from_rows(
    r: Mapping[Any, Any],
    tags: Iterable[str],
    attributes: Iterable[Mapping[str, Any]],
    tokens: Iterable[str],
) -> Member:
    """Rebuild a :class:`Member` from its row and its tag, attribute and identity rows."""
    birthday = r["birthday"]
    return Member(
        r["id"],
        Profile(
            gender=r["gender"],
            city=r["city"],
            province=r["province"],
            country=r["country"],
            birthday=dt.date.fromordinal(int(birthday)) if birthday is not None else None,
            income_band=r["income_band"],
            tier=r["tier"],
        ),
        frozenset(tags),
        {a["name"]: _attr_value(a) for a in attributes},
        [Identity.from_token(t) for t in tokens],
        state=state_from_row(r),
        consent=Consent(
            marketing=bool(r["marketing"]),
            opted_out_channels=json.loads(r["opted_out"]) if r["opted_out"] else (),
        ),
    )


def delivery_row(d: Delivery, now: dt.datetime) -> dict[str, Any]:
    """The ledger row of a newly planned delivery.

    Raises:
        UsageError: for a payload that is not JSON-able or text too long.
    """
    for name in ("key", "campaign_id", "channel", "variant"):
        check_text(f"Delivery.{name}", getattr(d, name))
    check_text("Delivery.member_id", d.member_id, ID_LEN)
    check_text("Delivery.address", d.address, TOKEN_LEN)
    try:
        payload = dumps(d.payload.to_dict())
    except (TypeError, ValueError) as exc:
        raise UsageError(f"delivery {d.key!r}: payload is not JSON-serialisable: {exc}") from exc
    return {
        "key": d.key,
        "campaign_id": d.campaign_id,
        "member_id": d.member_id,
        "channel": d.channel,
        "address": d.address,
        "variant": d.variant,
        "payload": payload,
        "status": DeliveryStatus.PLANNED.value,
        "attempts": 0,
        "reason": None,
        "platform_id": None,
        "updated_at": to_epoch_us(now),
        "worker": None,
    }


def delivery_record(r: Mapping[Any, Any]) -> DeliveryRecord:
    """Rebuild a :class:`DeliveryRecord` from its row."""
    return DeliveryRecord(
        delivery=Delivery(
            key=r["key"],
            campaign_id=r["campaign_id"],
            member_id=r["member_id"],
            channel=r["channel"],
            address=r["address"],
            variant=r["variant"],
            payload=json.loads(r["payload"]),
        ),
        status=DeliveryStatus(r["status"]),
        attempts=int(r["attempts"]),
        reason=r["reason"],
        platform_id=r["platform_id"],
        updated_at=_dt(r["updated_at"]),
        worker=r["worker"],
    )


def intent_row(i: PayoutIntent) -> dict[str, Any]:
    """The payout row of ``i``.

    Raises:
        UsageError: for text too long.
    """
    for name in ("bill_no", "rule_id"):
        check_text(f"PayoutIntent.{name}", getattr(i, name))
    check_text("PayoutIntent.member_id", i.member_id, ID_LEN)
    check_text("PayoutIntent.address", i.address, TOKEN_LEN)
    return {
        "bill_no": i.bill_no,
        "rule_id": i.rule_id,
        "member_id": i.member_id,
        "address": i.address,
        "amount_fen": i.amount_fen,
        "status": i.status,
        "reservations": dumps([list(x) for x in i.reservations]),
        "detail": i.detail,
        "created_at": _us(i.created_at),
        "updated_at": _us(i.updated_at),
    }


def intent_from_row(r: Mapping[Any, Any]) -> PayoutIntent:
    """Rebuild a :class:`PayoutIntent` from its row."""
    return PayoutIntent(
        bill_no=r["bill_no"],
        rule_id=r["rule_id"],
        member_id=r["member_id"],
        address=r["address"],
        amount_fen=int(r["amount_fen"]),
        status=r["status"],
        reservations=tuple((str(k), int(a)) for k, a in json.loads(r["reservations"])),
        detail=r["detail"],
        created_at=_dt(r["created_at"]),
        updated_at=_dt(r["updated_at"]),
    )
