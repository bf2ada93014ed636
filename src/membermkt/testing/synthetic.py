"""A seeded generator of realistic members and event histories.

The same seed always gives the same population. Members arrive through scene QR codes on
three channels (``parcel``, ``store``, ``platform``) and some through WeCom channel codes;
they click menus with habits (a Markov chain over menu keys, so "A then C" is a real
pattern), view pages with dwell times, buy durian/apple/mango/cherry in fen, claim red
packets after following, message the account and occasionally unfollow.

>>> from membermkt.testing.synthetic import generate
>>> member, events = next(iter(generate(1, seed=7)))
>>> member.id
'm0000000'

Speed: it builds values directly (validation is skipped for data it made itself), about
1M members with ~8M events in well under a minute on one core; members' folded
:class:`~membermkt.core.members.MemberState` is computed alongside and equals
``fold(member, events)`` (tested).
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import random
from collections.abc import Iterator
from typing import Any

import attrs

from membermkt.core._frozen import FrozenMap
from membermkt.core.events import INTERACTION_TYPES, Event
from membermkt.core.identity import Identity, IdentityKind
from membermkt.core.members import Consent, Member, MemberState, Profile, PurchaseStats, Relation
from membermkt.errors import UsageError
from membermkt.security.phones import PhoneProtector
from membermkt.testing.phones import TEST_PHONES

__all__ = [
    "CATEGORIES",
    "MENU_KEYS",
    "SOURCES",
    "SyntheticConfig",
    "generate",
    "population",
]

SOURCES = ("parcel", "store", "platform")
SOURCE_WEIGHTS = (0.5, 0.3, 0.2)
CATEGORIES = ("durian", "apple", "mango", "cherry")
CATEGORY_WEIGHTS = (0.35, 0.3, 0.2, 0.15)
MENU_KEYS = ("A", "B", "C", "D")
# menu habits: from each key, where people go next (A -> C is the strong path)
MENU_NEXT = {
    "A": (("C", 0.6), ("B", 0.25), ("D", 0.15)),
    "B": (("A", 0.4), ("D", 0.4), ("C", 0.2)),
    "C": (("D", 0.5), ("A", 0.3), ("B", 0.2)),
    "D": (("A", 0.5), ("B", 0.3), ("C", 0.2)),
}
PAGES = ("/p/durian", "/p/apple", "/p/mango", "/p/promo", "/p/member")
CITIES = (
    ("Shanghai", "Shanghai"),
    ("Hangzhou", "Zhejiang"),
    ("Beijing", "Beijing"),
    ("Shenzhen", "Guangdong"),
    ("Guangzhou", "Guangdong"),
    ("Chengdu", "Sichuan"),
    ("Ningbo", "Zhejiang"),
)
CITY_WEIGHTS = (0.25, 0.2, 0.15, 0.12, 0.1, 0.1, 0.08)
INCOME_BANDS = ("<5k", "5k-10k", "10k-20k", "20k+")


@attrs.frozen(kw_only=True)
class SyntheticConfig:
    """Knobs of the generator.

    Attributes:
        seed: the random seed (same seed → same population).
        as_of: the "now" of the population; no event is later.
        days: how far back follows go.
        appid / corpid: namespaces of generated openids / external_userids.
        wecom_share: fraction of members also added by a WeCom clerk.
        unfollow_share: fraction who unfollow later.
        phones: the key ring of the members' phone identities (about 40% have one: the
            blind index of a made-up ``13…`` number, no encrypted number); default the
            published test key :data:`~membermkt.testing.phones.TEST_PHONES` — a store
            keeping them needs the same ring (``SqlStore(url, phones=...)``).
    """

    seed: int = 0
    as_of: dt.datetime = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)
    days: int = 180
    appid: str = "wxdemo000000000001"
    corpid: str = "wwdemo000000000001"
    wecom_share: float = 0.3
    unfollow_share: float = 0.12
    phones: PhoneProtector | None = attrs.field(default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.as_of.utcoffset() is None:
            raise UsageError("SyntheticConfig.as_of must be timezone-aware")
        if self.days < 1:
            raise UsageError("SyntheticConfig.days must be >= 1")


_new = object.__new__
_set = object.__setattr__


def _event(
    member_id: str, etype: str, at: dt.datetime, props: dict[str, object], key: str
) -> Event:
    # Build without validation: the generator only makes valid values.
    ev = _new(Event)
    _set(ev, "member_id", member_id)
    _set(ev, "type", etype)
    _set(ev, "at", at)
    _set(ev, "properties", FrozenMap(props))
    _set(ev, "key", key)
    return ev


def _cum(weights: tuple[float, ...]) -> tuple[float, ...]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return tuple(x / acc for x in out)


class _Choice:
    """A weighted choice, its cumulative weights computed once: one ``random()`` draw and
    a ``bisect`` per pick."""

    __slots__ = ("cum", "items")

    def __init__(self, items: tuple[Any, ...], weights: tuple[float, ...]) -> None:
        self.items = items
        self.cum = _cum(weights)

    def __call__(self, rng: random.Random) -> Any:
        return self.items[bisect.bisect_right(self.cum, rng.random() * 0.9999999999)]


_SOURCE = _Choice(SOURCES, SOURCE_WEIGHTS)
_SESSIONS = _Choice((0, 1, 2, 3, 5), (0.25, 0.3, 0.2, 0.15, 0.1))
_FIRST_KEY = _Choice(MENU_KEYS, (0.45, 0.25, 0.15, 0.15))
_NEXT_KEY = {
    k: _Choice(tuple(n for n, _ in nxt), tuple(w for _, w in nxt)) for k, nxt in MENU_NEXT.items()
}
_ORDERS = _Choice((0, 1, 2, 3, 5, 8), (0.45, 0.25, 0.12, 0.08, 0.07, 0.03))
_CATEGORY = _Choice(CATEGORIES, CATEGORY_WEIGHTS)
_CITY = _Choice(CITIES, CITY_WEIGHTS)


def _randint(rng: random.Random, lo: int, hi: int) -> int:
    return lo + int(rng.random() * (hi - lo + 1))


def _between(rng: random.Random, lo: int, hi: int) -> int:
    """An int in [lo, hi) (faster than randrange; uniform enough for synthetic data)."""
    return lo + int(rng.random() * (hi - lo))


def generate(
    n: int, *, seed: int = 0, config: SyntheticConfig | None = None, start: int = 0
) -> Iterator[tuple[Member, list[Event]]]:
    """Yield ``n`` members with their events (streaming: memory does not grow with ``n``).

    Args:
        n: number of members.
        seed: random seed (ignored when ``config`` is given).
        config: a :class:`SyntheticConfig`.
        start: index of the first member (to generate a population in slices).

    Raises:
        UsageError: for a negative ``n``.
    """
    if n < 0:
        raise UsageError(f"n must be >= 0, got {n}")
    cfg = config or SyntheticConfig(seed=seed)
    as_of = cfg.as_of.astimezone(dt.UTC)
    horizon = cfg.days * 86400
    sec = dt.timedelta(seconds=1)
    for idx in range(start, start + n):
        rng = random.Random(cfg.seed * 1_000_003 + idx)
        mid = f"m{idx:07d}"
        events: list[Event] = []

        def add(
            etype: str,
            at: dt.datetime,
            props: dict[str, object],
            events: list[Event] = events,
            mid: str = mid,
        ) -> None:
            events.append(_event(mid, etype, at, props, f"syn:{mid}:{len(events)}"))

        source = _SOURCE(rng)
        followed_at = as_of - _between(rng, 60, horizon) * sec
        add("scan", followed_at - 30 * sec, {"source": source, "scene": source})
        add("follow", followed_at, {"source": source, "scene": source})
        t = followed_at
        # red packet after following (mostly parcel buyers)
        if rng.random() < (0.5 if source == "parcel" else 0.15):
            t = t + _between(rng, 30, 3600) * sec
            if t < as_of:
                add(
                    "redpacket_claim",
                    t,
                    {"rule": "welcome", "amount_fen": 100 * _randint(rng, 1, 5), "source": source},
                )
        # menu sessions with path habits, and page views with dwell time
        for _ in range(_SESSIONS(rng)):
            t = followed_at + _between(rng, 60, max(61, horizon // 2)) * sec
            key = _FIRST_KEY(rng)
            for _step in range(_randint(rng, 1, 4)):
                if t >= as_of:
                    break
                add("menu_click", t, {"key": key})
                if rng.random() < 0.6:
                    t = t + _between(rng, 2, 30) * sec
                    if t < as_of:
                        add(
                            "view",
                            t,
                            {
                                "url": rng.choice(PAGES),
                                "dwell_seconds": int(rng.lognormvariate(3.0, 1.0)) + 1,
                            },
                        )
                key = _NEXT_KEY[key](rng)
                t = t + _between(rng, 5, 120) * sec
        # purchases
        n_orders = _ORDERS(rng)
        fav = _CATEGORY(rng)
        for k in range(n_orders):
            t = followed_at + _between(rng, 600, horizon) * sec
            if t >= as_of:
                continue
            cat = fav if rng.random() < 0.6 else _CATEGORY(rng)
            add(
                "purchase",
                t,
                {
                    "order_id": f"{mid}-o{k}",
                    "amount_fen": 10 * _randint(rng, 99, 2990),
                    "category": cat,
                },
            )
        if rng.random() < 0.2:
            t = followed_at + _between(rng, 60, horizon) * sec
            if t < as_of:
                add("message", t, {"msgtype": "text"})
        has_wecom = rng.random() < cfg.wecom_share
        staff = f"clerk{_randint(rng, 1, 12):02d}"
        if has_wecom:
            t = followed_at + _between(rng, 60, horizon) * sec
            if t < as_of:
                add(
                    "contact_added",
                    t,
                    {"source": f"wecom-{source}", "staff": staff, "state": f"c:{source}"},
                )
                reply_at = t + _between(rng, 30, 7200) * sec
                if reply_at < as_of:
                    add(
                        "message", reply_at, {"channel": "wecom", "staff": staff, "direction": "in"}
                    )
                    out_at = reply_at + _between(rng, 20, 3600) * sec
                    if out_at < as_of:
                        add(
                            "message",
                            out_at,
                            {"channel": "wecom", "staff": staff, "direction": "out"},
                        )
        if rng.random() < cfg.unfollow_share:
            t = followed_at + _between(rng, 3600, horizon) * sec
            if t < as_of:
                add("unfollow", t, {})

        member = _member(rng, mid, idx, cfg, events, has_wecom)
        yield member, events


def _state(events: list[Event]) -> MemberState:
    # The fold, specialised to what the generator makes (no ties, one follow, keys unique).
    follow = unfollow = None
    source_ev: Event | None = None
    last_active: dt.datetime | None = None
    count = total = 0
    first_at = last_at = None
    cats: set[str] = set()
    contact: Event | None = None
    last_event: dt.datetime | None = None
    for e in events:
        t = e.type
        if last_event is None or e.at > last_event:
            last_event = e.at
        if (
            t in INTERACTION_TYPES
            and e.properties.get("direction") != "out"
            and (last_active is None or e.at > last_active)
        ):
            last_active = e.at
        if t == "follow":
            follow = e
        elif t == "unfollow":
            unfollow = e
        elif t == "contact_added":
            contact = e
        elif t == "purchase":
            count += 1
            total += int(e.properties["amount_fen"])
            first_at = e.at if first_at is None or e.at < first_at else first_at
            last_at = e.at if last_at is None or e.at > last_at else last_at
            cats.add(str(e.properties["category"]))
        if (
            t in ("follow", "scan", "contact_added")
            and "source" in e.properties
            and (
                source_ev is None
                or (e.at, "0" + (e.key or "")) < (source_ev.at, "0" + (source_ev.key or ""))
            )
        ):
            source_ev = e
    sub = (
        unfollow
        if unfollow is not None and follow is not None and unfollow.at > follow.at
        else (follow)
    )
    return MemberState(
        subscribed=None if sub is None else sub.type == "follow",
        subscription_version=None
        if sub is None
        else (sub.at, ("1" if sub.type == "unfollow" else "0") + (sub.key or "")),
        followed_at=sub.at if sub is not None and sub.type == "follow" else None,
        source=None if source_ev is None else str(source_ev.properties["source"]),
        source_version=None
        if source_ev is None
        else (
            source_ev.at,
            "0" + (source_ev.key or "") + "\x00" + str(source_ev.properties["source"]),
        ),
        last_active_at=last_active,
        purchases=PurchaseStats(
            count=count, total_fen=total, first_at=first_at, last_at=last_at, categories=cats
        ),
        wecom_contact=True if contact is not None else None,
        contact_version=None if contact is None else (contact.at, "0" + (contact.key or "")),
        last_event_at=last_event,
        relations=()
        if contact is None
        else (
            Relation(
                staff=str(contact.properties.get("staff", "")),
                added=(contact.at, "0" + (contact.key or "")),
                state=_opt_str(contact.properties.get("state")),
            ),
        ),
    )


def _opt_str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _member(
    rng: random.Random,
    mid: str,
    idx: int,
    cfg: SyntheticConfig,
    events: list[Event],
    has_wecom: bool,
) -> Member:
    city, province = _CITY(rng)
    r = rng.random()
    gender = "female" if r < 0.58 else ("male" if r < 0.95 else None)
    birthday = None
    if rng.random() < 0.85:
        age_days = _between(rng, 18 * 365, 62 * 365)
        birthday = cfg.as_of.date() - dt.timedelta(days=age_days)
    profile = Profile(
        gender=gender,
        city=city if rng.random() < 0.95 else None,
        province=province,
        country="CN",
        birthday=birthday,
        income_band=rng.choice(INCOME_BANDS) if rng.random() < 0.7 else None,
        tier=None,
    )
    digest = hashlib.sha256(f"{cfg.seed}:{idx}".encode()).hexdigest()
    identities = [_identity(IdentityKind.OPENID, "o" + digest[:27], cfg.appid)]
    if has_wecom:
        identities.append(_identity(IdentityKind.EXTERNAL_USERID, "wm" + digest[27:55], cfg.corpid))
    if rng.random() < 0.4:
        phones = cfg.phones or TEST_PHONES
        number = f"13{idx % 10**9:09d}"
        identities.append(_identity(IdentityKind.PHONE, phones.digest(number), phones.current))
    identities.sort(key=_token)
    state = _state(events)
    tags = set()
    if state.purchases.total_fen >= 50_000:
        tags.add("vip")
    if state.followed_at is not None and (cfg.as_of - state.followed_at).days <= 14:
        tags.add("new")
    attributes: dict[str, str | int | float | bool] = {"member_level": _randint(rng, 0, 3)}
    if rng.random() < 0.3:
        attributes["platform"] = rng.choice(("tmall", "jd", "pdd", "douyin"))
    # Built without re-validating what the generator made itself (the tests check that
    # these values equal validated ones).
    member = _new(Member)
    _set(member, "id", mid)
    _set(member, "profile", profile)
    _set(member, "tags", frozenset(tags))
    _set(member, "attributes", FrozenMap(attributes))
    _set(member, "identities", tuple(identities))
    _set(member, "state", state)
    _set(member, "consent", _CONSENT)
    return member


_CONSENT = Consent()


def _token(i: Identity) -> str:
    return i.token


def _identity(kind: IdentityKind, value: str, namespace: str) -> Identity:
    ident = _new(Identity)
    _set(ident, "kind", kind)
    _set(ident, "value", value)
    _set(ident, "namespace", namespace)
    return ident


def population(
    n: int, *, seed: int = 0, config: SyntheticConfig | None = None
) -> tuple[list[Member], list[Event]]:
    """All of :func:`generate` at once: (members, events)."""
    members: list[Member] = []
    events: list[Event] = []
    for m, evs in generate(n, seed=seed, config=config):
        members.append(m)
        events.extend(evs)
    return members, events
