"""Campaign runner workers on one PostgreSQL ledger: where does one database stop scaling?

    .venv/bin/python benchmarks/ledger_workers.py                        # 20,000 messages
    .venv/bin/python benchmarks/ledger_workers.py --n 5000 --workers 1 2 4

For each worker count W: a fresh ledger on PostgreSQL with ``--n`` template-message
deliveries (``prepare``), the WeChat emulator served on loopback with ``--latency-ms`` of
simulated platform latency per call (``benchmarks/campaigns.py``'s server), then W separate
processes, each a ``CampaignRunner`` with ``--concurrency`` in-flight calls, all draining the
same campaign. Prints wall time, messages per second, per worker, and the speed-up over one
worker (the baseline, measured in the same run); checks that the emulator received every
message exactly once across the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from campaigns import APPID, SECRET, TEMPLATE, _serve

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _campaign() -> Any:
    from membermkt.core.campaigns import Campaign, Variant
    from membermkt.segments import TRUE

    return Campaign(
        id="ledger-bench",
        audience=TRUE,
        channel="wechat.template",
        variants=(
            Variant(
                name="A",
                content={
                    "template_id": TEMPLATE,
                    "data": {"first": {"value": "会员日"}, "keyword1": {"value": "{{ id }}"}},
                },
            ),
        ),
        address_namespace=APPID,
    )


def _worker(url: str, prefix: str, base: str, concurrency: int, out: Any) -> None:
    import httpx

    from membermkt.channels.wechat.channel import AsyncWeChatTemplateChannel
    from membermkt.channels.wechat.client import AsyncOfficialAccount
    from membermkt.engine.campaigns import CampaignRunner
    from membermkt.stores.sql import SqlStore

    store = SqlStore(url, table_prefix=prefix)

    async def go() -> Any:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        http = httpx.AsyncClient(base_url=base, limits=limits, timeout=60)
        client = AsyncOfficialAccount(APPID, SECRET, base_url=base, http_client=http)
        await client.tokens.get()
        channel = AsyncWeChatTemplateChannel(client)
        runner = CampaignRunner(store, channel, concurrency=concurrency, batch_size=10)
        try:
            return await runner.arun("ledger-bench")
        finally:
            await http.aclose()

    result = asyncio.run(go())
    out.put((os.getpid(), result.sent, result.failed))
    store.close()


def run(url: str, n: int, workers: int, concurrency: int, latency: float) -> float:
    """Seconds for ``workers`` processes to drain ``n`` deliveries from one ledger."""
    from membermkt import Identity, Member, MemberState
    from membermkt.engine.campaigns import prepare
    from membermkt.stores.sql import SqlStore

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(n, latency, child), daemon=True)
    server.start()
    base = parent.recv()
    prefix = f"lw{uuid.uuid4().hex[:6]}_"
    store = SqlStore(url, table_prefix=prefix)
    store.create_schema()
    members = (
        Member(
            f"m{i:07d}",
            identities=[Identity("openid", f"o{i:07d}", APPID)],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    )
    prepare(store, _campaign(), members, None, dt.datetime.now(dt.UTC))
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(url, prefix, base, concurrency, out))
        for _ in range(workers)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    parent.send("stop")
    emu = parent.recv()
    server.join(timeout=10)
    sent = sum(r[1] for r in results)
    assert sent == n, (sent, n, results)
    assert emu["receipts"] == n, emu  # every message arrived ...
    assert emu["duplicates"] == 0, emu  # ... exactly once, across the workers
    store.drop_tables()
    store.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--concurrency", type=int, default=32, help="in-flight calls per worker")
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--pg-url", default=os.environ.get("MEMBERMKT_TEST_POSTGRES_URL", PG_DEFAULT))
    args = ap.parse_args()
    import sqlalchemy as sa

    try:
        sa.create_engine(args.pg_url).connect().close()
    except sa.exc.SQLAlchemyError as exc:
        print(f"PostgreSQL at {args.pg_url} is not reachable ({exc.__class__.__name__}); skipped")
        return
    print(
        f"{args.n:,} template messages, {args.latency_ms:g} ms platform latency, "
        f"{args.concurrency} in flight per worker, one PostgreSQL ledger"
    )
    first = None
    for w in args.workers:
        secs = run(args.pg_url, args.n, w, args.concurrency, args.latency_ms / 1000)
        rate = args.n / secs
        first = first or rate
        print(
            f"  {w} worker(s): {secs:7.1f} s  {rate:8.0f} msgs/s  {rate / w:8.0f} per worker  "
            f"speed-up over 1 worker {rate / first:5.2f}x (ideal {w}x)"
        )


if __name__ == "__main__":
    main()
