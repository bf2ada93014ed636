"""The sans-I/O pieces: errcode table, retry decision, call budgets, chunking, clientmsgid,
tag-sync planning."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membermkt.channels.wechat.api.messaging import clientmsgid_for
from membermkt.channels.wechat.flows import chunks
from membermkt.channels.wechat.tagsync import plan_tag_sync
from membermkt.channels.wecom._errcodes import WECOM_ERRCODES
from membermkt.core.delivery import SendOutcome
from membermkt.errors import (
    PermanentDeliveryError,
    PlatformError,
    RateLimitError,
    TokenError,
    TransportError,
    UsageError,
)
from membermkt.wire.budget import BudgetWindowExceeded, CallBudget, CallBudgets
from membermkt.wire.errcodes import (
    OA_ERRCODES,
    TOKEN_ERRCODES,
    Action,
    decide,
    error_for,
    outcome_for,
    rid_of,
)
from membermkt.wire.retry import RetryPolicy, should_retry, wait_seconds


@pytest.mark.parametrize(
    ("code", "cls", "retryable", "outcome"),
    [
        (-1, PlatformError, True, SendOutcome.RETRYABLE),
        (40001, TokenError, False, SendOutcome.RETRYABLE),
        (42001, TokenError, False, SendOutcome.RETRYABLE),
        (45009, RateLimitError, True, SendOutcome.RETRYABLE),
        (40003, PermanentDeliveryError, False, SendOutcome.PERMANENT),
        (43004, PermanentDeliveryError, False, SendOutcome.PERMANENT),
        (45015, PermanentDeliveryError, False, SendOutcome.PERMANENT),
        (45047, PermanentDeliveryError, False, SendOutcome.PERMANENT),
        (45028, RateLimitError, False, SendOutcome.PERMANENT),
        (48001, PlatformError, False, SendOutcome.PERMANENT),
        (40164, TokenError, False, SendOutcome.PERMANENT),
        (45065, PlatformError, False, SendOutcome.SENT),
        (99999, PlatformError, False, SendOutcome.PERMANENT),
    ],
)
def test_errcode_table(code, cls, retryable, outcome):
    """Each errcode maps to the error class, retryability and delivery outcome the
    reference's action column asks for; unknown codes give up."""
    err = error_for(code, "msg rid: 6655-abc", "/api")
    assert type(err) is cls
    assert err.retryable is retryable
    assert (err.errcode, err.api, err.request_id) == (code, "/api", "6655-abc")
    assert outcome_for(code) is outcome


def test_token_codes_and_rid():
    assert frozenset({40001, 40014, 42001}) == TOKEN_ERRCODES
    assert decide(12345).action is Action.GIVE_UP
    assert all(isinstance(k, int) for k in OA_ERRCODES)
    assert rid_of("invalid openid") is None


def test_retry_decision():
    p = RetryPolicy()
    assert should_retry(error_for(-1, "", "a"), idempotent=False, policy=p)
    assert not should_retry(error_for(43004, "", "a"), idempotent=True, policy=p)
    ambiguous = TransportError("t", ambiguous=True)
    assert should_retry(ambiguous, idempotent=True, policy=p)
    assert not should_retry(ambiguous, idempotent=False, policy=p)
    assert should_retry(TransportError("c", ambiguous=False), idempotent=False, policy=p)
    assert not should_retry(ValueError(), idempotent=True, policy=p)
    rng = random.Random(1)
    # 45011 (per-minute rate): retried after the capped throttle wait, as before
    assert should_retry(error_for(45011, "", "a"), idempotent=False, policy=p)
    assert wait_seconds(error_for(45011, "", "a"), 1, RetryPolicy(jitter=0), rng) == 5.0
    # 45009 (daily quota) and 45066 (same clientmsgid within 60 s): surfaced at once, still
    # retryable for a later run
    for code in (45009, 45066):
        exc = error_for(code, "", "a")
        assert isinstance(exc, RateLimitError)
        assert exc.surface
        assert exc.retryable
        assert not should_retry(exc, idempotent=True, policy=p)
    wecom = error_for(45009, "", "a", table=WECOM_ERRCODES)
    assert not should_retry(wecom, idempotent=True, policy=p)
    # WeCom 45033 (concurrent calls: back off briefly) is still retried inside the call
    assert should_retry(error_for(45033, "", "a", table=WECOM_ERRCODES), idempotent=True, policy=p)
    assert wait_seconds(None, 3, RetryPolicy(jitter=0, backoff=1, max_backoff=3), rng) == 3
    with pytest.raises(UsageError):
        RetryPolicy(attempts=0)


