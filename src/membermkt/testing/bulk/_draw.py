"""Drawing a population column-wise: every random choice one numpy call."""

from __future__ import annotations

import datetime as dt
from typing import Any

from membermkt.errors import UsageError
from membermkt.testing.bulk._fold import _fold
from membermkt.testing.bulk._model import (
    _BASE_EVENTS,
    _EPOCH,
    _US,
    CONTACT,
    FOLLOW,
    MENU,
    MESSAGE,
    PURCHASE,
    REDPACKET,
    SCAN,
    STAFF,
    UNFOLLOW,
    VIEW,
    BulkConfig,
    BulkPopulation,
    _dump,
    _numpy,
    _props_table,
    _weighted,
)
from membermkt.testing.synthetic import (
    CATEGORIES,
    CATEGORY_WEIGHTS,
    CITIES,
    CITY_WEIGHTS,
    INCOME_BANDS,
    MENU_KEYS,
    MENU_NEXT,
    PAGES,
    SOURCE_WEIGHTS,
    SOURCES,
)


class _Blocks:
    """Event columns drawn kind by kind, kept where earlier than ``as_of``."""

    def __init__(self, np: Any, as_of: int) -> None:
        self.np = np
        self.as_of = as_of
        self.parts: list[tuple[Any, ...]] = []

    def add(
        self,
        member: Any,
        etype: int,
        at: Any,
        props: Any,
        *,
        amount: Any = None,
        category: Any = None,
        source: Any = None,
        staff: Any = None,
        outbound: bool = False,
    ) -> None:
        np = self.np
        keep = at < self.as_of
        k = int(keep.sum())

        def col(values: Any, fill: Any, dtype: Any) -> Any:
            return np.full(k, fill, dtype=dtype) if values is None else values[keep]

        self.parts.append(
            (
                member[keep],
                np.full(k, etype, dtype=np.int8),
                at[keep],
                props[keep],
                col(amount, -1, np.int64),
                col(category, -1, np.int8),
                col(source, -1, np.int8),
                col(staff, -1, np.int8),
                np.full(k, outbound, dtype=bool),
            )
        )

    def columns(self) -> dict[str, Any]:
        np = self.np
        names = (
            "member",
            "type",
            "at",
            "props",
            "amount_fen",
            "category",
            "source",
            "staff",
            "outbound",
        )
        cols = {name: np.concatenate([p[i] for p in self.parts]) for i, name in enumerate(names)}
        # one int64 key (member, whole second relative to a year before the earliest time,
        # type): argsort of it is several times faster than a lexsort of the three columns
        at = cols["at"]
        secs = (at - (at.min() if len(at) else 0)) // _US
        if len(at) and (
            int(secs.max()) >= 1 << 35 or (len(self.parts) and int(cols["member"].max()) >= 1 << 24)
        ):  # pragma: no cover
            order = np.lexsort((cols["type"], at, cols["member"]))
        else:
            key = (cols["member"] << 39) | (secs << 4) | cols["type"].astype(np.int64)
            order = np.argsort(key, kind="stable")
        return {name: col[order] for name, col in cols.items()}


