"""64 concurrent claimants (8 processes x 8 threads, and 64 threads) against PostgreSQL and
MariaDB: a budget for 100 packets, 500 claims -> exactly the budget spent, no overspend,
each member paid at most once; again with the emulator answering ambiguously on purpose
(SYSTEMERROR, PROCESSING, timeouts) -> no double payout, counted on the emulator side.

Needs MEMBERMKT_TEST_POSTGRES_URL / MEMBERMKT_TEST_MYSQL_URL; skipped without them.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.core.redpackets import Claim, FixedAmount, RedPacketRule
from membermkt.engine.redpackets import RedPacketService
from membermkt.payouts.wechatpay.gateway import MerchantCertificate, WeChatPayV2Gateway
from membermkt.payouts.wechatpay.v2 import RedPacketConfig
from membermkt.stores.sql.store import SqlStore
from membermkt.testing.emulator.wechatpay import WeChatPayEmulator, make_test_credentials

MCH_ID = "1900000109"
APPID = "wxd930ea5d5a258f4f"
API_KEY = "192006250b4c09247ec02edce69f6a2d"
PACKET = 500
PACKETS = 100
CLAIMS = 500
MEMBERS = 450
PROCESSES = 4
THREADS = 16  # PROCESSES x THREADS = 64 concurrent claimants

SERVERS = [
    pytest.param("MEMBERMKT_TEST_POSTGRES_URL", marks=pytest.mark.postgres, id="postgres"),
    pytest.param("MEMBERMKT_TEST_MYSQL_URL", marks=pytest.mark.mysql, id="mariadb"),
]


def engine_options(url: str, pool_size: int) -> dict[str, object]:
    """Test-only speed-up: PostgreSQL commits without waiting for the disk flush
    (``synchronous_commit=off`` changes durability after a crash, not atomicity or isolation,
    so the concurrency guarantees under test are the same)."""
    options: dict[str, object] = {"pool_size": pool_size}
    if url.startswith("postgresql"):
        options["connect_args"] = {"options": "-c synchronous_commit=off"}
    return options


class WallClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


def the_rule() -> RedPacketRule:
    return RedPacketRule(
        id="parcel-qr",
        mch_id=MCH_ID,
        amount=FixedAmount(PACKET),
        total_budget_fen=PACKETS * PACKET,
        per_phone_limit=None,
    )


def the_claims() -> list[Claim]:
    claims = [
        Claim(member_id=f"m{i % MEMBERS}", address=f"o-{i % MEMBERS}", source="qr")
        for i in range(CLAIMS)
    ]
    random.Random(5).shuffle(claims)
    return claims


def config() -> RedPacketConfig:
    return RedPacketConfig(
        mch_id=MCH_ID,
        wxappid=APPID,
        api_key=API_KEY,
        send_name="shop",
        act_name="parcel",
        wishing="thanks",
        remark="qr",
    )


def _worker(args: tuple[str, str, str, dict[str, str], list[Claim]]) -> list[tuple[str, str]]:
    """One claimant process: its own store connection pool and gateway, THREADS threads."""
    url, prefix, base_url, files, claims = args
    store = SqlStore(url, table_prefix=prefix, engine_options=engine_options(url, THREADS))
    cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
    gateway = WeChatPayV2Gateway(config(), cert, base_url=base_url, ca_file=files["ca_cert"])
    svc = RedPacketService(store, gateway, clock=WallClock(), sleep=lambda s: None, max_attempts=8)
    rule = the_rule()
    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            outs = list(pool.map(lambda c: svc.claim(rule, c), claims))
    finally:
        gateway.close()
        store.close()
    return [(o.status, o.bill_no or "") for o in outs]


@pytest.fixture
def server_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get(request.param)
    if not url:
        pytest.skip(f"{request.param} is not set")
    return url


@pytest.fixture
def store(server_url: str) -> Iterator[SqlStore]:
    prefix = f"rp{uuid.uuid4().hex[:10]}_"
    s = SqlStore(server_url, table_prefix=prefix, engine_options=engine_options(server_url, 64))
    # the claimants are members holding the openids the claims pay to (checked at claim time)
    s.upsert_members(
        Member(f"m{i}", identities=[Identity.openid(APPID, f"o-{i}")]) for i in range(MEMBERS)
    )
    try:
        yield s
    finally:
        s.drop_tables()
        s.close()


def check(store: SqlStore, emulator: WeChatPayEmulator, svc: RedPacketService) -> None:
    for _ in range(3):
        svc.resume_open("parcel-qr")
    total = store.budget("rp:parcel-qr:total")
    assert total is not None
    assert total.reserved == 0
    assert total.spent == PACKETS * PACKET  # exactly the budget spent
    assert emulator.total_paid_fen == PACKETS * PACKET  # no overspend at the platform
    per_openid = emulator.paid_per_openid()
    assert len(per_openid) == PACKETS
    assert max(per_openid.values()) == 1  # no double payout, counted by the emulator
    assert len({p.bill_no for p in emulator.payments}) == len(emulator.payments)
    emulator.fault_rate = 0.0
    report = svc.reconcile(the_rule())
    assert report.ok, report.mismatches


@pytest.mark.slow
@pytest.mark.parametrize("server_url", SERVERS, indirect=True)
def test_processes_and_threads_with_ambiguous_answers(
    store: SqlStore, server_url: str, tmp_path: Path
) -> None:
    """4 processes x 16 threads over real mutual TLS to the loopback emulator, which answers
    30% of requests with SYSTEMERROR / PROCESSING / a dropped connection (before or after
    the payment took effect)."""
    fault_rate = 0.3
    creds = make_test_credentials(MCH_ID)
    files = creds.write(tmp_path)
    # concurrency safety, not throughput: the 30 requests/s rule (test_emulator_rules) is off
    emulator = WeChatPayEmulator(
        creds, appid=APPID, api_key=API_KEY, fault_rate=fault_rate, seed=3, v2_rate_per_s=None
    )
    claims = the_claims()
    chunks = [claims[i::PROCESSES] for i in range(PROCESSES)]
    prefix = store.tables.payouts.name[: -len("payouts")]
    store.budget("warm-up")  # create the schema once, before the claimants race
    with emulator.serve(directory=str(tmp_path)) as base_url:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=ctx) as pool:
            args = [(server_url, prefix, base_url, files, chunk) for chunk in chunks]
            outcomes = [o for part in pool.map(_worker, args) for o in part]
        cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
        with WeChatPayV2Gateway(config(), cert, base_url=base_url, ca_file=files["ca_cert"]) as gw:
            svc = RedPacketService(store, gw, clock=WallClock(), sleep=lambda s: None)
            check(store, emulator, svc)
    assert len(outcomes) == CLAIMS
    assert len({b for s, b in outcomes if s == "paid"}) <= PACKETS
    assert base_url.startswith("https://")  # mutual TLS end to end


@pytest.mark.parametrize("server_url", SERVERS, indirect=True)
def test_64_threads(store: SqlStore, server_url: str, tmp_path: Path) -> None:
    """64 threads, a clean platform: exactly the budget, each member at most once."""
    creds = make_test_credentials(MCH_ID)
    files = creds.write(tmp_path)
    emulator = WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, seed=9, v2_rate_per_s=None)
    cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
    rule = the_rule()
    with WeChatPayV2Gateway(config(), cert, transport=emulator.transport()) as gw:
        svc = RedPacketService(store, gw, clock=WallClock(), sleep=lambda s: None, max_attempts=8)
        with ThreadPoolExecutor(max_workers=64) as pool:
            list(pool.map(lambda c: svc.claim(rule, c), the_claims()))
        check(store, emulator, svc)
