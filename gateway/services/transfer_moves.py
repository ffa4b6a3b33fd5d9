"""The moves of a warm transfer: the caller between hold and rooms, A into the consult room,
B rung, A dropped, the caller returned to A or to routing. ``apply`` offers an event to the
transfer's state machine (``domain/transfers.py``); the process manager (``transfer_events``)
and the agents' requests (``transfers``) decide which move follows which event.
"""

from __future__ import annotations

from typing import Any

from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Agent, Call, Leg, Transfer, utcnow
from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.domain import transfers as T
from gateway.domain.machine import IllegalTransition
from gateway.services import job_types as J
from gateway.services.legs import Legs, dial_job
from gateway.services.ports import Dest, Gateway
from gateway.services.routing import Routing
from gateway.services.uow import UnitOfWork


class TransferMoves:
    def __init__(self, gw: Gateway, legs: Legs, routing: Routing):
        self.gw, self.legs, self.routing = gw, legs, routing

    def move_source_to_consult(self, uow: UnitOfWork, transfer: Transfer, source_leg: Leg) -> None:
        """A leaves the caller's room for the private consult room (a fresh leg there)."""
        uow.transition(source_leg, L.LEG, "leave", end_reason="moved to consult room", ended_at=utcnow())
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
        uow.legs.add(consult)
        if consult.kind == "phone":
            uow.jobs.add(J.RedirectLeg(consult.id, Dest.LEG_BRIDGE))
        elif self.gw.settings.use_move_participant:
            # LiveKit Cloud only: move A's media session instead of A reconnecting with a new token.
            uow.jobs.add(
                J.MoveParticipant(source_leg.room, source_leg.identity or "", transfer.consult_room, transfer.call_id),
            )
        else:
            uow.jobs.add(J.RemoveParticipant(source_leg.room, source_leg.identity or "", transfer.call_id))
        uow.timeline.record(
            transfer.call_id,
            "consult_room_ready",
            transfer_id=transfer.id,
            agent_id=consult.agent_id,
            room=transfer.consult_room,
            channel=consult.kind,
        )

    def reach_target(self, uow: UnitOfWork, transfer: Transfer, call: Call, target: Agent | None) -> None:
        if target is not None:
            self.legs.reserve_agent(uow, target)
            legs = self.legs.ring_agent(uow, call, target, room=transfer.consult_room, transfer_id=transfer.id)
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
            uow.legs.add(leg)
            uow.jobs.add(dial_job(leg))
            uow.jobs.add(
                J.RingTimeout((leg.id,), call.id),
                delay_s=self.gw.settings.ring_timeout_s,
                timer_of=leg.id,
            )
            uow.timeline.record(call.id, "target_ringing", transfer_id=transfer.id, channels=["phone"])
            legs = [leg]
        transfer.target_leg_id = legs[0].id
        uow.compare_and_set(transfer, target_leg_id=legs[0].id, offered_at=transfer.offered_at or utcnow())
        if all(leg_.kind == "browser" for leg_ in legs):
            self.apply(uow, transfer, "target_dialed")

    # ---------------------------------------------------------- transitions
    def apply(self, uow: UnitOfWork, transfer: Transfer, event: str, **changes: Any) -> bool:
        """Offer an event; True if the state changed. Terminal states clear the active-call lock."""
        was = transfer.state
        try:
            outcome = uow.transition(transfer, T.TRANSFER, event, **changes)
        except IllegalTransition:
            return False
        if outcome.changed:
            extra = {}
            if T.TRANSFER.is_terminal(outcome.state):
                uow.compare_and_set(transfer, active_call_id=None, ended_at=utcnow())
                if was == T.CONFERENCED:  # the introduction is over, however it ended
                    uow.jobs.cancel_timers(J.IntroTimeout.kind, transfer.id)
                extra["reason"] = transfer.end_reason
            uow.timeline.record(transfer.call_id, f"transfer_{outcome.state}", transfer_id=transfer.id, **extra)
        return outcome.changed

    def fresh(self, uow: UnitOfWork, transfer_id: str | None) -> Transfer | None:
        return uow.transfers.get(transfer_id, fresh=True) if transfer_id else None

    @staticmethod
    def call_of(uow: UnitOfWork, transfer: Transfer) -> Call:
        """The transfer's call, read again (rows are never deleted while a call is live)."""
        call = uow.calls.get(transfer.call_id, fresh=True)
        if call is None:
            raise LookupError(f"Call {transfer.call_id!r} is missing")
        return call

    @staticmethod
    def source_legs(uow: UnitOfWork, transfer: Transfer) -> list[Leg]:
        """A's accepted or joined legs of the transfer (in the consult room)."""
        legs = uow.legs.of_transfer(transfer.id, (L.ACCEPTED, L.JOINED))
        return [leg for leg in legs if leg.agent_id == transfer.source_agent_id]

    # -------------------------------------------------------------- moves
    def connect_caller(self, uow: UnitOfWork, transfer: Transfer) -> None:
        self.apply(uow, transfer, "connect")
        call = self.call_of(uow, transfer)
        self.bridge_caller(uow, call, transfer.consult_room, transfer)

    def bridge_caller(self, uow: UnitOfWork, call: Call, room: str, transfer: Transfer | None) -> None:
        """Caller from hold into ``room`` (the old room is closed once nobody needs it)."""
        if call.state == C.ENDED:
            return
        old_room = call.room
        if call.state == C.ON_HOLD:
            uow.transition(call, C.CALL, "rebridge")
        self.routing.send_caller_to_bridge(uow, call, room=room)
        uow.timeline.record(call.id, "caller_bridging", transfer_id=transfer.id if transfer else None, room=room)
        if old_room != room:
            uow.jobs.add(J.DeleteRoom(old_room, call.id), dedupe_key=f"delete:{old_room}")

    def drop_source(self, uow: UnitOfWork, transfer: Transfer, reason: str) -> None:
        if not self.apply(uow, transfer, "source_left", end_reason=reason):
            return
        for leg in self.source_legs(uow, transfer):
            self.legs.end_leg(uow, leg, "cancel", reason)
        call = self.call_of(uow, transfer)
        target = uow.legs.get(transfer.target_leg_id) if transfer.target_leg_id else None
        joined = uow.legs.of_transfer(transfer.id, [L.JOINED])
        joined_target = next((leg for leg in joined if leg.agent_id != transfer.source_agent_id), None)
        owner_leg = joined_target or target
        owner = owner_leg.agent_id if owner_leg else None
        uow.compare_and_set(call, agent_id=owner)
        uow.timeline.record(
            call.id,
            "call_owner_changed",
            transfer_id=transfer.id,
            agent_id=owner,
            target=agent_rules.mask_phone(transfer.target_number) if not owner else None,
        )

    def return_caller(self, uow: UnitOfWork, transfer: Transfer) -> None:
        """After a failed or cancelled transfer: B's legs end; the caller goes back to A, or to routing."""
        for leg in uow.legs.of_transfer(transfer.id, L.LIVE):
            if leg.agent_id != transfer.source_agent_id:
                self.legs.end_leg(uow, leg, "cancel", f"transfer {transfer.state}")
        call = uow.calls.get(transfer.call_id, fresh=True)
        if call is None or call.state == C.ENDED:
            return
        source = next(iter(self.source_legs(uow, transfer)), None)
        if source is None and transfer.source_leg_id:
            # The caller was never held long enough for A to move: A is still in the old room.
            first = uow.legs.get(transfer.source_leg_id)
            source = first if first is not None and first.state == L.JOINED else None
        uow.timeline.record(
            call.id,
            "caller_returning",
            transfer_id=transfer.id,
            to="agent A" if source else "routing",
            reason=transfer.end_reason,
        )
        if source is not None:
            self.bridge_caller(uow, call, source.room, transfer)
            # A's browser may be gone (closed, crashed): if A is not back with the caller within a
            # ring's time, the caller is routed again rather than left ringing into voicemail.
            uow.jobs.add(
                J.ReturnTimeout(call.id, source.id, transfer.id),
                delay_s=self.gw.settings.ring_timeout_s,
                timer_of=transfer.id,
            )
            return
        self.route_held_caller(uow, call, transfer.consult_room, prefer=transfer.source_agent_id)

    def reroute_returned_caller(self, uow: UnitOfWork, call: Call, source_leg: Leg, transfer_id: str) -> None:
        """The caller was sent back to A after a failed transfer and A never came back (no browser
        in the room): A is set to Not responding, and the caller goes on hold and is routed again,
        ahead of first-time callers if they have to wait in line."""
        uow.timeline.record(
            call.id, "agent_not_back", transfer_id=transfer_id, agent_id=source_leg.agent_id, room=call.room
        )
        uow.transition(call, C.CALL, "hold")
        uow.compare_and_set(call, caller_identity=None, agent_id=None)
        if source_leg.state in L.LIVE:
            self.legs.end_leg(uow, source_leg, "cancel", "not back after the transfer", not_responding=True)
        verdict = self.routing.route(uow, call, room=call.room, priority=Q.PRIORITY_TRANSFER)
        if verdict == "nobody":
            self.routing.to_voicemail(uow, call, "nobody available after the transfer")
            return
        uow.timeline.record(call.id, "caller_rerouted", to="queue" if verdict == "queued" else "agent")
        uow.jobs.add(J.RedirectCaller(call.id, Dest.QUEUE if verdict == "queued" else Dest.HOLD))

    def route_held_caller(self, uow: UnitOfWork, call: Call, room: str, prefer: str | None = None) -> None:
        """The caller stays on hold while the next agent is rung; bridged when that agent joins."""
        uow.compare_and_set(call, room=room, caller_identity=None, agent_id=None)
        if prefer:
            agent = uow.agents.get(prefer, fresh=True)
            if agent is not None and self.legs.reserve_agent(uow, agent):
                self.legs.ring_agent(uow, call, agent, room=room)
                return
        if not self.routing.ring_next_agent(uow, call, room=room):
            self.routing.to_voicemail(uow, call, "no agent after transfer")
