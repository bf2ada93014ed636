"""WeCom channel codes and the welcome fast path.

Each store gets a channel code (a contact way whose ``state`` names the channel); a customer
who adds a clerk through it is recorded with that channel as their ``source`` and welcomed
within WeCom's 20-second, single-use welcome-code window. Run it against the emulator::

    python examples/wecom_welcome.py
"""

from __future__ import annotations

from membermkt.channels.wecom import (
    WeCom,
    WeComCallbackHandler,
    WeComEndpoint,
    WelcomeConfig,
    WelcomeMessage,
    WelcomeSender,
    decode_state,
    encode_state,
)
from membermkt.core.identity import Identity
from membermkt.segments import attr
from membermkt.stores import InMemoryStore
from membermkt.testing.emulator.wecom import WeComEmulator

CORPID, SECRET = "wwexample00000001", "example-contact-secret"

emulator = WeComEmulator(seed=1)
corp = emulator.add_corp(CORPID, SECRET)
corp.add_staff("clerk-12", "clerk-31")
client = WeCom(CORPID, SECRET, transport=emulator.transport())
store = InMemoryStore()

welcome = WelcomeSender(
    client,
    WelcomeConfig(
        default=WelcomeMessage(text="你好，我是 {{ staff }}，有问题随时问我。"),
        by_channel={"store-12": WelcomeMessage(text="欢迎光临 12 号店！我是 {{ staff }}。")},
    ),
    store=store,
    background=False,  # send inside the request (the default sends from a thread pool)
)
handler = WeComCallbackHandler(
    WeComEndpoint(corpid=CORPID, token=corp.token, encoding_aes_key=corp.encoding_aes_key),
    store=store,
    welcome=welcome,
)


def deliver(push: object) -> None:
    status, _, body = handler.handle(push.method, push.query, push.body)  # type: ignore[attr-defined]
    assert status == 200, body


def main() -> None:
    # 1. a channel code per store, with the campaign in the state (≤ 30 characters)
    codes = {}
    for store_id, clerk in (("store-12", "clerk-12"), ("store-31", "clerk-31")):
        way = client.add_contact_way(
            type=1, scene=2, users=[clerk], state=encode_state(store_id, "spring26")
        )
        codes[store_id] = way.config_id  # config_id cannot be recovered later: keep it
        print(f"{store_id}: state {way.state!r} -> {decode_state(way.state or '')}")
    # 2. customers add clerks by scanning the codes; WeCom pushes add_external_contact
    deliver(corp.scan(codes["store-12"], "wmCustomerA"))
    deliver(corp.scan(codes["store-31"], "wmCustomerB"))
    # 3. WeCom re-pushes after 5 s without an answer: recorded once, welcomed once
    push = corp.scan(codes["store-12"], "wmCustomerC")
    deliver(push)
    deliver(push)

    statuses = [(o.job.external_userid, o.status.value) for o in welcome.outcomes]
    print("welcomes:", statuses)
    assert [s for _, s in statuses] == ["sent", "sent", "sent"]
    received = {w.external_userid: w.text for w in corp.welcomes}
    assert received["wmCustomerA"].startswith("欢迎光临 12 号店")
    member = store.resolve(Identity.external_userid(CORPID, "wmCustomerA"))
    assert member is not None
    # 4. the channel is the member's acquisition source: segments and analytics use it
    far = store.events_for(member)[-1].at
    from_store_12 = store.count(attr("source") == "store-12", far)
    print(f"members from store-12: {from_store_12}")
    assert from_store_12 == 2


if __name__ == "__main__":
    main()
