"""The in-memory twin of the SQL unit of work: the same port (``gateway.services.uow``), the same
rules, no database. Service tests run on both (tests/services).

Committed rows are model objects in dicts, by primary key. A unit of work works on its own
copies of the rows it reads, as a session holds its own objects: nothing it does is seen by
another unit, nor kept, until it commits; a unit that fails leaves nothing behind. A row changes
by compare-and-set: the version the unit read must still be the stored one (else ``StaleState``,
and ``run`` runs the unit again), and the write bumps it; the commit checks once more that no
unit committed another version of the rows it wrote in between. Unique keys (one live queue
entry per call, one active transfer, one job per dedupe key) are checked at commit. Jobs and
timeline entries are lists. Units run one after the other in tests; nothing here locks a row
(``FOR UPDATE SKIP LOCKED`` has no twin: it only matters to units running at the same moment).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Table, UniqueConstraint, inspect
from sqlalchemy.exc import IntegrityError

from gateway.adapters.store.db import NewJob, OutboxJob, StaleState, timer_key
from gateway.adapters.store.models import (
    Agent,
    AgentTeam,
    Base,
    Call,
    Leg,
    Note,
    QueueEntry,
    Team,
    TeamNumber,
    TimelineEntry,
    Transfer,
    Voicemail,
    utcnow,
)
from gateway.domain import agents as agent_rules
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.domain.machine import Outcome, StateMachine

T = TypeVar("T")
_R = TypeVar("_R", bound=Base)
Key = tuple[type[Base], tuple[Any, ...]]


class UniqueViolation(IntegrityError):
    """A commit would store two rows with one unique key: the database's IntegrityError."""

    def __init__(self, what: str):
        super().__init__("COMMIT", None, ValueError(f"unique key: {what}"))


class MemoryStore:
    """Units of work over rows kept in memory (``UnitsOfWork``)."""

    def __init__(self) -> None:
        self.rows: dict[type[Base], dict[Key, Base]] = {}
        self.timeline: list[TimelineEntry] = []
        self.jobs: list[NewJob] = []
        self.receipts: set[str] = set()
        self.row_ids = 0  # numbers of the rows the database numbers (notes, voicemails)
        self._commit = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[MemoryUnitOfWork]:
        """One unit of work; commits on success, keeps nothing of a unit that raised."""
        unit = MemoryUnitOfWork(self)
        yield unit
        unit.commit()

    def run(self, work: Callable[[MemoryUnitOfWork], T], attempts: int = 8) -> T:
        for _ in range(attempts):
            try:
                with self.session() as unit:
                    return work(unit)
            except StaleState:
                continue
        raise StaleState("gave up after repeated concurrent updates")

    def read(self, work: Callable[[MemoryUnitOfWork], T]) -> T:
        with self.session() as unit:
            return work(unit)


