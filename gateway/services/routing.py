"""Routing: where the caller goes next — which agent is offered the call, which room the caller
is bridged into, and voicemail when nobody is left.

Today: the longest-idle available agent not yet tried. Queues and teams belong here next.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.adapters.store import Store
from gateway.adapters.store.models import Agent, Call, Leg
from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain.machine import IllegalTransition
from gateway.services.legs import Legs
from gateway.services.lookups import live_legs
from gateway.services.ports import Gateway


class Routing:
    def __init__(self, gw: Gateway, legs: Legs):
        self.gw, self.legs = gw, legs
        self.store: Store = gw.store

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
        query = select(Agent).where(
            Agent.status == agent_rules.AVAILABLE, (Agent.browser.is_(True)) | Agent.phone.isnot(None)
        )
        if tried_ids:
            query = query.where(Agent.id.not_in(tried_ids))
        # One row: locking several would hide free agents from calls arriving at the same moment.
        query = query.order_by(Agent.idle_since.asc().nulls_first(), Agent.id).limit(1)
        if not self.store.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        with session.no_autoflush:  # the new call's rows go in together at commit
            candidates = {a.id: a for a in session.execute(query.execution_options(populate_existing=True)).scalars()}
        choice = agent_rules.pick_agent([agent_view(a) for a in candidates.values()], exclude=list(tried_ids))
        if choice is None:
            return False
        agent = candidates[choice.id]
        self.legs.reserve_agent(session, agent)
        self.legs.ring_agent(session, call, agent, room=room or call.room)
        return True

    def send_caller_to_bridge(self, session: Session, call: Call, room: str | None = None) -> None:
        """Redirect the caller (REST) into ``room`` (default: the call's room) as a new generation."""
        gen = (call.bridge_gen or 0) + 1
        self.store.compare_and_set(session, call, room=room or call.room, caller_identity=None, bridge_gen=gen)
        self.store.enqueue(session, "redirect_caller", {"call_id": call.id, "path": "/twilio/bridge", "gen": gen})

    def to_voicemail(self, session: Session, call: Call, reason: str) -> None:
        """Nobody (left) to take the call: the caller is redirected to the apology/voicemail."""
        try:
            outcome = self.store.transition(session, call, C.CALL, "no_agent", end_reason=reason)
        except IllegalTransition:
            return
        if outcome.changed:
            self.store.record(session, call.id, "no_agent", reason=reason)
            self.store.enqueue(session, "redirect_caller", {"call_id": call.id, "path": "/twilio/apology"})
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
