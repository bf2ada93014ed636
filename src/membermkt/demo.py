"""The whole member-marketing story on one machine: no accounts, no servers.

``membermkt demo`` (and :func:`run_demo`) plays it on an embedded SQLite database and the
in-process platform emulators:

1. **Set-up** — an official account, a WeChat Pay merchant and a WeCom corp are emulated; the
   account gets one scene QR code per acquisition channel (``parcel``, ``store``,
   ``platform``) and a menu.
2. **Acquisition** — synthetic buyers (:mod:`membermkt.testing.synthetic`) scan a scene QR
   code and follow: each follow and the first menu click arrive as signed, encrypted
   callbacks, go through :class:`~membermkt.channels.wechat.CallbackHandler` into the store,
   and new followers get a passive welcome reply. WeCom contacts arrive through channel
   codes (contact ways whose ``state`` names the channel). The rest of each buyer's history
   (page views, messages, orders) is imported in bulk, as a merchant back-fills from order
   exports.
3. **Red packets** — buyers who claim type their phone number and order id; the claim is
   verified against their orders and paid through the WeChat Pay emulator by
   :class:`~membermkt.engine.redpackets.RedPacketService` (budgets reserved atomically, bill
   numbers derived from the business key).
4. **Campaign** — an A/B mass send to subscribed buyers with a 10 % holdout: simulated
   first, then written to the delivery ledger and sent through the emulator by
   :class:`~membermkt.engine.campaigns.CampaignRunner`; purchases in the week after the
   send give conversions and lift against the holdout.
5. **Tags and segments** — rule tags (``vip``, ``new``, ``lapsed``), RFM group tags and a
   few named segments, as of a week after the campaign.
6. **Report** — the analytics bundle (funnel, attribution, RFM, paths, cohorts, …) plus the
   campaign and red-packet sections, as one self-contained HTML file.

Everything is deterministic for a given ``members``/``seed``, and every step is idempotent:
events are de-duplicated by key, claims and deliveries live in ledgers in the database. A
second run over the same working directory resumes: it skips the finished import, sends
nothing twice and pays nothing twice, and rewrites the report.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import html
import json
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from membermkt._version import __version__
from membermkt.core.events import Event
from membermkt.core.members import Member, MemberState
from membermkt.errors import UsageError

__all__ = [
    "DEFAULT_MEMBERS",
    "DEFAULT_SEED",
    "DEFAULT_WORKDIR",
    "DemoResult",
    "StoryClock",
    "run_demo",
]

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


@attrs.frozen(kw_only=True)
class DemoResult:
    """What a demo run did (``new_*``: this run; the others: the database's totals).

    Attributes:
        workdir / database / report: where things were written.
        resumed: an earlier run had already imported the population.
        members / events: members and events in the store.
        pushes: callbacks handled in this run; ``welcomed``: welcome replies sent in it.
        claims: claim outcome → count for this run (``paid``, ``denied:<reason>``, ...).
        paid_fen / payouts: money paid (all runs) and payouts made in this run.
        tags: tag → members.
        segments: named segment → members.
        simulation: variant/holdout → planned count from the simulation.
        deliveries: ledger status → count for the campaign (all runs).
        new_sends: mass-send deliveries sent by this run.
        duplicate_receipts: duplicate receipts counted by the emulator in this run.
        funnel: step name → members (the acquisition funnel).
        attribution: source → (members, buyers, revenue in fen).
        lift: variant → (conversion rate, lift over holdout) — ``None`` where undefined.
        seconds: wall time of the run.
    """

    workdir: Path
    database: Path
    report: Path | None
    resumed: bool
    members: int
    events: int
    pushes: int
    welcomed: int
    claims: dict[str, int]
    payouts: int
    paid_fen: int
    tags: dict[str, int]
    segments: dict[str, int]
    simulation: dict[str, int]
    deliveries: dict[str, int]
    new_sends: int
    duplicate_receipts: int
    funnel: dict[str, int]
    attribution: dict[str, tuple[int, int, int]]
    lift: dict[str, tuple[float | None, float | None]]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-able values (paths as strings, tuples as lists)."""
        out: dict[str, Any] = attrs.asdict(self, recurse=False)
        for k in ("workdir", "database", "report"):
            out[k] = None if out[k] is None else str(out[k])
        out["attribution"] = {k: list(v) for k, v in self.attribution.items()}
        out["lift"] = {k: list(v) for k, v in self.lift.items()}
        return out


def table_counts(store: Any) -> dict[str, int]:
    """Rows per table of a :class:`~membermkt.stores.SqlStore` (members, identities, tags,
    events, deliveries, budgets, payouts), read through a short-lived engine of its own."""
    import sqlalchemy as sa

    engine = sa.create_engine(store.url)
    try:
        t = store.tables
        out = {}
        with engine.connect() as conn:
            for name in (
                "members",
                "identities",
                "tags",
                "events",
                "deliveries",
                "budgets",
                "payouts",
            ):
                table = getattr(t, name)
                out[name] = int(
                    conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                )
        return out
    finally:
        engine.dispose()


class _Stages:
    """``with stage(n, text):`` prints the step, then how long it took."""

    def __init__(self, echo: Echo) -> None:
        self._echo = echo

    @contextlib.contextmanager
    def __call__(self, n: int, text: str) -> Iterator[None]:
        self._echo(f"[{n}/6] {text}")
        t0 = time.perf_counter()
        yield
        self._echo(f"      ({time.perf_counter() - t0:.1f} s)")


def _hash_unit(*parts: str) -> float:
    d = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(d[:8], "big") / 2**64


def _load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a demo state file ({exc}); use --fresh") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a demo state file; use --fresh")
    return data


