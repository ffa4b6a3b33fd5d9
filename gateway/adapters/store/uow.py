"""The SQL unit of work: the session ``Store.session`` opens, with the repositories of the
services' port (``gateway.services.uow.UnitOfWork``).

Each repository method is one statement the services ran themselves before, unchanged: the
free agent and the head of a line are read ``FOR UPDATE SKIP LOCKED`` on Postgres (SQLite
serialises writers anyway), a row changes by ``UPDATE … WHERE version = :seen`` (``Store
.compare_and_set``: StaleState when another unit got there first, and ``Store.run`` runs the unit
again), and jobs and timeline entries go in with one Core INSERT each at commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import func, select

from gateway.adapters.store.db import OutboxJob, Store, _Session
from gateway.adapters.store.models import (
    Agent,
    AgentTeam,
    Call,
    Job,
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


class SqlUnitOfWork(_Session):
    """One transaction (a SQLAlchemy session): services not yet on the port use it as a session."""

    @cached_property
    def calls(self) -> SqlCalls:
        return SqlCalls(self)

    @cached_property
    def legs(self) -> SqlLegs:
        return SqlLegs(self)

    @cached_property
    def agents(self) -> SqlAgents:
        return SqlAgents(self)

    @cached_property
    def teams(self) -> SqlTeams:
        return SqlTeams(self)

    @cached_property
    def queue(self) -> SqlQueue:
        return SqlQueue(self)

    @cached_property
    def transfers(self) -> SqlTransfers:
        return SqlTransfers(self)

    @cached_property
    def timeline(self) -> SqlTimeline:
        return SqlTimeline(self)

    @cached_property
    def jobs(self) -> SqlOutbox:
        return SqlOutbox(self)

    def transition(self, row: Any, machine: StateMachine, event_name: str, **changes: Any) -> Outcome:
        return Store.transition(self, row, machine, event_name, **changes)

    def compare_and_set(self, row: Any, **changes: Any) -> None:
        Store.compare_and_set(self, row, **changes)

    @property
    def locks_rows(self) -> bool:
        """Postgres: rows read to be claimed are locked, others skipped (SQLite has one writer)."""
        return self.get_bind().dialect.name != "sqlite"


class _Rows:
    def __init__(self, session: SqlUnitOfWork):
        self.session = session


class SqlCalls(_Rows):
    def add(self, call: Call) -> None:
        self.session.add(call)

    def get(self, call_id: str, *, fresh: bool = False) -> Call | None:
        return self.session.get(Call, call_id, populate_existing=fresh)

    def handle_times(self, team_id: str, since: datetime, limit: int) -> list[tuple[datetime, datetime]]:
        rows = self.session.execute(
            select(Call.connected_at, Call.ended_at)
            .where(
                Call.team_id == team_id,
                Call.connected_at.isnot(None),
                Call.ended_at.isnot(None),
                Call.ended_at > since,
            )
            .order_by(Call.ended_at.desc())
            .limit(limit)
        ).all()
        return [(connected, ended) for connected, ended in rows if connected and ended]

    def by_sid(self, call_sid: str) -> Call | None:
        return self.session.execute(select(Call).where(Call.twilio_sid == call_sid)).scalar_one_or_none()

    def add_note(self, note: Note) -> None:
        self.session.add(note)

    def add_voicemail(self, voicemail: Voicemail) -> None:
        self.session.add(voicemail)


class SqlLegs(_Rows):
    def add(self, leg: Leg) -> None:
        self.session.add(leg)

    def get(self, leg_id: str, *, fresh: bool = False) -> Leg | None:
        return self.session.get(Leg, leg_id, populate_existing=fresh)

    def live(self, call_id: str, *, transfer_id: str | None = "any") -> list[Leg]:
        query = select(Leg).where(Leg.call_id == call_id, Leg.state.in_(L.LIVE))
        if transfer_id != "any":
            query = (
                query.where(Leg.transfer_id == transfer_id) if transfer_id else query.where(Leg.transfer_id.is_(None))
            )
        return list(self.session.execute(query.order_by(Leg.created_at)).scalars())

    def of_transfer(self, transfer_id: str, states: Iterable[str]) -> list[Leg]:
        query = select(Leg).where(Leg.transfer_id == transfer_id, Leg.state.in_(tuple(states)))
        return list(self.session.execute(query.order_by(Leg.created_at)).scalars())

    def any_for(self, call_id: str) -> bool:
        return self.session.execute(select(Leg.id).where(Leg.call_id == call_id).limit(1)).first() is not None

    def of_agent(self, agent_id: str, *, states: Iterable[str], call_id: str | None = None) -> list[Leg]:
        query = select(Leg).where(Leg.agent_id == agent_id, Leg.state.in_(tuple(states)))
        if call_id is not None:
            query = query.where(Leg.call_id == call_id)
        return list(self.session.execute(query.order_by(Leg.created_at)).scalars())

    def offered_agents(self, call_id: str) -> set[str]:
        return {
            agent_id
            for agent_id in self.session.execute(
                select(Leg.agent_id).where(Leg.call_id == call_id, Leg.transfer_id.is_(None))
            ).scalars()
            if agent_id is not None
        }

    def agent_has_live(self, agent_id: str) -> bool:
        query = select(Leg.id).where(Leg.agent_id == agent_id, Leg.state.in_(L.LIVE))
        return self.session.execute(query).first() is not None


class SqlAgents(_Rows):
    def add(self, agent: Agent) -> None:
        self.session.add(agent)

    def get(self, agent_id: str, *, fresh: bool = False) -> Agent | None:
        return self.session.get(Agent, agent_id, populate_existing=fresh)

    def free(self, team_id: str | None, tried: Iterable[str] = ()) -> Agent | None:
        # One row, of the team: locking several would hide free agents from calls arriving together.
        tried = set(tried)
        query = select(Agent).where(
            Agent.status == agent_rules.AVAILABLE, (Agent.browser.is_(True)) | Agent.phone.isnot(None)
        )
        if team_id:
            query = query.join(AgentTeam, AgentTeam.agent_id == Agent.id).where(AgentTeam.team_id == team_id)
        if tried:
            query = query.where(Agent.id.not_in(tried))
        query = query.order_by(Agent.idle_since.asc().nulls_first(), Agent.id).limit(1)
        if self.session.locks_rows:
            query = query.with_for_update(skip_locked=True, of=Agent)
        with self.session.no_autoflush:  # a new call's rows go in together at commit
            return self.session.execute(query.execution_options(populate_existing=True)).scalars().first()

    def fresh_with_live_leg(self, agent_id: str) -> tuple[Agent, bool] | None:
        live = select(Leg.id).where(Leg.agent_id == agent_id, Leg.state.in_(L.LIVE)).exists()
        query = select(Agent, live).where(Agent.id == agent_id).execution_options(populate_existing=True)
        row = self.session.execute(query).first()
        return (row[0], bool(row[1])) if row is not None else None

    def staffed(self, team_id: str) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(Agent)
                .join(AgentTeam, AgentTeam.agent_id == Agent.id)
                .where(
                    AgentTeam.team_id == team_id,
                    Agent.status != agent_rules.OFFLINE,
                    (Agent.browser.is_(True)) | Agent.phone.isnot(None),
                )
            )
            or 0
        )


class SqlTeams(_Rows):
    def add(self, team: Team) -> None:
        self.session.add(team)

    def get(self, team_id: str) -> Team | None:
        return self.session.get(Team, team_id)

    def add_member(self, team_id: str, agent_id: str) -> None:
        self.session.add(AgentTeam(agent_id=agent_id, team_id=team_id))

    def of_agent(self, agent_id: str) -> list[str]:
        return list(self.session.execute(select(AgentTeam.team_id).where(AgentTeam.agent_id == agent_id)).scalars())

    def add_number(self, number: str, team_id: str, position: int = 1) -> None:
        self.session.add(TeamNumber(number=number, team_id=team_id, position=position))

    def for_number(self, number: str) -> list[str]:
        query = select(TeamNumber.team_id).where(TeamNumber.number == number)
        return list(self.session.execute(query.order_by(TeamNumber.position, TeamNumber.team_id)).scalars())


class SqlQueue(_Rows):
    def add(self, entry: QueueEntry) -> None:
        self.session.add(entry)

    def live(self, call_id: str) -> QueueEntry | None:
        return self.session.execute(select(QueueEntry).where(QueueEntry.active_call_id == call_id)).scalar_one_or_none()

    def head(self, team_ids: Iterable[str]) -> tuple[QueueEntry, Call] | None:
        return self._head(sorted(set(team_ids)))

    def head_for(self, agent_id: str) -> tuple[QueueEntry, Call] | None:
        return self._head(select(AgentTeam.team_id).where(AgentTeam.agent_id == agent_id).scalar_subquery())

    def _head(self, teams: Any) -> tuple[QueueEntry, Call] | None:
        query = (
            select(QueueEntry, Call)
            .join(Call, Call.id == QueueEntry.call_id)
            .where(QueueEntry.team_id.in_(teams), QueueEntry.state == Q.WAITING)
            .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at, QueueEntry.id)
            .limit(1)
        )
        if self.session.locks_rows:
            query = query.with_for_update(skip_locked=True, of=QueueEntry)
        row = self.session.execute(query.execution_options(populate_existing=True)).first()
        return (row[0], row[1]) if row is not None else None

    def position(self, entry: QueueEntry) -> int:
        ahead = self.session.scalar(
            select(func.count()).where(
                QueueEntry.team_id == entry.team_id,
                QueueEntry.state.in_(Q.LIVE),
                QueueEntry.id != entry.id,
                (QueueEntry.priority > entry.priority)
                | (
                    (QueueEntry.priority == entry.priority)
                    & (
                        (QueueEntry.enqueued_at < entry.enqueued_at)
                        | ((QueueEntry.enqueued_at == entry.enqueued_at) & (QueueEntry.id < entry.id))
                    )
                ),
            )
        )
        return (ahead or 0) + 1

    def waiting_at_least(self, team_id: str, priority: int) -> int:
        return (
            self.session.scalar(
                select(func.count()).where(
                    QueueEntry.team_id == team_id,
                    QueueEntry.state.in_(Q.LIVE),
                    QueueEntry.priority >= priority,
                )
            )
            or 0
        )


class SqlTransfers(_Rows):
    def add(self, transfer: Transfer) -> None:
        self.session.add(transfer)

    def get(self, transfer_id: str, *, fresh: bool = False) -> Transfer | None:
        return self.session.get(Transfer, transfer_id, populate_existing=fresh)

    def active(self, call_id: str) -> Transfer | None:
        return self.session.execute(select(Transfer).where(Transfer.active_call_id == call_id)).scalar_one_or_none()

    def transferable(self, call_id: str, agent_id: str) -> tuple[Call, Leg | None, str | None] | None:
        found = self.session.execute(
            select(Call, Leg, Transfer.id)
            .where(Call.id == call_id)
            .outerjoin(
                Leg,
                (Leg.call_id == Call.id)
                & (Leg.agent_id == agent_id)
                & (Leg.room == Call.room)
                & (Leg.state == L.JOINED),
            )
            .outerjoin(Transfer, Transfer.active_call_id == Call.id)
            .limit(1)
        ).first()
        return None if found is None else (found[0], found[1], found[2])


class SqlTimeline(_Rows):
    def record(
        self, call_id: str, kind: str, *, transfer_id: str | None = None, agent_id: str | None = None, **detail: Any
    ) -> None:
        Store.record(self.session, call_id, kind, transfer_id=transfer_id, agent_id=agent_id, **detail)

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
        Store.record_at(self.session, at, call_id, kind, transfer_id=transfer_id, agent_id=agent_id, **detail)

    def of_call(self, call_id: str) -> list[TimelineEntry]:
        query = select(TimelineEntry).where(TimelineEntry.call_id == call_id).order_by(TimelineEntry.id)
        return list(self.session.execute(query).scalars())

    def has(self, call_id: str, kind: str) -> bool:
        query = select(TimelineEntry.id).where(TimelineEntry.call_id == call_id, TimelineEntry.kind == kind)
        return self.session.execute(query).first() is not None


class SqlOutbox(_Rows):
    def add(
        self, job: OutboxJob, *, delay_s: float = 0.0, dedupe_key: str | None = None, timer_of: str | None = None
    ) -> object | None:
        return Store.enqueue(self.session, job, delay_s=delay_s, dedupe_key=dedupe_key, timer_of=timer_of)

    def cancel_timers(self, kind: str, *subjects: str) -> None:
        Store.cancel_timers(self.session, kind, *subjects)

    def timers_set(self, kind: str, *subjects: str) -> set[str]:
        return Store.timers_set(self.session, kind, *subjects)

    def pending(self) -> list[tuple[str, dict[str, Any], float]]:
        now = utcnow()
        query = select(Job.kind, Job.payload, Job.run_at).where(Job.state == "pending").order_by(Job.run_at, Job.id)
        return [
            (kind, payload or {}, (run_at - now).total_seconds())
            for kind, payload, run_at in self.session.execute(query)
        ]


# What the services not yet on the port are handed: the SQLAlchemy session that is also the unit
# of work, so that they can pass it on to the services that are (routing, queues, legs).
Session = SqlUnitOfWork
