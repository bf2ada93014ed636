"""A declarative set of menus: a default menu plus one menu per segment, mapped to user tags.

``MenuSet`` is pure. The flow of a sync:

1. :meth:`MenuSet.assign` — from the openids each variant's segment selects (in priority
   order), give every follower **one** menu tag: the platform matches a follower with
   several tags by the tag applied last, so overlapping menu tags would show an arbitrary
   menu. Feed the result to the tag sync (``oa.sync_tags(desired, managed=menuset.tags)``).
2. :func:`sync_menus` — an operation flow (run with ``oa.run(...)``) that reads the menus,
   (re)creates the default menu when it differs, deletes conditional menus that are not
   wanted and adds the missing ones (one ``matchrule`` per variant tag).

Click keys are rewritten per variant (``key@variant``) by :meth:`MenuSet.compiled`, so a
``menu_click`` event tells which menu the follower was shown: :func:`menu_click_report`
counts clicks per variant and key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any

import attrs

from membermkt.channels.wechat.api import menu as menu_api
from membermkt.channels.wechat.api import menus as menus_api
from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.api.menu import Button
from membermkt.channels.wechat.api.menus import MatchRule, MenuState
from membermkt.core.events import Event
from membermkt.errors import UsageError

__all__ = [
    "DEFAULT_VARIANT",
    "MenuSet",
    "MenuSyncResult",
    "MenuVariant",
    "menu_click_report",
    "sync_menus",
]

DEFAULT_VARIANT = "default"
_SEP = "@"


@attrs.frozen(slots=True, kw_only=True)
class MenuVariant:
    """One per-segment menu.

    Attributes:
        name: the variant name (``[A-Za-z0-9_-]``, ≤ 20 chars; part of click keys).
        tag: the WeChat user-tag name its followers get.
        buttons: the menu.
    """

    name: str
    tag: str
    buttons: tuple[Button, ...]

    def __attrs_post_init__(self) -> None:
        if (
            not self.name
            or len(self.name) > 20
            or not self.name.replace("-", "").replace("_", "").isalnum()
            or not self.name.isascii()
        ):
            raise UsageError(
                f"menu variant name must be 1-20 chars of [A-Za-z0-9_-]: {self.name!r}"
            )
        if self.name == DEFAULT_VARIANT:
            raise UsageError(f"{DEFAULT_VARIANT!r} is the default menu's name")
        if not self.tag:
            raise UsageError(f"menu variant {self.name!r} needs a tag name")


def _tag_keys(buttons: Sequence[Button], variant: str) -> tuple[Button, ...]:
    def leaf(b: Button) -> Button:
        if b.type == "click" and b.key is not None:
            return attrs.evolve(b, key=f"{b.key}{_SEP}{variant}")
        return b

    out = []
    for b in buttons:
        if b.sub_buttons:
            out.append(attrs.evolve(b, sub_buttons=tuple(leaf(s) for s in b.sub_buttons)))
        else:
            out.append(leaf(b))
    return tuple(out)


@attrs.frozen(slots=True, kw_only=True)
class MenuSet:
    """The default menu and the per-segment variants (first variant wins on overlap).

    Raises:
        UsageError: for duplicate variant names or tags, a click key containing ``@``, or a
            menu breaking the platform's limits (checked with the compiled keys).
    """

    default: tuple[Button, ...]
    variants: tuple[MenuVariant, ...] = ()

    def __attrs_post_init__(self) -> None:
        names = [v.name for v in self.variants]
        tags = [v.tag for v in self.variants]
        if len(set(names)) != len(names) or len(set(tags)) != len(tags):
            raise UsageError("menu variants need distinct names and tags")
        for name, buttons in self.compiled().items():
            for b in buttons:
                for leaf in b.sub_buttons or (b,):
                    key = leaf.key or ""
                    if key.count(_SEP) > 1:
                        raise UsageError(f"menu {name}: click keys may not contain {_SEP!r}")
            menu_api.validate_menu(buttons)

    @property
    def tags(self) -> frozenset[str]:
        """The tag names the menu set manages (pass as ``managed=`` to the tag sync)."""
        return frozenset(v.tag for v in self.variants)

    def compiled(self) -> dict[str, tuple[Button, ...]]:
        """Variant name → buttons with click keys suffixed ``@variant`` (default included)."""
        out = {DEFAULT_VARIANT: _tag_keys(self.default, DEFAULT_VARIANT)}
        for v in self.variants:
            out[v.name] = _tag_keys(v.buttons, v.name)
        return out

    def assign(
        self, selected: Mapping[str, Iterable[str]], *, audience: Iterable[str] = ()
    ) -> dict[str, frozenset[str]]:
        """Which openid gets which menu tag, in the shape the tag sync takes.

        Args:
            selected: variant name → openids its segment selects.
            audience: further openids to consider (e.g. the current fans of the menu tags,
                ``oa.tag_fans(id)``): those no variant selects get no menu tag, so a
                follower who left a segment loses its menu.

        Returns:
            openid → the one menu tag it should carry (first variant in the set's order
            that selects it) or an empty set; pass it to
            ``oa.sync_tags(result, managed=menuset.tags)``.

        Raises:
            UsageError: for an unknown variant name.
        """
        known = {v.name for v in self.variants}
        unknown = set(selected) - known
        if unknown:
            raise UsageError(f"unknown menu variants: {sorted(unknown)}")
        out: dict[str, frozenset[str]] = {o: frozenset() for o in audience}
        taken: set[str] = set()
        for v in self.variants:
            for o in selected.get(v.name, ()):
                if o not in taken:
                    taken.add(o)
                    out[o] = frozenset({v.tag})
        return out

    def locate(self, key: str) -> tuple[str, str] | None:
        """``(variant, original key)`` of a compiled click key, or ``None``."""
        base, sep, variant = key.rpartition(_SEP)
        if not sep or variant not in {DEFAULT_VARIANT, *(v.name for v in self.variants)}:
            return None
        return variant, base


@attrs.frozen(slots=True, kw_only=True)
class MenuSyncResult:
    """What :func:`sync_menus` did."""

    default_created: bool = False
    added: Mapping[str, str] = attrs.field(factory=dict)
    """variant name → new menuid."""
    deleted: tuple[str, ...] = ()
    """menuids removed."""
    kept: Mapping[str, str] = attrs.field(factory=dict)
    """variant name → menuid already in place."""


def _same(raw: Sequence[Mapping[str, Any]], buttons: Sequence[Button]) -> bool:
    def norm(b: Mapping[str, Any]) -> Any:
        subs = b.get("sub_button")
        if isinstance(subs, Mapping):  # menu/get wraps sub buttons in {"list": [...]}
            subs = subs.get("list")
        if subs:
            return (b.get("name"), tuple(norm(s) for s in subs))
        keep = ("type", "name", "key", "url", "appid", "pagepath", "media_id")
        return tuple((k, b.get(k)) for k in keep if b.get(k) is not None)

    return [norm(b) for b in raw] == [norm(b.to_api()) for b in buttons]


def sync_menus(
    menuset: MenuSet, tag_ids: Mapping[str, int]
) -> Generator[ApiCall[Any], Any, MenuSyncResult]:
    """Operation flow: make the account's menus match ``menuset`` (``oa.run(sync_menus(...))``).

    Args:
        menuset: the desired menus.
        tag_ids: WeChat tag name → tag id for every variant tag (after the tag sync created
            them; ``{t.name: t.id for t in oa.list_tags()}``).

    Raises:
        UsageError: when a variant's tag has no id.
    """
    missing = sorted(menuset.tags - set(tag_ids))
    if missing:
        raise UsageError(f"no WeChat tag id for menu tags {missing}: run the tag sync first")
    compiled = menuset.compiled()
    state: MenuState = yield menus_api.menu_state()
    default_created = False
    if not state.default or not _same(state.default, compiled[DEFAULT_VARIANT]):
        # menu/create replaces the default menu; conditional menus survive it
        yield menu_api.create_menu(compiled[DEFAULT_VARIANT])
        default_created = True
    wanted = {
        v.name: (compiled[v.name], MatchRule(tag_id=str(tag_ids[v.tag]))) for v in menuset.variants
    }
    kept: dict[str, str] = {}
    deleted: list[str] = []
    for cond in state.conditional:
        match = next(
            (
                name
                for name, (buttons, rule) in wanted.items()
                if name not in kept and cond.matchrule == rule and _same(cond.buttons, buttons)
            ),
            None,
        )
        if match is None:
            yield menus_api.del_conditional(cond.menuid)
            deleted.append(cond.menuid)
        else:
            kept[match] = cond.menuid
    added: dict[str, str] = {}
    for name, (buttons, rule) in wanted.items():
        if name not in kept:
            added[name] = yield menus_api.add_conditional(buttons, rule)
    return MenuSyncResult(
        default_created=default_created, added=added, deleted=tuple(deleted), kept=kept
    )


def menu_click_report(events: Iterable[Event], menuset: MenuSet) -> dict[tuple[str, str], int]:
    """Clicks per ``(variant, original key)`` from ``menu_click`` events (keys not from this
    menu set are ignored)."""
    counts: Counter[tuple[str, str]] = Counter()
    for e in events:
        if e.type != "menu_click":
            continue
        where = menuset.locate(str(e.properties.get("key", "")))
        if where is not None:
            counts[where] += 1
    return dict(counts)