def _save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


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


# --------------------------------------------------------------------------- the story


def run_demo(
    *,
    members: int = DEFAULT_MEMBERS,
    workdir: str | Path = DEFAULT_WORKDIR,
    seed: int = DEFAULT_SEED,
    fresh: bool = False,
    report: bool = True,
    echo: Echo = print,
    progress: bool = False,
) -> DemoResult:
    """Play the demo story (see the module docstring) in ``workdir``.

    Args:
        members: how many synthetic buyers.
        workdir: the directory for the SQLite database, the state file and the report.
        seed: the population seed.
        fresh: delete an earlier demo in ``workdir`` first.
        report: write the HTML report (needs the ``plot`` extra).
        echo: where progress lines go.
        progress: draw progress bars (tqdm, when installed) for the long steps.

    Returns:
        A :class:`DemoResult`.

    Raises:
        UsageError: for bad arguments, or a ``workdir`` holding a demo made with other
            arguments (use ``fresh=True``).
        StoreError: when the database fails.
    """
    if isinstance(members, bool) or not isinstance(members, int) or members < 2:
        raise UsageError(f"members must be an int >= 2, got {members!r}")
    started = time.perf_counter()
    work = Path(workdir)
    if fresh and work.exists():
        for name in (DB_FILE, STATE_FILE, REPORT_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm"):
            (work / name).unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / STATE_FILE
    state = _load_state(state_path)
    wanted = {"members": members, "seed": seed}
    if state and {k: state.get(k) for k in wanted} != wanted:
        raise UsageError(
            f"{work} holds a demo made with --members {state.get('members')} "
            f"(seed {state.get('seed')}); run with --fresh or another --workdir"
        )
    state.update(wanted)
    state.setdefault("done", [])
    resumed = "import" in state["done"]

    from membermkt.stores.sql.store import SqlStore
    from membermkt.testing.synthetic import SyntheticConfig, generate

    db_path = work / DB_FILE
    store = SqlStore(f"sqlite:///{db_path}")
    try:
        store.create_schema()
        cfg = SyntheticConfig(seed=seed, appid=APPID, corpid=CORPID)
        as_of = cfg.as_of
        clock = StoryClock(as_of)
        population = list(generate(members, config=cfg))
        echo(
            f"membermkt {__version__} demo: {members:,} synthetic buyers, seed {seed}, "
            f"database {db_path}" + (" (resuming)" if resumed else "")
        )

        stage = _Stages(echo)
        # 1. platform set-up ------------------------------------------------------------
        with stage(1, "emulated official account, WeCom corp and WeChat Pay merchant"):
            world = _World.build(clock, population, work)

        # 2. acquisition ----------------------------------------------------------------
        pushes = welcomed = 0
        if resumed:
            with stage(2, "acquisition: already imported by an earlier run, skipped"):
                pass
        else:
            with stage(2, "acquisition: QR follows, WeCom channel codes, welcomes, clicks, orders"):
                pushes, welcomed = _acquire(store, world, population, clock, echo, progress)
            state["done"].append("import")
            _save_state(state_path, state)

        # 3. red packets ----------------------------------------------------------------
        with stage(3, "red packets: claims with phone + order id, paid through WeChat Pay"):
            claims, payouts, paid_fen = _red_packets(
                store,
                world,
                population,
                clock,
                progress,
                claimed="claims" in state["done"],
                echo=echo,
            )
        if "claims" not in state["done"]:
            state["done"].append("claims")
            _save_state(state_path, state)

        # 4. campaign -------------------------------------------------------------------
        with stage(4, "campaign: simulate, then A/B mass send with a 10% holdout"):
            camp = _campaign(store, world, clock, as_of, echo, progress)

        report_as_of = as_of + CONVERSION_WINDOW + dt.timedelta(days=1)
        # 5. tags and segments ------------------------------------------------------------
        with stage(5, "tags and segments, as of a week after the campaign"):
            tags, segments = _tags_and_segments(store, world, report_as_of, echo)

        # 6. report ---------------------------------------------------------------------
        with stage(6, "analytics and the HTML report"):
            analytics = _analytics(
                store,
                report_as_of,
                work / REPORT_FILE if report else None,
                camp,
                rule_id=RULE_ID,
            )
        counts = table_counts(store)
        stats = counts["members"], counts["events"]
        state["runs"] = int(state.get("runs", 0)) + 1
        _save_state(state_path, state)
    finally:
        store.close()

    return DemoResult(
        workdir=work,
        database=db_path,
        report=work / REPORT_FILE if report else None,
        resumed=resumed,
        members=stats[0],
        events=stats[1],
        pushes=pushes,
        welcomed=welcomed,
        claims=claims,
        payouts=payouts,
        paid_fen=paid_fen,
        tags=tags,
        segments=segments,
        simulation=camp.simulation,
        deliveries=camp.deliveries,
        new_sends=camp.new_sends,
        duplicate_receipts=world.wechat.duplicates,
        funnel=analytics[0],
        attribution=analytics[1],
        lift=camp.lift,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- set-up


@attrs.define
class _World:
    """The emulated platforms and the clients wired to them."""

    wechat: Any
    account: Any
    client: Any
    pay: Any
    gateway: Any
    qrcodes: dict[str, str]
    wecom: Any
    corp: Any
    wecom_client: Any
    ways: dict[tuple[str, str], str]

    @classmethod
    def build(cls, clock: StoryClock, population: Sequence[Any], work: Path) -> _World:
        from membermkt.channels.wechat import OfficialAccount
        from membermkt.channels.wechat.api.menu import Button
        from membermkt.payouts.wechatpay.gateway import MerchantCertificate, WeChatPayV2Gateway
        from membermkt.payouts.wechatpay.v2 import RedPacketConfig
        from membermkt.testing.emulator.wechat import WeChatEmulator
        from membermkt.testing.emulator.wechatpay import WeChatPayEmulator, make_test_credentials

        wechat = WeChatEmulator(seed=1, clock=clock.timestamp, limits=())
        account = wechat.add_account(APPID, SECRET)
        # followers known to the platform (a resumed campaign needs them)
        account.add_followers(_openid(m) for m, _ in population)
        client = OfficialAccount(
            APPID,
            SECRET,
            transport=wechat.transport(),
            clock=clock,
            sleep=lambda s: None,
            budgets=(),
        )
        qrcodes = {
            name: client.create_qrcode(scene, permanent=True).image_url
            for name, scene in CHANNELS.items()
        }
        # at most 3 top-level buttons (a platform rule): C and D sit under "More"
        client.create_menu(
            [
                Button.click("Shop", "A"),
                Button.click("Offers", "B"),
                Button.parent("More", Button.click("Member", "C"), Button.click("Help", "D")),
            ]
        )

        creds = make_test_credentials(MCH_ID, now=clock.now() - dt.timedelta(days=400))
        pay = WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, clock=clock.now, seed=1)
        with tempfile.TemporaryDirectory(prefix="membermkt-demo-keys-") as keys:
            files = creds.write(keys)
            cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
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
            cert,
            transport=pay.transport(),
        )
        # WeCom: one channel code (contact way) per acquisition channel and clerk; its
        # ``state`` names the channel and comes back in the add-contact callback
        from membermkt.channels.wecom import WeCom, encode_state
        from membermkt.testing.emulator.wecom import WeComEmulator

        wecom = WeComEmulator(seed=1, clock=clock.timestamp)
        corp = wecom.add_corp(CORPID, WECOM_SECRET)
        staff = sorted(
            {
                str(e.properties["staff"])
                for _, evs in population
                for e in evs
                if e.type == "contact_added"
            }
        )
        corp.add_staff(*staff)
        wecom_client = WeCom(
            CORPID, WECOM_SECRET, transport=wecom.transport(), clock=clock, sleep=lambda s: None
        )
        ways = {}
        for channel in CHANNELS:
            for userid in staff:
                way = wecom_client.add_contact_way(
                    type=1, scene=2, users=[userid], state=encode_state(f"wecom-{channel}")
                )
                ways[(f"wecom-{channel}", userid)] = way.config_id
        return cls(wechat, account, client, pay, gateway, qrcodes, wecom, corp, wecom_client, ways)


