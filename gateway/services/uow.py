"""The unit of work: one transaction, its repositories, and its compare-and-set writes.

A service that is handed a ``UnitOfWork`` reads and writes only through it: rows by intent
(``uow.agents.free(team, tried)``, ``uow.queue.head(teams)``, ``uow.legs.live(call)``), state
changes by compare-and-set (``uow.transition``), and what happens after the commit as rows of
the same transaction (``uow.jobs.add``, ``uow.timeline.record``). Nothing is written unless the
unit commits; a unit that fails leaves nothing behind.

Two implementations, one set of service tests (tests/services) run over both:
- ``gateway.adapters.store.uow.SqlUnitOfWork``: the SQLAlchemy session the ``Store`` opens, with
  the SQL the gateway runs (``FOR UPDATE SKIP LOCKED`` on Postgres, ``UPDATE … WHERE version =
  :seen``, jobs and timeline as Core inserts at commit); a lost compare-and-set raises
  ``StaleState`` and ``Store.run`` runs the unit again on fresh data.
- ``gateway.adapters.store.memory.MemoryStore``: dicts of model objects, with the same rules
  (versions checked and bumped, jobs and timeline as lists, rollback on failure), for tests of
  the services' rules in milliseconds, without a database.

Services not yet moved onto this port still take the SQL unit of work itself (a ``Session``);
the ones that are (caller, routing, queues, legs, agent_legs, transfers with their process manager
and moves) accept either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from gateway.adapters.store.models import Agent, Call, Leg, Note, QueueEntry, Team, TimelineEntry, Transfer, Voicemail
from gateway.domain.machine import Outcome, StateMachine
from gateway.services.job_types import Job

T = TypeVar("T")
ANY_TRANSFER = "any"  # LegRows.live: the legs of the caller's offers and of every transfer


class CallRows(Protocol):
    def add(self, call: Call) -> None: ...
    def get(self, call_id: str, *, fresh: bool = False) -> Call | None:
        """``fresh``: read again, past what this unit already holds (another unit may have changed it)."""
        ...

    def handle_times(self, team_id: str, since: datetime, limit: int) -> list[tuple[datetime, datetime]]:
        """(connected, ended) of the team's newest calls answered and ended since ``since``."""
        ...

    def by_sid(self, call_sid: str) -> Call | None:
        """The call of this Twilio CallSid."""
        ...

    def add_note(self, note: Note) -> None: ...
    def add_voicemail(self, voicemail: Voicemail) -> None: ...


class LegRows(Protocol):
    def add(self, leg: Leg) -> None: ...
    def get(self, leg_id: str, *, fresh: bool = False) -> Leg | None: ...
    def live(self, call_id: str, *, transfer_id: str | None = ANY_TRANSFER) -> list[Leg]:
        """The call's ringing, accepted and joined legs, oldest first; ``transfer_id=None``: the
        caller's own offers only, an id: that transfer's legs only."""
        ...

    def of_transfer(self, transfer_id: str, states: Iterable[str]) -> list[Leg]:
        """The transfer's legs (A's in the consult room, B's) in these states, oldest first."""
        ...

    def any_for(self, call_id: str) -> bool:
        """Has the call had a leg at all (an agent was ever offered it)?"""
        ...

    def of_agent(self, agent_id: str, *, states: Iterable[str], call_id: str | None = None) -> list[Leg]:
        """The agent's legs in these states (on that call only, with ``call_id``), oldest first."""
        ...

    def offered_agents(self, call_id: str) -> set[str]:
        """The agents the caller's own offers went to (any state): the ones already tried."""
        ...

    def agent_has_live(self, agent_id: str) -> bool:
        """Has the agent a ringing, accepted or joined leg on any call?"""
        ...


class AgentRows(Protocol):
    def add(self, agent: Agent) -> None: ...
    def get(self, agent_id: str, *, fresh: bool = False) -> Agent | None: ...
    def free(self, team_id: str | None, tried: Iterable[str] = ()) -> Agent | None:
        """The longest-idle available member of the team (any agent without one) not yet tried,
        never-used first; reachable (a console or a phone). Held for this unit: a unit running
        at the same moment is given another agent (``FOR UPDATE SKIP LOCKED``)."""
        ...

    def staffed(self, team_id: str) -> int:
        """Members signed in (available or busy) who can be reached: 0 means nobody could come."""
        ...

    def fresh_with_live_leg(self, agent_id: str) -> tuple[Agent, bool] | None:
        """The agent read again, and whether they have a ringing, accepted or joined leg on any
        call: one read (on an agent's way back to available)."""
        ...


