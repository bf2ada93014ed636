"""The command line: help everywhere, documented exit codes, one-line errors, and each
command against the demo's database or a fresh one."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from e2e.conftest import DemoRuns, membermkt
from membermkt.channels.wechat import OfficialAccount
from membermkt.cli import build_parser, main
from membermkt.demo import CAMPAIGN_ID, demo_campaign
from membermkt.segments import attr, did, tag
from membermkt.stores import SqlStore
from membermkt.testing.emulator.wechat import WeChatEmulator

STORY = "2026-06-30T12:00:00+00:00"
LATER = "2026-07-08T12:00:00+00:00"


def _commands() -> list[list[str]]:
    parser = build_parser()
    out: list[list[str]] = [[]]
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        out.append([name])
        for a in p._actions:
            if a.dest == "action":
                out.extend([name, action] for action in a.choices)  # type: ignore[union-attr]
    return out


@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w) or "membermkt")
def test_every_command_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: `--help` works on every command and exits 0 with a usage line."""
    with pytest.raises(SystemExit) as exc:
        main([*words, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: membermkt")
    assert "exit codes" in out


def test_the_console_entry_points_run(tmp_path: Path) -> None:
    """Rule: `python -m membermkt` and the installed `membermkt` script both run."""
    proc = membermkt("--version", cwd=tmp_path)
    assert (proc.returncode, proc.stdout.split()[0]) == (0, "membermkt")
    script = Path(sys.executable).with_name("membermkt")
    assert script.exists()
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert "demo" in proc.stdout


def test_usage_errors_exit_2_in_one_line(tmp_path: Path) -> None:
    """Rule: bad arguments exit 2; errors are one line, with no traceback."""
    proc = membermkt("demo", "--members", "zero", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    proc = membermkt("segment", "count", "missing.json", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "membermkt: error: cannot read missing.json: No such file or directory"
    ]
    proc = membermkt("db", "stats", "--db", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "run `membermkt db init` first" in proc.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    """Rule: --debug (after the command too) re-raises with the traceback."""
    proc = membermkt("segment", "count", "missing.json", "--debug", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert "UsageError" in proc.stderr


def test_db_init_and_stats(tmp_path: Path, demo_runs: DemoRuns) -> None:
    """Rule: `db init` creates the schema; `db stats` counts rows."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert membermkt("db", "init", "--db", url, cwd=tmp_path).returncode == 0
    stats = membermkt("db", "stats", "--db", url, "--json", cwd=tmp_path)
    assert json.loads(stats.stdout)["members"] == 0
    stats = membermkt("db", "stats", "--db", demo_runs.db_url, "--json", cwd=tmp_path)
    counts = json.loads(stats.stdout)
    assert counts["members"] == demo_runs.second["members"]
    assert counts["events"] == demo_runs.second["events"]
    assert counts["deliveries"] == sum(demo_runs.second["deliveries"].values())


def test_segment_commands_agree_with_the_store(tmp_path: Path, demo_runs: DemoRuns) -> None:
    """Rule: `segment count` equals the store's count; `preview` lists members of it;
    `validate` exits 1 on an invalid file and names the bad node."""
    import datetime as dt

    seg = (attr("city") == "Shanghai") & did("purchase", within=dt.timedelta(days=90)) | tag("vip")
    path = tmp_path / "seg.json"
    path.write_text(json.dumps(seg.to_json()), encoding="utf-8")
    store = SqlStore(demo_runs.db_url)
    try:
        expected = store.count(seg, dt.datetime.fromisoformat(LATER))
    finally:
        store.close()
    assert expected > 0
    proc = membermkt(
        "segment", "count", str(path), "--db", demo_runs.db_url, "--as-of", LATER, cwd=tmp_path
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, str(expected))
    proc = membermkt(
        "segment",
        "preview",
        str(path),
        "--limit",
        "3",
        "--db",
        demo_runs.db_url,
        "--as-of",
        LATER,
        cwd=tmp_path,
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"{expected:,} members; first 3:")
    assert len(proc.stdout.strip().splitlines()) == 4
    assert membermkt("segment", "validate", str(path), cwd=tmp_path).stdout.strip() == "valid"
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "op": "and", "args": [{"op": "zz"}]}', encoding="utf-8")
    proc = membermkt("segment", "validate", str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    assert "$.args[0]" in proc.stderr


def test_members_export_then_import_round_trip(tmp_path: Path, demo_runs: DemoRuns) -> None:
    """Rule: members and events exported as CSV import into a fresh database with the same
    counts; refused rows make the import exit 1 and are listed."""
    members, events = tmp_path / "members.csv", tmp_path / "events.csv"
    db = demo_runs.db_url
    assert membermkt("members", "export", str(members), "--db", db, cwd=tmp_path).returncode == 0
    assert (
        membermkt("members", "export", str(events), "--events", "--db", db, cwd=tmp_path).returncode
        == 0
    )
    with members.open(encoding="utf-8") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == demo_runs.second["members"]
    new = f"sqlite:///{tmp_path / 'copy.db'}"
    # the demo's members carry phone identities under its local key: without that key the
    # import is refused (nothing written), with it every member is imported
    proc = membermkt("members", "import", str(members), "--db", new, cwd=tmp_path)
    assert proc.returncode == 2
    assert "phone key" in proc.stderr
    assert "MEMBERMKT_PHONE_KEYS" in proc.stderr
    key = ["--phone-key-file", str(demo_runs.workdir / "phone.key")]
    proc = membermkt("members", "import", str(members), "--db", new, *key, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = membermkt("members", "import", str(events), "--events", "--db", new, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(membermkt("db", "stats", "--db", new, "--json", cwd=tmp_path).stdout)
    assert stats["members"] == demo_runs.second["members"]
    assert stats["events"] == demo_runs.second["events"]
    broken = tmp_path / "broken.csv"
    broken.write_text("id,gender\n,female\nm-ok,female\n", encoding="utf-8")
    proc = membermkt("members", "import", str(broken), "--db", new, cwd=tmp_path)
    assert proc.returncode == 1
    assert "row " in proc.stderr
    assert "read 2 rows, wrote 1 members" in proc.stdout


def _campaign_file(tmp_path: Path) -> Path:
    c = demo_campaign()
    data = {
        "id": c.id,
        "channel": c.channel,
        "audience": c.audience.to_json(),
        "variants": [{"name": v.name, "content": dict(v.content)} for v in c.variants],
        "holdout": c.holdout,
        "address_namespace": c.address_namespace,
    }
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_campaign_simulate_status_report(tmp_path: Path, demo_runs: DemoRuns) -> None:
    """Rule: the CLI reads a campaign file; simulate, status and report agree with the
    demo's ledger."""
    path = _campaign_file(tmp_path)
    db = demo_runs.db_url
    sim = membermkt("campaign", "simulate", str(path), "--db", db, "--as-of", STORY, cwd=tmp_path)
    assert sim.returncode == 0, sim.stderr
    for variant in ("A", "B"):
        assert f"variant {variant}: {demo_runs.second['simulation'][variant]:,} deliveries" in (
            sim.stdout
        )
    status = membermkt("campaign", "status", CAMPAIGN_ID, "--db", db, "--json", cwd=tmp_path)
    assert json.loads(status.stdout) == demo_runs.second["deliveries"]
    report = membermkt(
        "campaign",
        "report",
        str(path),
        "--db",
        db,
        "--as-of",
        STORY,
        "--html",
        str(tmp_path / "c.html"),
        cwd=tmp_path,
    )
    assert report.returncode == 0, report.stderr
    assert "holdout" in report.stdout
    assert "lift" in report.stdout
    assert (tmp_path / "c.html").exists()


def _serve(*args: str, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "membermkt", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "http://127.0.0.1:" in line and "Ctrl-C" in line:
            url = line.split(" on ", 1)[1].split(" ", 1)[0].rstrip("/")
            return proc, url
    proc.kill()
    raise AssertionError("server did not start: " + "".join(lines) + proc.stderr.read())  # type: ignore[union-attr]


def _stop(proc: subprocess.Popen[str]) -> int:
    """Ctrl-C the server, drain and close its pipes, return its exit code."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    return proc.returncode


def test_emulator_serve_answers_a_real_client(tmp_path: Path) -> None:
    """Rule: `emulator serve` listens on loopback; a real client creates a QR code and
    lists followers against it; Ctrl-C stops it with exit code 130."""
    proc, url = _serve("emulator", "serve", "--port", "0", "--followers", "3", cwd=tmp_path)
    try:
        assert url.startswith("http://127.0.0.1:")
        client = OfficialAccount("wxemulator0000001", "emulator-secret", base_url=url)
        assert client.create_qrcode("parcel", permanent=True).ticket
        assert sorted(client.iter_followers()) == ["o00000000", "o00000001", "o00000002"]
        client.close()
    finally:
        code = _stop(proc)
    assert code == 130


def test_campaign_run_against_emulator_serve(tmp_path: Path) -> None:
    """Rule: `campaign run` plans into the ledger and sends through a real client to the
    served emulator, reading the secret from the environment; a second run sends nothing."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    appid = "wxemulator0000001"
    with (tmp_path / "m.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "identities"])
        for i in range(5):
            w.writerow([f"m{i}", json.dumps([f"openid:{appid}:o{i:08d}"])])
    with (tmp_path / "e.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["member_id", "type", "at", "key", "properties"])
        for i in range(5):
            w.writerow([f"m{i}", "follow", "2026-06-01T08:00:00+00:00", f"f{i}", "{}"])
    for args in (["m.csv"], ["e.csv", "--events"]):
        proc = membermkt("members", "import", *args, "--db", db, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    campaign = {
        "id": "hello",
        "channel": "wechat.mass",
        "audience": {"version": 1, "op": "true"},
        "variants": [{"name": "A", "content": {"msgtype": "text", "text": {"content": "hi"}}}],
        "address_namespace": appid,
    }
    (tmp_path / "c.json").write_text(json.dumps(campaign), encoding="utf-8")
    server, url = _serve("emulator", "serve", "--port", "0", "--followers", "5", cwd=tmp_path)
    try:
        run = ["campaign", "run", "c.json", "--appid", appid, "--base-url", url, "--db", db]
        secret = {"MEMBERMKT_WECHAT_SECRET": "emulator-secret"}
        proc = membermkt(*run, cwd=tmp_path, env=secret)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "sent 5," in proc.stdout
        proc = membermkt(*run, cwd=tmp_path, env=secret)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "sent 0," in proc.stdout
        proc = membermkt(*run, cwd=tmp_path)
        assert proc.returncode == 2
        assert "MEMBERMKT_WECHAT_SECRET" in proc.stderr
    finally:
        _stop(server)
    status = membermkt("campaign", "status", "hello", "--db", db, "--json", cwd=tmp_path)
    assert json.loads(status.stdout) == {"sent": 5}


def test_redpacket_reconcile_over_mutual_tls(tmp_path: Path) -> None:
    """Rule: `redpacket reconcile` queries each payout of a rule at WeChat Pay (the emulator
    on loopback, mutual TLS) and exits 0 when the ledger agrees, 1 when it does not."""
    from membermkt.core.redpackets import Claim, FixedAmount, RedPacketRule
    from membermkt.engine.redpackets import RedPacketService
    from membermkt.engine.runner import SystemClock
    from membermkt.payouts.wechatpay.gateway import MerchantCertificate, WeChatPayV2Gateway
    from membermkt.payouts.wechatpay.v2 import RedPacketConfig
    from membermkt.testing.emulator.wechatpay import WeChatPayEmulator, make_test_credentials

    mch, appid, key = "1900000109", "wxpay000000000001", "192006250b4c09247ec02edce69f6a2d"
    creds = make_test_credentials(mch)
    files = creds.write(tmp_path)
    emulator = WeChatPayEmulator(creds, appid=appid, api_key=key)
    db = f"sqlite:///{tmp_path / 'rp.db'}"
    rule = RedPacketRule(id="cli-rule", mch_id=mch, amount=FixedAmount(300), total_budget_fen=900)
    (tmp_path / "server").mkdir()
    with emulator.serve(directory=str(tmp_path / "server")) as url:
        gateway = WeChatPayV2Gateway(
            RedPacketConfig(
                mch_id=mch,
                wxappid=appid,
                api_key=key,
                send_name="s",
                act_name="a",
                wishing="w",
                remark="r",
            ),
            MerchantCertificate.load(files["merchant_cert"], files["merchant_key"]),
            base_url=url,
            ca_file=files["ca_cert"],
        )
        store = SqlStore(db)
        try:
            from membermkt import Identity, Member

            store.upsert_members(
                Member(f"m{i}", identities=[Identity.openid(appid, f"o{i}")]) for i in range(2)
            )
            service = RedPacketService(store, gateway, clock=SystemClock(), sleep=lambda s: None)
            for i in range(2):
                assert service.claim(rule, Claim(member_id=f"m{i}", address=f"o{i}")).paid
        finally:
            store.close()
        gateway.close()
        args = [
            "redpacket",
            "reconcile",
            "--rule",
            rule.id,
            "--mch-id",
            mch,
            "--appid",
            appid,
            "--cert",
            files["merchant_cert"],
            "--key",
            files["merchant_key"],
            "--ca-file",
            files["ca_cert"],
            "--base-url",
            url,
            "--db",
            db,
        ]
        env = {"MEMBERMKT_WECHATPAY_API_KEY": key}
        proc = membermkt(*args, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "checked 2, matched 2" in proc.stdout
        emulator.set_status(sorted(emulator.bills)[0], "REFUND")  # the platform disagrees
        proc = membermkt(*args, cwd=tmp_path, env=env)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "mismatch" in proc.stdout


def test_emulator_serve_wecom(tmp_path: Path) -> None:
    """Rule: `emulator serve --platform wecom` serves the WeCom emulator: a real client
    creates a channel code against it."""
    from membermkt.channels.wecom import WeCom

    proc, url = _serve("emulator", "serve", "--platform", "wecom", "--port", "0", cwd=tmp_path)
    try:
        client = WeCom("wwemulator0000001", "emulator-secret", base_url=url)
        way = client.add_contact_way(type=1, scene=2, users=["clerk01"], state="store-1")
        assert way.config_id
        client.close()
    finally:
        assert _stop(proc) == 130


def test_callbacks_serve_records_pushes(tmp_path: Path) -> None:
    """Rule: `callbacks serve` verifies and records pushes into the database and replies to
    new followers."""
    db = f"sqlite:///{tmp_path / 'cb.db'}"
    account = WeChatEmulator().add_account("wxcallbacks000001", "s", token="tok")
    proc, url = _serve(
        "callbacks",
        "serve",
        "--port",
        "0",
        "--appid",
        "wxcallbacks000001",
        "--token",
        "tok",
        "--aes-key",
        account.encoding_aes_key,
        "--welcome",
        "hello",
        "--db",
        db,
        cwd=tmp_path,
    )
    try:
        push = account.follow("oServed1", scene="store")
        r = httpx.post(url + "/", params=dict(push.query), content=push.body, timeout=30)
        assert r.status_code == 200
        assert "<Encrypt>" in r.text
        bad = httpx.post(
            url + "/",
            params={**push.query, "msg_signature": "0" * 40},
            content=push.body,
            timeout=30,
        )
        assert bad.status_code == 403
    finally:
        _stop(proc)
    stats = json.loads(membermkt("db", "stats", "--db", db, "--json", cwd=tmp_path).stdout)
    assert stats["events"] == 1
