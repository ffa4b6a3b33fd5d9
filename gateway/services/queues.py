"""Queues: callers waiting for a team, durably, and the offer of the next one to a free agent.

The rules are in ``gateway.domain.queues``; here they meet the store. An offer is a claim of two
rows, never a lock on the team: the head of the line is read with ``FOR UPDATE SKIP LOCKED`` (on
Postgres; SQLite serialises writers anyway) and moved to ``offered`` by compare-and-set, and the
agent is reserved by compare-and-set too. So no two agents are offered the same caller, nor one
caller twice at once, and two agents freeing up together take the first two callers in order,
each without waiting for the other's transaction.

With no team lock, a caller arriving while an agent frees up could miss them (each transaction
reads before the other commits). Whichever side finds nobody leaves a ``dispatch_team`` job in
its own transaction; it runs the moment that transaction commits and pairs the team's free
members with its waiting callers, so of the two, the later commit always sees the other's row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.adapters.store import Store
from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Agent, AgentTeam, Call, QueueEntry, Team, utcnow
from gateway.domain import agents as agent_rules
from gateway.domain import queues as Q
from gateway.services import job_types as J
from gateway.services.job_types import handles
from gateway.services.jobs import JobRunner
from gateway.services.ports import Dest, Gateway
from gateway.services.replies import Hold, Webhook

HISTORY = 20  # finished calls of a team the estimate averages
STILL_WAITING = "Thank you for waiting. Your call is important to us; please stay on the line."


class Offers(Protocol):
    """What an offer needs from the legs' side: reserve the agent, ring their console and phone."""

    def reserve_agent(self, session: Session, agent: Agent) -> bool: ...

    def ring_agent(
        self, session: Session, call: Call, agent: Agent, *, room: str, transfer_id: str | None = None
    ) -> object: ...


