"""A WeCom chat-toolbar sidebar that shows the staff the customer card of the person they are
chatting with (FastAPI + the WeCom JS-SDK).

Inside WeCom, the page signs ``wx.agentConfig`` with the agent's ``jsapi_ticket`` (the
signature algorithm is the same as ``wx.config``: SHA-1 over ``jsapi_ticket``, ``noncestr``,
``timestamp`` and the page URL without its fragment), then calls
``wx.invoke("getCurExternalContact")`` for the current chat's ``external_userid`` and loads
the card. Outside WeCom (local runs, the browser test) pass ``?external_userid=...`` to skip
the SDK.

Run locally with a seeded demo store (no platform needed)::

    pip install 'membermkt[fastapi]' uvicorn
    python examples/wecom_sidebar.py --serve    # http://127.0.0.1:8000/sidebar?external_userid=wmDEMO

In production, give ``create_app`` a ``ticket`` callable that returns the agent's
``jsapi_ticket`` (cache it: it lives 7200 s; unconfirmed here: the exact ticket endpoint,
``/cgi-bin/ticket/get?type=agent_config``, is taken from WeCom's "获取应用身份的ticket" page —
check it against your corp's documentation).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse

from membermkt.card import customer_card
from membermkt.channels.wechat.api.jssdk import js_signature
from membermkt.core.analytics.offers import OfferRule
from membermkt.errors import UsageError

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Customer card</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:14px sans-serif;margin:8px} table{border-collapse:collapse}
td,th{border-bottom:1px solid #ddd;padding:2px 6px} #offer{color:#c60}</style>
</head><body><div id="card">Loading…</div>
<script>
const CONFIG = __CONFIG__;
async function show(externalUserid) {
  const q = "?external_userid=" + encodeURIComponent(externalUserid);
  const r = await fetch(CONFIG.base + "/card" + q);
  const el = document.getElementById("card");
  if (!r.ok) { el.textContent = "No card: " + (await r.json()).detail; return; }
  el.innerHTML = (await r.json()).html;
}
const given = new URLSearchParams(location.search).get("external_userid");
if (given) {
  show(given);
} else {
  const sdk = document.createElement("script");  // loaded only inside WeCom
  sdk.src = "https://open.work.weixin.qq.com/wwopen/js/jwxwork-1.0.0.js";
  sdk.onerror = () => {
    document.getElementById("card").textContent = "Open inside WeCom (or pass ?external_userid=).";
  };
  const page = encodeURIComponent(location.href.split("#")[0]);
  sdk.onload = () => fetch(CONFIG.base + "/config?url=" + page)
    .then(r => r.json()).then(c => wx.agentConfig({
      corpid: c.corpid, agentid: c.agentid, timestamp: c.timestamp, nonceStr: c.nonceStr,
      signature: c.signature, jsApiList: ["getCurExternalContact"],
      success: () => wx.invoke("getCurExternalContact", {}, res => {
        if (res.err_msg === "getCurExternalContact:ok") show(res.userId);
        else document.getElementById("card").textContent = "Open from a customer chat.";
      }),
      fail: res => { document.getElementById("card").textContent = "agentConfig failed"; }
    }));
  document.head.appendChild(sdk);
}
</script></body></html>"""


def create_app(
    store: Any,
    *,
    corpid: str,
    agentid: int | str,
    ticket: Callable[[], str],
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    offers: Sequence[OfferRule] | None = None,
    base: str = "/sidebar",
) -> FastAPI:
    """The sidebar app: ``GET {base}`` (the page), ``GET {base}/config?url=`` (the signed
    ``agentConfig`` parameters), ``GET {base}/card?external_userid=`` (the card as JSON with
    its HTML)."""
    app = FastAPI(title="membermkt customer card sidebar")

    @app.get(base, response_class=HTMLResponse)
    def page() -> str:
        return PAGE.replace("__CONFIG__", json.dumps({"base": base}))

    @app.get(f"{base}/config")
    def config(url: str = Query(...)) -> JSONResponse:
        nonce, ts = secrets.token_hex(8), int(time.time())
        try:
            signature = js_signature(ticket(), nonce, ts, url)
        except UsageError as exc:
            raise HTTPException(400, str(exc)) from exc
        return JSONResponse(
            {
                "corpid": corpid,
                "agentid": str(agentid),
                "timestamp": ts,
                "nonceStr": nonce,
                "signature": signature,
            }
        )

    @app.get(f"{base}/card")
    def card(external_userid: str = Query(..., min_length=1, max_length=128)) -> JSONResponse:
        try:
            c = customer_card(store, external_userid, now(), corpid=corpid, offers=offers)
        except UsageError as exc:
            raise HTTPException(404, str(exc)) from exc
        return JSONResponse({"card": c.to_dict(), "html": c._repr_html_()})

    return app


def demo_store(corpid: str = "wwDEMO") -> Any:
    """An in-memory store with one WeCom customer (``wmDEMO``) and some orders."""
    from membermkt import Identity, Member
    from membermkt.core.events import Event
    from membermkt.core.members import Profile
    from membermkt.stores.memory import InMemoryStore

    now = dt.datetime.now(dt.UTC)
    d = dt.timedelta(days=1)
    store = InMemoryStore()
    store.upsert_members(
        [
            Member(
                "demo-1",
                profile=Profile(tier="gold"),
                identities=[Identity("external_userid", "wmDEMO", corpid)],
            )
        ]
    )
    store.append_events(
        [
            Event(
                "demo-1", "contact_added", now - 120 * d, {"staff": "lisi", "source": "qr-store"}
            ),
            *(
                Event(
                    "demo-1",
                    "purchase",
                    now - k * d,
                    {"amount_fen": 6800 + k, "category": "durian", "order_id": f"D{k}"},
                    key=f"demo-p{k}",
                )
                for k in (3, 20, 45, 80)
            ),
        ]
    )
    return store


async def self_test() -> None:
    """Ask the app for the demo customer's card and the agentConfig parameters (no server)."""
    import httpx

    app = create_app(demo_store(), corpid="wwDEMO", agentid=1000002, ticket=lambda: "demo")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sidebar.test") as http:
        page = await http.get("/sidebar")
        card = (await http.get("/sidebar/card", params={"external_userid": "wmDEMO"})).json()
        config = (await http.get("/sidebar/config", params={"url": "https://s.example/x"})).json()
    assert page.status_code == 200
    print("orders (90 days):", [o["order_id"] for o in card["card"]["orders_90d"]])
    print("offer:", card["card"]["offer"], "-", card["card"]["offer_reason"])
    print("agentConfig signature:", config["signature"])


def main(argv: Sequence[str]) -> None:
    """``--serve``: run on http://127.0.0.1:8000; otherwise a self-test."""
    if "--serve" in argv:
        import uvicorn

        app = create_app(demo_store(), corpid="wwDEMO", agentid=1000002, ticket=lambda: "demo")
        uvicorn.run(app, host="127.0.0.1", port=8000)
    else:
        import asyncio

        asyncio.run(self_test())


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