def _bar(progress: bool, total: int, desc: str) -> Any:
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional
        return None
    return tqdm(total=total, desc=desc, unit="member", leave=False)


# --------------------------------------------------------------------------- acquisition

LIVE_DAYS = 30
_SEPARATE = frozenset({"redpacket_claim"})


def _acquire(
    store: Any,
    world: _World,
    population: Sequence[tuple[Member, list[Event]]],
    clock: StoryClock,
    echo: Echo,
    progress: bool,
) -> tuple[int, int]:
    from membermkt.channels.wechat import CallbackHandler, Endpoint, Incoming

    account = world.account
    welcomed = [0]

    def on_message(incoming: Incoming) -> str | None:
        if any(e.type == "follow" for e in incoming.events):
            welcomed[0] += 1
            return incoming.reply_text("欢迎关注！回复手机号和订单号领取包裹红包。")
        return None

    from membermkt.channels.wecom import (
        WeComCallbackHandler,
        WeComEndpoint,
        WelcomeConfig,
        WelcomeMessage,
        WelcomeSender,
    )

    sender = WelcomeSender(
        world.wecom_client,
        WelcomeConfig(
            default=WelcomeMessage(text="你好，我是店员 {{ staff }}，有问题随时找我。"),
            by_channel={
                "wecom-parcel": WelcomeMessage(text="感谢购买！我是 {{ staff }}，售后找我。"),
            },
        ),
        store=store,
        clock=clock.timestamp,
        background=False,
    )
    corp = world.corp
    wecom_handler = WeComCallbackHandler(
        WeComEndpoint(corpid=CORPID, token=corp.token, encoding_aes_key=corp.encoding_aes_key),
        store=store,
        welcome=sender,
        clock=clock.timestamp,
    )
    handler = CallbackHandler(
        Endpoint(
            appid=APPID,
            token=account.token,
            encoding_aes_key=account.encoding_aes_key,
            scene_channels=CHANNELS,
        ),
        store=store,
        on_message=on_message,
        clock=clock.timestamp,
    )
    # profiles first (the e-commerce platforms' buyer records), with an empty state: the
    # store folds the state from the events
    store.upsert_members(
        attrs.evolve(m, state=MemberState(), tags=frozenset()) for m, _ in population
    )
    bulk: list[Event] = []
    pushes = 0
    # every follow arrives live; so do first menu clicks of the last LIVE_DAYS days
    as_of = clock.now()
    live_since = as_of - dt.timedelta(days=LIVE_DAYS)
    bar = _bar(progress, len(population), "callbacks")
    try:
        for member, events in population:
            openid = _openid(member)
            clicked = False
            for ev in events:
                if ev.type == "follow":
                    clock.set(ev.at)
                    push = account.follow(openid, scene=str(ev.properties["scene"]))
                elif ev.type == "menu_click" and not clicked and ev.at >= live_since:
                    clicked = True
                    clock.set(ev.at)
                    push = account.event_push(openid, "CLICK", EventKey=str(ev.properties["key"]))
                elif ev.type == "contact_added":
                    clock.set(ev.at)
                    way = world.ways[(str(ev.properties["source"]), str(ev.properties["staff"]))]
                    push = corp.scan(way, _external_userid(member))
                    status, _, body = wecom_handler.handle(push.method, push.query, push.body)
                    if status != 200:
                        raise UsageError(f"WeCom callback for {member.id}: {status} {body!r}")
                    pushes += 1
                    continue
                else:
                    if ev.type not in _SEPARATE:
                        bulk.append(ev)
                    continue
                status, _, body = handler.handle(push.method, push.query, push.body)
                if status != 200:
                    raise UsageError(f"callback for {member.id} answered {status}: {body!r}")
                pushes += 1
            order = _parcel_order(member, events)
            if order is not None:
                bulk.append(order)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        handler.close()
        clock.set(as_of)
    store.append_events(bulk)
    welcomes = Counter(o.status.value for o in sender.outcomes)
    echo(
        f"      {pushes:,} callbacks handled; {welcomed[0]:,} followers welcomed on the official "
        f"account, {welcomes.get('sent', 0):,} WeCom contacts welcomed; "
        f"{len(bulk):,} history events imported"
    )
    return pushes, welcomed[0] + welcomes.get("sent", 0)


