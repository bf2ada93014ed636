"""The campaign itself, skips and their reasons, and delivery idempotency keys."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from typing import Any

import attrs

from membermkt.core.accounts import AccountType, channel_rules
from membermkt.core.accounts import account_type as _account_type
from membermkt.core.campaigns._timing import QuietHours, Schedule
from membermkt.core.campaigns._variants import Variant, _name, assign
from membermkt.core.delivery import Delivery
from membermkt.core.quotas import Cap, ChannelRules
from membermkt.core.segments import Segment
from membermkt.errors import UsageError


class SkipReason(enum.StrEnum):
    """Why an audience member gets nothing from a campaign."""

    OUTSIDE_SCHEDULE = "outside_schedule"
    NO_CONSENT = "no_consent"
    UNSUBSCRIBED = "unsubscribed"
    NO_ADDRESS = "no_address"
    QUIET_HOURS = "quiet_hours"
    FREQUENCY_CAP = "frequency_cap"
    PLATFORM_QUOTA = "platform_quota"
    OUTSIDE_WINDOW = "outside_window"
    HOLDOUT = "holdout"
    MISSING_FIELD = "missing_field"
    CONTENT_INVALID = "content_invalid"


def _to_variants(value: Iterable[Variant]) -> tuple[Variant, ...]:
    out = tuple(value)
    if not out:
        raise UsageError("a campaign needs at least one Variant")
    names = [v.name for v in out]
    for v in out:
        if not isinstance(v, Variant):
            raise UsageError(f"Campaign.variants must hold Variant values, got {v!r}")
    if len(set(names)) != len(names):
        raise UsageError(f"variant names must be unique, got {names}")
    return out


def _check_holdout(instance: object, attribute: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise UsageError(f"Campaign.holdout must be a fraction in [0, 1), got {value!r}")


def _to_caps(value: Iterable[Cap]) -> tuple[Cap, ...]:
    out = tuple(value)
    for c in out:
        if not isinstance(c, Cap):
            raise UsageError(f"Campaign.caps must hold Cap values, got {c!r}")
    return out


@attrs.frozen(slots=True, kw_only=True)
class Campaign:
    """Reach the right members with the right message, within the rules.

    Args:
        id: the campaign id (also the default hashing salt and part of idempotency keys).
        audience: the :class:`~membermkt.core.segments.Segment` to reach.
        channel: the channel name (``"wechat.mass"``, ``"wechat.template"``, ...).
        variants: one or more :class:`Variant` (A/B test when several).
        holdout: fraction of eligible members held out (sent nothing, measured for lift).
        caps: frequency caps per member (:class:`~membermkt.core.quotas.Cap`; ``channels=None``
            means this campaign's channel).
        quiet_hours: a :class:`QuietHours`, if any.
        schedule: a :class:`Schedule`, if any.
        address_kind / address_namespace: the identity used as address (``"openid"`` and the
            appid; ``"external_userid"`` and the corpid).
        rules: the platform rules; default: the built-in channel's rules for the account
            type (:func:`membermkt.core.accounts.channel_rules`), else no platform rules.
        account_type: the official account's type, ``"service"`` (default) or
            ``"subscription"`` (:mod:`membermkt.core.accounts`): decides the default rules.
        salt: hashing salt for holdout and variants (default: ``id``).

    Raises:
        UsageError: for any invalid field.
    """

    id: str = attrs.field(validator=_name("Campaign.id"))
    audience: Segment = attrs.field()
    channel: str = attrs.field(validator=_name("Campaign.channel"))
    variants: tuple[Variant, ...] = attrs.field(converter=_to_variants)
    holdout: float = attrs.field(default=0.0, validator=_check_holdout)
    caps: tuple[Cap, ...] = attrs.field(default=(), converter=_to_caps)
    quiet_hours: QuietHours | None = None
    schedule: Schedule | None = None
    address_kind: str = "openid"
    address_namespace: str = ""
    rules: ChannelRules | None = None
    salt: str = ""
    account_type: AccountType = attrs.field(default=AccountType.SERVICE, converter=_account_type)

    @audience.validator
    def _check_audience(self, attribute: object, value: Any) -> None:
        if not isinstance(value, Segment):
            raise UsageError(f"Campaign.audience must be a Segment, got {value!r}")

    @property
    def platform_rules(self) -> ChannelRules:
        """The rules in force (explicit ``rules`` or the built-in default for the channel)."""
        if self.rules is not None:
            return self.rules
        return channel_rules(self.channel, self.account_type)

    @property
    def hash_salt(self) -> str:
        return self.salt or self.id

    def variant_for(self, member_id: str) -> str:
        """The variant (or ``"holdout"``) a member gets if eligible — deterministic."""
        return assign(member_id, self.variants, self.holdout, self.hash_salt)


@attrs.frozen(slots=True, kw_only=True)
class Skip:
    """An audience member who gets nothing, and why.

    Attributes:
        member_id: the member.
        reason: a :class:`SkipReason`.
        variant: the assigned variant (``"holdout"`` for holdouts), or ``None`` when skipped
            before assignment.
        detail: more context (cap name, missing field, ...).
    """

    member_id: str
    reason: SkipReason
    variant: str | None = None
    detail: str | None = None


PlanItem = Delivery | Skip
"""What :func:`plan` yields."""


def delivery_key(campaign_id: str, member_id: str) -> str:
    """The idempotency key of a campaign's delivery to a member: stable across re-plans (a
    member gets at most one delivery per campaign), 40 hex chars (fits mass ``clientmsgid``'s
    64 bytes with room for a batch suffix, ref §1.4)."""
    d = hashlib.sha256(f"membermkt-delivery\x00{campaign_id}\x00{member_id}".encode())
    return d.hexdigest()[:40]
