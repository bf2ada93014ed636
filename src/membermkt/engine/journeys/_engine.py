"""The durable journey engine: wake members, process due members, dispatch side effects.

Execution model (see docs/journeys.md):

* A member's progress is a row in a :class:`~membermkt.engine.journeys.JourneyProgress`
  store with ``due_at`` — the timer. Nothing sleeps in memory: :meth:`JourneyEngine.tick`
  claims rows whose ``due_at`` has come, in due order.
* Processing a member recomputes their journey state with the pure
  :func:`membermkt.core.journeys.replay` from their stored events up to ``now``, writes every
  due side effect to the **delivery ledger** (``record_plan``: a key that exists is not
  planned again — keys come from (journey, version, member, step, entry)), then stores the
  entry rows and the next ``due_at``. A crash anywhere in between only repeats idempotent
  work.
* :meth:`JourneyEngine.dispatch` sends the planned deliveries with the campaign runner
  (campaign id ``journey:<id>``), which claims each delivery for one worker and recovers a dead
  worker's (re-sent with the same key on idempotent channels, ``unknown`` otherwise).
* **Policy at hand-off** (#12): every send on a channel with member addresses is re-checked
  right before it is handed to the channel — consent, the subscription / contact status the
  channel requires, the address, quiet hours in the member's zone, frequency and platform
  caps counted over the whole ledger (:class:`~membermkt.engine.journeys.JourneyPolicy`).
  A delivery that no longer qualifies ends ``skipped(reason)``. Built-in ``journey.tag``
  effects change the store only and are not re-checked.
* Version rules when a journey is edited (a higher ``version`` registered): a member is moved
  to the new version at their next processing (time ``T``). Without ``migrations`` for their
  version, entries already running finish under their old version ("pinned") and only
  triggers after ``T`` start entries under the new one. With ``migrations[old]``, entries
  waiting at ``T`` continue in the new version at the mapped step (an unmapped step continues
  at the step with the same id, or ends with ``"exit:migrated"`` when there is none),
  starting afresh at ``T``; their old-version state is frozen at ``T``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from membermkt.core.accounts import AccountType
from membermkt.core.accounts import account_type as to_account_type
from membermkt.core.campaigns import QuietHours
from membermkt.core.delivery import Delivery
from membermkt.core.events import Event
from membermkt.core.journeys import (
    Branch,
    Effect,
    EventTrigger,
    Journey,
    JourneyReport,
    MemberJourney,
    Resume,
    ScheduleTrigger,
    SegmentTrigger,
    WaitForEvent,
    journey_report,
    replay,
)
from membermkt.core.members import Member
from membermkt.core.ports import AsyncChannel, Channel, Clock, Ledger, Store
from membermkt.core.quotas import Cap
from membermkt.engine.journeys._channels import MEMBER_ADDRESS, TagChannel
from membermkt.engine.journeys._policy import JourneyPolicy, journey_send_rules
from membermkt.engine.journeys._progress import EntryRow, Epoch, JourneyProgress, MemberProgress
from membermkt.engine.runner import NO_HANDOFF_CHECKS, CampaignRunner, HandOffPolicy, RunResult
from membermkt.errors import JourneyError, UsageError

__all__ = [
    "JourneyEngine",
    "TickResult",
    "campaign_id_for",
    "owner_staff",
    "replay_epochs",
    "sop_completion",
]


def campaign_id_for(journey_id: str) -> str:
    """The delivery-ledger campaign id of a journey's side effects."""
    return f"journey:{journey_id}"


@attrs.frozen(slots=True, kw_only=True)
class TickResult:
    """What one :meth:`JourneyEngine.tick` did.

    Attributes:
        processed: member rows processed.
        planned: deliveries newly written to the ledger.
        no_address: effects not planned because the member has no address on the channel
            (planned at a later tick once the member has one).
    """

    processed: int = 0
    planned: int = 0
    no_address: int = 0