# --------------------------------------------------------------------------- red packets


def _red_packets(
    store: Any,
    world: _World,
    population: Sequence[tuple[Member, list[Event]]],
    clock: StoryClock,
    progress: bool,
    *,
    claimed: bool,
    echo: Echo,
) -> tuple[dict[str, int], int, int]:
    from membermkt.core.redpackets import Claim, RedPacketRule, UniformAmount
    from membermkt.engine.redpackets import RedPacketService
    from membermkt.segments import did

    as_of = clock.now()
    rule = RedPacketRule(
        id=RULE_ID,
        mch_id=MCH_ID,
        amount=UniformAmount(100, 500),
        total_budget_fen=150_000,
        eligibility=did("follow"),
        starts_at=as_of - dt.timedelta(days=400),
        ends_at=as_of + dt.timedelta(days=30),
        require_purchase=True,
    )
    service = RedPacketService(
        store,
        world.gateway,
        clock=clock,
        rng=random.Random(RULE_ID),
        sleep=lambda s: None,
    )
    # who claims, and when: a few minutes after following, the buyer types the phone number
    # and the order id printed on the parcel; one in ten mistypes the order id
    claims: list[tuple[dt.datetime, Claim]] = []
    for member, events in population:
        order = _parcel_order(member, events)
        claim_ev = next((e for e in events if e.type == "redpacket_claim"), None)
        if order is None or claim_ev is None or claim_ev.at > as_of:
            continue
        order_id = str(order.properties["order_id"])
        if _hash_unit("typo", member.id) < 0.1:
            order_id = order_id.replace("-p0", "-p1")
        claims.append(
            (
                claim_ev.at,
                Claim.with_phone(
                    member_id=member.id,
                    address=_openid(member),
                    phone=_phone(member),
                    order_id=order_id,
                    source=f"qr:{claim_ev.properties.get('source', 'parcel')}",
                ),
            )
        )
    claims.sort(key=lambda c: (c[0], c[1].member_id))
    if claimed:
        # an earlier run submitted every claim: only finish payouts it left open
        finished = service.resume_open(rule.id)
        claims = []
        if finished:
            echo(f"      finished {len(finished):,} payouts an earlier run left open")
    outcomes: Counter[str] = Counter()
    payouts = 0
    bar = _bar(progress, len(claims), "red packets")
    try:
        for at, claim in claims:
            clock.set(at)
            out = service.claim(rule, claim)
            if out.status == "denied":
                outcomes[f"denied:{out.reason}"] += 1
            else:
                outcomes[out.status] += 1
            if out.status == "paid" and not out.resumed:
                payouts += 1
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        clock.set(as_of)
    intents = list(store.intents(rule_id=rule.id))
    paid_fen = sum(i.amount_fen for i in intents if i.status == "paid")
    echo(
        "      claims this run: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())) or "none (all done)")
        + f"; payouts in the ledger {sum(i.status == 'paid' for i in intents):,}"
        + f" (¥{paid_fen / 100:,.2f} of ¥{rule.total_budget_fen / 100:,.2f})"
    )
    return dict(outcomes), len(world.pay.payments), paid_fen


