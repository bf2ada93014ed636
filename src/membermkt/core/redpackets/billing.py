"""Budget row keys and deterministic merchant bill numbers (v2 ``mch_billno``, v3
``out_bill_no``)."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING

from membermkt.core.redpackets._base import _ALNUM_RE, _day
from membermkt.errors import UsageError

if TYPE_CHECKING:
    from membermkt.core.redpackets.rule import RedPacketRule


def budget_keys(
    rule: RedPacketRule,
    *,
    as_of: dt.datetime,
    member_id: str | None = None,
    phone_digest: str | None = None,
    order_id: str | None = None,
    address: str | None = None,
) -> dict[str, str]:
    """The budget row keys a claim touches, by role (``total``, ``day``, ``packets``,
    ``member``, ``phone``, ``order``, ``user_day_count``, ``user_day_fen``).

    Rule rows start with ``rp:<rule>:``; the platform per-user rows start with
    ``pay:<product>:`` because they are shared by every rule paying through that product.
    """
    base = f"rp:{rule.id}"
    day = _day(as_of)
    keys = {"total": f"{base}:total", "day": f"{base}:day:{day}", "packets": f"{base}:packets"}
    if member_id is not None:
        keys["member"] = f"{base}:member:{member_id}"
    if phone_digest is not None:
        keys["phone"] = f"{base}:phone:{phone_digest}"
    if order_id is not None:
        keys["order"] = f"{base}:order:{order_id}"
    if address is not None:
        user = f"pay:{rule.product.name}:{address}:{day}"
        keys["user_day_count"] = f"{user}:n"
        keys["user_day_fen"] = f"{user}:fen"
    return keys


def bill_no(
    rule: RedPacketRule,
    member_id: str,
    sequence: int,
    as_of: dt.datetime,
    *,
    salt: int = 0,
) -> str:
    """The merchant bill number of the business key ``(rule, member, sequence)``.

    Deterministic: the same key (and ``as_of`` day, ``salt``) always gives the same number, so
    a retry re-uses it and the platform pays at most once.

    * v2 (``mch_billno``): ``mch_id + yyyymmdd + 10 digits`` (≤ 28 chars, digits/letters),
      the layout the platform suggests; the 10 digits come from SHA-256 of the key. Ten
      digits can collide between keys of one day: the engine detects a bill number already
      owned by another key in its ledger and derives again with ``salt + 1``.
    * v3 (``out_bill_no``): ``yyyymmdd + 24 hex digits`` of SHA-256 of the key (32 chars of
      ``[0-9a-f]``).

    Raises:
        UsageError: on a sequence below 1.
    """
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise UsageError(f"bill_no: sequence must be a positive int, got {sequence!r}")
    key = f"{rule.mch_id}|{rule.id}|{member_id}|{sequence}|{salt}".encode()
    digest = hashlib.sha256(key).hexdigest()
    day = _day(as_of)
    if rule.product.bill_format == "v2":
        return f"{rule.mch_id}{day}{int(digest, 16) % 10**10:010d}"
    return f"{day}{digest[:24]}"


def is_valid_bill_no(value: str, bill_format: str) -> bool:
    """Whether ``value`` is a well-formed ``mch_billno`` (``"v2"``: ≤ 28 chars) or
    ``out_bill_no`` (``"v3"``: ≤ 32 chars), both ``[0-9a-zA-Z]`` only."""
    limit = 28 if bill_format == "v2" else 32
    return isinstance(value, str) and 0 < len(value) <= limit and bool(_ALNUM_RE.match(value))
