"""Page-view and dwell-time beacons from the merchant's own pages.

Add ``<script src=".../beacon.js" data-endpoint=".../beacon" defer></script>`` to a page
(:func:`beacon_script` is its source). When the page is hidden or left, the script posts
``{"url", "dwell_seconds", "page_id"}`` once with ``navigator.sendBeacon``; the ingest end
(:class:`BeaconIngest`) turns it into a ``view`` event carrying ``url`` and
``dwell_seconds`` for the member behind the session. A page id is random per page load,
so a beacon sent twice (hidden, then closed) is stored once (the event key).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any

import attrs

from membermkt.core.events import Event
from membermkt.core.ports import EventLog
from membermkt.errors import UsageError

__all__ = ["MAX_DWELL_SECONDS", "BeaconIngest", "BeaconView", "beacon_script", "parse_beacon"]

MAX_DWELL_SECONDS = 86_400
URL_MAX = 1024
_PAGE_ID = re.compile(r"[a-z0-9]{1,32}")

_SCRIPT = """(function () {
  var s = document.currentScript, ep = (s && s.getAttribute("data-endpoint")) || "beacon";
  var t0 = Date.now(), sent = false, pid = Math.random().toString(36).slice(2, 14);
  function send() {
    if (sent) return;
    sent = true;
    var d = JSON.stringify({url: location.href.split("#")[0],
      dwell_seconds: Math.round((Date.now() - t0) / 1000), page_id: pid});
    if (navigator.sendBeacon) {
      navigator.sendBeacon(ep, new Blob([d], {type: "text/plain"}));
    } else {
      var x = new XMLHttpRequest(); x.open("POST", ep, false); x.send(d);
    }
  }
  addEventListener("pagehide", send);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") send();
  });
})();
"""


def beacon_script() -> str:
    """The beacon's JavaScript (serve it as ``application/javascript``)."""
    return _SCRIPT


@attrs.frozen(slots=True)
class BeaconView:
    """One decoded beacon."""

    url: str
    dwell_seconds: int
    page_id: str


def parse_beacon(body: bytes) -> BeaconView:
    """Decode and check a beacon body.

    Raises:
        UsageError: naming the bad field (not JSON, URL not http(s) or too long, dwell not
            a number in 0..86,400 seconds, bad page id).
    """
    try:
        data: Any = json.loads(body)
    except ValueError:
        raise UsageError("beacon body is not JSON") from None
    if not isinstance(data, dict):
        raise UsageError("beacon body must be a JSON object")
    url = data.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise UsageError("beacon url must be an http(s) URL")
    if len(url) > URL_MAX:
        raise UsageError(f"beacon url is longer than {URL_MAX} characters")
    dwell = data.get("dwell_seconds")
    if (
        isinstance(dwell, bool)
        or not isinstance(dwell, int | float)
        or not math.isfinite(dwell)
        or not 0 <= dwell <= MAX_DWELL_SECONDS
    ):
        raise UsageError(f"beacon dwell_seconds must be a number in 0..{MAX_DWELL_SECONDS}")
    page_id = data.get("page_id")
    if not isinstance(page_id, str) or not _PAGE_ID.fullmatch(page_id):
        raise UsageError("beacon page_id must be 1-32 chars of [a-z0-9]")
    return BeaconView(url.split("#", 1)[0], round(dwell), page_id)


class BeaconIngest:
    """Stores beacons as ``view`` events.

    Args:
        events: where the events go (a store).
        source: an optional ``source`` property naming the page family.
    """

    def __init__(self, events: EventLog, *, source: str | None = None) -> None:
        self.events = events
        self.source = source

    def ingest(self, member_id: str, session_id: str, body: bytes, *, now: dt.datetime) -> bool:
        """Record one beacon for ``member_id``; ``False`` when it was a repeat.

        Raises:
            UsageError: for a malformed beacon (see :func:`parse_beacon`).
        """
        view = parse_beacon(body)
        props: dict[str, str | int] = {"url": view.url, "dwell_seconds": view.dwell_seconds}
        if self.source:
            props["source"] = self.source
        event = Event(
            member_id,
            "view",
            now,
            props,
            key=f"view:{session_id}:{view.page_id}",
        )
        return self.events.append_events([event]) == 1
