"""A campaign runner process on the real official-account channels (run as a script) for the
crash and scale-out tests; the emulator is served on loopback by the test process.

Usage::

    python wechat_campaign_worker.py LEDGER_URL TABLE_PREFIX LEASE_SECONDS CONCURRENCY \
        BASE_URL APPID CAMPAIGN_ID,KIND,BATCH [CAMPAIGN_ID,KIND,BATCH ...]

``KIND`` is ``mass`` or ``template``. Runs one runner per campaign, concurrently, and prints
their counts as JSON.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys

from membermkt.channels.wechat.channel import WeChatMassChannel, WeChatTemplateChannel
from membermkt.channels.wechat.client import OfficialAccount
from membermkt.engine.runner import CampaignRunner, DeliveryRetry, RunResult
from membermkt.stores.sql import SqlStore
from membermkt.wire.retry import RetryPolicy


async def _no_sleep(seconds: float) -> None:
    return None


async def _run_all(runners: list[tuple[CampaignRunner, str]]) -> list[RunResult]:
    return list(await asyncio.gather(*(r.arun(cid) for r, cid in runners)))


def main(argv: list[str]) -> None:
    url, prefix, lease, concurrency, base_url, appid, *specs = argv
    store = SqlStore(url, table_prefix=prefix)
    client = OfficialAccount(
        appid,
        "secret",
        base_url=base_url,
        retry=RetryPolicy(attempts=1),
        budgets=(),
        sleep=lambda s: None,
        timeout=30,
    )
    runners: list[tuple[CampaignRunner, str]] = []
    for spec in specs:
        cid, kind, batch = spec.split(",")
        channel = WeChatMassChannel(client) if kind == "mass" else WeChatTemplateChannel(client)
        runner = CampaignRunner(
            store,
            channel,
            concurrency=int(concurrency),
            batch_size=int(batch),
            rate_per_second=None,
            lease=dt.timedelta(seconds=float(lease)),
            retry=DeliveryRetry(attempts=10, backoff=0.001, max_backoff=0.01),
            sleep=_no_sleep,
            offload_ledger=True,
        )
        runners.append((runner, cid))
    results = asyncio.run(_run_all(runners))
    client.close()
    store.close()
    print(
        json.dumps(
            [
                {"sent": r.sent, "claimed": r.claimed, "unknown": r.unknown, "status": r.status}
                for r in results
            ]
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
