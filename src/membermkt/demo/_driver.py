"""The driver: :func:`run_demo` plays the chapters in order, resuming from the state file."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import attrs

from membermkt._version import __version__
from membermkt.demo._acquisition import _acquire
from membermkt.demo._base import (
    APPID,
    CONVERSION_WINDOW,
    CORPID,
    DB_FILE,
    DEFAULT_MEMBERS,
    DEFAULT_SEED,
    DEFAULT_WORKDIR,
    PHONE_KEY_FILE,
    REPORT_FILE,
    RULE_ID,
    STATE_FILE,
    Echo,
    StoryClock,
    _Stages,
)
from membermkt.demo._campaigns import _campaign
from membermkt.demo._members import _member_programme
from membermkt.demo._redpackets import _red_packets
from membermkt.demo._report import _analytics
from membermkt.demo._result import DemoResult
from membermkt.demo._segments import _tags_and_segments
from membermkt.demo._state import _load_state, _save_state, table_counts
from membermkt.demo._world import _World
from membermkt.errors import UsageError


def run_demo(
    *,
    members: int = DEFAULT_MEMBERS,
    workdir: str | Path = DEFAULT_WORKDIR,
    seed: int = DEFAULT_SEED,
    fresh: bool = False,
    report: bool = True,
    echo: Echo = print,
    progress: bool = False,
) -> DemoResult:
    """Play the demo story (see the module docstring) in ``workdir``.

    Args:
        members: how many synthetic buyers.
        workdir: the directory for the SQLite database, its phone key (``phone.key``), the
            state file and the report.
        seed: the population seed.
        fresh: delete an earlier demo in ``workdir`` first.
        report: write the HTML report (PNG charts with the ``plot`` extra, else inline SVG).
        echo: where progress lines go.
        progress: draw progress bars (tqdm, when installed) for the long steps.

    Returns:
        A :class:`DemoResult`.

    Raises:
        UsageError: for bad arguments, or a ``workdir`` holding a demo made with other
            arguments (use ``fresh=True``).
        StoreError: when the database fails.
    """
    if isinstance(members, bool) or not isinstance(members, int) or members < 2:
        raise UsageError(f"members must be an int >= 2, got {members!r}")
    started = time.perf_counter()
    work = Path(workdir)
    if fresh and work.exists():
        names = (
            DB_FILE,
            STATE_FILE,
            REPORT_FILE,
            PHONE_KEY_FILE,
            f"{DB_FILE}-wal",
            f"{DB_FILE}-shm",
        )
        for name in names:
            (work / name).unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / STATE_FILE
    state = _load_state(state_path)
    wanted = {"members": members, "seed": seed}
    if state and {k: state.get(k) for k in wanted} != wanted:
        raise UsageError(
            f"{work} holds a demo made with --members {state.get('members')} "
            f"(seed {state.get('seed')}); run with --fresh or another --workdir"
        )
    state.update(wanted)
    state.setdefault("done", [])
    resumed = "import" in state["done"]

    from membermkt.security.phone_policy import load_or_create_key_file
    from membermkt.security.phones import PhoneProtector
    from membermkt.stores.sql.store import SqlStore
    from membermkt.testing.synthetic import SyntheticConfig, generate

    db_path = work / DB_FILE
    # phone identities are keyed: a local key, made once next to the database (a re-run
    # reads it again, so the digests — and the demo — stay the same)
    phones = PhoneProtector(load_or_create_key_file(work / PHONE_KEY_FILE))
    store = SqlStore(f"sqlite:///{db_path}", phones=phones)
    try:
        store.create_schema()
        cfg = SyntheticConfig(seed=seed, appid=APPID, corpid=CORPID, phones=phones)
        as_of = cfg.as_of
        clock = StoryClock(as_of)
        population = list(generate(members, config=cfg))
        echo(
            f"membermkt {__version__} demo: {members:,} synthetic buyers, seed {seed}, "
            f"database {db_path}" + (" (resuming)" if resumed else "")
        )

        stage = _Stages(echo)
        # 1. platform set-up ------------------------------------------------------------
        with stage(1, "emulated official account, WeCom corp and WeChat Pay merchant"):
            world = _World.build(clock, population, work)

        # 2. acquisition ----------------------------------------------------------------
        pushes = welcomed = 0
        if resumed:
            with stage(2, "acquisition: already imported by an earlier run, skipped"):
                pass
        else:
            with stage(2, "acquisition: QR follows, WeCom channel codes, welcomes, clicks, orders"):
                pushes, welcomed = _acquire(store, world, population, clock, echo, progress)
            state["done"].append("import")
            _save_state(state_path, state)

        # 3. red packets ----------------------------------------------------------------
        with stage(3, "red packets: claims with phone + order id, paid through WeChat Pay"):
            claims, payouts, paid_fen = _red_packets(
                store,
                world,
                population,
                clock,
                progress,
                claimed="claims" in state["done"],
                echo=echo,
            )
        if "claims" not in state["done"]:
            state["done"].append("claims")
            _save_state(state_path, state)

        # 4. campaign -------------------------------------------------------------------
        with stage(4, "campaign: simulate, then A/B mass send with a 10% holdout"):
            camp = _campaign(store, world, clock, as_of, echo, progress)

        report_as_of = as_of + CONVERSION_WINDOW + dt.timedelta(days=1)
        # 5. the member programme (before tags and the report, so every run sees the same
        #    events there) --------------------------------------------------------------
        with stage(5, "member programme: first members join, tiers, durian coupons, report"):
            programme = _member_programme(
                store, world, clock, as_of, report_as_of, echo, work if report else None
            )
        # 6. tags and segments ------------------------------------------------------------
        with stage(6, "tags and segments, as of a week after the campaign"):
            tags, segments = _tags_and_segments(store, world, report_as_of, echo)

        # 7. report ---------------------------------------------------------------------
        with stage(7, "analytics and the HTML report"):
            analytics = _analytics(
                store,
                report_as_of,
                work / REPORT_FILE if report else None,
                camp,
                rule_id=RULE_ID,
            )
        counts = table_counts(store)
        stats = counts["members"], counts["events"]
        state["runs"] = int(state.get("runs", 0)) + 1
        _save_state(state_path, state)
    finally:
        store.close()

    return DemoResult(
        workdir=work,
        database=db_path,
        report=work / REPORT_FILE if report else None,
        resumed=resumed,
        members=stats[0],
        events=stats[1],
        pushes=pushes,
        welcomed=welcomed,
        claims=claims,
        payouts=payouts,
        paid_fen=paid_fen,
        tags=tags,
        segments=segments,
        simulation=camp.simulation,
        deliveries=camp.deliveries,
        new_sends=camp.new_sends,
        duplicate_receipts=world.wechat.duplicates,
        funnel=analytics[0],
        attribution=analytics[1],
        lift=camp.lift,
        seconds=time.perf_counter() - started,
        programme={
            **attrs.asdict(programme, recurse=False),
            "report": None if programme.report is None else str(programme.report),
        },
    )
