"""One member of a bulk population as validated core values (for tests and samples)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from membermkt.core.events import Event
from membermkt.core.identity import Identity, IdentityKind
from membermkt.core.members import Consent, Member, MemberState, Profile
from membermkt.stores.sql._codec import STATE_COLS
from membermkt.testing.bulk._model import _EPOCH, TYPES, BulkPopulation, _numpy


def _member_values(pop: BulkPopulation, i: int, with_state: bool) -> tuple[Member, list[Event]]:
    from membermkt.stores.sql._member_rows import _state_from  # the store's own decoding

    np = _numpy()
    cfg, m = pop.config, pop.members
    mid = str(pop.ids[i])
    bday = int(m["birthday"][i])
    profile = Profile(
        gender=m["gender"][i],
        city=m["city"][i],
        province=m["province"][i],
        country="CN",
        birthday=None if bday < 0 else dt.date.fromordinal(bday),
        income_band=m["income_band"][i],
    )
    identities = [Identity(IdentityKind.OPENID, m["openid"][i], cfg.appid)]
    if m["external_userid"][i] is not None:
        identities.append(
            Identity(IdentityKind.EXTERNAL_USERID, m["external_userid"][i], cfg.corpid)
        )
    attributes: dict[str, Any] = {"member_level": int(m["member_level"][i])}
    if m["platform"][i] is not None:
        attributes["platform"] = m["platform"][i]
    e = pop.events
    lo, hi = np.searchsorted(e["member"], [i, i + 1])
    events = [
        Event(
            mid,
            TYPES[int(t)],
            _EPOCH + dt.timedelta(microseconds=int(a)),
            json.loads(p),
        )
        for t, a, p in zip(e["type"][lo:hi], e["at"][lo:hi], e["props"][lo:hi], strict=True)
    ]
    state = MemberState()
    if with_state:
        state = _state_from([_plain(pop.state[name][i]) for name in STATE_COLS])
    member = Member(
        mid,
        profile=profile,
        tags=frozenset(t for t in str(m["tags"][i]).split(",") if t),
        attributes=attributes,
        identities=identities,
        state=state,
        consent=Consent(),
    )
    return member, events


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
