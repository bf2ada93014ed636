"""The phone/consent page as the member programme's joining form: a submission with
consent records ``member_joined`` (gift, source, consent); invite-only pages refuse the
uninvited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from _phoneform import APPID, OPENID, World, follow_redirect_to_emulator, phone_form_world
from membermkt.core.identity import Identity
from membermkt.core.membership import (
    Assessment,
    JoinOffer,
    invite,
    is_member,
    joined_via,
    membership_as_of,
)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    with phone_form_world(tmp_path) as w:
        yield w


async def _submit(world: World) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.app), base_url="https://shop.example"
    ) as c:
        r = await c.get("/redpacket/")
        back = follow_redirect_to_emulator(world, r.headers["location"])
        await c.get(back)
        form = await c.get("/redpacket/")
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        return await c.post(
            "/redpacket/", data={"phone": "13800138000", "consent": "yes", "csrf": csrf}
        )


async def test_submission_joins_the_programme(world: World) -> None:
    world.app.join = JoinOffer(source="parcel-qr", form="gift-v1", gift="trial-bottle")
    r = await _submit(world)
    assert r.status_code == 200
    mid = world.store.resolve(Identity.openid(APPID, OPENID))
    assert mid is not None
    now = world.clock.now()
    ms = membership_as_of(world.store.events_for(mid), now)
    assert ms.is_member
    assert (ms.join_source, ms.gift) == ("parcel-qr", "trial-bottle")
    assert ms.consent == {"phone", "marketing"}
    assert list(world.store.select(is_member(), now)) == [mid]
    assert list(world.store.select(joined_via("parcel-qr"), now)) == [mid]


async def test_invite_only_refuses_the_uninvited_then_admits_the_invited(world: World) -> None:
    world.app.join = JoinOffer(source="first-100", form="vip-v1", invite_only=True)
    r = await _submit(world)
    assert r.status_code == 403
    mid = world.store.resolve(Identity.openid(APPID, OPENID))
    assert mid is not None
    assert not membership_as_of(world.store.events_for(mid), world.clock.now()).is_member
    assert world.pay.paid_per_openid()[OPENID] == 0
    qualified = Assessment(member_id=mid, in_target=True, score=5, threshold=3, signals=())
    world.store.append_events(
        [invite(qualified, world.clock.now(), qualification="first-100", form="vip-v1")]
    )
    r = await _submit(world)
    assert r.status_code == 200
    assert membership_as_of(world.store.events_for(mid), world.clock.now()).is_member
