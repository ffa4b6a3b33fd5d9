"""Routing: where the caller goes next — which agent is offered the call, which room the caller
is bridged into, and voicemail when nobody is left.

A call is for a team (its number's, default otherwise). A free member of the team is rung at
once; with none free but someone signed in, the caller waits in the team's line (services.queues);
with nobody signed in, voicemail.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.adapters.store.models import Agent, Call, utcnow
from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.domain import web_calls as W
from gateway.domain.machine import IllegalTransition
from gateway.services import job_types as J
from gateway.services.legs import Legs
from gateway.services.ports import Dest, Gateway
from gateway.services.queues import Queues
from gateway.services.uow import UnitOfWork


class Routing:
    def __init__(self, gw: Gateway, legs: Legs, queues: Queues):
        self.gw, self.legs, self.queues = gw, legs, queues

    def route(
        self,
        uow: UnitOfWork,
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
        if self.ring_next_agent(uow, call, room=room, tried=tried):
            return "ringing"
        if not self.queues.staffed(uow, team_id):
            return "nobody"
        uow.transition(call, C.CALL, "enqueue")
        self.queues.enqueue(uow, call, team_id=team_id, priority=priority)
        self.queues.sweep_later(uow, [team_id])  # an agent freed in a transaction not yet committed
        return "queued"

    def route_new_call(self, uow: UnitOfWork, call: Call) -> bool:
        """A call just arrived (phone or web): route it, and start its longest wait, which covers
        the ringing as well as the line. False when nobody of its team is signed in at all: the
        call is then marked so ("nobody staffed") and what the caller hears is the channel's to say."""
        if self.route(uow, call, tried=()) == "nobody":
            uow.transition(call, C.CALL, "no_agent", end_reason="nobody staffed")
            return False
        uow.jobs.add(
            J.QueueTimeout(call.id),
            delay_s=self.queues.max_wait_s(self.queues.team(uow, call.team_id)),
            timer_of=call.id,
        )
        return True

    def queue_offer_failed(self, uow: UnitOfWork, call: Call) -> None:
        """A waiting caller's offer was missed or declined: back at the head of the line, offered
        to the next free member at once; voicemail only when nobody is staffed or the wait is over."""
        entry = self.queues.offer_failed(uow, call.id)
        if entry is None or entry.state != Q.WAITING:
            return
        team = self.queues.team(uow, entry.team_id)
        if entry.kind == Q.CALLBACK:
            self.queues.dispatch(uow, entry.team_id)  # a callback keeps its place, whoever is staffed
        elif (utcnow() - entry.enqueued_at).total_seconds() >= self.queues.max_wait_s(team):
            self.queues.end(uow, entry, "timeout", "max wait reached")
            self.to_voicemail(uow, call, "queue timeout")
        elif not self.queues.staffed(uow, entry.team_id):
            self.queues.end(uow, entry, "leave", "nobody staffed")
            self.to_voicemail(uow, call, "nobody staffed")
        else:
            self.queues.dispatch(uow, entry.team_id)

    def ring_next_agent(
        self, uow: UnitOfWork, call: Call, room: str | None = None, tried: Iterable[str] | None = None
    ) -> bool:
        """Ring the longest-idle available agent not yet tried on this call; False if none.

        Candidates are read in idle order with FOR UPDATE SKIP LOCKED (on Postgres), so calls
        arriving together are each given a different agent instead of fighting over one row.
        """
        tried_ids = set(tried) if tried is not None else uow.legs.offered_agents(call.id)
        # One row, of the call's team: locking several would hide free agents from calls arriving
        # at the same moment.
        found = self.queues.free_agent(uow, call.team_id, tried_ids)
        choice = agent_rules.pick_agent([agent_view(found)] if found else [], exclude=list(tried_ids))
        if choice is None or found is None:
            return False
        agent = found
        self.legs.reserve_agent(uow, agent)
        self.legs.ring_agent(uow, call, agent, room=room or call.room)
        return True

    def send_caller_to_bridge(self, uow: UnitOfWork, call: Call, room: str | None = None) -> None:
        """Redirect the caller (REST) into ``room`` (default: the call's room) as a new generation."""
        gen = (call.bridge_gen or 0) + 1
        target = room or call.room
        if W.on_the_page(call.channel, call.twilio_sid):
            # No redirect: the caller page follows the call's state. A caller already in that room
            # (they wait in it while queued) stays; otherwise the page asks for a token for it.
            stays = target == call.room and bool(call.caller_identity)
            changes = {} if stays else {"caller_identity": None}
            uow.compare_and_set(call, room=target, bridge_gen=gen, **changes)
            if not stays:
                self.expect_in_room(uow, call.id, target)
            return
        uow.compare_and_set(call, room=target, caller_identity=None, bridge_gen=gen)
        uow.jobs.add(J.RedirectCaller(call.id, Dest.BRIDGE, gen))
        self.expect_in_room(uow, call.id, target)

    def expect_in_room(self, uow: UnitOfWork, call_id: str, room: str, gone: str | None = None) -> None:
        """Someone should join ``room`` (or ``gone`` leave it) in a moment: LiveKit's webhook will
        say so, and if it does not, a look at the room's participants will (webhooks are hints)."""
        uow.jobs.add(J.ReconcileRoom(call_id, room, 0, gone), delay_s=L.RECONCILE_AFTER_S[0])

    def send_caller_to_goodbye(self, uow: UnitOfWork, call: Call, **changes: object) -> None:
        """The agent ended the call: the caller is redirected to goodbye. Marked as a redirect in
        flight, so the end of the <Dial> it interrupts is not taken for a lost bridge (which would
        route a caller who is leaving to another agent, or into the queue). ``changes``: more of
        the call's fields, written in the same update."""
        if not call.redirecting:
            changes["redirecting"] = True
        if changes:
            uow.compare_and_set(call, **changes)
        uow.jobs.add(J.RedirectCaller(call.id, Dest.GOODBYE))

    def to_voicemail(self, uow: UnitOfWork, call: Call, reason: str) -> None:
        """Nobody (left) to take the call: the caller is redirected to the apology/voicemail."""
        entry = self.queues.live_entry(uow, call.id)
        if entry is not None:
            self.queues.end(uow, entry, "timeout" if reason == "queue timeout" else "leave", reason)
        try:
            outcome = uow.transition(call, C.CALL, "no_agent", end_reason=reason)
        except IllegalTransition:
            return
        if outcome.changed:
            uow.timeline.record(call.id, "no_agent", reason=reason)
            uow.jobs.add(J.RedirectCaller(call.id, Dest.APOLOGY))
            for leg in uow.legs.live(call.id):
                self.legs.end_leg(uow, leg, "cancel", "caller sent to voicemail")

    def to_voicemail_now(self, uow: UnitOfWork, call: Call, reason: str) -> None:
        """Like to_voicemail, but the apology is this webhook's reply (no redirect needed)."""
        outcome = uow.transition(call, C.CALL, "no_agent", end_reason=reason)
        if outcome.changed:
            uow.timeline.record(call.id, "no_agent", reason=reason)
            for leg in uow.legs.live(call.id):
                self.legs.end_leg(uow, leg, "cancel", "caller sent to voicemail")


def agent_view(agent: Agent) -> agent_rules.AgentView:
    return agent_rules.AgentView(
        id=agent.id,
        name=agent.name,
        phone=agent.phone,
        browser=agent.browser,
        status=agent.status,
        idle_since=agent.idle_since,
    )
