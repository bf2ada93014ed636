"""A WeChat official-account callback endpoint in Flask.

Serve it (point the account's server URL at ``https://your-host/wechat``)::

    flask --app examples/flask_callbacks.py run --port 8000

or run this file to try it against the emulator, no account needed::

    python examples/flask_callbacks.py

Plaintext mode is shown here (no EncodingAESKey): pushes are signature-checked only. Add
``encoding_aes_key=`` to the :class:`Endpoint` for safe mode, as in the FastAPI example.
"""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET

import httpx
from flask import Flask

from membermkt.channels.wechat import CallbackHandler, Endpoint, Incoming
from membermkt.contrib.wsgi import flask_view
from membermkt.core.identity import Identity
from membermkt.stores import InMemoryStore

APPID = os.environ.get("WECHAT_APPID", "wxexample00000002")
TOKEN = os.environ.get("WECHAT_TOKEN", "example-token")

store = InMemoryStore()  # SqlStore("sqlite:///members.db") keeps them across restarts


def on_message(incoming: Incoming) -> str | None:
    """Answer a text message with the menu hint; record everything else silently."""
    if incoming.message.type == "text":
        return incoming.reply_text("回复 1 查订单，回复 2 领红包。")
    return None


handler = CallbackHandler(Endpoint(appid=APPID, token=TOKEN), store=store, on_message=on_message)
app = Flask(__name__)
app.add_url_rule("/wechat", view_func=flask_view(handler), methods=["GET", "POST"])


def self_test() -> None:
    """Drive the app with pushes from the emulator, as WeChat would send them."""
    from membermkt.testing.emulator.wechat import WeChatEmulator

    account = WeChatEmulator().add_account(APPID, "secret", token=TOKEN)
    t0 = time.time()
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://example") as c:
        check = account.verification_push("echo-7")
        assert c.get("/wechat", params=dict(check.query)).text == "echo-7"
        follow = account.event_push("oShopper01", "subscribe", at=t0, encrypted=False)
        assert c.post("/wechat", params=dict(follow.query), content=follow.body).text == "success"
        click = account.event_push("oShopper01", "CLICK", at=t0 + 1, encrypted=False, EventKey="A")
        c.post("/wechat", params=dict(click.query), content=click.body)
        text = account.text_push("oShopper01", "你好", at=t0 + 2, encrypted=False)
        r = c.post("/wechat", params=dict(text.query), content=text.body)
        reply = ET.fromstring(r.text).findtext("Content")
        assert reply is not None
        assert "红包" in reply
    member_id = store.resolve(Identity.openid(APPID, "oShopper01"))
    assert member_id is not None
    kinds = [e.type for e in store.events_for(member_id)]
    assert kinds == ["follow", "menu_click", "message"], kinds
    print(f"{member_id}: {kinds}; reply to the text message: {reply}")
    handler.close()


if __name__ == "__main__":
    self_test()
