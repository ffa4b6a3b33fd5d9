"""Agent legs, the mechanics: ringing an agent (console and phone at once) and ending a leg.

A leg is one channel of one agent on one call (a console offer, or a phone call). Ending a leg
undoes its provider side and frees the agent when it was their last live leg. What an ending
*means* for the call (next agent, voicemail, a transfer's fallback) is decided above, in
``agent_legs`` and ``transfers``.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Agent, Call, Leg, utcnow
from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain.caller_id import mask_caller
from gateway.domain.machine import IllegalTransition
from gateway.services import job_types as J
from gateway.services.ports import Gateway
from gateway.services.uow import UnitOfWork


class Legs:
    def __init__(self, gw: Gateway):
        self.gw = gw
        # Told (unit of work, agent) in the unit of work that made an agent available again: the
        # oldest caller waiting in their teams is offered to them at once (services.queues).
        self.agent_free: Callable[[UnitOfWork, Agent], object] | None = None

    def reserve_agent(self, uow: UnitOfWork, agent: Agent) -> bool:
        if agent.status != agent_rules.AVAILABLE:
            return False
        uow.compare_and_set(agent, status=agent_rules.BUSY)
        return True

    def ring_agent(
        self, uow: UnitOfWork, call: Call, agent: Agent, *, room: str, transfer_id: str | None = None
    ) -> list[Leg]:
        """Offer the call to the agent's console and phone at once; the first to accept wins."""
        legs = []
        if agent.browser:
            legs.append(self._new_leg(call, agent, "browser", room, transfer_id, identity=agent.id))
        if agent.phone:
            legs.append(self._new_leg(call, agent, "phone", room, transfer_id, identity=f"sip_{agent.phone}"))
        for leg in legs:
            uow.legs.add(leg)
            if leg.kind == "phone":
                uow.jobs.add(dial_job(leg))
        uow.jobs.add(
            J.RingTimeout(tuple(leg_.id for leg_ in legs), call.id),
            delay_s=self.gw.settings.ring_timeout_s,
            timer_of=legs[0].id,
        )
        uow.timeline.record(
            call.id,
            "agent_ringing",
            transfer_id=transfer_id,
            agent_id=agent.id,
            channels=[leg_.kind for leg_ in legs],
        )
        return legs

    @staticmethod
    def _new_leg(call: Call, agent: Agent, kind: str, room: str, transfer_id: str | None, identity: str) -> Leg:
        return Leg(
            id=new_id("leg"),
            call_id=call.id,
            transfer_id=transfer_id,
            agent_id=agent.id,
            kind=kind,
            phone=agent.phone if kind == "phone" else None,
            room=room,
            state=L.RINGING,
            identity=identity,
        )

    def release_agent(self, uow: UnitOfWork, agent_id: str | None, *, missed: Leg | None = None) -> None:
        """An agent with no live leg left becomes available again; after ``missed`` (a ring they
        missed, a waiting caller they declined, or a caller returned to them from a failed
        transfer whom they never came back for) they are set offline and told why: "not
        responding", so the line does not keep ringing someone who is not there."""
        if not agent_id:
            return
        found = uow.agents.fresh_with_live_leg(agent_id)
        if found is None:
            return
        agent, live = found
        if live or agent.status != agent_rules.BUSY:
            return
        if missed is None:
            uow.compare_and_set(agent, status=agent_rules.AVAILABLE, idle_since=utcnow())
            if self.agent_free is not None:
                self.agent_free(uow, agent)
            return
        call = uow.calls.get(missed.call_id)
        reason = "returned" if missed.transfer_id else "declined" if missed.state == L.DECLINED else "missed"
        now = utcnow()
        # As the offer named them: a withheld number says so, not four letters of "anonymous".
        number = call.from_number if call else None
        phone = call is not None and call.channel != "web"
        why = {
            "call_id": missed.call_id,
            "caller": mask_caller(number) if phone else agent_rules.mask_phone(number),
            "at": now.isoformat(timespec="milliseconds") + "Z",
            "reason": reason,
        }
        uow.compare_and_set(agent, status=agent_rules.OFFLINE, idle_since=now, not_responding=why)
        uow.timeline.record(missed.call_id, "agent_not_responding", agent_id=agent_id, reason=reason)

    def end_leg(self, uow: UnitOfWork, leg: Leg, event: str, reason: str, *, not_responding: bool = False) -> bool:
        """Move a leg to a terminal state and undo its provider side (hang up / remove).
        ``not_responding``: the agent was not there to take the caller (set offline, told why)."""
        was = leg.state
        try:
            outcome = uow.transition(leg, L.LEG, event, end_reason=reason, ended_at=utcnow())
        except IllegalTransition:
            return False
        if not outcome.changed:
            return False
        if leg.kind == "phone":
            uow.jobs.add(J.HangupLeg(leg.id))
        elif event != "leave" and was in (L.ACCEPTED, L.JOINED):
            # Accepted means a token was issued: the browser may be in the room, or about to be.
            # Whatever ended the leg, its participant goes (a leg ending by "leave" has left already,
            # or the caller of leave removes it).
            uow.jobs.add(J.RemoveParticipant(leg.room, leg.identity or "", leg.call_id))
        uow.timeline.record(
            leg.call_id,
            f"leg_{outcome.state}",
            transfer_id=leg.transfer_id,
            agent_id=leg.agent_id,
            channel=leg.kind,
            reason=reason,
        )
        missed = not_responding or self._not_responding(uow, leg, event)
        self.release_agent(uow, leg.agent_id, missed=leg if missed else None)
        return True

    @staticmethod
    def _not_responding(uow: UnitOfWork, leg: Leg, event: str) -> bool:
        """A missed ring, or a declined offer of a caller waiting in line: the agent is set offline
        ("not responding", as the console shows) so the line does not keep ringing them."""
        if leg.transfer_id is not None:
            return False
        if event == "no_answer":
            return True
        if event != "decline":
            return False
        call = uow.calls.get(leg.call_id)
        return call is not None and call.state == C.QUEUED


def dial_job(leg: Leg) -> J.DialLeg:
    """Dial the leg's phone, with what the job needs to place the call without reading it back."""
    return J.DialLeg(leg.id, leg.phone, bool(leg.transfer_id))
