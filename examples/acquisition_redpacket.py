"""Scene QR codes + red packets for verified orders: the seed acquisition flow.

A parcel carries a QR code; the buyer scans it, follows the official account, is asked for
the phone number and order id of the purchase, and — if a real order matches — gets a red
packet through WeChat Pay. Run it against the emulators (no accounts, no money)::

    python examples/acquisition_redpacket.py

What it shows: one scene QR code per acquisition channel; callbacks recorded as member
events with the channel as ``source``; a claim verified against the imported order;
budgets reserved atomically before paying; a repeated claim and a mistyped order refused;
reconciliation with the platform at the end.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import xml.etree.ElementTree as ET

from membermkt import Event, Identity, Member
from membermkt.channels.wechat import CallbackHandler, Endpoint, Incoming, OfficialAccount
from membermkt.core.redpackets import Claim, RedPacketRule, UniformAmount
from membermkt.engine.redpackets import RedPacketService
from membermkt.engine.runner import SystemClock
from membermkt.payouts.wechatpay.gateway import MerchantCertificate, WeChatPayV2Gateway
from membermkt.payouts.wechatpay.v2 import RedPacketConfig
from membermkt.security.phones import PhoneKey, PhoneProtector
from membermkt.segments import did
from membermkt.stores import InMemoryStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.testing.emulator.wechatpay import WeChatPayEmulator, make_test_credentials

APPID, SECRET, TOKEN = "wxexample00000004", "example-secret", "example-token"
MCH_ID, API_KEY = "1900000109", "192006250b4c09247ec02edce69f6a2d"
CHANNELS = {"parcel": "parcel", "store": "store", "platform": "platform"}

# --- the platforms (emulated) ----------------------------------------------------------
wechat = WeChatEmulator(seed=1)
account = wechat.add_account(APPID, SECRET, token=TOKEN)
client = OfficialAccount(APPID, SECRET, transport=wechat.transport())
credentials = make_test_credentials(MCH_ID)
pay = WeChatPayEmulator(credentials, appid=APPID, api_key=API_KEY)
with tempfile.TemporaryDirectory() as keys:  # never commit private keys
    files = credentials.write(keys)
    certificate = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
gateway = WeChatPayV2Gateway(
    RedPacketConfig(
        mch_id=MCH_ID,
        wxappid=APPID,
        api_key=API_KEY,
        send_name="榴莲小店",
        act_name="包裹红包",
        wishing="感谢购买",
        remark="扫码关注领红包",
    ),
    certificate,
    transport=pay.transport(),
)

# --- our side ----------------------------------------------------------------------------
# phone numbers are kept as a keyed blind index (+ the number encrypted): in production
# the key ring comes from MEMBERMKT_PHONE_KEYS (PhoneProtector.from_env()) and the store
# is SqlStore(url, phones=phones), which refuses phone identities without a key
phones = PhoneProtector(PhoneKey.generate("k1"))
store = InMemoryStore(phones=phones)
now = dt.datetime.now(dt.UTC)
rule = RedPacketRule(
    id="parcel-qr-example",
    mch_id=MCH_ID,
    amount=UniformAmount(188, 888),  # ¥1.88 .. ¥8.88
    total_budget_fen=100_000,
    eligibility=did("follow"),  # followers only
    require_purchase=True,  # the typed phone + order id must match a real order
    purchase_within=dt.timedelta(days=30),
    starts_at=now - dt.timedelta(days=1),
    ends_at=now + dt.timedelta(days=30),
)
service = RedPacketService(store, gateway, clock=SystemClock(), sleep=lambda s: None)
CLAIM = re.compile(r"^\s*(1\d{10})\s+(\S+)\s*$")


def on_message(incoming: Incoming) -> str | None:
    """Welcome followers; treat "<phone> <order id>" messages as red-packet claims."""
    if any(e.type == "follow" for e in incoming.events):
        return incoming.reply_text("欢迎！回复「手机号 订单号」领取包裹红包。")
    content = getattr(incoming.message, "content", "") or ""
    m = CLAIM.match(content)
    if m is None:
        return None
    source = "qr:parcel"
    outcome = service.claim(
        rule,
        Claim.for_phone(
            member_id=incoming.member_id,
            address=incoming.message.openid,
            phone=phones.identity(m.group(1)),
            order_id=m.group(2),
            source=source,
        ),
    )
    if outcome.paid:
        return incoming.reply_text(f"红包 ¥{(outcome.amount_fen or 0) / 100:.2f} 已发放！")
    return incoming.reply_text(f"抱歉，未能发放（{outcome.reason or outcome.status}）")


handler = CallbackHandler(
    Endpoint(
        appid=APPID,
        token=TOKEN,
        encoding_aes_key=account.encoding_aes_key,  # safe mode: pushes are encrypted
        scene_channels=CHANNELS,
    ),
    store=store,
    on_message=on_message,
)


def push(p: object) -> str:
    """Deliver an emulator push to our handler; return the reply text (or "success")."""
    status, _, body = handler.handle(p.method, p.query, p.body)  # type: ignore[attr-defined]
    assert status == 200, body
    text = body.decode()
    if text == "success":
        return text
    env = ET.fromstring(text)  # the encrypted reply envelope
    sig, ts, nonce = (env.findtext(k, "") for k in ("MsgSignature", "TimeStamp", "Nonce"))
    return ET.fromstring(account.crypto.decrypt(text, sig, ts, nonce)).findtext("Content") or ""


def main() -> None:
    # 1. one scene QR code per channel (print it on parcels, store counters, platform pages)
    for name, scene in CHANNELS.items():
        qr = client.create_qrcode(scene, permanent=True)
        print(f"QR code for {name:8}: {qr.image_url[:70]}...")
    # 2. the order, imported from the e-commerce platform (the buyer's phone is indexed
    #    with our key and encrypted, never stored raw)
    buyer = phones.protect(Member("tmall-buyer-1"), "13800138000")
    store.upsert_members([buyer])
    store.append_events(
        [
            Event(
                buyer.id,
                "purchase",
                now - dt.timedelta(days=3),
                {"order_id": "T20261120-0001", "amount_fen": 25_900, "category": "durian"},
                key="order:T20261120-0001",
            )
        ]
    )
    # 3. the buyer scans the parcel's QR code and follows, then types phone + order id
    t = now.timestamp() - 120  # the story happened in the last two minutes (pushes older
    # than the handler's freshness window, 5 minutes, are refused as replays)
    print("follow  ->", push(account.follow("oParcelBuyer1", scene="parcel", at=t)))
    claim = account.text_push("oParcelBuyer1", "13800138000 T20261120-0001", at=t + 30)
    print("claim   ->", push(claim))
    again = account.text_push("oParcelBuyer1", "13800138000 T20261120-0001", at=t + 60)
    print("again   ->", push(again))
    # 4. someone else tries a made-up order
    push(account.follow("oGuesser001", scene="store", at=t + 90))
    print("made-up ->", push(account.text_push("oGuesser001", "13900000000 X-1", at=t + 99)))
    handler.close()

    # what really moved, and whether our ledger agrees with WeChat Pay
    assert len(pay.payments) == 1, pay.payments
    assert pay.paid_per_openid()["oParcelBuyer1"] == 1
    report = service.reconcile(rule)
    assert report.ok, report
    member_id = store.resolve(Identity.openid(APPID, "oParcelBuyer1"))
    assert member_id is not None
    kinds = [e.type for e in store.events_for(member_id)]
    print(f"paid ¥{pay.total_paid_fen / 100:.2f} once; reconciliation ok; events {kinds}")


if __name__ == "__main__":
    main()