class MemoryUnitOfWork:
    def __init__(self, store: MemoryStore):
        self.store = store
        self._held: dict[Key, Base] = {}  # this unit's copies of stored rows (its identity map)
        self._as_read: dict[Key, dict[str, Any]] = {}  # their values when read: plain changes are kept too
        self._written: dict[Key, int] = {}  # rows changed by compare-and-set: the stored version they changed
        self._added: dict[Key, Base] = {}
        self.new_entries: list[dict[str, Any]] = []
        self.new_jobs: list[NewJob] = []
        self.withdrawn: set[str] = set()  # timer keys cancel_timers withdrew
        self.calls = MemoryCalls(self)
        self.legs = MemoryLegs(self)
        self.agents = MemoryAgents(self)
        self.teams = MemoryTeams(self)
        self.queue = MemoryQueue(self)
        self.transfers = MemoryTransfers(self)
        self.timeline = MemoryTimeline(self)
        self.jobs = MemoryOutbox(self)

    # ------------------------------------------------------------ rows
    def add(self, row: Base) -> None:
        for column in _table(type(row)).columns:
            if getattr(row, column.key) is None and column.default is not None:
                default = column.default
                setattr(row, column.key, default.arg(None) if default.is_callable else default.arg)  # type: ignore[attr-defined]
        self._added[_key(row)] = row

    def get(self, model: type[_R], *pk: Any, fresh: bool = False) -> _R | None:
        key: Key = (model, pk)
        if key in self._added:
            return self._added[key]  # type: ignore[return-value]
        stored = self.store.rows.get(model, {}).get(key)
        if stored is None:
            return None
        held = self._held.get(key)
        if held is None:
            return self._hold(key, stored)  # type: ignore[return-value]
        if fresh and key not in self._written:  # read again: another unit may have committed since
            as_read = self._as_read[key]
            for name, value in _values(stored).items():
                if getattr(held, name) == as_read[name]:  # changed here: kept, as a session flushes it first
                    setattr(held, name, value)
                    as_read[name] = copy.deepcopy(value)
        return held  # type: ignore[return-value]

    def all(self, model: type[_R]) -> list[_R]:
        """Every row of ``model`` as this unit sees it (its own changes and new rows included)."""
        rows: list[Any] = [self.get(model, *key[1]) for key in list(self.store.rows.get(model, {}))]
        rows += [row for key, row in self._added.items() if key[0] is model]
        return [row for row in rows if row is not None]

    def _hold(self, key: Key, stored: Base) -> Base:
        held = _copy(stored)
        self._held[key] = held
        self._as_read[key] = _values(stored)
        return held

    # ----------------------------------------------------- compare-and-set
    def transition(self, row: Any, machine: StateMachine, event_name: str, **changes: Any) -> Outcome:
        outcome = machine.apply(row.state, event_name)
        if outcome.changed:
            self.compare_and_set(row, state=outcome.state, **changes)
        return outcome

    def compare_and_set(self, row: Any, **changes: Any) -> None:
        key = _key(row)
        if key in self._added:  # added in this unit of work: nobody else can have seen it
            for name, value in changes.items():
                setattr(row, name, value)
            return
        stored: Any = self.store.rows.get(type(row), {}).get(key)
        current = getattr(self._held[key] if key in self._written else stored, "version", None)
        if stored is None or row.version != current:
            raise StaleState(f"{type(row).__tablename__} {row.id} changed concurrently")
        self._written.setdefault(key, stored.version)
        for name, value in {"version": row.version + 1, **changes}.items():
            setattr(row, name, value)
        if self._held.get(key) is not row:  # a row read in another unit, still current: it is this unit's now
            self._held[key] = row
            self._as_read.setdefault(key, _values(stored))

    def flush(self) -> None:
        """The rows added so far meet the unique keys of the stored ones (the rest waits for the commit)."""
        with self.store._commit:
            for model in {key[0] for key in self._added}:
                added = {k: r for k, r in self._added.items() if k[0] is model}
                for key in added:
                    if key in self.store.rows.get(model, {}):
                        raise UniqueViolation(f"{model.__tablename__} {key[1]}")
                _check_unique(model, {**self.store.rows.get(model, {}), **added})

    # ------------------------------------------------------------ commit
    def commit(self) -> None:
        with self.store._commit:
            tables = self.store.rows
            for key, version in self._written.items():
                if getattr(tables[key[0]].get(key), "version", None) != version:
                    raise StaleState(f"{key[0].__tablename__} {key[1]} changed concurrently")
            changed = {
                key: row
                for key, row in self._held.items()
                if key in self._written or _values(row) != self._as_read[key]
            }
            for key in self._added:
                if key in tables.get(key[0], {}):
                    raise UniqueViolation(f"{key[0].__tablename__} {key[1]}")
            changed.update(self._added)
            for model in {key[0] for key in changed}:
                _check_unique(model, {**tables.get(model, {}), **{k: r for k, r in changed.items() if k[0] is model}})
            jobs = self.store.jobs
            keys = {job.dedupe_key for job in jobs if job.dedupe_key}
            for job in self.new_jobs:
                if job.dedupe_key and job.dedupe_key in keys:
                    raise UniqueViolation(f"jobs.dedupe_key {job.dedupe_key}")
                if job.dedupe_key:
                    keys.add(job.dedupe_key)
            # Nothing can fail from here: the unit is written whole.
            for key, row in changed.items():
                tables.setdefault(key[0], {})[key] = _copy(row)
            for job in jobs:
                if job.dedupe_key in self.withdrawn and job.state == "pending":
                    job.state, job.locked_until = "cancelled", None
            for job in self.new_jobs:
                job.id = len(jobs) + 1
                jobs.append(job)
            for entry in self.new_entries:
                self.store.timeline.append(TimelineEntry(id=len(self.store.timeline) + 1, **entry))


