"""Validation wired into simulate, the engine and the CLI (#12 item 9): what the send would
fail on is reported before anything runs, and a plan that needs more API calls than the
day's budget is reported before sending (the runner then defers the rest)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from membermkt import Identity, Member, MemberState
from membermkt.channels.wechat.channel import WeChatMassChannel
from membermkt.channels.wechat.client import DEFAULT_BUDGETS, OfficialAccount
from membermkt.cli import main
from membermkt.core.campaigns import Campaign, Variant
from membermkt.core.delivery import ChannelCapabilities
from membermkt.engine.budget import budget_problems, daily_budget
from membermkt.engine.campaigns import simulate
from membermkt.segments import TRUE
from membermkt.stores.sql import SqlStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.budget import CallBudget

APPID = "wxbudget0000001"
AS_OF = dt.datetime(2026, 3, 10, 4, tzinfo=dt.UTC)
TEXT = {"msgtype": "text", "text": {"content": "hi"}}


def _members(n: int) -> list[Member]:
    return [
        Member(
            f"m{i:03d}",
            identities=[Identity("openid", f"o{i:03d}", APPID)],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    ]


def _campaign(channel: str = "wechat.mass", *contents: dict[str, object]) -> Campaign:
    return Campaign(
        id="c",
        audience=TRUE,
        channel=channel,
        variants=tuple(
            Variant(name=n, content=c) for n, c in zip("AB", contents or (TEXT,), strict=False)
        ),
        address_namespace=APPID,
    )


def _client(emu: WeChatEmulator, budgets: tuple[CallBudget, ...]) -> OfficialAccount:
    return OfficialAccount(
        APPID, "secret", transport=emu.transport(), budgets=budgets, sleep=lambda s: None
    )


def test_simulate_reports_a_plan_over_the_days_budget() -> None:
    """Rule: `simulate` counts the calls the runner will make (balanced batches) and reports
    a plan that needs more than the calls left today; one that fits reports nothing."""
    caps = ChannelCapabilities(
        max_batch_size=10, min_batch_size=2, address_kind="openid", idempotent=True
    )
    c = _campaign()
    sim = simulate(c, _members(25), {}, AS_OF, capabilities=caps, calls_per_day=2)
    assert sim.api_calls == 3
    (problem,) = sim.problems
    assert problem.path == "budget"
    assert "25 deliveries need 3 wechat.mass calls, 2 of the daily budget of 2 left" in str(problem)
    assert simulate(c, _members(25), {}, AS_OF, capabilities=caps, calls_per_day=3).problems == ()
    used = simulate(c, _members(25), {}, AS_OF, capabilities=caps, calls_per_day=3, used_today=1)
    assert [p.path for p in used.problems] == ["budget"]
    assert simulate(c, _members(25), {}, AS_OF, capabilities=caps).problems == ()


def test_simulate_reports_what_validation_finds() -> None:
    """Rule: the simulation carries every validation problem (a msgtype without its content
    object here) next to its counts."""
    sim = simulate(_campaign("wechat.mass", {"msgtype": "text"}), _members(3), {}, AS_OF)
    assert [p.path for p in sim.problems] == ["variants[0](A).content.text"]


def test_the_channels_daily_budget_is_read_from_its_client() -> None:
    """Rule: the budget is the client's ("mass": 100 a day by default) and the calls this
    client made today count against it; a template send has no known daily budget."""
    emu = WeChatEmulator(limits=())
    emu.add_account(APPID, "secret").add_followers(f"o{i:03d}" for i in range(4))
    now = dt.datetime.now(dt.UTC)
    default = WeChatMassChannel(_client(emu, DEFAULT_BUDGETS))
    assert daily_budget(default, now) == (100, 0)
    small = (CallBudget("mass", per_day=2, apis=("/cgi-bin/message/mass/send",)),)
    client = _client(emu, small)
    channel = WeChatMassChannel(client)
    client.send_mass(["o000", "o001"], TEXT)
    assert daily_budget(channel, now) == (2, 1)
    c = _campaign("wechat.mass", TEXT, {"msgtype": "text", "text": {"content": "B"}})
    summary = simulate(c, _members(40), {}, AS_OF).summary
    (problem,) = budget_problems(c, summary, channel, now=now)
    assert "need 2 wechat.mass calls, 1 of the daily budget of 2 left" in problem.message
    from membermkt.channels.wechat.channel import WeChatTemplateChannel

    assert daily_budget(WeChatTemplateChannel(client), now) == (None, 0)


def _file(tmp_path: Path, channel: str, *variants: dict[str, object]) -> Path:
    data = {
        "id": "cli-budget",
        "channel": channel,
        "audience": {"version": 1, "op": "true"},
        "variants": [{"name": n, "content": v} for n, v in zip("AB", variants, strict=False)],
        "address_namespace": APPID,
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    store = SqlStore(url)
    store.upsert_members(_members(12))
    store.close()
    return url


def test_cli_simulate_reports_refusals_and_the_budget(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule: `campaign simulate` prints what the platform would refuse (exit 1) — a misspelt
    channel, a template aimed at the mass channel — and warns about a plan over the day's
    budget (exit 0: the runner defers)."""
    as_of = ["--as-of", AS_OF.isoformat(), "--db", db]
    assert main(["campaign", "simulate", str(_file(tmp_path, "wechat.mas", TEXT)), *as_of]) == 1
    assert "did you mean 'wechat.mass'" in capsys.readouterr().out
    tpl = {"template_id": "T", "data": {"k": "v"}}
    assert main(["campaign", "simulate", str(_file(tmp_path, "wechat.mass", tpl)), *as_of]) == 1
    assert "use channel 'wechat.template'" in capsys.readouterr().out
    # no false positive: plain-value template data is wrapped by the client
    assert main(["campaign", "simulate", str(_file(tmp_path, "wechat.template", tpl)), *as_of]) == 0
    assert "would be refused" not in capsys.readouterr().out
    monkeypatch.setattr("membermkt.cli._campaigns._default_budget", lambda name: 1)
    two = _file(tmp_path, "wechat.mass", TEXT, {"msgtype": "text", "text": {"content": "B"}})
    assert main(["campaign", "simulate", str(two), *as_of]) == 0
    out = capsys.readouterr().out
    assert "warning: budget: 12 deliveries need 2 wechat.mass calls" in out


def test_cli_run_warns_before_sending_then_defers(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule: `campaign run` reports a plan over the client's daily budget before the first
    call; the runner sends what the budget allows and defers the rest (nothing failed)."""
    emu = WeChatEmulator(seed=3, limits=())
    emu.add_account(APPID, "emulator-secret").add_followers(f"o{i:03d}" for i in range(12))
    monkeypatch.setenv("MEMBERMKT_WECHAT_SECRET", "emulator-secret")
    small = (CallBudget("mass", per_day=1, apis=("/cgi-bin/message/mass/send",)),)
    monkeypatch.setattr("membermkt.channels.wechat.client._base.DEFAULT_BUDGETS", small)
    two = _file(tmp_path, "wechat.mass", TEXT, {"msgtype": "text", "text": {"content": "B"}})
    with emu.serve() as server:
        args = ["--appid", APPID, "--base-url", server.url, "--db", db, "--no-progress"]
        code = main(["campaign", "run", str(two), *args])
    out = capsys.readouterr().out
    assert code == 0, out
    warning = out.index("warning: budget: 12 deliveries need 2 wechat.mass calls, 1 of the")
    assert warning < out.index("sent ")
    assert "deferred" in out
    assert emu.calls["/cgi-bin/message/mass/send"] == 1