# --------------------------------------------------------------------------- tags, segments


def demo_segments() -> dict[str, Any]:
    """The named segments the demo counts (and the CLI's examples show)."""
    from membermkt.segments import ago, attr, did, tag

    return {
        "subscribed buyers": (attr("subscribed") == True) & (attr("orders_count") >= 1),  # noqa: E712
        "female, Shanghai or Hangzhou, 25-40": (attr("gender") == "female")
        & attr("city").isin(["Shanghai", "Hangzhou"])
        & attr("age").between(25, 40),
        "VIP or 3+ orders in 90 days": tag("vip")
        | did("purchase", at_least=3, within=dt.timedelta(days=90)),
        "clicked menu A in 30 days": did(
            "menu_click", where={"key": "A"}, within=dt.timedelta(days=30)
        ),
        "parcel QR, active 30 days": (attr("source") == "parcel")
        & (attr("last_active_at") >= ago(days=30)),
    }


def _tags_and_segments(
    store: Any, world: _World, as_of: dt.datetime, echo: Echo
) -> tuple[dict[str, int], dict[str, int]]:
    from membermkt import analytics
    from membermkt.segments import ago, attr, tag

    rules = {
        "vip": attr("orders_total_fen") >= 50_000,
        "new": (attr("subscribed") == True) & (attr("followed_at") >= ago(days=14)),  # noqa: E712
        "lapsed": (attr("orders_count") >= 1) & (attr("last_order_at") < ago(days=90)),
    }
    counts: dict[str, int] = {}
    tagged: dict[str, set[str]] = {}
    for name, segment in rules.items():
        ids = set(store.select(segment, as_of))
        store.tag(ids, name)
        store.untag(set(store.select(tag(name), as_of)) - ids, name)
        counts[name] = len(ids)
        tagged[name] = ids
    # the rule tags also go to the official account's own user tags (mass sends by tag,
    # the account's admin console); sync_tags keeps to the platform's tag limits
    members = store.get_members(set().union(*tagged.values()))
    desired: dict[str, set[str]] = {}
    for name, ids in tagged.items():
        for mid in ids:
            member = members.get(mid)
            if member is not None and member.state.subscribed:
                desired.setdefault(_openid(member), set()).add(name)
    plan = world.client.sync_tags(desired, managed=list(rules))
    echo(
        "      WeChat user tags synced: "
        + ", ".join(f"{k} +{len(v):,}" for k, v in sorted(plan.add.items()))
    )
    rfm = analytics.rfm(store, as_of=as_of)
    analytics.tag_rfm_groups(store, rfm)
    for group, n in sorted(rfm.group_counts().items()):
        counts[f"rfm:{group}"] = n
    segments = {name: store.count(seg, as_of) for name, seg in demo_segments().items()}
    return counts, segments