class _Rows:
    def __init__(self, unit: MemoryUnitOfWork):
        self.unit = unit


class MemoryCalls(_Rows):
    def add(self, call: Call) -> None:
        self.unit.add(call)

    def get(self, call_id: str, *, fresh: bool = False) -> Call | None:
        return self.unit.get(Call, call_id, fresh=fresh)

    def handle_times(self, team_id: str, since: datetime, limit: int) -> list[tuple[datetime, datetime]]:
        ended = [
            (call.connected_at, call.ended_at)
            for call in self.unit.all(Call)
            if call.team_id == team_id and call.connected_at and call.ended_at and call.ended_at > since
        ]
        ended.sort(key=lambda times: times[1], reverse=True)
        return ended[:limit]

    def by_sid(self, call_sid: str) -> Call | None:
        return next((call for call in self.unit.all(Call) if call.twilio_sid == call_sid), None)

    def add_voicemail(self, voicemail: Voicemail) -> None:
        self.unit.store.row_ids += 1
        voicemail.id = self.unit.store.row_ids
        self.unit.add(voicemail)

    def add_note(self, note: Note) -> None:
        self.unit.store.row_ids += 1
        note.id = self.unit.store.row_ids
        self.unit.add(note)


class MemoryLegs(_Rows):
    def add(self, leg: Leg) -> None:
        self.unit.add(leg)

    def get(self, leg_id: str, *, fresh: bool = False) -> Leg | None:
        return self.unit.get(Leg, leg_id, fresh=fresh)

    def live(self, call_id: str, *, transfer_id: str | None = "any") -> list[Leg]:
        legs = [
            leg
            for leg in self.unit.all(Leg)
            if leg.call_id == call_id
            and leg.state in L.LIVE
            and (transfer_id == "any" or leg.transfer_id == transfer_id)
        ]
        return sorted(legs, key=lambda leg: leg.created_at)

    def of_transfer(self, transfer_id: str, states: Iterable[str]) -> list[Leg]:
        states = tuple(states)
        legs = [leg for leg in self.unit.all(Leg) if leg.transfer_id == transfer_id and leg.state in states]
        return sorted(legs, key=lambda leg: leg.created_at)

    def any_for(self, call_id: str) -> bool:
        return any(leg.call_id == call_id for leg in self.unit.all(Leg))

    def of_agent(self, agent_id: str, *, states: Iterable[str], call_id: str | None = None) -> list[Leg]:
        states = tuple(states)
        legs = [
            leg
            for leg in self.unit.all(Leg)
            if leg.agent_id == agent_id and leg.state in states and call_id in (None, leg.call_id)
        ]
        return sorted(legs, key=lambda leg: leg.created_at)

    def offered_agents(self, call_id: str) -> set[str]:
        legs = self.unit.all(Leg)
        return {leg.agent_id for leg in legs if leg.call_id == call_id and leg.transfer_id is None and leg.agent_id}

    def agent_has_live(self, agent_id: str) -> bool:
        return any(leg.agent_id == agent_id and leg.state in L.LIVE for leg in self.unit.all(Leg))


