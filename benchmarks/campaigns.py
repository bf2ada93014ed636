"""Campaign delivery throughput and plan memory, as ratios measured in one run.

    .venv/bin/python benchmarks/campaigns.py                     # 100,000 template messages
    .venv/bin/python benchmarks/campaigns.py --n 20000 --plan-members 1000000

Part 1 — 100k template-message deliveries to the WeChat emulator served on loopback (in a
separate process, with ``--latency-ms`` (default 50) of simulated network/platform latency
per call — WeChat API round trips from a server in China are tens of milliseconds — so that
concurrency matters as it does against the real API):

* **sequential**: one ``template/send`` after the other with a sync httpx client — the way SDK
  users write it today (wechatpy/WxJava style loop). It is timed on ``--sequential-n``
  messages (at ≥ 10 ms per call the full 100k would take 20+ minutes) and compared by rate.
* **bare async httpx**: ``--concurrency`` coroutines posting the same requests with one
  ``httpx.AsyncClient`` — no ledger, no retries, no bookkeeping: the floor.
* **membermkt**: the plan written to an ``InMemoryStore`` ledger, then ``CampaignRunner``
  with ``AsyncWeChatTemplateChannel`` at the same concurrency (claims, per-delivery ledger
  marks, retry classification, progress).

Printed ratios: membermkt rate / sequential rate (goal ≥ 10×) and membermkt time / bare
async time (goal ≤ 1.25×).

Part 2 — plan memory: ``plan()`` streamed over a synthetic audience of ``--plan-members``
members (generated lazily) in a fresh subprocess; peak RSS growth over the interpreter
baseline is printed for a small and the full audience (goal < 200 MB for 10M; a flat curve
shows memory is O(batch), not O(audience)).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import subprocess
import sys
import time
from typing import Any

APPID = "wxbench000000001"
SECRET = "bench-secret"
TEMPLATE = "TPL-BENCH"


# --------------------------------------------------------------------------- the server


def _serve(n: int, latency: float, conn: Any) -> None:
    """The emulator behind a small asyncio HTTP/1.1 server (keep-alive; the latency is an
    ``asyncio.sleep``, so concurrent calls overlap as they do against the real API)."""
    import socket

    import httpx

    from membermkt.testing.emulator.wechat import WeChatEmulator

    emu = WeChatEmulator(seed=1, limits=())
    acct = emu.add_account(APPID, SECRET)
    acct.add_followers(f"o{i:07d}" for i in range(n))
    acct.add_template(TEMPLATE)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers: list[tuple[str, str]] = []
                length = 0
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers.append((k.strip(), v.strip()))
                    if k.strip().lower() == "content-length":
                        length = int(v)
                body = await reader.readexactly(length) if length else b""
                if latency:
                    await asyncio.sleep(latency)
                request = httpx.Request(
                    method, f"http://127.0.0.1{target}", headers=headers, content=body
                )
                response = emu.handle(request)
                writer.write(
                    f"HTTP/1.1 {response.status_code} OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(response.content)}\r\n\r\n".encode()
                    + response.content
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        conn.send(f"http://127.0.0.1:{port}")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # wait for "stop"
        conn.send({"receipts": len(emu.receipts), "duplicates": emu.duplicates})
        server.close()

    asyncio.run(main())


def _token(base: str) -> str:
    import httpx

    r = httpx.post(
        f"{base}/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": APPID, "secret": SECRET},
    )
    return str(r.json()["access_token"])


def _body(i: int, tag: str) -> dict[str, Any]:
    return {
        "touser": f"o{i:07d}",
        "template_id": TEMPLATE,
        "data": {"first": {"value": f"{tag} 会员日"}, "keyword1": {"value": f"m{i:07d}"}},
    }


# --------------------------------------------------------------------------- contestants


def sequential(base: str, n: int) -> float:
    import httpx

    token = _token(base)
    url = f"{base}/cgi-bin/message/template/send"
    with httpx.Client() as client:
        t = time.perf_counter()
        for i in range(n):
            r = client.post(url, params={"access_token": token}, json=_body(i, "seq"))
            if r.json().get("errcode", 0) != 0:
                raise RuntimeError(r.text)
        return time.perf_counter() - t


async def bare_async(base: str, n: int, concurrency: int) -> float:
    import httpx

    token = _token(base)
    url = f"{base}/cgi-bin/message/template/send"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                r = await client.post(url, params={"access_token": token}, json=_body(i, "bare"))
                if r.json().get("errcode", 0) != 0:
                    raise RuntimeError(r.text)

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t


def membermkt_runner(base: str, n: int, concurrency: int) -> tuple[float, float, Any]:
    import httpx

    from membermkt import Identity, Member, MemberState
    from membermkt.channels.wechat.channel import AsyncWeChatTemplateChannel
    from membermkt.channels.wechat.client import AsyncOfficialAccount
    from membermkt.core.campaigns import Campaign, Variant
    from membermkt.engine.campaigns import CampaignRunner, prepare
    from membermkt.segments import TRUE
    from membermkt.stores import InMemoryStore

    campaign = Campaign(
        id="bench",
        audience=TRUE,
        channel="wechat.template",
        variants=(
            Variant(
                name="A",
                content={
                    "template_id": TEMPLATE,
                    "data": {"first": {"value": "mm 会员日"}, "keyword1": {"value": "{{ id }}"}},
                },
            ),
        ),
        address_namespace=APPID,
    )
    members = (
        Member(
            f"m{i:07d}",
            identities=[Identity("openid", f"o{i:07d}", APPID)],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    )
    store = InMemoryStore()
    t = time.perf_counter()
    prepare(store, campaign, members, None, dt.datetime.now(dt.UTC))
    t_plan = time.perf_counter() - t

    async def go() -> Any:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        http = httpx.AsyncClient(base_url=base, limits=limits, timeout=60)
        client = AsyncOfficialAccount(APPID, SECRET, base_url=base, http_client=http)
        await client.tokens.get()  # like the other contestants: the token is fetched up front
        # template sends are one call per delivery: small batches keep all workers busy
        channel = AsyncWeChatTemplateChannel(client)
        runner = CampaignRunner(store, channel, concurrency=concurrency, batch_size=10)
        t = time.perf_counter()
        try:
            return await runner.arun(campaign.id), time.perf_counter() - t
        finally:
            await http.aclose()

    result, elapsed = asyncio.run(go())
    return elapsed, t_plan, result


# --------------------------------------------------------------------------- plan memory

_PLAN_PROBE = r"""
import datetime as dt, resource, sys
from membermkt import Identity, Member, MemberState
from membermkt.core.campaigns import Campaign, Variant, plan
from membermkt.segments import attr
n = int(sys.argv[1])
def kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
c = Campaign(id="mem", audience=attr("city") != "Nowhere", channel="wechat.template",
             variants=(Variant(name="A", content={"template_id": "T",
                       "data": {"k": {"value": "{{ id }}"}}}),), holdout=0.1,
             address_namespace="wx")