# --------------------------------------------------------------------------- campaign


@attrs.frozen(kw_only=True)
class _CampaignOutcome:
    campaign: Any
    summary: Any
    report: Any
    simulation: dict[str, int]
    deliveries: dict[str, int]
    new_sends: int
    treatment: tuple[str, ...]
    lift: dict[str, tuple[float | None, float | None]]


def demo_campaign(audience: Any | None = None) -> Any:
    """The demo's campaign: an A/B mass send to subscribed buyers, 10 % held out."""
    from membermkt.core.campaigns import Campaign, Variant

    segment = audience if audience is not None else demo_segments()["subscribed buyers"]
    return Campaign(
        id=CAMPAIGN_ID,
        audience=segment,
        channel="wechat.mass",
        variants=(
            Variant(
                name="A",
                content={"msgtype": "text", "text": {"content": "夏季新品上市，会员九折。"}},
            ),
            Variant(
                name="B",
                content={"msgtype": "text", "text": {"content": "榴莲季到了！老客专享八五折。"}},
            ),
        ),
        holdout=0.1,
        address_namespace=APPID,
    )


def audience_of(store: Any, segment: Any, as_of: dt.datetime) -> list[tuple[Member, list[Event]]]:
    """``(member, events until as_of)`` of a segment's members, in id order, loaded in bulk:
    one batched member read and one pass over the event log (instead of two queries per
    member, as :func:`membermkt.engine.campaigns.members_of` does — that one streams, this
    one is for audiences that fit in memory)."""
    ids = sorted(store.select(segment, as_of))
    members = store.get_members(ids)
    wanted = set(ids)
    events: dict[str, list[Event]] = {mid: [] for mid in ids}
    for ev in store.iter_events():
        if ev.member_id in wanted and ev.at <= as_of:
            events[ev.member_id].append(ev)
    out = []
    for mid in ids:
        member = members.get(mid)
        if member is not None:
            evs = events[mid]
            evs.sort(key=lambda e: (e.at, e.key or ""))
            out.append((member, evs))
    return out