class MemoryAgents(_Rows):
    def add(self, agent: Agent) -> None:
        self.unit.add(agent)

    def get(self, agent_id: str, *, fresh: bool = False) -> Agent | None:
        return self.unit.get(Agent, agent_id, fresh=fresh)

    def free(self, team_id: str | None, tried: Iterable[str] = ()) -> Agent | None:
        members = _members(self.unit, team_id) if team_id else None
        tried = set(tried)
        free = [
            agent
            for agent in self.unit.all(Agent)
            if agent.status == agent_rules.AVAILABLE
            and _reachable(agent)
            and (members is None or agent.id in members)
            and agent.id not in tried
        ]
        free.sort(key=lambda agent: (agent.idle_since is not None, agent.idle_since or datetime.min, agent.id))
        return self.get(free[0].id, fresh=True) if free else None

    def fresh_with_live_leg(self, agent_id: str) -> tuple[Agent, bool] | None:
        agent = self.get(agent_id, fresh=True)
        return None if agent is None else (agent, self.unit.legs.agent_has_live(agent_id))

    def staffed(self, team_id: str) -> int:
        members = _members(self.unit, team_id)
        agents = self.unit.all(Agent)
        return sum(1 for a in agents if a.id in members and a.status != agent_rules.OFFLINE and _reachable(a))


class MemoryTeams(_Rows):
    def add(self, team: Team) -> None:
        self.unit.add(team)

    def get(self, team_id: str) -> Team | None:
        return self.unit.get(Team, team_id)

    def add_member(self, team_id: str, agent_id: str) -> None:
        self.unit.add(AgentTeam(agent_id=agent_id, team_id=team_id))

    def of_agent(self, agent_id: str) -> list[str]:
        return [member.team_id for member in self.unit.all(AgentTeam) if member.agent_id == agent_id]

    def add_number(self, number: str, team_id: str, position: int = 1) -> None:
        self.unit.add(TeamNumber(number=number, team_id=team_id, position=position))

    def for_number(self, number: str) -> list[str]:
        mapped = [row for row in self.unit.all(TeamNumber) if row.number == number]
        return [row.team_id for row in sorted(mapped, key=lambda row: (row.position, row.team_id))]


class MemoryQueue(_Rows):
    def add(self, entry: QueueEntry) -> None:
        self.unit.add(entry)

    def live(self, call_id: str) -> QueueEntry | None:
        return next((e for e in self.unit.all(QueueEntry) if e.active_call_id == call_id), None)

    def head(self, team_ids: Iterable[str]) -> tuple[QueueEntry, Call] | None:
        teams = set(team_ids)
        waiting = [e for e in self.unit.all(QueueEntry) if e.team_id in teams and e.state == Q.WAITING]
        waiting.sort(key=lambda e: (-e.priority, e.enqueued_at, e.id))
        if not waiting:
            return None
        entry = self.unit.get(QueueEntry, waiting[0].id, fresh=True)
        call = self.unit.get(Call, waiting[0].call_id, fresh=True)
        return (entry, call) if entry is not None and call is not None else None

    def head_for(self, agent_id: str) -> tuple[QueueEntry, Call] | None:
        return self.head(self.unit.teams.of_agent(agent_id))

    def position(self, entry: QueueEntry) -> int:
        def ahead(other: QueueEntry) -> bool:
            if other.priority != entry.priority:
                return other.priority > entry.priority
            return (other.enqueued_at, other.id) < (entry.enqueued_at, entry.id)

        live = self.unit.all(QueueEntry)
        return 1 + sum(
            1 for e in live if e.team_id == entry.team_id and e.state in Q.LIVE and e.id != entry.id and ahead(e)
        )

    def waiting_at_least(self, team_id: str, priority: int) -> int:
        entries = self.unit.all(QueueEntry)
        return sum(1 for e in entries if e.team_id == team_id and e.state in Q.LIVE and e.priority >= priority)


class MemoryTransfers(_Rows):
    def add(self, transfer: Transfer) -> None:
        self.unit.add(transfer)

    def get(self, transfer_id: str, *, fresh: bool = False) -> Transfer | None:
        return self.unit.get(Transfer, transfer_id, fresh=fresh)

    def active(self, call_id: str) -> Transfer | None:
        return next((t for t in self.unit.all(Transfer) if t.active_call_id == call_id), None)

    def transferable(self, call_id: str, agent_id: str) -> tuple[Call, Leg | None, str | None] | None:
        call = self.unit.get(Call, call_id)
        if call is None:
            return None
        joined = [
            leg
            for leg in self.unit.all(Leg)
            if leg.call_id == call.id and leg.agent_id == agent_id and leg.room == call.room and leg.state == L.JOINED
        ]
        active = self.active(call.id)
        return call, (joined[0] if joined else None), (active.id if active else None)


