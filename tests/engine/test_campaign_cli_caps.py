"""The CLI with no history argument: five mass campaigns in one month never give a follower
a fifth message (the 4-per-month receive cap is computed from the ledger), and the campaign
file's caps, quiet hours and schedule are honoured. The emulator is served on loopback in
this process so it can count what every follower received."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from membermkt import Identity, Member, MemberState
from membermkt.channels.wechat import CallbackHandler, Endpoint
from membermkt.cli import main
from membermkt.stores.sql import SqlStore
from membermkt.testing.emulator.wechat import WeChatEmulator

APPID = "wxclicaps000001"


def _campaign_file(tmp_path: Path, cid: str, **extra: object) -> Path:
    data = {
        "id": cid,
        "channel": "wechat.mass",
        "audience": {"version": 1, "op": "true"},
        "variants": [{"name": "A", "content": {"msgtype": "text", "text": {"content": cid}}}],
        "address_namespace": APPID,
        **extra,
    }
    path = tmp_path / f"{cid}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, WeChatEmulator]:
    n = 12
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    store = SqlStore(db)
    store.upsert_members(
        Member(
            f"m{i:03d}",
            identities=[Identity("openid", f"o{i:03d}", APPID)],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    )
    store.close()
    emu = WeChatEmulator(seed=2, limits=())
    emu.add_account(APPID, "emulator-secret").add_followers(f"o{i:03d}" for i in range(n))
    monkeypatch.setenv("MEMBERMKT_WECHAT_SECRET", "emulator-secret")
    return db, emu


def _deliver_job_results(db: str, emu: WeChatEmulator, *, times: int = 1) -> None:
    """The emulator's job-result pushes, posted to a callback handler on the database (as
    `membermkt callbacks serve` would), ``times`` over — each time to a new handler, as a
    re-push may reach another process: the store records each result once."""
    pushes = emu.job_finish_pushes(APPID)
    assert pushes, "the platform reported its jobs"
    store = SqlStore(db)
    try:
        for round_ in range(times):
            token = emu.accounts[APPID].token
            handler = CallbackHandler(Endpoint(appid=APPID, token=token), store=store)
            for push in pushes:
                status, _headers, body = handler.handle(push.method, dict(push.query), push.body)
                assert (status, body) == (200, b"success")
            fresh = handler.outcomes["accepted"], handler.outcomes["duplicate"]
            assert fresh == ((len(pushes), 0) if round_ == 0 else (0, len(pushes)))
            handler.close()
    finally:
        store.close()


def _report(tmp_path: Path, db: str, cid: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / f"{cid}.json"
    assert main(["campaign", "report", str(path), "--db", db]) == 0
    return capsys.readouterr().out


def test_five_mass_campaigns_through_the_cli_never_make_a_fifth_receipt(
    tmp_path: Path, world: tuple[str, WeChatEmulator], capsys: pytest.CaptureFixture[str]
) -> None:
    """Rule: `campaign run` five times in a month, no history given → every follower gets
    exactly four mass messages; the fifth campaign plans nothing (platform_quota); the
    platform's job results (MASSSENDJOBFINISH, recorded once through the callback handler
    though delivered twice) reconcile each campaign's report."""
    db, emu = world
    with emu.serve() as server:
        for k in range(5):
            path = _campaign_file(tmp_path, f"mass{k}")
            args = ["--appid", APPID, "--base-url", server.url, "--db", db, "--no-progress"]
            code = main(["campaign", "run", str(path), *args])
            assert code == 0
    out = capsys.readouterr().out
    assert out.count("planned 12 deliveries") == 4
    assert "planned 0 deliveries" in out
    per_follower: dict[str, int] = {}
    for r in emu.receipts:
        per_follower[r.openid] = per_follower.get(r.openid, 0) + 1
    assert set(per_follower.values()) == {4}
    assert len(per_follower) == 12
    store = SqlStore(db)
    try:
        assert store.status_counts("mass4")["sent"] == 0
        for k in range(4):
            counts = store.status_counts(f"mass{k}")
            assert counts["sent"] == 12
            # the ledger's sent deliveries match the platform's job counts (mass/get)
            msg_ids = {r.platform_id for r in store.deliveries(f"mass{k}")}
            assert len(msg_ids) == 1
            (msg_id,) = msg_ids
            job = emu.accounts[APPID].mass_jobs[str(msg_id)]
            assert job.sent == counts["sent"]
    finally:
        store.close()
    _deliver_job_results(db, emu, times=2)
    for k in range(4):
        report = _report(tmp_path, db, f"mass{k}", capsys)
        assert (
            "platform: 1 job(s), total 12, filtered 12, sent 12, errors 0; ledger sent 12 — "
            "reconciled"
        ) in report
    assert "platform: 0 job(s)" in _report(tmp_path, db, "mass4", capsys)


def test_the_report_flags_a_job_the_platform_did_not_fully_deliver(
    tmp_path: Path, world: tuple[str, WeChatEmulator], capsys: pytest.CaptureFixture[str]
) -> None:
    """Rule: a follower who already had four mass messages this month elsewhere (the web
    console) is accepted in the job but not reached: the report shows the platform's counts
    next to the ledger's and flags the mismatch; before the result arrives it says so."""
    import datetime as dt

    db, emu = world
    month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    emu.accounts[APPID].followers["o003"].mass_month[month] = 4
    with emu.serve() as server:
        path = _campaign_file(tmp_path, "short")
        args = ["--appid", APPID, "--base-url", server.url, "--db", db, "--no-progress"]
        assert main(["campaign", "run", str(path), *args]) == 0
    capsys.readouterr()
    assert "1 without a result" in _report(tmp_path, db, "short", capsys)
    assert "MISMATCH" in _report(tmp_path, db, "short", capsys)
    _deliver_job_results(db, emu)
    report = _report(tmp_path, db, "short", capsys)
    assert "total 12, filtered 12, sent 11, errors 1; ledger sent 12 — MISMATCH" in report


def test_campaign_file_caps_quiet_hours_and_schedule(
    tmp_path: Path, world: tuple[str, WeChatEmulator], capsys: pytest.CaptureFixture[str]
) -> None:
    """Rule: the campaign file accepts caps, quiet hours and a schedule; a weekly cap of 1
    across campaigns stops the second campaign, an ended schedule sends nothing."""
    db, emu = world
    cap = {"caps": [{"limit": 1, "period": "week", "channels": ["*"], "name": "1/week"}]}
    ended = {"schedule": {"end": "2020-01-01T00:00:00+08:00"}}
    never_quiet = {"quiet_hours": {"start": "03:00", "end": "03:01", "tz": "Asia/Shanghai"}}
    with emu.serve() as server:
        base = ["--appid", APPID, "--base-url", server.url, "--db", db, "--no-progress"]
        assert main(["campaign", "run", str(_campaign_file(tmp_path, "w1", **cap)), *base]) == 0
        assert main(["campaign", "run", str(_campaign_file(tmp_path, "w2", **cap)), *base]) == 0
        old = _campaign_file(tmp_path, "old", **ended, **never_quiet)
        assert main(["campaign", "run", str(old), *base]) == 0
    out = capsys.readouterr().out
    assert out.count("planned 12 deliveries") == 1
    assert out.count("planned 0 deliveries") == 2
    assert len(emu.receipts) == 12
    bad = _campaign_file(tmp_path, "bad", quiet_hours={"start": "22:00", "stop": "08:00"})
    assert main(["campaign", "run", str(bad), "--db", db]) == 2
    assert "unknown quiet_hours fields ['stop']" in capsys.readouterr().err