def _campaign(
    store: Any, world: _World, clock: StoryClock, as_of: dt.datetime, echo: Echo, progress: bool
) -> _CampaignOutcome:
    from membermkt.channels.wechat import WeChatMassChannel
    from membermkt.core.campaigns import HOLDOUT, check
    from membermkt.engine.campaigns import (
        CampaignReport,
        CampaignRunner,
        prepare,
        simulate,
        tqdm_progress,
    )

    async def no_sleep(seconds: float) -> None:
        return None

    campaign = demo_campaign()
    channel = WeChatMassChannel(world.client)
    check(campaign, capabilities=channel.capabilities)
    clock.set(as_of)
    audience = audience_of(store, campaign.audience, as_of)
    sim = simulate(campaign, audience, None, as_of, capabilities=channel.capabilities, keep=0)
    planned = dict(sim.summary.deliveries)
    planned[HOLDOUT] = sum(sim.summary.skipped.get(HOLDOUT, {}).values())
    echo(
        "      simulated: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(planned.items()))
        + f"; API calls {sum(c.get('api_calls', 0) for c in sim.quota_cost.values())}"
    )
    summary = prepare(store, campaign, audience, None, as_of)
    runner = CampaignRunner(
        store,
        channel,
        clock=clock,
        sleep=no_sleep,
        rate_per_second=None,
        concurrency=2,
        seed=1,
        progress=tqdm_progress(desc="mass send", leave=False) if progress else None,
    )
    result = runner.run(campaign.id)
    deliveries = {k: v for k, v in store.status_counts(campaign.id).items() if v}
    echo(
        f"      sent this run: {result.sent:,}; ledger: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(deliveries.items()) if v)
    )
    # the week after the send: buyers respond (more often when they got a message)
    records = list(store.deliveries(campaign.id))
    reached = tuple(sorted(r.delivery.member_id for r in records if r.status.value == "sent"))
    variant_of = {r.delivery.member_id: r.delivery.variant for r in records}
    for mid in summary.holdout_ids:
        variant_of[mid] = HOLDOUT
    conversions: list[Event] = []
    for mid, group in sorted(variant_of.items()):
        u = _hash_unit(CAMPAIGN_ID, mid)
        if group != HOLDOUT and mid not in reached:
            continue
        if u < CONVERSION_RATES.get(group, 0.0):
            at = as_of + dt.timedelta(hours=1 + int(_hash_unit("at", mid) * 24 * 6))
            conversions.append(
                Event(
                    mid,
                    "purchase",
                    at,
                    {
                        "order_id": f"{mid}-c1",
                        "amount_fen": 100 * (60 + int(_hash_unit("amt", mid) * 240)),
                        "category": "durian",
                        "campaign": CAMPAIGN_ID,
                    },
                    key=f"demo:{CAMPAIGN_ID}:{mid}",
                )
            )
    store.append_events(conversions)
    report = CampaignReport.build(
        campaign, records, summary, conversions=conversions, window=CONVERSION_WINDOW
    )
    lift = {g.group: (g.rate, g.lift) for g in report.groups if g.group != "-"}
    return _CampaignOutcome(
        campaign=campaign,
        summary=summary,
        report=report,
        simulation=planned,
        deliveries=deliveries,
        new_sends=result.sent,
        treatment=reached,
        lift=lift,
    )


# --------------------------------------------------------------------------- analytics


def _analytics(
    store: Any,
    as_of: dt.datetime,
    path: Path | None,
    camp: _CampaignOutcome,
    *,
    rule_id: str,
) -> tuple[dict[str, int], dict[str, tuple[int, int, int]]]:
    from membermkt import analytics
    from membermkt.analytics import run_all

    bundle = run_all(store, as_of=as_of)
    start = camp.summary.as_of or as_of
    lift = analytics.campaign_lift(
        store,
        treatment=camp.treatment,
        holdout=sorted(camp.summary.holdout_ids),
        start=start,
        end=start + CONVERSION_WINDOW,
    )
    bundle = attrs.evolve(bundle, lift=lift)
    funnel = dict(zip(bundle.funnel.steps, bundle.funnel.counts, strict=True))
    attribution = {r.source: (r.members, r.buyers, r.revenue_fen) for r in bundle.attribution.rows}
    if path is not None:
        _write_report(store, bundle, path, camp, rule_id=rule_id, as_of=as_of)
    return funnel, attribution