cities = ("Shanghai", "Hangzhou", "Beijing")
from membermkt import Profile
members = (Member(f"m{i:08d}", Profile(city=cities[i % 3]),
                  identities=[Identity("openid", f"o{i:08d}", "wx")],
                  state=MemberState(subscribed=True)) for i in range(n))
as_of = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
list(plan(c, [], None, as_of))
base = kb()
delivered = 0
for item in plan(c, members, None, as_of):
    delivered += 1
print(delivered, (kb() - base) / 1024, kb() / 1024)
"""


def plan_memory(n: int) -> tuple[int, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PLAN_PROBE, str(n)], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), float(out[1]), float(out[2])


# --------------------------------------------------------------------------- main


def run_delivery(args: argparse.Namespace, parent: Any) -> None:
    base = parent.recv()
    print(f"emulator on {base}, {args.latency_ms:g} ms latency per call")
    t_seq = sequential(base, args.sequential_n)
    seq_rate = args.sequential_n / t_seq
    print(f"sequential SDK loop : {args.sequential_n:>7} msgs {t_seq:8.2f} s {seq_rate:9.0f}/s")
    t_bare = asyncio.run(bare_async(base, args.n, args.concurrency))
    print(f"bare async httpx    : {args.n:>7} msgs {t_bare:8.2f} s {args.n / t_bare:9.0f}/s")
    t_mm, t_plan, result = membermkt_runner(base, args.n, args.concurrency)
    mm_rate = args.n / t_mm
    print(
        f"membermkt runner    : {args.n:>7} msgs {t_mm:8.2f} s {mm_rate:9.0f}/s "
        f"(sent {result.sent}, failed {result.failed}; plan+ledger write {t_plan:.2f} s)"
    )
    parent.send("stop")
    print(f"emulator: {parent.recv()}")
    print(f"membermkt vs sequential loop : {mm_rate / seq_rate:6.1f}x faster  (goal >= 10x)")
    print(f"membermkt vs bare async httpx: {t_mm / t_bare:6.2f}x time    (goal <= 1.25x)")


# --------------------------------------------------------------------------- prepare


def _timed(fn: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``. SQLite runs in-process, so
    its CPU time is its whole cost, which a machine shared with other jobs does not inflate
    as much as the wall clock."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def prepare_throughput(url: str, n: int, repeat: int) -> dict[str, tuple[float, float]]:
    """Members/s of ``prepare`` and rows/s of a raw insert of the same rows on ``url``, as
    (wall, CPU) pairs, best of ``repeat`` runs interleaved in this process.

    * ``store``: the production path — the audience read from the store (``members_of``:
      the segment in SQL, then members, identities, tags and attributes one query each per
      chunk), history from the ledger (an earlier mass campaign to half the members is in
      it, so the 4-a-month cap is checked against real rows), the plan, the ledger insert.
    * ``given``: ``prepare`` over ``Member`` values already in memory (plan, history and
      insert; no member reads).
    * ``raw``: the same delivery rows as plain tuples, one driver-level executemany per
      2,000 rows in one transaction (no planning, no key check): the floor.
    """
    import uuid

    from membermkt import Identity, Member, MemberState
    from membermkt.core.campaigns import Campaign, Variant, plan
    from membermkt.core.delivery import Delivery
    from membermkt.engine.campaigns import members_of, prepare
    from membermkt.segments import TRUE
    from membermkt.stores.sql import SqlStore
    from membermkt.stores.sql._rows import delivery_row

    tag = uuid.uuid4().hex[:6]

    def campaign(cid: str) -> Campaign:
        return Campaign(
            id=cid,
            audience=TRUE,
            channel="wechat.mass",
            variants=(Variant(name="A", content={"msgtype": "text", "text": {"content": "hi"}}),),
            address_namespace=APPID,
        )

    members = [
        Member(
            f"m{i:07d}",
            identities=[Identity("openid", f"o{i:07d}", APPID)],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    ]
    now = dt.datetime.now(dt.UTC)
    store = SqlStore(url, table_prefix=f"bp{tag}_")
    raw = SqlStore(url, table_prefix=f"br{tag}_")
    best: dict[str, tuple[float, float]] = {}

    def keep(name: str, count: int, took: tuple[float, float]) -> None:
        old = best.get(name, (0.0, 0.0))
        best[name] = (max(old[0], count / took[0]), max(old[1], count / took[1]))

    try:
        store.create_schema()
        raw.create_schema()
        store.upsert_members(members)
        prepare(store, campaign("earlier"), members[: n // 2], None, now - dt.timedelta(days=1))
        dict_rows = [
            delivery_row(d, now)
            for d in plan(campaign(f"raw-{tag}"), members, None, now)
            if isinstance(d, Delivery)
        ]
        cols = list(dict_rows[0])
        rows = [tuple(r.values()) for r in dict_rows]
        del dict_rows
        table = raw.tables.deliveries.name
        ph = ", ".join(["?" if raw.dialect == "sqlite" else "%s"] * len(cols))
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({ph})"

        def raw_insert() -> None:
            with raw.engine.begin() as conn:
                for i in range(0, len(rows), 2000):
                    conn.exec_driver_sql(sql, rows[i : i + 2000])

        for r in range(repeat):
            c = campaign(f"store-{r}")
            took = _timed(lambda c=c: prepare(store, c, members_of(store, c, now), None, now))
            keep("store", n, took)
            with raw.engine.begin() as conn:
                conn.exec_driver_sql(f"DELETE FROM {table}")
            keep("raw", len(rows), _timed(raw_insert))
            c = campaign(f"given-{r}")
            keep("given", n, _timed(lambda c=c: prepare(store, c, members, None, now, chunk=2000)))
        return best
    finally:
        store.drop_tables()
        raw.drop_tables()
        store.close()
        raw.close()


def run_prepare(args: argparse.Namespace) -> None:
    import os
    import tempfile

    urls = {"SQLite": f"sqlite:///{tempfile.mkdtemp()}/prepare.db"}
    pg = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")
    if pg:
        urls["PostgreSQL"] = pg
    print(
        f"prepare of {args.prepare_members:,} members, best of {args.repeat} interleaved runs "
        "(wall clock, and this process's CPU time)"
    )
    for name, url in urls.items():
        got = prepare_throughput(url, args.prepare_members, args.repeat)
        (sw, sc), (gw, gc), (rw, rc) = got["store"], got["given"], got["raw"]
        goal = "  (goal on SQLite: >= 20,000 members/s)" if name == "SQLite" else ""
        print(f"  {name}:")
        print(f"    prepare, audience read from the store: {sw:9,.0f}/s wall {sc:9,.0f}/s CPU")
        print(f"    prepare, Member values given         : {gw:9,.0f}/s wall {gc:9,.0f}/s CPU")
        print(f"    raw insert of the same rows          : {rw:9,.0f}/s wall {rc:9,.0f}/s CPU")
        print(
            f"    ratio prepare-from-store / raw insert: {sw / rw:5.2f} wall {sc / rc:5.2f} CPU"
            + goal
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="template messages (default 100k)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--latency-ms", type=float, default=50.0, help="per-call API latency")
    ap.add_argument("--sequential-n", type=int, default=500, help="messages for the SDK loop")
    ap.add_argument("--plan-members", type=int, default=10_000_000)
    ap.add_argument("--skip-delivery", action="store_true")
    ap.add_argument("--skip-plan", action="store_true")
    ap.add_argument("--prepare-members", type=int, default=100_000)
    ap.add_argument("--skip-prepare", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="prepare runs (best of)")
    args = ap.parse_args()

    if not args.skip_prepare:
        run_prepare(args)

    if not args.skip_delivery:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        total = args.n * 2 + args.sequential_n
        proc = ctx.Process(target=_serve, args=(total, args.latency_ms / 1000, child))
        proc.start()
        try:
            run_delivery(args, parent)
        finally:
            if proc.is_alive():
                proc.terminate()
            proc.join()

    if not args.skip_plan:
        small = min(100_000, args.plan_members)
        for n in sorted({small, args.plan_members}):
            t = time.perf_counter()
            count, mb, peak = plan_memory(n)
            print(
                f"plan() over {n:>10,} members: {count:,} items, peak RSS growth {mb:7.1f} MB "
                f"(process peak {peak:.0f} MB, {time.perf_counter() - t:.0f} s)"
            )
        print("goal: < 200 MB for 10,000,000 members")


if __name__ == "__main__":
    main()
