"""A campaign runner process for the crash and scale-out tests (run as a script).

Usage::

    python campaign_worker.py LEDGER_URL TABLE_PREFIX LEASE_SECONDS CONCURRENCY BATCH \
        CAMPAIGN_ID,GATEWAY_URL,IDEMPOTENT [CAMPAIGN_ID,GATEWAY_URL,IDEMPOTENT ...]

Runs one runner per campaign, concurrently, and prints their counts as JSON.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parents[2] / "examples" / "sms_channel_plugin" / "src")
)

from membermkt_sms import SmsChannel

from membermkt.engine.runner import CampaignRunner, DeliveryRetry, RunResult
from membermkt.stores.sql import SqlStore
from membermkt.testing.phones import TEST_PHONES


async def _no_sleep(seconds: float) -> None:
    return None


async def _run_all(runners: list[tuple[CampaignRunner, str]]) -> list[RunResult]:
    return list(await asyncio.gather(*(r.arun(cid) for r, cid in runners)))


def main(argv: list[str]) -> None:
    url, prefix, lease, concurrency, batch, *specs = argv
    store = SqlStore(url, table_prefix=prefix, phones=TEST_PHONES)
    runners: list[tuple[CampaignRunner, str]] = []
    channels: list[SmsChannel] = []
    for spec in specs:
        cid, gateway, idempotent = spec.split(",")
        channel = SmsChannel(gateway, "test-key", idempotent=idempotent == "1", timeout=30)
        channels.append(channel)
        runner = CampaignRunner(
            store,
            channel,
            concurrency=int(concurrency),
            batch_size=int(batch),
            lease=dt.timedelta(seconds=float(lease)),
            retry=DeliveryRetry(attempts=10, backoff=0.001, max_backoff=0.01),
            sleep=_no_sleep,
            offload_ledger=True,
        )
        runners.append((runner, cid))
    results = asyncio.run(_run_all(runners))
    for channel in channels:
        channel.close()
    store.close()
    print(
        json.dumps([{"sent": r.sent, "claimed": r.claimed, "unknown": r.unknown} for r in results])
    )


if __name__ == "__main__":
    main(sys.argv[1:])