def replay_epochs(
    versions: Mapping[int, Journey],
    epochs: Sequence[Epoch],
    member: Member,
    events: Sequence[Event],
    now: dt.datetime,
) -> tuple[list[EntryRow], list[Effect], dt.datetime | None]:
    """Replay every version epoch of one member: (entry rows, effects, next due).

    Later epochs override entries carried over from earlier ones.

    Raises:
        JourneyError: when an epoch names a version that is not registered.
    """
    entries: dict[int, EntryRow] = {}
    effects: list[Effect] = []
    dues: list[dt.datetime] = []
    for ep in epochs:
        j = versions.get(ep.version)
        if j is None:
            raise JourneyError(
                f"member {member.id!r} runs version {ep.version} of a journey whose versions "
                f"registered are {sorted(versions)}: register every version still running"
            )
        at = now if ep.frozen_at is None else min(now, ep.frozen_at)
        r = replay(
            j,
            member,
            events,
            at,
            triggers_after=ep.since,
            triggers_until=ep.until,
            first_entry=ep.first_entry,
            resume=ep.resume,
        )
        for e in r.entries:
            entries[e.entry] = EntryRow(
                journey_id=j.id, member_id=member.id, version=j.version, state=e
            )
        effects.extend(r.effects)
        if ep.frozen_at is None and r.next_due is not None:
            dues.append(r.next_due)
    return [entries[k] for k in sorted(entries)], effects, (min(dues) if dues else None)