def _write_report(
    store: Any, bundle: Any, path: Path, camp: _CampaignOutcome, *, rule_id: str, as_of: Any
) -> None:
    from membermkt.report import render_report

    page = render_report(bundle, title="membermkt demo — member analytics")
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{n:,}</td></tr>"
        for name, n in zip(bundle.funnel.steps, bundle.funnel.counts, strict=True)
    )
    extra = [
        "<h2>Summary numbers</h2>",
        '<table class="membermkt" id="funnel-numbers"><caption>Acquisition funnel</caption>'
        f"<tr><th>step</th><th>members</th></tr>{rows}</table>",
        '<table class="membermkt" id="attribution-numbers"><caption>Attribution by source'
        "</caption><tr><th>source</th><th>members</th><th>buyers</th><th>orders</th>"
        "<th>revenue (¥)</th></tr>"
        + "".join(
            f"<tr><td>{esc(r.source)}</td><td>{r.members:,}</td><td>{r.buyers:,}</td>"
            f"<td>{r.orders:,}</td><td>{r.revenue_fen / 100:,.2f}</td></tr>"
            for r in bundle.attribution.rows
        )
        + "</table>",
        "<h2>Campaign</h2>",
        camp.report._repr_html_(),
        "<h2>Red packets</h2>",
        _redpacket_table(store, rule_id),
    ]
    page = page.replace("</body></html>", "\n".join(extra) + "\n</body></html>")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)


def _redpacket_table(store: Any, rule_id: str) -> str:
    by_status: Counter[str] = Counter()
    fen: Counter[str] = Counter()
    for intent in store.intents(rule_id=rule_id):
        by_status[intent.status] += 1
        fen[intent.status] += intent.amount_fen
    rows = "".join(
        f"<tr><td>{html.escape(s)}</td><td>{by_status[s]:,}</td><td>{fen[s] / 100:,.2f}</td></tr>"
        for s in sorted(by_status)
    )
    return (
        f'<table class="membermkt" id="redpacket-numbers"><caption>Payouts of rule '
        f"{html.escape(rule_id)}</caption><tr><th>status</th><th>payouts</th>"
        f"<th>amount (¥)</th></tr>{rows}</table>"
    )


# --------------------------------------------------------------------------- summary


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def format_summary(result: DemoResult) -> str:
    """The human summary the CLI prints after a run."""
    lines = [
        "",
        f"Done in {result.seconds:.1f} s" + (" (resumed)" if result.resumed else "") + ".",
        f"  members {result.members:,}, events {result.events:,}",
        f"  callbacks this run {result.pushes:,}, welcomed {result.welcomed:,}",
        "  red packets this run: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(result.claims.items())) or "none")
        + f"; new payouts {result.payouts:,}; paid in total ¥{result.paid_fen / 100:,.2f}",
        "  tags: " + ", ".join(f"{k} {v:,}" for k, v in result.tags.items()),
        "  segments:",
        *(f"    {name}: {n:,}" for name, n in result.segments.items()),
        "  funnel: " + " → ".join(f"{k} {v:,}" for k, v in result.funnel.items()),
        "  attribution (members / buyers / revenue):",
        *(
            f"    {src}: {m:,} / {b:,} / ¥{rev / 100:,.2f}"
            for src, (m, b, rev) in result.attribution.items()
        ),
        "  campaign: planned "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(result.simulation.items()))
        + f"; sent this run {result.new_sends:,}; duplicates {result.duplicate_receipts}",
        "  conversion (lift vs holdout): "
        + ", ".join(
            f"{g} {_pct(rate)}" + ("" if lift is None else f" ({lift:+.1%})")
            for g, (rate, lift) in sorted(result.lift.items())
        ),
    ]
    if result.report is not None:
        lines.append(f"  report: {result.report}")
    lines.append(f"  run it again: nothing is sent or paid twice (database {result.database})")
    return "\n".join(lines)
