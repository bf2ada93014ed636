"""A WeChat official-account callback endpoint as a Django view.

In a Django project, add to ``urls.py``::

    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt
    from membermkt.contrib.wsgi import django_view

    urlpatterns = [path("wechat/", csrf_exempt(django_view(handler)))]

This file is a one-file Django project (settings, URLconf, view) that runs itself against
the emulator, no account needed::

    python examples/django_view.py
"""

from __future__ import annotations

import os

import django
from django.conf import settings

from membermkt.channels.wechat import CallbackHandler, Endpoint, Incoming
from membermkt.contrib.wsgi import django_view
from membermkt.core.identity import Identity
from membermkt.stores import InMemoryStore

APPID = os.environ.get("WECHAT_APPID", "wxexample00000003")
TOKEN = os.environ.get("WECHAT_TOKEN", "example-token")
AES_KEY = os.environ.get("WECHAT_AES_KEY", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG")

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="example-only",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["testserver", "localhost", "127.0.0.1"],
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()

from django.urls import path  # noqa: E402  (after settings.configure)
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

store = InMemoryStore()


def on_message(incoming: Incoming) -> str | None:
    if any(e.type == "follow" for e in incoming.events):
        return incoming.reply_text("欢迎！")
    return None


handler = CallbackHandler(
    Endpoint(appid=APPID, token=TOKEN, encoding_aes_key=AES_KEY),
    store=store,
    on_message=on_message,
)
urlpatterns = [path("wechat/", csrf_exempt(django_view(handler)))]


def self_test() -> None:
    """Drive the view through Django's test client with pushes from the emulator."""
    from django.test import Client

    from membermkt.testing.emulator.wechat import WeChatEmulator

    account = WeChatEmulator().add_account(APPID, "secret", token=TOKEN, encoding_aes_key=AES_KEY)
    client = Client()
    check = account.verification_push("echo-django")
    r = client.get("/wechat/", dict(check.query))
    assert (r.status_code, r.content) == (200, b"echo-django"), r.content
    push = account.follow("oDjango001", scene="store")
    r = client.post("/wechat/?" + push.query_string, data=push.body, content_type="application/xml")
    assert r.status_code == 200
    assert b"<Encrypt>" in r.content  # the welcome, encrypted in safe mode
    member_id = store.resolve(Identity.openid(APPID, "oDjango001"))
    assert member_id is not None
    events = store.events_for(member_id)
    assert [e.type for e in events] == ["follow"]
    print(f"{member_id} followed through scene {events[0].properties['scene']!r}")
    handler.close()


if __name__ == "__main__":
    self_test()
