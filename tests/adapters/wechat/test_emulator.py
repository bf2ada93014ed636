"""The emulator itself: seeded faults, loopback serving, identical sync/async transcripts
under random faults, platform refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from membermkt.channels.wechat import AsyncOfficialAccount, OfficialAccount
from membermkt.errors import MembermktError, UsageError
from membermkt.testing.emulator._base import FaultPlan
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.retry import RetryPolicy

APPID = "wxemu00000000001"


def test_fault_plan_is_seeded_and_switchable():
    def draws(seed):
        plan = FaultPlan(["busy", "drop"], seed=seed)
        plan.set(busy=0.3, drop=0.1)
        return [plan.draw("/x") for _ in range(200)]

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)
    plan = FaultPlan(["busy"], seed=1)
    plan.set(busy=1.0, apis={"/only"})
    assert plan.draw("/other") is None
    assert plan.draw("/only") == "busy"
    plan.clear()
    plan.next("busy", api="/b")
    assert plan.draw("/a") is None
    assert plan.draw("/b") == "busy"
    assert plan.injected["busy"] == 2
    with pytest.raises(UsageError):
        plan.set(nope=0.1)
    with pytest.raises(UsageError):
        plan.set(busy=1.5)


def _script_result(results: list):
    return [type(r).__name__ + (f":{r.errcode}" if hasattr(r, "errcode") else "") for r in results]


def _emulator():
    emu = WeChatEmulator(seed=42, clock=lambda: 1_700_000_000.0)
    acct = emu.add_account(APPID, "s")
    acct.add_followers([f"o{i}" for i in range(20)])
    acct.add_template("T")
    emu.faults.set(
        busy=0.15, throttle=0.05, token_invalidate=0.05, http5xx=0.05, timeout=0.05, drop=0.05
    )
    return emu


SCRIPT = [
    ("user_info", ("o1",)),
    ("send_template", ("o2", "T", {"k": "v"})),
    ("create_tag", ("vip",)),
    ("tag_users", (100, ["o1", "o2", "o3"])),
    ("send_mass", (["o1", "o2"], {"msgtype": "text", "text": {"content": "x"}})),
    ("user_info", ("o3",)),
    ("list_tags", ()),
    ("send_template", ("o4", "T", {"k": "v"})),
]


def test_sync_and_async_give_identical_results_under_the_same_faults():
    """Same seed, same script: the same outcomes, calls and receipts for both clients."""

    def run_sync():
        emu = _emulator()
        c = OfficialAccount(
            APPID,
            "s",
            transport=emu.transport(),
            sleep=lambda s: None,
            budgets=(),
            retry=RetryPolicy(attempts=3, jitter=0),
        )
        out = []
        for name, args in SCRIPT * 3:
            try:
                out.append(getattr(c, name)(*args))
            except MembermktError as exc:
                out.append(exc)
        return out, emu

    async def run_async():
        emu = _emulator()

        async def nosleep(s):
            return None

        c = AsyncOfficialAccount(
            APPID,
            "s",
            transport=emu.transport(),
            sleep=nosleep,
            budgets=(),
            retry=RetryPolicy(attempts=3, jitter=0),
        )
        out = []
        for name, args in SCRIPT * 3:
            try:
                out.append(await getattr(c, name)(*args))
            except MembermktError as exc:
                out.append(exc)
        return out, emu

    s_out, s_emu = run_sync()
    a_out, a_emu = asyncio.run(run_async())
    assert _script_result(s_out) == _script_result(a_out)
    assert [r for r in s_out if not isinstance(r, Exception)] == [
        r for r in a_out if not isinstance(r, Exception)
    ]
    assert s_emu.calls.snapshot() == a_emu.calls.snapshot()
    assert [(r.openid, r.kind, r.content) for r in s_emu.receipts] == [
        (r.openid, r.kind, r.content) for r in a_emu.receipts
    ]
    assert s_emu.faults.injected.total() > 5


def test_loopback_server_with_faults():
    emu = WeChatEmulator(seed=1)
    emu.add_account(APPID, "s").add_followers(["o1"])
    with emu.serve(lost_hold=0.05) as server:
        c = OfficialAccount(APPID, "s", base_url=server.url, timeout=2.0, sleep=lambda s: None)
        assert c.user_info("o1").subscribed
        emu.faults.next("drop", "timeout", api="/cgi-bin/user/info")
        assert c.user_info("o1").subscribed  # dropped, lost, then answered (3 attempts)
        emu.faults.next("http5xx", "http5xx", "http5xx", api="/cgi-bin/user/info")
        with pytest.raises(MembermktError):
            c.user_info("o1")
        c.close()
    assert emu.faults.injected.total() == 5


def test_raw_refusals_use_platform_errcodes():
    emu = WeChatEmulator()
    acct = emu.add_account(APPID, "s")
    acct.add_followers(["o1"])
    http = httpx.Client(transport=emu.transport(), base_url="https://api.weixin.qq.com")
    r = http.post(
        "/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": APPID, "secret": "s"},
    ).json()
    tok = r["access_token"]
    assert r["expires_in"] == 7200
    again = http.post(
        "/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": APPID, "secret": "s"},
    ).json()
    assert again["access_token"] == tok  # stable: same token while valid
    q = {"access_token": tok}
    assert (
        http.post(
            "/cgi-bin/message/mass/send",
            params=q,
            json={"touser": ["o1"], "msgtype": "text", "text": {"content": "x"}},
        ).json()["errcode"]
        == 40130
    )
    assert (
        http.post(
            "/cgi-bin/message/mass/send",
            params=q,
            json={
                "touser": ["o1", "o2"],
                "msgtype": "text",
                "text": {"content": "x"},
                "clientmsgid": "x" * 65,
            },
        ).json()["errcode"]
        == 45067
    )
    assert (
        http.get("/cgi-bin/user/info", params={"access_token": "nope", "openid": "o1"}).json()[
            "errcode"
        ]
        == 40001
    )
    assert http.get("/cgi-bin/user/info", params={"openid": "o1"}).json()["errcode"] == 41001
    assert (
        http.post("/cgi-bin/tags/delete", params=q, json={"tag": {"id": 2}}).json()["errcode"]
        == 45058
    )
    classic = http.get(
        "/cgi-bin/token", params={"grant_type": "client_credential", "appid": APPID, "secret": "s"}
    ).json()
    assert classic["access_token"] != tok  # independent of the stable token
    assert http.get("/cgi-bin/user/info", params=q | {"openid": "o1"}).json()["subscribe"] == 1
    forced = http.post(
        "/cgi-bin/stable_token",
        json={
            "grant_type": "client_credential",
            "appid": APPID,
            "secret": "s",
            "force_refresh": True,
        },
    ).json()
    assert forced["access_token"] != tok
    assert http.get("/cgi-bin/user/info", params=q | {"openid": "o1"}).json()["errcode"] == 40001
    http.close()


def test_limits_answer_45009():
    from membermkt.wire.budget import CallBudget

    emu = WeChatEmulator(limits=[CallBudget("/cgi-bin/user/info", per_day=2)])
    emu.add_account(APPID, "s").add_followers(["o1"])
    c = OfficialAccount(
        APPID,
        "s",
        transport=emu.transport(),
        budgets=(),
        sleep=lambda s: None,
        retry=RetryPolicy(attempts=1),
    )
    c.user_info("o1")
    c.user_info("o1")
    with pytest.raises(MembermktError) as err:
        c.user_info("o1")
    assert err.value.errcode == 45009


def test_classic_fetch_kills_the_previous_token_after_the_overlap():
    """/cgi-bin/token issues a new token each call; the previous one dies after the overlap
    (5 minutes on the platform), while the independent stable token lives on."""
    now = [1_700_000_000.0]
    emu = WeChatEmulator(clock=lambda: now[0])
    emu.add_account(APPID, "s").add_followers(["o1"])
    http = httpx.Client(transport=emu.transport(), base_url="https://api.weixin.qq.com")
    creds = {"grant_type": "client_credential", "appid": APPID, "secret": "s"}
    stable = http.post("/cgi-bin/stable_token", json=creds).json()["access_token"]
    first = http.get("/cgi-bin/token", params=creds).json()["access_token"]
    second = http.get("/cgi-bin/token", params=creds).json()["access_token"]
    assert first != second

    def errcode(token):
        return (
            http.get("/cgi-bin/user/info", params={"access_token": token, "openid": "o1"})
            .json()
            .get("errcode", 0)
        )

    assert errcode(first) == 0
    now[0] += 301
    assert errcode(first) == 40001  # replaced: "not latest", as the platform answers (#17)
    assert errcode(second) == 0
    assert errcode(stable) == 0
    now[0] += 7200
    assert errcode(second) == 42001
    http.close()


def test_sqlite_lock_row_of_a_dead_holder_expires(tmp_path):
    """A lock row left by a crashed process stops blocking after its lease (acquiring
    within the timeout instead of raising StoreError)."""
    import os
    import subprocess
    import sys

    from membermkt.tokens import SqlTokenCache

    url = f"sqlite:///{tmp_path / 'lease.db'}"
    # The holder takes the lock and its process dies without releasing it (a live holder
    # renews its lease while it works, so the crash must be a real one).
    crash = (
        "import os; from membermkt.tokens import SqlTokenCache; "
        f"c = SqlTokenCache({url!r}, table_prefix='lease_', lease=0.2); "
        "c.lock('k', timeout=1).__enter__(); os._exit(1)"
    )
    src = str(Path(__file__).resolve().parents[3] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    assert subprocess.run([sys.executable, "-c", crash], env=env, check=False).returncode == 1
    other = SqlTokenCache(url, table_prefix="lease_", lease=0.2)
    with other.lock("k", timeout=5):
        assert other.get("k") is None
    other.close()


def test_clientmsgid_retried_within_a_minute_is_45066_then_45065_then_forgotten():
    """Rule (ref §1.4, §1.10): the same clientmsgid within a minute of the previous attempt
    is 45066 (retry it after >= 60 s), within 24 h it is 45065 with the first msg_id, after
    24 h the platform no longer knows it (a resend would deliver again)."""
    now = [1_700_000_000.0]
    emu = WeChatEmulator(clock=lambda: now[0], limits=())
    emu.add_account(APPID, "s").add_followers(["o1", "o2"])
    http = httpx.Client(transport=emu.transport(), base_url="https://api.weixin.qq.com")
    body = {"touser": ["o1", "o2"], "msgtype": "text", "text": {"content": "x"}}

    def send(cid: str) -> dict:
        tok = http.post(
            "/cgi-bin/stable_token",
            json={"grant_type": "client_credential", "appid": APPID, "secret": "s"},
        ).json()["access_token"]
        q = {"access_token": tok}
        return http.post(
            "/cgi-bin/message/mass/send", params=q, json=body | {"clientmsgid": cid}
        ).json()

    first = send("k1")
    assert first["errcode"] == 0
    now[0] += 59
    assert send("k1")["errcode"] == 45066
    now[0] += 59  # a minute after the first attempt, but not after the refused one
    assert send("k1")["errcode"] == 45066
    now[0] += 60
    dup = send("k1")
    assert (dup["errcode"], dup["msg_id"]) == (45065, first["msg_id"])
    assert send("k2")["errcode"] == 0, "another key is not refused"
    assert len(emu.receipts) == 4
    now[0] += 24 * 3600
    assert send("k1")["errcode"] == 0, "past 24 h the key is forgotten"
    assert len(emu.receipts) == 6