def test_call_budgets_day_and_minute_windows():
    b = CallBudgets([CallBudget("mass", per_day=3, per_minute=2, apis=("/send", "/sendall"))])
    t = 1_700_000_000.0 - (1_700_000_000 % 86400) + 86400 - 8 * 3600 + 10  # Beijing 00:00:10
    b.take("/send", t)
    b.take("/sendall", t + 1)
    with pytest.raises(BudgetWindowExceeded) as minute:
        b.take("/send", t + 2)
    assert minute.value.window == "minute"
    assert 0 < minute.value.retry_after <= 60
    b.take("/send", t + 61)
    with pytest.raises(BudgetWindowExceeded) as day:
        b.take("/send", t + 200)
    assert day.value.window == "day"
    assert day.value.quota == "mass/day"
    b.take("/send", t + 86400)  # next Beijing day
    b.take("/other", t)  # no budget: unlimited
    assert b.used("/sendall", t + 86400) == (1, 1)
    with pytest.raises(UsageError):
        CallBudget("x", per_day=0)


@given(n=st.integers(0, 30_000), size=st.integers(2, 10_000))
def test_chunks_are_balanced_and_complete(n, size):
    items = list(range(n))
    parts = chunks(items, size)
    assert [x for p in parts for x in p] == items
    assert all(len(p) <= size for p in parts)
    if parts:
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert len(parts) == -(-n // size)
        if n >= 2:
            assert min(map(len, parts)) >= 2 or size < 4


@given(keys=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=20, unique=True))
def test_clientmsgid_is_deterministic_order_free_and_short(keys):
    cid = clientmsgid_for(keys)
    assert cid == clientmsgid_for(list(reversed(keys)))
    assert len(cid.encode()) <= 64
    assert cid != clientmsgid_for([*keys, "extra"])


openids = st.sampled_from([f"o{i}" for i in range(8)])
names = st.sampled_from(["a", "b", "c", "d"])


@settings(max_examples=200)
@given(
    desired=st.dictionaries(openids, st.frozensets(names, max_size=4), max_size=8),
    fans=st.dictionaries(names, st.frozensets(openids, max_size=8), max_size=4),
)
def test_tag_sync_plan_reaches_the_desired_state(desired, fans):
    """Applying the plan (remove, then add) to the current fans gives exactly the desired
    tags for the synced openids, takes the managed tags off fans who left the rule (absent
    from ``desired``, #17), and a second plan is empty."""
    managed = {"a", "b", "c", "d"}
    plan = plan_tag_sync(desired, managed=managed, existing=fans.keys(), fans=fans)
    state = {n: set(fans.get(n, ())) for n in managed}
    for n, os_ in plan.remove.items():
        state[n] -= set(os_)
    for n, os_ in plan.add.items():
        state[n] |= set(os_)
    for o, want in desired.items():
        assert {n for n in managed if o in state[n]} == set(want)
    for n in managed:
        outsiders = {o for o in fans.get(n, ()) if o not in desired}
        assert not outsiders & state[n]
        assert set(plan.remove.get(n, ())) >= outsiders
    assert set(plan.create) == {n for n in plan.add if n not in fans}
    again = plan_tag_sync(desired, managed=managed, existing=managed, fans=state)
    assert again.calls == 0


def test_tag_sync_counts_tags_set_elsewhere():
    """19 console tags + 2 managed: one managed tag fits, the other is left out (never a
    45059 that aborts the sync)."""
    plan = plan_tag_sync(
        {"o1": {"a", "b"}}, managed={"a", "b"}, existing=(), fans={}, other_tag_counts={"o1": 19}
    )
    assert plan.over_limit == ("o1",)
    assert sum("o1" in v for v in plan.add.values()) == 1


def test_tag_sync_respects_twenty_tags_per_user():
    many = {f"t{i}" for i in range(25)}
    plan = plan_tag_sync({"o1": many}, managed=many, existing=(), fans={})
    assert plan.over_limit == ("o1",)
    assert sum("o1" in v for v in plan.add.values()) == 20
    with pytest.raises(UsageError):
        plan_tag_sync({"o1": {"x"}}, managed={"y"}, existing=(), fans={})