class Queues:
    def __init__(self, gw: Gateway, legs: Offers):
        self.gw, self.legs = gw, legs
        self.store: Store = gw.store
        # Told (entry, final state) when an entry ends (metrics).
        self.on_ended: list[Callable[[QueueEntry, str], None]] = []

    # ------------------------------------------------------------ teams
    def register(self, runner: JobRunner) -> None:
        runner.register_jobs(self)

    @handles(J.DispatchTeam)
    def _dispatch_job(self, job: J.DispatchTeam) -> None:
        self.store.run(lambda session: self.dispatch_teams(session, job.teams))

    def sweep_later(self, session: Session, team_ids: Iterable[str]) -> None:
        """Pair these teams' free members and waiting callers once this unit of work commits (see
        the module's note: the other side of a race may not have committed yet)."""
        self.store.enqueue(session, J.DispatchTeam(tuple(sorted(set(team_ids)))))

    def dispatch_teams(self, session: Session, team_ids: Iterable[str]) -> int:
        return sum(self.dispatch(session, team_id) for team_id in sorted(set(team_ids)))

    def team(self, session: Session, team_id: str | None) -> Team | None:
        return session.get(Team, team_id or Q.DEFAULT_TEAM)

    def max_wait_s(self, team: Team | None) -> float:
        return float(team.max_wait_s) if team is not None and team.max_wait_s else self.gw.settings.queue_timeout_s

    def music_url(self, team: Team | None) -> str:
        return (team.hold_music_url if team is not None else None) or self.gw.settings.hold_music_url

    def staffed(self, session: Session, team_id: str) -> int:
        """Members signed in (available or busy) who can be reached: 0 means nobody could come."""
        return (
            session.scalar(
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

    def free_agent(self, session: Session, team_id: str | None, tried: Iterable[str] = ()) -> Agent | None:
        """The longest-idle available member of the team not yet tried (never-used first).

        One row, FOR UPDATE SKIP LOCKED on Postgres: calls arriving together each get another agent."""
        tried = set(tried)
        query = select(Agent).where(
            Agent.status == agent_rules.AVAILABLE, (Agent.browser.is_(True)) | Agent.phone.isnot(None)
        )
        if team_id:
            query = query.join(AgentTeam, AgentTeam.agent_id == Agent.id).where(AgentTeam.team_id == team_id)
        if tried:
            query = query.where(Agent.id.not_in(tried))
        query = query.order_by(Agent.idle_since.asc().nulls_first(), Agent.id).limit(1)
        if not self.store.is_sqlite:
            query = query.with_for_update(skip_locked=True, of=Agent)
        with session.no_autoflush:  # a new call's rows go in together at commit
            return session.execute(query.execution_options(populate_existing=True)).scalars().first()

    # ---------------------------------------------------------- entries
    @staticmethod
    def live_entry(session: Session, call_id: str) -> QueueEntry | None:
        return session.execute(select(QueueEntry).where(QueueEntry.active_call_id == call_id)).scalar_one_or_none()

    def enqueue(
        self,
        session: Session,
        call: Call,
        *,
        team_id: str,
        priority: int = Q.PRIORITY_CALLER,
        kind: str = "caller",
        transfer_id: str | None = None,
    ) -> QueueEntry:
        """Put the call in the team's line (the caller's place counts from when they called)."""
        entry = QueueEntry(
            id=new_id("q"),
            call_id=call.id,
            team_id=team_id,
            kind=kind,
            priority=priority,
            state=Q.WAITING,
            active_call_id=call.id,
            transfer_id=transfer_id,
            enqueued_at=call.created_at,  # the caller's place counts from when they called
            offers=0,
            callback_attempts=0,
            version=1,
        )
        session.add(entry)
        self.store.record(session, call.id, "queued", team=team_id, position=self.position(session, entry))
        return entry

    def position(self, session: Session, entry: QueueEntry) -> int:
        ahead = session.scalar(
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

    def head(self, session: Session, team_ids: Iterable[str]) -> QueueEntry | None:
        """The next entry for an agent of these teams (domain.queues.place_key order)."""
        query = (
            select(QueueEntry)
            .where(QueueEntry.team_id.in_(sorted(set(team_ids))), QueueEntry.state == Q.WAITING)
            .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at, QueueEntry.id)
            .limit(1)
        )
        if not self.store.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        return session.execute(query.execution_options(populate_existing=True)).scalars().first()

    def end(self, session: Session, entry: QueueEntry, event: str, reason: str) -> bool:
        """End a live entry (answered, abandoned, timed out, left) with how long the caller waited."""
        if not Q.ENTRY.can(entry.state, event):
            event = "leave" if Q.ENTRY.can(entry.state, "leave") else event  # e.g. a timeout mid-offer
        now = utcnow()
        wait_s = round((now - entry.enqueued_at).total_seconds(), 3)
        outcome = self.store.transition(
            session, entry, Q.ENTRY, event, active_call_id=None, ended_at=now, wait_s=wait_s, end_reason=reason
        )
        if outcome.changed:
            self.store.record(
                session,
                entry.call_id,
                f"queue_{outcome.state}",
                agent_id=entry.offered_agent_id if event == "answered" else None,
                team=entry.team_id,
                wait_s=wait_s,
                reason=reason,
            )
            for listener in self.on_ended:
                listener(entry, outcome.state)
        return outcome.changed

    # ------------------------------------------------------------ offers
    def offer_next_to(self, session: Session, agent: Agent) -> bool:
        """``agent`` just became free: offer them the oldest waiting caller of their teams, at once."""
        teams = session.execute(select(AgentTeam.team_id).where(AgentTeam.agent_id == agent.id)).scalars().all()
        if not teams:
            return False
        fresh = session.get(Agent, agent.id, populate_existing=True)
        if fresh is None or fresh.status != agent_rules.AVAILABLE:
            return False
        entry = self.head(session, teams)
        if entry is None:
            self.sweep_later(session, teams)  # a caller enqueued in a transaction not yet committed
            return False
        return self.offer(session, entry, fresh)

    def dispatch(self, session: Session, team_id: str, limit: int = 5) -> int:
        """Pair the team's free members with its waiting callers, oldest first (each pair claimed
        row by row: SKIP LOCKED reads and compare-and-set, see the module's note)."""
        offered = 0
        while offered < limit:
            # The agent first: with nobody free, no caller's row is locked, so an agent freeing up
            # meanwhile is never made to skip the head of the line for a pairing that never comes.
            agent = self.free_agent(session, team_id)
            if agent is None:
                break
            entry = self.head(session, [team_id])
            if entry is None or not self.offer(session, entry, agent):
                break
            offered += 1
        return offered

    def offer(self, session: Session, entry: QueueEntry, agent: Agent) -> bool:
        claimed_at = utcnow()  # the head row is ours from here (its lock): the offer's place in time
        call = session.get(Call, entry.call_id, populate_existing=True)
        if call is None or agent.status != agent_rules.AVAILABLE:
            return False
        outcome = self.store.transition(
            session, entry, Q.ENTRY, "offer", offered_agent_id=agent.id, offered_at=claimed_at, offers=entry.offers + 1
        )
        if not outcome.changed:
            return False
        self.legs.reserve_agent(session, agent)
        self.store.record(session, call.id, "queue_offered", agent_id=agent.id, team=entry.team_id, offer=entry.offers)
        self.legs.ring_agent(session, call, agent, room=call.room)
        return True

    def offer_failed(self, session: Session, call_id: str) -> QueueEntry | None:
        """The agent missed or declined: the caller is back at the head, in the same place."""
        entry = self.live_entry(session, call_id)
        if entry is None or entry.state != Q.OFFERED:
            return entry
        agent_id = entry.offered_agent_id
        self.store.transition(session, entry, Q.ENTRY, "offer_failed", offered_agent_id=None)
        self.store.record(session, call_id, "queue_offer_failed", agent_id=agent_id, team=entry.team_id)
        return entry

    # ---------------------------------------------------------- callbacks
    def request_callback(self, session: Session, call: Call) -> bool:
        """The waiting caller asked to be called back: their entry keeps its place (same arrival
        time and priority) as a callback, to their number, and they may hang up."""
        entry = self.live_entry(session, call.id)
        if entry is None or entry.state != Q.WAITING or not Q.E164.match(call.from_number or ""):
            return False
        if entry.kind != Q.CALLBACK:
            self.store.compare_and_set(session, entry, kind=Q.CALLBACK, callback_number=call.from_number)
            self.store.record(
                session, call.id, "callback_requested", team=entry.team_id, position=self.position(session, entry)
            )
        return True

    def is_callback(self, call_id: str) -> bool:
        """Is this call a caller waiting to be called back (their entry a callback)?"""
        return self.store.read(
            lambda session: (entry := self.live_entry(session, call_id)) is not None and entry.kind == Q.CALLBACK
        )

    def start_callback(self, session: Session, entry: QueueEntry, agent_id: str | None, attempt: int = 1) -> None:
        """The agent who accepted the callback is in the room: dial the caller (services.callbacks).
        Once per offer and attempt, however often the agent's arrival is reported."""
        self.store.enqueue(
            session,
            J.DialCallback(entry.call_id, attempt, entry.offers),
            delay_s=self.gw.settings.callback_retry_s if attempt > 1 else 0.0,
            dedupe_key=f"callback:{entry.id}:{entry.offers}:{attempt}",
        )

    # ----------------------------------------------------- what callers hear
    def waiting(self, call_id: str, first: bool) -> Hold | None:
        """One pass of the queue's hold loop: (the greeting, on entry,) the caller's place and the
        estimated wait, the team's music, a reassurance, and back (``Dest.QUEUE``) for the next
        pass, where the place is announced again. None if the caller is not waiting."""
        heard = self.waiting_message(call_id)
        if heard is None:
            return None
        greeting, announcement, music, callback = heard
        choices = [Q.VOICEMAIL_CHOICE] if self.gw.settings.voicemail_enabled else []
        if callback:
            choices.append(Q.CALLBACK_CHOICE)
        return Hold(
            music_url=music,
            again=Webhook.to(Dest.QUEUE, call=call_id, loop=1),
            message=f"{greeting} {announcement}" if first else announcement,
            reassurance=STILL_WAITING,
            # A key (or words) at any moment of the pass: a message or a callback instead.
            choices=Webhook.to(Dest.QUEUE_CHOICE, call=call_id) if choices else None,
            choices_prompt=" ".join(choices) if choices and first else None,
        )

    def waiting_message(self, call_id: str) -> tuple[str, str, str, bool] | None:
        """(greeting, announcement, music URL, callback possible) for a caller in line, or None."""

        def work(session: Session) -> tuple[str, str, str, bool] | None:
            entry = self.live_entry(session, call_id)
            if entry is None or entry.kind == Q.CALLBACK:
                return None
            call = session.get(Call, call_id)
            callback = call is not None and bool(Q.E164.match(call.from_number or ""))
            return (*self.heard(session, entry), callback)

        return self.store.read(work)

    def heard(self, session: Session, entry: QueueEntry) -> tuple[str, str, str]:
        """(greeting, announcement, music URL) for this entry: what a caller in line is told."""
        team = self.team(session, entry.team_id)
        place = self.position(session, entry)
        staffed = self.staffed(session, entry.team_id)
        estimate = Q.estimate_wait_s(place, staffed, self.handle_times(session, entry.team_id))
        return Q.greeting(team.name if team else None), Q.queue_announcement(place, estimate), self.music_url(team)

    def handle_times(self, session: Session, team_id: str) -> list[float]:
        since = utcnow() - timedelta(days=1)
        rows = session.execute(
            select(Call.connected_at, Call.ended_at)
            .where(
                Call.team_id == team_id,
                Call.connected_at.isnot(None),
                Call.ended_at.isnot(None),
                Call.ended_at > since,
            )
            .order_by(Call.ended_at.desc())
            .limit(HISTORY)
        ).all()
        return [(ended - connected).total_seconds() for connected, ended in rows if connected and ended]
