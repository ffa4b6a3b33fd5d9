"""Routing: where the caller goes next — which agent is offered the call, which room the caller
is bridged into, and voicemail when nobody is left.

A call is for a team (its number's, default otherwise). A free member of the team is rung at
once; with none free but someone signed in, the caller waits in the team's line (services.queues);
with nobody signed in, voicemail.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.adapters.store import Store
from gateway.adapters.store.models import Agent, Call, Leg, utcnow
from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.domain import web_calls as W
from gateway.domain.machine import IllegalTransition
from gateway.services import job_types as J
from gateway.services.legs import Legs
from gateway.services.lookups import live_legs
from gateway.services.ports import Dest, Gateway
from gateway.services.queues import Queues


class Routing:
    def __init__(self, gw: Gateway, legs: Legs, queues: Queues):
        self.gw, self.legs, self.queues = gw, legs, queues
        self.store: Store = gw.store

    def route(
        self,
        session: Session,
        call: Call,
        *,
        room: str | None = None,
        tried: Iterable[str] | None = None,
        priority: int = Q.PRIORITY_CALLER,
    ) -> str:
        """Where a caller with nobody on the line goes: "ringing" (a free member of the team is
        offered the call), "queued" (nobody free: the caller waits in the team's line), or
        "nobody" (no member signed in at all: the caller's next step is for the caller to decide).
        ``priority``: a caller who was already answered once waits ahead of first-time callers."""
        team_id = call.team_id or Q.DEFAULT_TEAM
        if self.ring_next_agent(session, call, room=room, tried=tried):
            return "ringing"
        if not self.queues.staffed(session, team_id):
            return "nobody"
        self.store.transition(session, call, C.CALL, "enqueue")
        self.queues.enqueue(session, call, team_id=team_id, priority=priority)
        self.queues.sweep_later(session, [team_id])  # an agent freed in a transaction not yet committed
        return "queued"

    def route_new_call(self, session: Session, call: Call) -> bool:
        """A call just arrived (phone or web): route it, and start its longest wait, which covers
        the ringing as well as the line. False when nobody of its team is signed in at all: the
        call is then marked so ("nobody staffed") and what the caller hears is the channel's to say."""
        if self.route(session, call, tried=()) == "nobody":
            self.store.transition(session, call, C.CALL, "no_agent", end_reason="nobody staffed")
            return False
        self.store.enqueue(
            session,
            J.QueueTimeout(call.id),
            delay_s=self.queues.max_wait_s(self.queues.team(session, call.team_id)),
            timer_of=call.id,
        )
        return True

    def queue_offer_failed(self, session: Session, call: Call) -> None:
        """A waiting caller's offer was missed or declined: back at the head of the line, offered
        to the next free member at once; voicemail only when nobody is staffed or the wait is over."""
        entry = self.queues.offer_failed(session, call.id)
        if entry is None or entry.state != Q.WAITING:
            return
        team = self.queues.team(session, entry.team_id)
        if entry.kind == Q.CALLBACK:
            self.queues.dispatch(session, entry.team_id)  # a callback keeps its place, whoever is staffed
        elif (utcnow() - entry.enqueued_at).total_seconds() >= self.queues.max_wait_s(team):
            self.queues.end(session, entry, "timeout", "max wait reached")
            self.to_voicemail(session, call, "queue timeout")
        elif not self.queues.staffed(session, entry.team_id):
            self.queues.end(session, entry, "leave", "nobody staffed")
            self.to_voicemail(session, call, "nobody staffed")
        else:
            self.queues.dispatch(session, entry.team_id)

    def ring_next_agent(
        self, session: Session, call: Call, room: str | None = None, tried: Iterable[str] | None = None
    ) -> bool:
        """Ring the longest-idle available agent not yet tried on this call; False if none.

        Candidates are read in idle order with FOR UPDATE SKIP LOCKED (on Postgres), so calls
        arriving together are each given a different agent instead of fighting over one row.
        """
        tried_ids = (
            set(tried)
            if tried is not None
            else {
                agent_id
                for agent_id in session.execute(
                    select(Leg.agent_id).where(Leg.call_id == call.id, Leg.transfer_id.is_(None))
                ).scalars()
                if agent_id is not None
            }
        )
        # One row, of the call's team: locking several would hide free agents from calls arriving
        # at the same moment.
        found = self.queues.free_agent(session, call.team_id, tried_ids)
        choice = agent_rules.pick_agent([agent_view(found)] if found else [], exclude=list(tried_ids))
        if choice is None or found is None:
            return False
        agent = found
        self.legs.reserve_agent(session, agent)
        self.legs.ring_agent(session, call, agent, room=room or call.room)
        return True

    def send_caller_to_bridge(self, session: Session, call: Call, room: str | None = None) -> None:
        """Redirect the caller (REST) into ``room`` (default: the call's room) as a new generation."""
        gen = (call.bridge_gen or 0) + 1
        target = room or call.room
        if call.channel == W.CHANNEL_WEB:
            # No redirect: the caller page follows the call's state. A caller already in that room
            # (they wait in it while queued) stays; otherwise the page asks for a token for it.
            stays = target == call.room and bool(call.caller_identity)
            changes = {} if stays else {"caller_identity": None}
            self.store.compare_and_set(session, call, room=target, bridge_gen=gen, **changes)
            if not stays:
                self.expect_in_room(session, call.id, target)
            return
        self.store.compare_and_set(session, call, room=target, caller_identity=None, bridge_gen=gen)
        self.store.enqueue(session, J.RedirectCaller(call.id, Dest.BRIDGE, gen))
        self.expect_in_room(session, call.id, target)

    def expect_in_room(self, session: Session, call_id: str, room: str, gone: str | None = None) -> None:
        """Someone should join ``room`` (or ``gone`` leave it) in a moment: LiveKit's webhook will
        say so, and if it does not, a look at the room's participants will (webhooks are hints)."""
        self.store.enqueue(session, J.ReconcileRoom(call_id, room, 0, gone), delay_s=L.RECONCILE_AFTER_S[0])

    def send_caller_to_goodbye(self, session: Session, call: Call) -> None:
        """The agent ended the call: the caller is redirected to goodbye. Marked as a redirect in
        flight, so the end of the <Dial> it interrupts is not taken for a lost bridge (which would
        route a caller who is leaving to another agent, or into the queue)."""
        if not call.redirecting:
            self.store.compare_and_set(session, call, redirecting=True)
        self.store.enqueue(session, J.RedirectCaller(call.id, Dest.GOODBYE))

    def to_voicemail(self, session: Session, call: Call, reason: str) -> None:
        """Nobody (left) to take the call: the caller is redirected to the apology/voicemail."""
        entry = self.queues.live_entry(session, call.id)
        if entry is not None:
            self.queues.end(session, entry, "timeout" if reason == "queue timeout" else "leave", reason)
        try:
            outcome = self.store.transition(session, call, C.CALL, "no_agent", end_reason=reason)
        except IllegalTransition:
            return
        if outcome.changed:
            self.store.record(session, call.id, "no_agent", reason=reason)
            self.store.enqueue(session, J.RedirectCaller(call.id, Dest.APOLOGY))
            for leg in live_legs(session, call.id):
                self.legs.end_leg(session, leg, "cancel", "caller sent to voicemail")

    def to_voicemail_now(self, session: Session, call: Call, reason: str) -> None:
        """Like to_voicemail, but the apology is this webhook's reply (no redirect needed)."""
        outcome = self.store.transition(session, call, C.CALL, "no_agent", end_reason=reason)
        if outcome.changed:
            self.store.record(session, call.id, "no_agent", reason=reason)
            for leg in live_legs(session, call.id):
                self.legs.end_leg(session, leg, "cancel", "caller sent to voicemail")


def agent_view(agent: Agent) -> agent_rules.AgentView:
    return agent_rules.AgentView(
        id=agent.id,
        name=agent.name,
        phone=agent.phone,
        browser=agent.browser,
        status=agent.status,
        idle_since=agent.idle_since,
    )
