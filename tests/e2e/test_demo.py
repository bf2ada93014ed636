"""The README's first command: ``membermkt demo --members 2000``, twice in one directory."""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import shutil
from pathlib import Path

from e2e.conftest import DEMO_MEMBERS, DemoRuns
from membermkt import analytics
from membermkt.core.analytics import ACQUISITION_FUNNEL
from membermkt.demo import CAMPAIGN_ID, CONVERSION_WINDOW, RULE_ID
from membermkt.stores import SqlStore
from membermkt.testing.synthetic import SyntheticConfig

REPORT_AS_OF = SyntheticConfig().as_of + CONVERSION_WINDOW + dt.timedelta(days=1)


def _table(page: str, table_id: str) -> str:
    m = re.search(rf'<table[^>]*id="{table_id}".*?</table>', page, re.S)
    assert m is not None, f"no table {table_id} in the report"
    return html.unescape(m.group(0))


def test_first_run_plays_the_whole_story(demo_runs: DemoRuns) -> None:
    """Rule: the first run acquires every member through callbacks, welcomes them, pays
    verified red packets, and sends the campaign to everyone planned, exactly once."""
    r = demo_runs.first
    assert not r["resumed"]
    assert r["members"] == DEMO_MEMBERS
    assert r["pushes"] > DEMO_MEMBERS  # every follow and WeCom add arrived as a callback
    assert r["welcomed"] > DEMO_MEMBERS  # every follower, and the WeCom contacts
    assert r["payouts"] > 0
    assert r["claims"]["paid"] == r["payouts"]
    assert any(k.startswith("denied:") for k in r["claims"])  # mistyped orders, budget
    planned = r["simulation"]["A"] + r["simulation"]["B"]
    assert r["new_sends"] == planned > 0
    assert r["deliveries"] == {"sent": planned}
    assert r["simulation"]["holdout"] > 0
    assert r["duplicate_receipts"] == 0


def test_second_run_resumes_and_delivers_nothing_new(demo_runs: DemoRuns) -> None:
    """Rule: running the demo again over the same directory sends nothing, pays nothing and
    welcomes nobody twice; the ledgers are unchanged."""
    a, b = demo_runs.first, demo_runs.second
    assert b["resumed"]
    assert b["pushes"] == b["welcomed"] == 0
    assert b["new_sends"] == 0
    assert b["payouts"] == 0
    assert b["claims"] == {}
    assert b["deliveries"] == a["deliveries"]
    assert b["paid_fen"] == a["paid_fen"]
    assert b["members"] == a["members"]
    assert b["events"] == a["events"]
    assert b["funnel"] == a["funnel"]
    assert b["attribution"] == a["attribution"]
    assert b["tags"] == a["tags"]


def test_ledgers_hold_each_delivery_and_payout_once(demo_runs: DemoRuns) -> None:
    """Rule: after two runs the database holds one delivery per planned member and one paid
    intent per paid claim, within the rule's budget."""
    store = SqlStore(demo_runs.db_url)
    try:
        records = list(store.deliveries(CAMPAIGN_ID))
        assert len({r.delivery.member_id for r in records}) == len(records)
        assert {r.status.value for r in records} == {"sent"}
        intents = [i for i in store.intents(rule_id=RULE_ID) if i.status == "paid"]
        assert len({i.member_id for i in intents}) == len(intents)
        assert sum(i.amount_fen for i in intents) == demo_runs.second["paid_fen"] <= 150_000
    finally:
        store.close()


def test_report_holds_the_funnel_and_attribution_numbers(demo_runs: DemoRuns) -> None:
    """Rule: the HTML report exists and shows the funnel and attribution numbers that the
    analytics compute from the database."""
    report = demo_runs.workdir / "report.html"
    assert report.exists()
    page = report.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 5  # charts are embedded
    store = SqlStore(demo_runs.db_url)
    try:
        funnel = analytics.funnel(store, ACQUISITION_FUNNEL, as_of=REPORT_AS_OF)
        attribution = analytics.attribution(store, as_of=REPORT_AS_OF)
    finally:
        store.close()
    assert dict(zip(funnel.steps, funnel.counts, strict=True)) == demo_runs.second["funnel"]
    table = _table(page, "funnel-numbers")
    for name, n in zip(funnel.steps, funnel.counts, strict=True):
        assert f"<td>{name}</td><td>{n:,}</td>" in table
    assert funnel.counts[0] == DEMO_MEMBERS
    table = _table(page, "attribution-numbers")
    # orders placed before a member arrived through a source are not that source's (#14):
    # they show as "(unknown)", with no members of its own
    assert {r.source for r in attribution.rows} - {"(unknown)"} == {"parcel", "store", "platform"}
    unknown = attribution.row("(unknown)")
    assert unknown is None or unknown.members == 0
    for row in attribution.rows:
        assert (
            f"<td>{row.source}</td><td>{row.members:,}</td><td>{row.buyers:,}</td>"
            f"<td>{row.orders:,}</td><td>{row.revenue_fen / 100:,.2f}</td>"
        ) in table
    assert "Campaign" in page
    assert "holdout" in page
    assert 'id="redpacket-numbers"' in page


def test_second_run_says_what_it_skipped(demo_runs: DemoRuns) -> None:
    """Rule: a resumed run tells the user it resumed and that nothing was sent."""
    assert "resuming" in demo_runs.second_stderr
    assert "already imported" in demo_runs.second_stderr
    assert "sent this run: 0" in demo_runs.second_stderr


def test_demo_campaign_rechecks_policy_at_hand_off(demo_runs: DemoRuns) -> None:
    """Rule (#12): the demo runs its Campaign (not a bare id), so consent, subscription and
    the 4-per-month mass cap are re-checked at hand-off: the runner's "runs without a
    hand-off policy" warning appears in neither run, and the numbers are the plan's (nobody
    changed between planning and sending)."""
    for stderr in (demo_runs.first_stderr, demo_runs.second_stderr):
        assert "without a hand-off policy" not in stderr
        assert "NOT re-checked" not in stderr
    assert demo_runs.first_stderr, "the first run's progress is on stderr"
    sim = demo_runs.first["simulation"]
    assert demo_runs.first["deliveries"] == {"sent": sim["A"] + sim["B"]}


ROOT = Path(__file__).resolve().parents[2]


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m is not None, title
    return m.group(1)


def test_readme_quick_start_is_the_two_commands() -> None:
    """Rule: the README's Quick start holds exactly two code blocks, `make demo` then
    `make test`, and the Makefile runs the demo CLI this file tests."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", _readme_section("Quick start"), re.S)
    assert [b.strip() for b in blocks] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "$(BIN)/membermkt demo" in makefile


def test_readme_links_exist() -> None:
    """Rule: every relative link in the README points at a file in the repository."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links
    for link in links:
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link


def test_readme_api_taste_runs_on_the_demo_database(demo_runs: DemoRuns, tmp_path: Path) -> None:
    """Rule: the README's taste of the API runs as written (up to the real account) on a
    copy of the demo's database."""
    code = re.search(r"```python\n(.*?)```", _readme_section("A taste of the API"), re.S)
    assert code is not None
    lines = code.group(1).splitlines()
    assert len(lines) <= 25
    until = next(i for i, line in enumerate(lines) if line.startswith("channel ="))
    shutil.copytree(demo_runs.workdir, tmp_path / "membermkt-demo")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    namespace: dict[str, object] = {}
    try:
        exec(compile("\n".join(lines[:until]), "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
        store = namespace.get("store")
        if isinstance(store, SqlStore):
            store.close()
    compile("\n".join(lines), "README.md", "exec")  # the rest is valid Python