class TeamRows(Protocol):
    def add(self, team: Team) -> None: ...
    def get(self, team_id: str) -> Team | None: ...
    def add_member(self, team_id: str, agent_id: str) -> None: ...
    def add_number(self, number: str, team_id: str, position: int = 1) -> None: ...
    def for_number(self, number: str) -> list[str]:
        """The teams a dialled number goes to, in menu order (empty: unmapped, the default team)."""
        ...

    def of_agent(self, agent_id: str) -> list[str]:
        """The ids of the teams the agent is a member of."""
        ...


class QueueRows(Protocol):
    def add(self, entry: QueueEntry) -> None: ...
    def live(self, call_id: str) -> QueueEntry | None:
        """The call's waiting or offered entry."""
        ...

    def head(self, team_ids: Iterable[str]) -> tuple[QueueEntry, Call] | None:
        """The next waiting entry of these teams (highest priority, then oldest), held for this
        unit: a unit running at the same moment is given the one after (``FOR UPDATE SKIP LOCKED``);
        with its call, read again in the same statement."""
        ...

    def head_for(self, agent_id: str) -> tuple[QueueEntry, Call] | None:
        """``head`` of the teams the agent is a member of, in the same one read."""
        ...

    def position(self, entry: QueueEntry) -> int:
        """The entry's place in its team's line, 1 at the head (offered entries count)."""
        ...

    def waiting_at_least(self, team_id: str, priority: int) -> int:
        """Live entries of the team at ``priority`` or above."""
        ...


class TransferRows(Protocol):
    def add(self, transfer: Transfer) -> None:
        """Inserted at commit, where the one active transfer a call may have is checked (a second
        one fails the commit with IntegrityError)."""
        ...

    def get(self, transfer_id: str, *, fresh: bool = False) -> Transfer | None: ...
    def active(self, call_id: str) -> Transfer | None:
        """The call's transfer under way."""
        ...

    def transferable(self, call_id: str, agent_id: str) -> tuple[Call, Leg | None, str | None] | None:
        """The call, the agent's joined leg in its room, and the id of a transfer under way (one
        read), or None for no such call."""
        ...


class Timeline(Protocol):
    def record(
        self, call_id: str, kind: str, *, transfer_id: str | None = None, agent_id: str | None = None, **detail: Any
    ) -> None: ...

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
        """``record`` of something that happened at ``at`` rather than now."""
        ...

    def of_call(self, call_id: str) -> list[TimelineEntry]:
        """The call's committed entries, oldest first."""
        ...

    def has(self, call_id: str, kind: str) -> bool:
        """Has the call a committed entry of this kind (this unit's own are written at commit)?"""
        ...


class Outbox(Protocol):
    def add(
        self, job: Job, *, delay_s: float = 0.0, dedupe_key: str | None = None, timer_of: str | None = None
    ) -> object | None:
        """Run ``job`` after the commit (after ``delay_s``: a timer). ``dedupe_key``: not if a job
        with that key exists. ``timer_of``: a timer about that id, which ``cancel_timers`` withdraws."""
        ...

    def cancel_timers(self, kind: str, *subjects: str) -> None: ...
    def timers_set(self, kind: str, *subjects: str) -> set[str]:
        """Which of these subjects ever had a ``kind`` timer (pending, fired or withdrawn)."""
        ...

    def pending(self) -> list[tuple[str, dict[str, Any], float]]:
        """(kind, payload, seconds until due; negative: overdue) of the committed jobs not yet
        run, in the order they fall due: what the job runner takes next."""
        ...


class UnitOfWork(Protocol):
    @property
    def calls(self) -> CallRows: ...
    @property
    def legs(self) -> LegRows: ...
    @property
    def agents(self) -> AgentRows: ...
    @property
    def teams(self) -> TeamRows: ...
    @property
    def queue(self) -> QueueRows: ...
    @property
    def transfers(self) -> TransferRows: ...
    @property
    def timeline(self) -> Timeline: ...
    @property
    def jobs(self) -> Outbox: ...

    def transition(self, row: Any, machine: StateMachine, event_name: str, **changes: Any) -> Outcome:
        """Offer ``event_name`` to ``row``'s state machine; a new state is written by compare-and-set
        with ``changes``. Raises IllegalTransition (nothing changes) or StaleState (run the unit again)."""
        ...

    def compare_and_set(self, row: Any, **changes: Any) -> None:
        """Change a versioned row if nobody changed it since it was read (else StaleState)."""
        ...

    def flush(self) -> None:
        """Write the rows added so far: a unique key another unit holds fails here (IntegrityError),
        before this unit goes on to touch other rows."""
        ...


class UnitsOfWork(Protocol):
    """Where units of work come from (the ``Store``, or its in-memory twin)."""

    def run(self, work: Callable[[UnitOfWork], T], attempts: int = 8) -> T:
        """``work`` in a unit of work that commits, run again on fresh data when a compare-and-set lost."""
        ...

    def read(self, work: Callable[[UnitOfWork], T]) -> T: ...