class JourneyEngine:
    """Runs journeys durably over a store.

    Args:
        store: members, events and the delivery ledger.
        progress: where progress rows live (``InMemoryJourneyProgress`` with an
            ``InMemoryStore``, ``SqlJourneyProgress(store)`` with a ``SqlStore``).
        journeys: the journeys (several versions of one id allowed: the highest is current).
        channels: the channels steps send on (their capabilities give the address kind);
            ``journey.tag`` is built in.
        quiet_hours: no journey send is handed to a channel inside this period of the
            member's local time (:class:`~membermkt.core.campaigns.QuietHours`; the member's
            zone from its ``member_tz_attribute``): such sends end ``skipped("quiet_hours")``
            — delay steps with :class:`~membermkt.core.journeys.WaitUntil` to avoid them.
        caps: frequency caps (:class:`~membermkt.core.quotas.Cap`) every journey send obeys,
            counted over every send in the ledger (other campaigns and journeys included).
        account_type: the official account's type, for the channels' platform rules
            (subscription required, the 4-per-month mass cap, ...).

    Raises:
        UsageError: for duplicate (id, version) pairs, a non-channel, or bad rules.
    """

    def __init__(
        self,
        store: Store,
        progress: JourneyProgress,
        journeys: Iterable[Journey] = (),
        *,
        channels: Iterable[Channel | AsyncChannel] = (),
        quiet_hours: QuietHours | None = None,
        caps: Iterable[Cap] = (),
        account_type: AccountType | str = AccountType.SERVICE,
    ) -> None:
        if quiet_hours is not None and not isinstance(quiet_hours, QuietHours):
            raise UsageError(f"quiet_hours must be a QuietHours or None, got {quiet_hours!r}")
        self.store = store
        self.progress = progress
        self.quiet_hours = quiet_hours
        self.caps = tuple(caps)
        for cap in self.caps:
            if not isinstance(cap, Cap):
                raise UsageError(f"caps must hold Cap values, got {cap!r}")
        self.account_type = to_account_type(account_type)
        self._versions: dict[str, dict[int, Journey]] = {}
        for j in journeys:
            self.add(j)
        self.channels: dict[str, Channel | AsyncChannel] = {"journey.tag": TagChannel(store)}
        for c in channels:
            if not isinstance(getattr(c, "name", None), str) or not hasattr(c, "capabilities"):
                raise UsageError(f"{c!r} is not a channel (needs name and capabilities)")
            self.channels[c.name] = c

    def __repr__(self) -> str:
        return f"<JourneyEngine journeys={sorted(self._versions)}>"

    # ------------------------------------------------------------------ registry

    def add(self, journey: Journey) -> None:
        """Register a journey version (validated).

        Raises:
            JourneyError: when it does not validate.
            UsageError: when that (id, version) is already registered with other content.
        """
        journey.validate()
        versions = self._versions.setdefault(journey.id, {})
        old = versions.get(journey.version)
        if old is not None and old != journey:
            raise UsageError(
                f"journey {journey.id!r} version {journey.version} is already registered with "
                "other content: bump the version for an edit"
            )
        versions[journey.version] = journey

    def current(self, journey_id: str) -> Journey:
        """The highest registered version.

        Raises:
            UsageError: for an unknown journey id.
        """
        versions = self._versions.get(journey_id)
        if not versions:
            raise UsageError(f"unknown journey {journey_id!r}; known: {sorted(self._versions)}")
        return versions[max(versions)]

    @property
    def journey_ids(self) -> list[str]:
        return sorted(self._versions)

    # ------------------------------------------------------------------ waking

    def observe(self, events: Iterable[Event], *, now: dt.datetime) -> int:
        """Wake the members whose events can matter to a journey (its trigger, its goal, a
        wait-for-event step, or any event for segment triggers and branches). Append the
        events to the store first. Returns how many progress rows were woken."""
        evs = list(events)
        n = 0
        for jid in self.journey_ids:
            j = self.current(jid)
            types = _interesting(j, self._versions[jid].values())
            members = sorted({e.member_id for e in evs if types is None or e.type in types})
            if members:
                n += self.progress.wake(jid, members, at=now, version=j.version)
        return n

    def wake_scheduled(self, *, now: dt.datetime) -> int:
        """Wake, for each schedule-triggered journey, the members of its segment at each
        scheduled time up to ``now`` (safe to call repeatedly)."""
        n = 0
        for jid in self.journey_ids:
            j = self.current(jid)
            if isinstance(j.trigger, ScheduleTrigger):
                for at in j.trigger.at:
                    if at <= now:
                        ids = list(self.store.select(j.trigger.segment, at))
                        n += self.progress.wake(jid, ids, at=now, version=j.version)
        return n

    # ------------------------------------------------------------------ processing

    def tick(
        self, *, now: dt.datetime, limit: int = 200, journey_id: str | None = None
    ) -> TickResult:
        """Process up to ``limit`` due members: replay, plan effects, store progress.

        Raises:
            JourneyError: when a member runs a version that is not registered.
            StoreError: when the store fails (nothing half-done: rerun).
        """
        stats = {"planned": 0, "no_address": 0}

        def work(rows: list[MemberProgress]) -> list[tuple[MemberProgress, list[EntryRow]]]:
            out = []
            deliveries: list[Delivery] = []
            for row in rows:
                new, entries, planned, missing = self._process(row, now)
                deliveries.extend(planned)
                stats["no_address"] += missing
                out.append((new, entries))
            if deliveries:
                stats["planned"] += self.store.record_plan(deliveries, now=now)
            return out

        n = self.progress.process_due(now, limit, work, journey_id=journey_id)
        return TickResult(processed=n, planned=stats["planned"], no_address=stats["no_address"])

    def run_due(self, *, now: dt.datetime, limit: int = 200) -> TickResult:
        """Tick until nothing is due at ``now``."""
        total = TickResult()
        while True:
            r = self.tick(now=now, limit=limit)
            if r.processed == 0:
                return total
            total = TickResult(
                processed=total.processed + r.processed,
                planned=total.planned + r.planned,
                no_address=total.no_address + r.no_address,
            )

    def _migrate(
        self, row: MemberProgress, member: Member, events: Sequence[Event], now: dt.datetime
    ) -> tuple[Epoch, ...]:
        versions = self._versions[row.journey_id]
        current = versions[max(versions)]
        last = row.epochs[-1]
        if last.version >= current.version:
            return row.epochs
        entries, _, _ = replay_epochs(versions, [last], member, events, now)
        first = max([e.state.entry for e in entries], default=last.first_entry - 1) + 1
        first = max(first, last.first_entry)
        mapping = current.migrations.get(last.version)
        if mapping is None:
            return (
                *row.epochs[:-1],
                attrs.evolve(last, until=now),
                Epoch(version=current.version, since=now, first_entry=first),
            )
        ids = {s.id for s in current.steps}
        resume = tuple(
            Resume(
                entry=e.state.entry,
                entered_at=e.state.entered_at,
                step=mapping.get(e.state.step, e.state.step if e.state.step in ids else None),
                at=now,
            )
            for e in entries
            if e.state.status == "waiting"
        )
        return (
            *row.epochs[:-1],
            attrs.evolve(last, until=now, frozen_at=now),
            Epoch(version=current.version, since=now, first_entry=first, resume=resume),
        )

    def _process(
        self, row: MemberProgress, now: dt.datetime
    ) -> tuple[MemberProgress, list[EntryRow], list[Delivery], int]:
        versions = self._versions.get(row.journey_id)
        if not versions:
            raise JourneyError(f"progress row of unregistered journey {row.journey_id!r}")
        member = self.store.get_member(row.member_id)
        if member is None:  # merged away or deleted: nothing more to do
            return attrs.evolve(row, due_at=None, attempts=row.attempts + 1), [], [], 0
        events = self.store.events_for(row.member_id, until=now)
        epochs = self._migrate(row, member, events, now)
        entries, effects, due = replay_epochs(versions, epochs, member, events, now)
        deliveries: list[Delivery] = []
        missing = 0
        owner = owner_staff(events)
        for e in effects:
            address = self._address(member, e.channel)
            if address is None or (e.kind == "staff_task" and owner is None):
                missing += 1
                continue
            payload = dict(e.payload)
            if e.kind == "staff_task":
                payload["sender"] = owner
            payload.setdefault("journey", f"{e.journey_id}@{e.version}:{e.step_id}#{e.entry}")
            deliveries.append(
                Delivery(
                    key=e.key,
                    campaign_id=campaign_id_for(e.journey_id),
                    member_id=e.member_id,
                    channel=e.channel,
                    address=address,
                    variant=e.variant,
                    payload=payload,
                )
            )
        if missing and due is None:
            due = now + dt.timedelta(hours=1)  # look again for an address
        new = attrs.evolve(row, epochs=epochs, due_at=due, attempts=row.attempts + 1)
        return new, entries, deliveries, missing

    def _address(self, member: Member, channel: str) -> str | None:
        c = self.channels.get(channel)
        if c is None:
            raise JourneyError(
                f"a journey step sends on channel {channel!r}, which the engine was not given "
                f"(channels: {sorted(self.channels)})"
            )
        kind = c.capabilities.address_kind
        if kind == MEMBER_ADDRESS:
            return member.id
        ns = c.capabilities.address_namespace
        for ident in member.identities:
            if ident.kind == kind and (not ns or ident.namespace == ns):
                return ident.value
        return None

    # ------------------------------------------------------------------ sending

    def dispatch(
        self,
        *,
        clock: Clock | None = None,
        lease: dt.timedelta = dt.timedelta(minutes=10),
        journey_id: str | None = None,
        **runner_options: Any,
    ) -> list[RunResult]:
        """Send every planned side effect, one campaign runner per (journey, channel).

        Each delivery is re-checked at hand-off with :meth:`policy_for` (consent,
        subscription / contact status, address, quiet hours in the member's zone, caps);
        those that no longer qualify end ``skipped(reason)`` (``RunResult.skips``).

        ``runner_options`` go to :class:`~membermkt.engine.runner.CampaignRunner`; a
        ``policy=`` there replaces the journeys' own for every channel.

        Raises:
            UsageError: as :class:`~membermkt.engine.runner.CampaignRunner`.
        """
        override = runner_options.pop("policy", None)
        out = []
        for jid in [journey_id] if journey_id else self.journey_ids:
            for channel in self.channels.values():
                policy = override if override is not None else self.policy_for(jid, channel)
                runner = CampaignRunner(
                    self.store, channel, clock=clock, lease=lease, policy=policy, **runner_options
                )
                out.append(runner.run(campaign_id_for(jid)))
        return out

    def policy_for(self, journey_id: str, channel: Channel | AsyncChannel) -> HandOffPolicy:
        """The hand-off policy of a journey's sends on ``channel``: a
        :class:`~membermkt.engine.journeys.JourneyPolicy` with this engine's quiet hours and
        caps and the channel's platform rules; for a channel addressed by member id (the
        built-in ``journey.tag``: a store change, not a message)
        :data:`~membermkt.engine.runner.NO_HANDOFF_CHECKS`.

        Raises:
            UsageError: when the rules have caps and the store keeps no send history.
        """
        caps = channel.capabilities
        if caps.address_kind == MEMBER_ADDRESS:
            return NO_HANDOFF_CHECKS
        rules = journey_send_rules(
            journey_id,
            channel.name,
            address_kind=caps.address_kind,
            address_namespace=caps.address_namespace,
            quiet_hours=self.quiet_hours,
            caps=self.caps,
            account_type=self.account_type,
        )
        return JourneyPolicy(rules, self.store)

    # ------------------------------------------------------------------ reading

    def report(self, journey_id: str, *, as_of: dt.datetime | None = None) -> JourneyReport:
        """The funnel of the journey's entries as last processed (see
        :func:`membermkt.core.journeys.journey_report`)."""
        self.current(journey_id)
        return journey_report(
            journey_id, [e.state for e in self.progress.entries(journey_id)], as_of=as_of
        )

    def state(self, journey_id: str, member_id: str, *, now: dt.datetime) -> MemberJourney:
        """Where a member is in the current version (computed, nothing written)."""
        j = self.current(journey_id)
        member = self.store.get_member(member_id)
        if member is None:
            raise UsageError(f"unknown member {member_id!r}")
        return replay(j, member, self.store.events_for(member_id, until=now), now)


