"""Conditional (personalised) menus: ``menu/addconditional``, ``delconditional``,
``trymatch`` and the full ``menu/get`` answer (reference §1.8; official doc
"addConditionalMenu").

Rules this module enforces before calling:

* the buttons obey the default menu's limits (:func:`~.menu.validate_menu`);
* a ``matchrule`` has at least one field; a city needs a province and a province a
  country (65310/65311 on the platform — codes unconfirmed);
* the privacy fields (``sex``, ``country``/``province``/``city``, ``language``) are refused:
  the platform stopped matching on them and refuses new rules containing them with
  **65320** (confirmed by the current official doc). They stay in :class:`MatchRule` only so
  old menus read back from ``menu/get`` can be represented.

Conditional menus are matched newest first; a follower with several tags is matched by the
tag applied **last** (official doc), so keep menu tags mutually exclusive
(:class:`~membermkt.channels.wechat.menuset.MenuSet` does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall, need
from membermkt.channels.wechat.api.menu import Button, validate_menu
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = [
    "ADD_PATH",
    "ConditionalMenu",
    "MatchRule",
    "MenuState",
    "add_conditional",
    "del_conditional",
    "menu_state",
    "try_match",
]

ADD_PATH = "/cgi-bin/menu/addconditional"
DEL_PATH = "/cgi-bin/menu/delconditional"
TRYMATCH_PATH = "/cgi-bin/menu/trymatch"
PLATFORM_TYPES = frozenset({"1", "2", "3"})
"""``client_platform_type``: iOS (1), Android (2), others (3)."""
PRIVACY_FIELDS = ("sex", "country", "province", "city", "language")
MAX_URL_DOMAINS = 3
"""All conditional menus of an account may link to URLs under at most 3 domains (65316 on
the platform — code unconfirmed)."""


@attrs.frozen(slots=True, kw_only=True)
class MatchRule:
    """Who sees a conditional menu.

    Attributes:
        tag_id: a WeChat user-tag id (the way to target a segment: see ``MenuSet``).
        client_platform_type: ``"1"`` iOS, ``"2"`` Android, ``"3"`` others.
        sex, country, province, city, language: privacy fields, no longer accepted by the
            platform for new menus (65320); read-only here.
    """

    tag_id: str | None = None
    client_platform_type: str | None = None
    sex: str | None = None
    country: str | None = None
    province: str | None = None
    city: str | None = None
    language: str | None = None

    def to_api(self) -> dict[str, str]:
        return {k: v for k, v in attrs.asdict(self).items() if v not in (None, "")}

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> MatchRule:
        def s(key: str) -> str | None:
            v = d.get(key)
            return str(v) if v not in (None, "") else None

        return cls(**{f.name: s(f.name) for f in attrs.fields(cls)})

    def validate(self) -> None:
        """Check the rule as the platform would for a new menu.

        Raises:
            UsageError: empty rule, bad platform type, a non-numeric tag id, region order
                broken, or a privacy field (refused by the platform with 65320).
        """
        data = self.to_api()
        if not data:
            raise UsageError("a matchrule needs at least one field (65304 on the platform)")
        if self.city and not self.province:
            raise UsageError("matchrule: a city needs a province")
        if self.province and not self.country:
            raise UsageError("matchrule: a province needs a country")
        used = [f for f in PRIVACY_FIELDS if data.get(f)]
        if used:
            raise UsageError(
                f"matchrule fields {used} are privacy data the platform no longer matches "
                "on (errcode 65320): target a user tag instead"
            )
        if self.client_platform_type is not None and self.client_platform_type not in (
            PLATFORM_TYPES
        ):
            raise UsageError("matchrule client_platform_type must be '1', '2' or '3'")
        if self.tag_id is not None and not self.tag_id.isdigit():
            raise UsageError(f"matchrule tag_id must be a tag id, got {self.tag_id!r}")


@attrs.frozen(slots=True, kw_only=True)
class ConditionalMenu:
    """A conditional menu as ``menu/get`` shows it."""

    menuid: str
    buttons: tuple[Mapping[str, Any], ...] = attrs.field(eq=False)
    matchrule: MatchRule


@attrs.frozen(slots=True, kw_only=True)
class MenuState:
    """The account's menus: the default one (raw buttons, ``()`` when none) and the
    conditional ones."""

    default: tuple[Mapping[str, Any], ...] = attrs.field(default=(), eq=False)
    conditional: tuple[ConditionalMenu, ...] = ()

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> MenuState:
        menu = d.get("menu") or {}
        conds = tuple(
            ConditionalMenu(
                menuid=str(c.get("menuid", "")),
                buttons=tuple(c.get("button") or ()),
                matchrule=MatchRule.from_api(c.get("matchrule") or {}),
            )
            for c in d.get("conditionalmenu") or ()
        )
        return cls(default=tuple(menu.get("button") or ()), conditional=conds)


def _url_domains(buttons: Sequence[Button]) -> set[str]:
    out: set[str] = set()
    for b in buttons:
        for leaf in b.sub_buttons or (b,):
            if leaf.url:
                host = leaf.url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
                out.add(host.lower())
    return out


def add_conditional(buttons: Sequence[Button], rule: MatchRule) -> ApiCall[str]:
    """``POST /cgi-bin/menu/addconditional`` → the new ``menuid``.

    A default menu must exist first (the platform refuses otherwise).

    Raises:
        UsageError: when the buttons or the rule break a platform rule.
    """
    validate_menu(buttons)
    rule.validate()
    if len(_url_domains(buttons)) > MAX_URL_DOMAINS:
        raise UsageError(f"conditional menus may link to at most {MAX_URL_DOMAINS} domains")
    body = {"button": [b.to_api() for b in buttons], "matchrule": rule.to_api()}
    return ApiCall(
        request=HttpRequest.post_json(ADD_PATH, body),
        parse=lambda d: str(need(d, "menuid", ADD_PATH)),
    )


def del_conditional(menuid: str) -> ApiCall[None]:
    """``POST /cgi-bin/menu/delconditional`` (65301 for an unknown menuid — unconfirmed)."""
    if not menuid:
        raise UsageError("delconditional needs a menuid")
    return ApiCall(
        request=HttpRequest.post_json(DEL_PATH, {"menuid": str(menuid)}),
        parse=lambda d: None,
        idempotent=True,
    )


def try_match(user_id: str) -> ApiCall[tuple[Mapping[str, Any], ...]]:
    """``POST /cgi-bin/menu/trymatch``: the buttons ``user_id`` (openid or WeChat id) sees."""
    if not user_id:
        raise UsageError("trymatch needs a user_id")
    return ApiCall(
        request=HttpRequest.post_json(TRYMATCH_PATH, {"user_id": user_id}),
        parse=lambda d: tuple(d.get("button") or ()),
        idempotent=True,
    )


def menu_state() -> ApiCall[MenuState]:
    """``GET /cgi-bin/menu/get`` read as default + conditional menus (no menu at all,
    46003, reads as an empty state)."""
    return ApiCall(
        request=HttpRequest.get("/cgi-bin/menu/get"),
        parse=MenuState.from_api,
        idempotent=True,
        ok_codes=frozenset({46003}),
    )