def generate_columns(n: int, *, seed: int = 0, config: BulkConfig | None = None) -> BulkPopulation:
    """Draw ``n`` members with their events as columns (see the module docstring).

    Args:
        n: number of members (0 or more).
        seed: the random seed (ignored when ``config`` is given).
        config: a :class:`BulkConfig`.

    Raises:
        UsageError: for a negative ``n``, or when numpy is not installed.
    """
    if n < 0:
        raise UsageError(f"n must be >= 0, got {n}")
    np = _numpy()
    cfg = config or BulkConfig(seed=seed)
    rng = np.random.default_rng(cfg.seed)
    as_of = (cfg.as_of - _EPOCH) // dt.timedelta(microseconds=1)
    horizon = cfg.days * 86_400
    # sessions and orders share what the base story leaves of the mean, 3:1. A session
    # makes 4 events on average (2.5 clicks, 1.5 views), 3/4 of sessions fall before
    # as_of; half of the orders do (their time is uniform over the horizon after a follow
    # that is itself uniform over it)
    extra = max(0.0, cfg.events_per_member - _BASE_EVENTS)
    mean_sessions = extra * 0.75 / 3.0
    mean_orders = extra * 0.25 / 0.5

    def between(lo: int, hi: int, size: int) -> Any:
        """Whole seconds in [lo, hi), as µs."""
        return rng.integers(lo, max(lo + 1, hi), size, dtype=np.int64) * _US

    idx = np.arange(n, dtype=np.int64)
    ids = np.empty(n, dtype=object)
    ids[:] = [f"m{i:07d}" for i in range(n)]
    src = _weighted(rng, n, SOURCE_WEIGHTS)
    followed = as_of - between(60, horizon, n)
    ev = _Blocks(np, as_of)

    # acquisition: a scan, then the follow 30 s later
    acq_props = _props_table([_dump({"source": s, "scene": s}) for s in SOURCES])[src]
    ev.add(idx, SCAN, followed - 30 * _US, acq_props, source=src)
    ev.add(idx, FOLLOW, followed, acq_props, source=src)
    # a red packet after following (mostly parcel buyers)
    rp = np.flatnonzero(rng.random(n) < np.where(src == SOURCES.index("parcel"), 0.5, 0.15))
    rp_table = _props_table(
        [
            _dump({"rule": "welcome", "amount_fen": 100 * a, "source": s})
            for s in SOURCES
            for a in range(1, 6)
        ]
    )
    ev.add(
        rp,
        REDPACKET,
        followed[rp] + between(30, 3600, len(rp)),
        rp_table[src[rp] * 5 + rng.integers(0, 5, len(rp))],
    )
    # menu sessions with path habits (a Markov chain over the keys), page views with dwell
    sessions = rng.poisson(mean_sessions, n)
    s_member = np.repeat(idx, sessions)
    ns = len(s_member)
    s_start = followed[s_member] + between(60, horizon // 2, ns)
    s_len = rng.integers(1, 5, ns)
    c_session = np.repeat(np.arange(ns), s_len)
    nc = len(c_session)
    first_click = np.cumsum(s_len) - s_len
    c_step = np.arange(nc) - first_click[c_session]
    gaps = between(35, 150, nc)  # after a click: its view (2–30 s), then the next click
    before = np.cumsum(gaps) - gaps  # sum of the gaps before each click
    c_at = s_start[c_session] + before - before[first_click][c_session]
    keys = np.empty(nc, dtype=np.int64)
    starts = c_step == 0
    keys[starts] = _weighted(rng, int(starts.sum()), (0.45, 0.25, 0.15, 0.15))
    trans = np.zeros((len(MENU_KEYS), len(MENU_KEYS)))
    for a, nxt in MENU_NEXT.items():
        for b, w in nxt:
            trans[MENU_KEYS.index(a), MENU_KEYS.index(b)] = w
    cum = np.cumsum(trans, axis=1)
    cum[:, -1] = 1.0
    u = rng.random(nc)
    for step in range(1, 4):
        here = np.flatnonzero(c_step == step)
        keys[here] = (u[here, None] >= cum[keys[here - 1]]).sum(axis=1)
    c_member = s_member[c_session]
    ev.add(c_member, MENU, c_at, _props_table([_dump({"key": k}) for k in MENU_KEYS])[keys])
    viewed = np.flatnonzero(rng.random(nc) < 0.6)
    nv = len(viewed)
    dwell = np.minimum(rng.lognormal(3.0, 1.0, nv).astype(np.int64) + 1, 3600)
    page = rng.integers(0, len(PAGES), nv)
    view_table = _props_table(
        [_dump({"url": p, "dwell_seconds": d}) for p in PAGES for d in range(1, 3601)]
    )
    ev.add(
        c_member[viewed],
        VIEW,
        c_at[viewed] + between(2, 31, nv),
        view_table[page * 3600 + dwell - 1],
    )
    # orders: a heavy-tailed propensity per member (gamma), a favourite category
    propensity = rng.gamma(0.6, mean_orders / 0.6, n) if mean_orders > 0 else np.zeros(n)
    orders = rng.poisson(propensity)
    o_member = np.repeat(idx, orders)
    no = len(o_member)
    o_k = np.arange(no) - np.repeat(np.cumsum(orders) - orders, orders)
    fav = _weighted(rng, n, CATEGORY_WEIGHTS)
    cat = np.where(rng.random(no) < 0.6, fav[o_member], _weighted(rng, no, CATEGORY_WEIGHTS))
    amount = 10 * rng.integers(99, 2991, no, dtype=np.int64)
    o_at = followed[o_member] + between(600, horizon, no)
    o_props = np.empty(no, dtype=object)
    o_kept = np.flatnonzero(o_at < as_of)  # the text only for the orders kept
    o_props[o_kept] = [
        f'{{"order_id":"{ids[m]}-o{k}","amount_fen":{a},"category":"{CATEGORIES[c]}"}}'
        for m, k, a, c in zip(
            o_member[o_kept].tolist(),
            o_k[o_kept].tolist(),
            amount[o_kept].tolist(),
            cat[o_kept].tolist(),
            strict=True,
        )
    ]
    ev.add(o_member, PURCHASE, o_at, o_props, amount=amount, category=cat)
    # a text message to the account
    msg = np.flatnonzero(rng.random(n) < 0.2)
    ev.add(
        msg,
        MESSAGE,
        followed[msg] + between(60, horizon, len(msg)),
        _props_table([_dump({"msgtype": "text"})])[np.zeros(len(msg), dtype=np.int64)],
    )
    # WeCom: added by a clerk, the member writes, the clerk answers
    wecom = rng.random(n) < cfg.wecom_share
    w = np.flatnonzero(wecom)
    nw = len(w)
    staff = rng.integers(0, len(STAFF), nw)
    w_add = followed[w] + between(60, horizon, nw)
    w_in = w_add + between(30, 7200, nw)
    w_out = w_in + between(20, 3600, nw)
    in_ok = w_add < as_of  # a message is kept only after its add (and the answer its message)
    out_ok = in_ok & (w_in < as_of)
    contact_table = _props_table(
        [
            _dump({"source": f"wecom-{s}", "staff": st, "state": f"c:{s}"})
            for s in SOURCES
            for st in STAFF
        ]
    )
    ev.add(
        w,
        CONTACT,
        w_add,
        contact_table[src[w] * len(STAFF) + staff],
        source=src[w] + len(SOURCES),
        staff=staff,
    )
    chat_table = _props_table(
        [
            _dump({"channel": "wecom", "staff": st, "direction": d})
            for d in ("in", "out")
            for st in STAFF
        ]
    )
    ev.add(w[in_ok], MESSAGE, w_in[in_ok], chat_table[staff[in_ok]])
    ev.add(
        w[out_ok],
        MESSAGE,
        w_out[out_ok],
        chat_table[staff[out_ok] + len(STAFF)],
        outbound=True,
    )
    # unfollows
    uf = np.flatnonzero(rng.random(n) < cfg.unfollow_share)
    ev.add(
        uf,
        UNFOLLOW,
        followed[uf] + between(3600, horizon, len(uf)),
        _props_table(["{}"])[np.zeros(len(uf), dtype=np.int64)],
    )
    events = ev.columns()
    state = _fold(np, n, events)
    followed_us = state.pop("_followed")

    # profile, identities, attributes, tags
    city = _weighted(rng, n, CITY_WEIGHTS)
    r = rng.random(n)
    gender = np.where(r < 0.58, "female", np.where(r < 0.95, "male", None)).astype(object)
    city_names = np.asarray([c for c, _ in CITIES] + [None], dtype=object)
    province = np.asarray([p for _, p in CITIES], dtype=object)[city]
    city_col = city_names[np.where(rng.random(n) < 0.95, city, len(CITIES))]
    today = cfg.as_of.date().toordinal()
    birthday = np.where(
        rng.random(n) < 0.85, today - rng.integers(18 * 365, 62 * 365, n), -1
    ).astype(np.int64)
    bands = np.asarray([*INCOME_BANDS, None], dtype=object)
    income = bands[np.where(rng.random(n) < 0.7, rng.integers(0, len(INCOME_BANDS), n), 4)]
    # 27 random hex digits per openid, 28 per external_userid: one hex string, sliced
    hex_o = rng.bytes(14 * n).hex()
    openid = np.empty(n, dtype=object)
    openid[:] = ["o" + hex_o[k : k + 27] for k in range(0, 28 * n, 28)]
    hex_w = rng.bytes(14 * nw).hex()
    external = np.full(n, None, dtype=object)
    external[w] = ["wm" + hex_w[k : k + 28] for k in range(0, 28 * nw, 28)]
    level = rng.integers(0, 4, n)
    platforms = np.asarray(["tmall", "jd", "pdd", "douyin", None], dtype=object)
    platform = platforms[np.where(rng.random(n) < 0.3, rng.integers(0, 4, n), 4)]
    vip = state["orders_total_fen"] >= 50_000
    # synthetic.generate's "new": (as_of - followed_at).days <= 14, i.e. less than 15 days
    new = followed_us > as_of - 15 * 86_400 * _US
    tags = np.where(vip & new, "new,vip", np.where(vip, "vip", np.where(new, "new", "")))
    members = {
        "gender": gender,
        "city": city_col,
        "province": province,
        "birthday": birthday,
        "income_band": income,
        "openid": openid,
        "external_userid": external,
        "member_level": level,
        "platform": platform,
        "tags": tags.astype(object),
    }
    return BulkPopulation(config=cfg, ids=ids, members=members, events=events, state=state)
