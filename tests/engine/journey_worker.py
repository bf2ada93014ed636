"""A journey worker process for the crash test (run as a script).

Usage::

    python journey_worker.py DB_URL TABLE_PREFIX CLOCK_FILE STOP_FILE GATEWAY_URL

Loops until STOP_FILE exists: reads the emulated time from CLOCK_FILE (an ISO datetime the
test advances), processes due members (``JourneyEngine.tick``) and sends what is planned
(``JourneyEngine.dispatch``) to the SMS gateway emulator.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parents[2] / "examples" / "sms_channel_plugin" / "src")
)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from journey_crash_def import crash_journey
from membermkt_sms import SmsChannel

from membermkt.engine.journeys import JourneyEngine, SqlJourneyProgress
from membermkt.engine.runner import DeliveryRetry
from membermkt.errors import LedgerError
from membermkt.stores.sql import SqlStore
from membermkt.testing.phones import TEST_PHONES


async def _no_sleep(seconds: float) -> None:
    return None


def main(argv: list[str]) -> None:
    url, prefix, clock_file, stop_file, gateway = argv
    store = SqlStore(url, table_prefix=prefix, phones=TEST_PHONES)
    channel = SmsChannel(gateway, "test-key", idempotent=True, timeout=30)
    engine = JourneyEngine(store, SqlJourneyProgress(store), [crash_journey()], channels=[channel])
    while not os.path.exists(stop_file):
        now = dt.datetime.fromisoformat(Path(clock_file).read_text().strip())
        processed = 0
        for _ in range(10):
            r = engine.tick(now=now, limit=100)
            processed += r.processed
            if r.processed == 0:
                break
        try:
            sent = engine.dispatch(
                journey_id="crash-welcome",
                lease=dt.timedelta(seconds=5),
                retry=DeliveryRetry(attempts=10, backoff=0.001, max_backoff=0.01),
                sleep=_no_sleep,
                concurrency=2,
                batch_size=50,
            )
        except LedgerError as exc:  # another worker recovered a delivery we held: harmless
            print(f"ledger race: {exc}", file=sys.stderr)
            continue
        if processed == 0 and not any(x.claimed for x in sent):
            time.sleep(0.05)
    channel.close()
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