class MemoryTimeline(_Rows):
    def record(
        self, call_id: str, kind: str, *, transfer_id: str | None = None, agent_id: str | None = None, **detail: Any
    ) -> None:
        self.record_at(utcnow(), call_id, kind, transfer_id=transfer_id, agent_id=agent_id, **detail)

    def record_at(
        self,
        at: datetime,
        call_id: str,
        kind: str,
        *,
        transfer_id: str | None = None,
        agent_id: str | None = None,
        **detail: Any,
    ) -> None:
        entry = {"call_id": call_id, "transfer_id": transfer_id, "agent_id": agent_id, "kind": kind}
        self.unit.new_entries.append({**entry, "detail": copy.deepcopy(detail), "at": at})

    def of_call(self, call_id: str) -> list[TimelineEntry]:
        return [_copy(entry) for entry in self.unit.store.timeline if entry.call_id == call_id]

    def has(self, call_id: str, kind: str) -> bool:
        return any(entry.call_id == call_id and entry.kind == kind for entry in self.unit.store.timeline)


class MemoryOutbox(_Rows):
    def add(
        self, job: OutboxJob, *, delay_s: float = 0.0, dedupe_key: str | None = None, timer_of: str | None = None
    ) -> NewJob | None:
        if dedupe_key and any(j.dedupe_key == dedupe_key for j in [*self.unit.new_jobs, *self.unit.store.jobs]):
            return None
        if timer_of:
            dedupe_key = timer_key(job.kind, timer_of)
        run_at = utcnow() + timedelta(seconds=delay_s)
        new = NewJob(kind=job.kind, payload=copy.deepcopy(job.payload()), run_at=run_at, dedupe_key=dedupe_key)
        self.unit.new_jobs.append(new)
        return new

    def cancel_timers(self, kind: str, *subjects: str) -> None:
        keys = {timer_key(kind, subject) for subject in subjects if subject}
        for job in self.unit.new_jobs:
            if job.dedupe_key in keys and job.state == "pending":
                job.state = "cancelled"
        self.unit.withdrawn |= keys

    def timers_set(self, kind: str, *subjects: str) -> set[str]:
        keys = {timer_key(kind, subject): subject for subject in subjects if subject}
        jobs = [*self.unit.new_jobs, *self.unit.store.jobs]
        return {keys[job.dedupe_key] for job in jobs if job.dedupe_key in keys}

    def pending(self) -> list[tuple[str, dict[str, Any], float]]:
        now = utcnow()
        jobs = sorted((j for j in self.unit.store.jobs if j.state == "pending"), key=lambda j: (j.run_at, j.id or 0))
        return [(j.kind, copy.deepcopy(j.payload), (j.run_at - now).total_seconds()) for j in jobs]


def _members(unit: MemoryUnitOfWork, team_id: str) -> set[str]:
    return {member.agent_id for member in unit.all(AgentTeam) if member.team_id == team_id}


def _reachable(agent: Agent) -> bool:
    return agent.browser is True or agent.phone is not None


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _key(row: Base) -> Key:
    return (type(row), tuple(getattr(row, str(column.key)) for column in inspect(type(row)).primary_key))


def _values(row: Base) -> dict[str, Any]:
    return {attr.key: copy.deepcopy(getattr(row, attr.key)) for attr in inspect(type(row)).column_attrs}


def _copy(row: _R) -> _R:
    return type(row)(**_values(row))


def _check_unique(model: type[Base], rows: dict[Key, Base]) -> None:
    table = _table(model)
    keys: list[tuple[str, ...]] = [(column.key,) for column in table.columns if column.unique]
    keys += [tuple(c.key for c in con.columns) for con in table.constraints if isinstance(con, UniqueConstraint)]
    for names in keys:
        seen: set[tuple[Any, ...]] = set()
        for row in rows.values():
            value = tuple(getattr(row, name) for name in names)
            if None in value:
                continue
            if value in seen:
                raise UniqueViolation(f"{table.name} {names} {value}")
            seen.add(value)
