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
from datetime import datetime, timedelta
from typing import Protocol

from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Agent, Call, QueueEntry, Team, utcnow
from gateway.domain import agents as agent_rules
from gateway.domain import queues as Q
from gateway.domain.caller_id import callable_number
from gateway.services import job_types as J
from gateway.services.job_types import handles
from gateway.services.jobs import JobRunner
from gateway.services.ports import Dest, Gateway
from gateway.services.replies import Hold, Webhook
from gateway.services.uow import UnitOfWork, UnitsOfWork

HISTORY = 20  # finished calls of a team the estimate averages
STILL_WAITING = "Thank you for waiting. Your call is important to us; please stay on the line."


class Offers(Protocol):
    """What an offer needs from the legs' side: reserve the agent, ring their console and phone."""

    def reserve_agent(self, uow: UnitOfWork, agent: Agent) -> bool: ...

    def ring_agent(
        self, uow: UnitOfWork, call: Call, agent: Agent, *, room: str, transfer_id: str | None = None
    ) -> object: ...


class Queues:
    def __init__(self, gw: Gateway, legs: Offers):
        self.gw, self.legs = gw, legs
        self.units: UnitsOfWork = gw.store
        # Told (entry, final state) when an entry ends (metrics).
        self.on_ended: list[Callable[[QueueEntry, str], None]] = []

    # ------------------------------------------------------------ teams
    def register(self, runner: JobRunner) -> None:
        runner.register_jobs(self)

    @handles(J.DispatchTeam)
    def _dispatch_job(self, job: J.DispatchTeam) -> None:
        self.units.run(lambda uow: self.dispatch_teams(uow, job.teams))

    def sweep_later(self, uow: UnitOfWork, team_ids: Iterable[str]) -> None:
        """Pair these teams' free members and waiting callers once this unit of work commits (see
        the module's note: the other side of a race may not have committed yet)."""
        uow.jobs.add(J.DispatchTeam(tuple(sorted(set(team_ids)))))

    def dispatch_teams(self, uow: UnitOfWork, team_ids: Iterable[str]) -> int:
        return sum(self.dispatch(uow, team_id) for team_id in sorted(set(team_ids)))

    def team(self, uow: UnitOfWork, team_id: str | None) -> Team | None:
        return uow.teams.get(team_id or Q.DEFAULT_TEAM)

    def max_wait_s(self, team: Team | None) -> float:
        return float(team.max_wait_s) if team is not None and team.max_wait_s else self.gw.settings.queue_timeout_s

    def music_url(self, team: Team | None) -> str:
        return (team.hold_music_url if team is not None else None) or self.gw.settings.hold_music_url

    def staffed(self, uow: UnitOfWork, team_id: str) -> int:
        """Members signed in (available or busy) who can be reached: 0 means nobody could come."""
        return uow.agents.staffed(team_id)

    def free_agent(self, uow: UnitOfWork, team_id: str | None, tried: Iterable[str] = ()) -> Agent | None:
        """The longest-idle available member of the team not yet tried (never-used first); calls
        arriving together each get another agent (see ``AgentRows.free``)."""
        return uow.agents.free(team_id, tried)

    # ---------------------------------------------------------- entries
    @staticmethod
    def live_entry(uow: UnitOfWork, call_id: str) -> QueueEntry | None:
        return uow.queue.live(call_id)

    def enqueue(
        self,
        uow: UnitOfWork,
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
        uow.queue.add(entry)
        uow.timeline.record(call.id, "queued", team=team_id, position=self.position(uow, entry))
        return entry

    def position(self, uow: UnitOfWork, entry: QueueEntry) -> int:
        return uow.queue.position(entry)

    def head(self, uow: UnitOfWork, team_ids: Iterable[str]) -> tuple[QueueEntry, Call] | None:
        """The next entry for an agent of these teams (domain.queues.place_key order), with its call."""
        return uow.queue.head(team_ids)

    def end(self, uow: UnitOfWork, entry: QueueEntry, event: str, reason: str) -> bool:
        """End a live entry (answered, abandoned, timed out, left) with how long the caller waited."""
        if not Q.ENTRY.can(entry.state, event):
            event = "leave" if Q.ENTRY.can(entry.state, "leave") else event  # e.g. a timeout mid-offer
        now = utcnow()
        wait_s = round((now - entry.enqueued_at).total_seconds(), 3)
        outcome = uow.transition(
            entry, Q.ENTRY, event, active_call_id=None, ended_at=now, wait_s=wait_s, end_reason=reason
        )
        if outcome.changed:
            uow.timeline.record(
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
    def offer_next_to(self, uow: UnitOfWork, agent: Agent) -> bool:
        """``agent`` was just made available by this unit of work (so as read, it is current: the
        unit holds the row until it commits): offer them the oldest waiting caller of their teams,
        at once. The head of the agent's teams and its call come in one read."""
        if agent.status != agent_rules.AVAILABLE:
            return False
        claimed_at = utcnow()
        found = uow.queue.head_for(agent.id)
        if found is None:
            teams = uow.teams.of_agent(agent.id)
            if teams:
                self.sweep_later(uow, teams)  # a caller enqueued in a transaction not yet committed
            return False
        entry, call = found
        return self.offer(uow, entry, agent, call, claimed_at)

    def dispatch(self, uow: UnitOfWork, team_id: str, limit: int = 5) -> int:
        """Pair the team's free members with its waiting callers, oldest first (each pair claimed
        row by row: SKIP LOCKED reads and compare-and-set, see the module's note)."""
        offered = 0
        while offered < limit:
            # The agent first: with nobody free, no caller's row is locked, so an agent freeing up
            # meanwhile is never made to skip the head of the line for a pairing that never comes.
            agent = self.free_agent(uow, team_id)
            if agent is None:
                break
            claimed_at = utcnow()
            found = self.head(uow, [team_id])
            if found is None or not self.offer(uow, found[0], agent, found[1], claimed_at):
                break
            offered += 1
        return offered

    def offer(self, uow: UnitOfWork, entry: QueueEntry, agent: Agent, call: Call, claimed_at: datetime) -> bool:
        """Offer the head ``entry`` this unit holds (and its ``call``, read with it) to ``agent``.

        ``claimed_at``, when the claim of the head began, is the offer's place in time (the entry's
        and the timeline's): two units claiming at once take the first two callers in the order
        their claims began (the later one skips the row the earlier one holds), and a unit's
        statements after that may run late on a busy machine, so a time taken after them could
        put the second caller's offer before the first's."""
        if agent.status != agent_rules.AVAILABLE:
            return False
        outcome = uow.transition(
            entry, Q.ENTRY, "offer", offered_agent_id=agent.id, offered_at=claimed_at, offers=entry.offers + 1
        )
        if not outcome.changed:
            return False
        self.legs.reserve_agent(uow, agent)
        uow.timeline.record_at(
            claimed_at, call.id, "queue_offered", agent_id=agent.id, team=entry.team_id, offer=entry.offers
        )
        self.legs.ring_agent(uow, call, agent, room=call.room)
        return True

    def offer_failed(self, uow: UnitOfWork, call_id: str) -> QueueEntry | None:
        """The agent missed or declined: the caller is back at the head, in the same place."""
        entry = self.live_entry(uow, call_id)
        if entry is None or entry.state != Q.OFFERED:
            return entry
        agent_id = entry.offered_agent_id
        uow.transition(entry, Q.ENTRY, "offer_failed", offered_agent_id=None)
        uow.timeline.record(call_id, "queue_offer_failed", agent_id=agent_id, team=entry.team_id)
        return entry

    # ---------------------------------------------------------- callbacks
    def request_callback(self, uow: UnitOfWork, call: Call, number: str | None = None) -> bool:
        """The waiting caller asked to be called back: their entry keeps its place (same arrival
        time and priority) as a callback, to their number (or the one a web caller gave), and they
        may hang up."""
        entry = self.live_entry(uow, call.id)
        number = callable_number(number or call.from_number)  # None: withheld, nothing to dial
        if entry is None or entry.state != Q.WAITING or number is None:
            return False
        if entry.kind != Q.CALLBACK:
            uow.compare_and_set(entry, kind=Q.CALLBACK, callback_number=number)
            uow.timeline.record(call.id, "callback_requested", team=entry.team_id, position=self.position(uow, entry))
        return True

    def start_callback(self, uow: UnitOfWork, entry: QueueEntry, agent_id: str | None, attempt: int = 1) -> None:
        """The agent who accepted the callback is in the room: dial the caller (services.callbacks).
        Once per offer and attempt, however often the agent's arrival is reported."""
        uow.jobs.add(
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

        def work(uow: UnitOfWork) -> tuple[str, str, str, bool] | None:
            entry = self.live_entry(uow, call_id)
            if entry is None or entry.kind == Q.CALLBACK:
                return None
            call = uow.calls.get(call_id)
            callback = call is not None and callable_number(call.from_number) is not None
            return (*self.heard(uow, entry), callback)

        return self.units.read(work)

    def heard(self, uow: UnitOfWork, entry: QueueEntry) -> tuple[str, str, str]:
        """(greeting, announcement, music URL) for this entry: what a caller in line is told."""
        team = self.team(uow, entry.team_id)
        place = self.position(uow, entry)
        staffed = self.staffed(uow, entry.team_id)
        estimate = Q.estimate_wait_s(place, staffed, self.handle_times(uow, entry.team_id))
        return Q.greeting(team.name if team else None), Q.queue_announcement(place, estimate), self.music_url(team)

    def handle_times(self, uow: UnitOfWork, team_id: str) -> list[float]:
        since = utcnow() - timedelta(days=1)
        return [
            (ended - connected).total_seconds() for connected, ended in uow.calls.handle_times(team_id, since, HISTORY)
        ]
