"""The moves of a warm transfer: the caller between hold and rooms, A into the consult room,
B rung, A dropped, the caller returned to A or to routing. ``apply`` offers an event to the
transfer's state machine (``domain/transfers.py``); the process manager (``transfer_events``)
and the agents' requests (``transfers``) decide which move follows which event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.adapters.store import Store
from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Agent, Call, Leg, Transfer, utcnow
from gateway.adapters.store.uow import Session
from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.domain import transfers as T
from gateway.domain.machine import IllegalTransition
from gateway.services import job_types as J
from gateway.services.legs import Legs, dial_job
from gateway.services.lookups import LIVE_LEG_STATES, existing
from gateway.services.ports import Dest, Gateway
from gateway.services.routing import Routing


class TransferMoves:
    def __init__(self, gw: Gateway, legs: Legs, routing: Routing):
        self.gw, self.legs, self.routing = gw, legs, routing
        self.store: Store = gw.store

    def move_source_to_consult(self, session: Session, transfer: Transfer, source_leg: Leg) -> None:
        """A leaves the caller's room for the private consult room (a fresh leg there)."""
        self.store.transition(
            session, source_leg, L.LEG, "leave", end_reason="moved to consult room", ended_at=utcnow()
        )
        consult = Leg(
            id=new_id("leg"),
            call_id=transfer.call_id,
            transfer_id=transfer.id,
            agent_id=source_leg.agent_id,
            kind=source_leg.kind,
            phone=source_leg.phone,
            room=transfer.consult_room,
            state=L.ACCEPTED,
            twilio_sid=source_leg.twilio_sid,
            identity=source_leg.identity,
        )
        session.add(consult)
        if consult.kind == "phone":
            self.store.enqueue(session, J.RedirectLeg(consult.id, Dest.LEG_BRIDGE))
        elif self.gw.settings.use_move_participant:
            # LiveKit Cloud only: move A's media session instead of A reconnecting with a new token.
            self.store.enqueue(
                session,
                J.MoveParticipant(source_leg.room, source_leg.identity or "", transfer.consult_room, transfer.call_id),
            )
        else:
            self.store.enqueue(
                session, J.RemoveParticipant(source_leg.room, source_leg.identity or "", transfer.call_id)
            )
        self.store.record(
            session,
            transfer.call_id,
            "consult_room_ready",
            transfer_id=transfer.id,
            agent_id=consult.agent_id,
            room=transfer.consult_room,
            channel=consult.kind,
        )

    def reach_target(self, session: Session, transfer: Transfer, call: Call, target: Agent | None) -> None:
        if target is not None:
            self.legs.reserve_agent(session, target)
            legs = self.legs.ring_agent(session, call, target, room=transfer.consult_room, transfer_id=transfer.id)
        else:
            leg = Leg(
                id=new_id("leg"),
                call_id=call.id,
                transfer_id=transfer.id,
                agent_id=None,
                kind="phone",
                phone=transfer.target_number,
                room=transfer.consult_room,
                state=L.RINGING,
                identity=f"sip_{transfer.target_number}",
            )
            session.add(leg)
            self.store.enqueue(session, dial_job(leg))
            self.store.enqueue(
                session,
                J.RingTimeout((leg.id,), call.id),
                delay_s=self.gw.settings.ring_timeout_s,
                timer_of=leg.id,
            )
            self.store.record(session, call.id, "target_ringing", transfer_id=transfer.id, channels=["phone"])
            legs = [leg]
        transfer.target_leg_id = legs[0].id
        self.store.compare_and_set(
            session, transfer, target_leg_id=legs[0].id, offered_at=transfer.offered_at or utcnow()
        )
        if all(leg_.kind == "browser" for leg_ in legs):
            self.apply(session, transfer, "target_dialed")

    # ---------------------------------------------------------- transitions
    def apply(self, session: Session, transfer: Transfer, event: str, **changes: Any) -> bool:
        """Offer an event; True if the state changed. Terminal states clear the active-call lock."""
        was = transfer.state
        try:
            outcome = self.store.transition(session, transfer, T.TRANSFER, event, **changes)
        except IllegalTransition:
            return False
        if outcome.changed:
            extra = {}
            if T.TRANSFER.is_terminal(outcome.state):
                self.store.compare_and_set(session, transfer, active_call_id=None, ended_at=utcnow())
                if was == T.CONFERENCED:  # the introduction is over, however it ended
                    self.store.cancel_timers(session, J.IntroTimeout.kind, transfer.id)
                extra["reason"] = transfer.end_reason
            self.store.record(session, transfer.call_id, f"transfer_{outcome.state}", transfer_id=transfer.id, **extra)
        return outcome.changed

    def fresh(self, session: Session, transfer_id: str | None) -> Transfer | None:
        return session.get(Transfer, transfer_id, populate_existing=True) if transfer_id else None

    # -------------------------------------------------------------- moves
    def connect_caller(self, session: Session, transfer: Transfer) -> None:
        self.apply(session, transfer, "connect")
        call = existing(session, Call, transfer.call_id, fresh=True)
        self.bridge_caller(session, call, transfer.consult_room, transfer)

    def bridge_caller(self, session: Session, call: Call, room: str, transfer: Transfer | None) -> None:
        """Caller from hold into ``room`` (the old room is closed once nobody needs it)."""
        if call.state == C.ENDED:
            return
        old_room = call.room
        if call.state == C.ON_HOLD:
            self.store.transition(session, call, C.CALL, "rebridge")
        self.routing.send_caller_to_bridge(session, call, room=room)
        self.store.record(session, call.id, "caller_bridging", transfer_id=transfer.id if transfer else None, room=room)
        if old_room != room:
            self.store.enqueue(session, J.DeleteRoom(old_room, call.id), dedupe_key=f"delete:{old_room}")

    def drop_source(self, session: Session, transfer: Transfer, reason: str) -> None:
        if not self.apply(session, transfer, "source_left", end_reason=reason):
            return
        for leg in session.execute(
            select(Leg).where(
                Leg.transfer_id == transfer.id,
                Leg.agent_id == transfer.source_agent_id,
                Leg.state.in_((L.ACCEPTED, L.JOINED)),
            )
        ).scalars():
            self.legs.end_leg(session, leg, "cancel", reason)
        call = existing(session, Call, transfer.call_id, fresh=True)
        target = session.get(Leg, transfer.target_leg_id) if transfer.target_leg_id else None
        joined_target = (
            session.execute(
                select(Leg).where(
                    Leg.transfer_id == transfer.id,
                    Leg.state == L.JOINED,
                    (Leg.agent_id != transfer.source_agent_id) | Leg.agent_id.is_(None),
                )
            )
            .scalars()
            .first()
        )
        owner_leg = joined_target or target
        owner = owner_leg.agent_id if owner_leg else None
        self.store.compare_and_set(session, call, agent_id=owner)
        self.store.record(
            session,
            call.id,
            "call_owner_changed",
            transfer_id=transfer.id,
            agent_id=owner,
            target=agent_rules.mask_phone(transfer.target_number) if not owner else None,
        )

    def return_caller(self, session: Session, transfer: Transfer) -> None:
        """After a failed or cancelled transfer: B's legs end; the caller goes back to A, or to routing."""
        for leg in session.execute(
            select(Leg).where(Leg.transfer_id == transfer.id, Leg.state.in_(LIVE_LEG_STATES))
        ).scalars():
            if leg.agent_id != transfer.source_agent_id:
                self.legs.end_leg(session, leg, "cancel", f"transfer {transfer.state}")
        call = session.get(Call, transfer.call_id, populate_existing=True)
        if call is None or call.state == C.ENDED:
            return
        source = (
            session.execute(
                select(Leg).where(
                    Leg.transfer_id == transfer.id,
                    Leg.agent_id == transfer.source_agent_id,
                    Leg.state.in_((L.ACCEPTED, L.JOINED)),
                )
            )
            .scalars()
            .first()
        )
        if source is None:  # the caller was never held long enough for A to move: A is still in the old room
            source = (
                session.execute(select(Leg).where(Leg.id == transfer.source_leg_id, Leg.state == L.JOINED))
                .scalars()
                .first()
            )
        self.store.record(
            session,
            call.id,
            "caller_returning",
            transfer_id=transfer.id,
            to="agent A" if source else "routing",
            reason=transfer.end_reason,
        )
        if source is not None:
            self.bridge_caller(session, call, source.room, transfer)
            # A's browser may be gone (closed, crashed): if A is not back with the caller within a
            # ring's time, the caller is routed again rather than left ringing into voicemail.
            self.store.enqueue(
                session,
                J.ReturnTimeout(call.id, source.id, transfer.id),
                delay_s=self.gw.settings.ring_timeout_s,
                timer_of=transfer.id,
            )
            return
        self.route_held_caller(session, call, transfer.consult_room, prefer=transfer.source_agent_id)

    def reroute_returned_caller(self, session: Session, call: Call, source_leg: Leg, transfer_id: str) -> None:
        """The caller was sent back to A after a failed transfer and A never came back (no browser
        in the room): A is set to Not responding, and the caller goes on hold and is routed again,
        ahead of first-time callers if they have to wait in line."""
        self.store.record(
            session, call.id, "agent_not_back", transfer_id=transfer_id, agent_id=source_leg.agent_id, room=call.room
        )
        self.store.transition(session, call, C.CALL, "hold")
        self.store.compare_and_set(session, call, caller_identity=None, agent_id=None)
        if source_leg.state in LIVE_LEG_STATES:
            self.legs.end_leg(session, source_leg, "cancel", "not back after the transfer", not_responding=True)
        verdict = self.routing.route(session, call, room=call.room, priority=Q.PRIORITY_TRANSFER)
        if verdict == "nobody":
            self.routing.to_voicemail(session, call, "nobody available after the transfer")
            return
        self.store.record(session, call.id, "caller_rerouted", to="queue" if verdict == "queued" else "agent")
        self.store.enqueue(session, J.RedirectCaller(call.id, Dest.QUEUE if verdict == "queued" else Dest.HOLD))

    def route_held_caller(self, session: Session, call: Call, room: str, prefer: str | None = None) -> None:
        """The caller stays on hold while the next agent is rung; bridged when that agent joins."""
        self.store.compare_and_set(session, call, room=room, caller_identity=None, agent_id=None)
        if prefer:
            agent = session.get(Agent, prefer, populate_existing=True)
            if agent is not None and self.legs.reserve_agent(session, agent):
                self.legs.ring_agent(session, call, agent, room=room)
                return
        if not self.routing.ring_next_agent(session, call, room=room):
            self.routing.to_voicemail(session, call, "no agent after transfer")
