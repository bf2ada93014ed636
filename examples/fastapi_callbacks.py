"""A WeChat official-account callback endpoint in FastAPI.

Serve it (point the account's server URL at ``https://your-host/wechat/``)::

    uvicorn examples.fastapi_callbacks:app --port 8000

or run this file to try it against the emulator, no account needed::

    python examples/fastapi_callbacks.py

Every push is verified, decrypted, parsed and recorded as member events in the store
(re-pushes are de-duplicated); new followers get a passive welcome reply.
"""

from __future__ import annotations

import asyncio
import os
import xml.etree.ElementTree as ET

import httpx
from fastapi import FastAPI

from membermkt.channels.wechat import CallbackHandler, Endpoint, Incoming
from membermkt.contrib.asgi import asgi_app
from membermkt.core.identity import Identity
from membermkt.stores import InMemoryStore

APPID = os.environ.get("WECHAT_APPID", "wxexample00000001")
TOKEN = os.environ.get("WECHAT_TOKEN", "example-token")
AES_KEY = os.environ.get("WECHAT_AES_KEY", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")

store = InMemoryStore()  # SqlStore("postgresql+psycopg://...") in production


def on_message(incoming: Incoming) -> str | None:
    """Called once per new push (never for WeChat's re-pushes); return a passive reply."""
    if any(e.type == "follow" for e in incoming.events):
        return incoming.reply_text("欢迎关注！")
    return None


handler = CallbackHandler(
    Endpoint(appid=APPID, token=TOKEN, encoding_aes_key=AES_KEY, scene_channels={"p1": "parcel"}),
    store=store,
    on_message=on_message,
)
app = FastAPI(title="membermkt callbacks")
app.mount("/wechat", asgi_app(handler))


async def self_test() -> None:
    """Drive the app with pushes from the emulator, as WeChat would send them."""
    from membermkt.testing.emulator.wechat import WeChatEmulator

    account = WeChatEmulator().add_account(APPID, "secret", token=TOKEN, encoding_aes_key=AES_KEY)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
        # 1. WeChat verifies the URL when you save the server settings
        check = account.verification_push("echo-42")
        r = await client.get("/wechat/", params=dict(check.query))
        assert (r.status_code, r.text) == (200, "echo-42"), r.text
        # 2. a buyer scans the QR code in their parcel (scene p1) and follows
        push = account.follow("oBuyer0001", scene="p1")
        r = await client.post("/wechat/", params=dict(push.query), content=push.body)
        envelope = ET.fromstring(r.text)
        reply = account.crypto.decrypt(
            r.text,
            envelope.findtext("MsgSignature", ""),
            envelope.findtext("TimeStamp", ""),
            envelope.findtext("Nonce", ""),
        )
        assert "欢迎关注" in reply
        # 3. WeChat re-pushes when an answer is slow: recorded once, no second welcome
        again = await client.post("/wechat/", params=dict(push.query), content=push.body)
        assert again.text == "success"
        # 4. a forged push is refused
        forged = dict(push.query, msg_signature="0" * 40)
        assert (await client.post("/wechat/", params=forged, content=push.body)).status_code == 403
    member_id = store.resolve(Identity.openid(APPID, "oBuyer0001"))
    assert member_id is not None
    events = store.events_for(member_id)
    assert [(e.type, e.properties.get("source")) for e in events] == [("follow", "parcel")]
    text = ET.fromstring(reply).findtext("Content")
    print(f"follow recorded for {member_id} (source parcel); welcome reply: {text}")
    handler.close()


if __name__ == "__main__":
    asyncio.run(self_test())
