"""What every chapter of the demo shares: its constants (ids, credentials of the emulated
accounts, file names, the story's conversion "truth"), the story clock, the synthetic
members' identities and the progress helpers."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.errors import UsageError

DEFAULT_MEMBERS = 2000
"""Members the demo makes by default (well under a minute on a laptop)."""
DEFAULT_SEED = 7
DEFAULT_WORKDIR = "membermkt-demo"

APPID = "wxdemo000000000001"
SECRET = "demo-secret"
CORPID = "wwdemo000000000001"
WECOM_SECRET = "demo-contact-secret"
MCH_ID = "1900000109"
API_KEY = "192006250b4c09247ec02edce69f6a2d"
CHANNELS = {"parcel": "parcel", "store": "store", "platform": "platform"}
RULE_ID = "parcel-welcome"
CAMPAIGN_ID = "summer-buyers"
CONVERSION_WINDOW = dt.timedelta(days=7)
STATE_FILE = "demo-state.json"
DB_FILE = "membermkt.db"
PHONE_KEY_FILE = "phone.key"
"""The demo's phone key (``<key id>:<base64>``), made once next to the database with
``secrets`` and re-read on re-runs
(:func:`membermkt.security.phone_policy.load_or_create_key_file`)."""
REPORT_FILE = "report.html"
# conversion probabilities in the week after the send (the story's "truth")
CONVERSION_RATES = {"holdout": 0.08, "A": 0.13, "B": 0.17}

Echo = Callable[[str], None]


class StoryClock:
    """The demo's clock: story time, moved explicitly (never the wall clock).

    It satisfies :class:`membermkt.core.ports.Clock` (``now()``) and gives the emulators a
    unix-seconds reading (:meth:`timestamp`).
    """

    def __init__(self, start: dt.datetime) -> None:
        if start.utcoffset() is None:
            raise UsageError("StoryClock needs a timezone-aware start")
        self._now = start
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StoryClock({self._now.isoformat()})"

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def timestamp(self) -> float:
        return self.now().timestamp()

    def set(self, at: dt.datetime) -> None:
        """Move to ``at`` (forwards or backwards: the story replays history)."""
        with self._lock:
            self._now = at


class _Stages:
    """``with stage(n, text):`` prints the step, then how long it took."""

    def __init__(self, echo: Echo) -> None:
        self._echo = echo

    @contextlib.contextmanager
    def __call__(self, n: int, text: str) -> Iterator[None]:
        self._echo(f"[{n}/7] {text}")
        t0 = time.perf_counter()
        yield
        self._echo(f"      ({time.perf_counter() - t0:.1f} s)")


def _hash_unit(*parts: str) -> float:
    d = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(d[:8], "big") / 2**64


def _parcel_order(member: Member, events: Sequence[Event]) -> Event | None:
    """The order whose parcel carried the QR code, for members who claim a red packet: it
    was placed a few days before they scanned (the synthetic history starts at the scan)."""
    claim = next((e for e in events if e.type == "redpacket_claim"), None)
    scan = next((e for e in events if e.type in ("scan", "follow")), None)
    if claim is None or scan is None:
        return None
    days = 2 + int(_hash_unit("parcel-days", member.id) * 4)
    return Event(
        member.id,
        "purchase",
        scan.at - dt.timedelta(days=days),
        {
            "order_id": f"{member.id}-p0",
            "amount_fen": 100 * (39 + int(_hash_unit("parcel-amt", member.id) * 160)),
            "category": "durian",
        },
        key=f"demo:parcel:{member.id}",
    )


def _openid(member: Member) -> str:
    for ident in member.identities:
        if ident.kind == "openid":
            return ident.value
    raise UsageError(f"synthetic member {member.id} has no openid")


def _external_userid(member: Member) -> str:
    for ident in member.identities:
        if ident.kind == "external_userid":
            return ident.value
    raise UsageError(f"synthetic member {member.id} has no external_userid")


def _phone(member: Member) -> str | None:
    """The synthetic generator's phone number for a member that has one (it only keeps the
    digest: rebuild the number from the member index, as the generator made it)."""
    if not any(i.kind == "phone" for i in member.identities):
        return None
    idx = int(member.id[1:])
    return f"13{idx % 1_000_000_000:09d}"


def _bar(progress: bool, total: int, desc: str) -> Any:
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional
        return None
    return tqdm(total=total, desc=desc, unit="member", leave=False)