def owner_staff(events: Iterable[Event]) -> str | None:
    """The WeCom staff userid holding the member's relation: the ``staff`` of the latest
    ``contact_added`` event not followed by a ``contact_deleted`` of that staff."""
    owner: str | None = None
    for ev in sorted(events, key=lambda e: (e.at_utc, e.type)):
        staff = ev.properties.get("staff")
        if ev.type == "contact_added" and isinstance(staff, str) and staff:
            owner = staff
        elif ev.type == "contact_deleted" and staff == owner:
            owner = None
    return owner


def sop_completion(ledger: Ledger, journey_id: str) -> dict[str, dict[str, int]]:
    """Per staff member, their SOP tasks of a journey by ledger status: ``tasks``,
    ``completed`` (``sent``: the customer got it after the staff confirmed), ``pending``
    (``pending_confirmation``/``planned``/``sending``), ``failed``, ``unknown``. Completion
    comes from WeCom's results, pulled into the ledger by
    :func:`membermkt.channels.wecom.pull_mass_results` (campaign id
    :func:`campaign_id_for`). Join it with the staff metrics by staff userid."""
    out: dict[str, dict[str, int]] = {}
    for rec in ledger.deliveries(campaign_id_for(journey_id)):
        sender = rec.delivery.payload.get("sender")
        if "script" not in rec.delivery.payload or not isinstance(sender, str):
            continue
        row = out.setdefault(
            sender, {"tasks": 0, "completed": 0, "pending": 0, "failed": 0, "unknown": 0}
        )
        row["tasks"] += 1
        status = rec.status.value
        if status == "sent":
            row["completed"] += 1
        elif status in ("failed", "unknown"):
            row[status] += 1
        else:
            row["pending"] += 1
    return dict(sorted(out.items()))


def _interesting(j: Journey, versions: Iterable[Journey]) -> set[str] | None:
    types: set[str] = set()
    for v in versions:
        if isinstance(v.trigger, SegmentTrigger):
            return None
        if isinstance(v.trigger, EventTrigger):
            types.add(v.trigger.type)
        if v.goal is not None:
            types.add(v.goal.type)
        for s in v.steps:
            if isinstance(s, Branch):
                return None
            if isinstance(s, WaitForEvent):
                types.add(s.type)
    return types
