"""The warm-transfer process manager.

Reacts to events (leg answers and failures, participants joining or leaving, the caller hanging
up, timers and job results) with transitions of the transfer state machine and with moves of
the caller and the agents (``transfer_moves``). Every ending keeps the caller on the line: on
hold, back with A, with B, or back in routing. It implements ``ports.LegOutcomes``, the port
through which the leg, caller and room services report to it. A new transfer ending is a
transition in ``domain/transfers.py`` and a branch here, with a test in
``tests/services/test_transfers.py`` (the unit of work's in-memory twin and the database).
"""

from __future__ import annotations

from gateway.adapters.store.models import Leg, Transfer, utcnow
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import transfers as T
from gateway.services.legs import Legs
from gateway.services.transfer_moves import TransferMoves
from gateway.services.uow import UnitOfWork, UnitsOfWork


class TransferEvents:
    def __init__(self, units: UnitsOfWork, legs: Legs, moves: TransferMoves):
        self.units, self.legs, self.moves = units, legs, moves

    def involves(self, uow: UnitOfWork, leg: Leg) -> bool:
        transfer = uow.transfers.active(leg.call_id)
        return transfer is not None and leg.agent_id == transfer.source_agent_id

    # ------------------------------------------------------------ events
    def on_target_accepted(self, uow: UnitOfWork, leg: Leg) -> None:
        transfer = self.moves.fresh(uow, leg.transfer_id)
        if transfer is None:
            return
        if transfer.state in (T.INITIATED, T.CONSULTING):
            self.moves.apply(uow, transfer, "target_dialed")
        self.moves.apply(uow, transfer, "target_accepted")
        if leg.agent_id:
            uow.compare_and_set(transfer, target_leg_id=leg.id)

    def on_target_joined(self, uow: UnitOfWork, leg: Leg) -> None:
        transfer = self.moves.fresh(uow, leg.transfer_id)
        if transfer is None or leg.agent_id == transfer.source_agent_id:
            return
        if transfer.target_joined_at is None:
            uow.compare_and_set(transfer, target_joined_at=utcnow())
        if transfer.state in (T.INITIATED, T.CONSULTING, T.TARGET_RINGING):
            self.on_target_accepted(uow, leg)
        if transfer.mode == "cold" and transfer.state == T.TARGET_ACCEPTED:
            self.moves.connect_caller(uow, transfer)
            self.moves.drop_source(uow, transfer, "cold transfer")

    def on_target_failed(self, uow: UnitOfWork, leg: Leg) -> None:
        transfer = self.moves.fresh(uow, leg.transfer_id)
        if transfer is None:
            return
        if transfer.state in (T.INITIATED, T.CONSULTING):
            # B's phone may fail before our own "dialled" bookkeeping lands: same outcome.
            self.moves.apply(uow, transfer, "target_dialed")
        if not T.TRANSFER.can(transfer.state, "target_declined"):
            return
        event = "target_declined" if leg.state == L.DECLINED else "target_no_answer"
        reason = {
            "declined by key 2": "B declined",
            "declined in console": "B declined",
            "voicemail answered": "B's voicemail answered",
            "ring timeout": "B did not answer",
            "no key pressed": "B did not accept",
            "phone no-answer": "B did not answer",
            "phone busy": "B was busy",
            "phone failed": "B's phone could not be reached",
        }.get(leg.end_reason or "", f"B: {leg.end_reason}")
        if self.moves.apply(uow, transfer, event, end_reason=reason):
            self.moves.return_caller(uow, transfer)

    def on_agent_left(self, uow: UnitOfWork, leg: Leg) -> bool:
        """An agent involved in a transfer left. True if the transfer handled it."""
        transfer = self.moves.fresh(uow, leg.transfer_id) or uow.transfers.active(leg.call_id)
        if transfer is None or T.TRANSFER.is_terminal(transfer.state):
            return False
        if leg.agent_id == transfer.source_agent_id and (
            leg.transfer_id == transfer.id or leg.id == transfer.source_leg_id
        ):
            if transfer.state == T.TEAM_BUSY:
                # A left while choosing (the caller never left A): the transfer is off, and A's
                # leaving is what it would be without one.
                self.moves.apply(uow, transfer, "cancel", end_reason="A left before choosing")
                return False
            if transfer.state == T.CONFERENCED:
                self.moves.drop_source(uow, transfer, "A left")
            elif transfer.state == T.TARGET_ACCEPTED:
                # A hung up after B accepted: the caller goes to B without A.
                self.moves.connect_caller(uow, transfer)
                self.moves.drop_source(uow, transfer, "A hung up after B accepted")
            else:
                # A hung up before B accepted: withdraw B's offer, the caller goes back to routing.
                self.moves.apply(uow, transfer, "cancel", end_reason="A hung up before B accepted")
                for other in uow.legs.of_transfer(transfer.id, L.LIVE):
                    self.legs.end_leg(uow, other, "cancel", "offer withdrawn: A hung up")
                call = uow.calls.get(transfer.call_id, fresh=True)
                if call is not None and call.state != C.ENDED:
                    self.moves.route_held_caller(uow, call, transfer.consult_room)
            return True
        if leg.transfer_id == transfer.id and leg.agent_id != transfer.source_agent_id:
            if transfer.state == T.CONFERENCED:
                self.moves.apply(uow, transfer, "fail", end_reason="B left during the introduction")
                call = uow.calls.get(transfer.call_id, fresh=True)
                uow.compare_and_set(call, agent_id=transfer.source_agent_id)
            elif transfer.state == T.TARGET_ACCEPTED and self.moves.apply(
                uow, transfer, "fail", end_reason="B left the consult room"
            ):
                self.moves.return_caller(uow, transfer)
            return True
        return leg.transfer_id is None and leg.agent_id == transfer.source_agent_id

    def on_caller_hangup(self, uow: UnitOfWork, transfer: Transfer) -> None:
        self.moves.apply(uow, transfer, "caller_hangup", end_reason="caller hung up")

    def intro_timeout(self, transfer_id: str) -> None:
        def work(uow: UnitOfWork) -> None:
            transfer = self.moves.fresh(uow, transfer_id)
            if transfer is not None and transfer.state == T.CONFERENCED:
                self.moves.drop_source(uow, transfer, "introduction time over")

        self.units.run(work)

    def return_timeout(self, call_id: str, leg_id: str) -> None:
        """The caller went back to A after a failed transfer: is A with them by now?"""

        def work(uow: UnitOfWork) -> None:
            call = uow.calls.get(call_id, fresh=True)
            leg = uow.legs.get(leg_id, fresh=True)
            if call is None or leg is None or call.state != C.BRIDGING or call.room != leg.room:
                return  # connected, ended, or moved on (a new transfer, a hang-up)
            if leg.state == L.JOINED or uow.transfers.active(call_id) is not None:
                return
            self.moves.reroute_returned_caller(uow, call, leg, leg.transfer_id or "")

        self.units.run(work)

    def on_target_dialed(self, leg_id: str) -> None:
        def work(uow: UnitOfWork) -> None:
            leg = uow.legs.get(leg_id)
            transfer = self.moves.fresh(uow, leg.transfer_id) if leg else None
            if transfer is not None:
                self.moves.apply(uow, transfer, "target_dialed")

        self.units.run(work)

    def on_caller_held(self, transfer_id: str) -> None:
        """The caller hears hold music now: A may leave their room (warm: for the consult room)."""

        def work(uow: UnitOfWork) -> None:
            transfer = self.moves.fresh(uow, transfer_id)
            if transfer is None:
                return
            uow.timeline.record(transfer.call_id, "caller_on_hold", transfer_id=transfer.id)
            if T.TRANSFER.is_terminal(transfer.state):
                return
            self.moves.apply(uow, transfer, "consult_ready")
            source_leg = uow.legs.get(transfer.source_leg_id, fresh=True) if transfer.source_leg_id else None
            if source_leg is None or source_leg.state != L.JOINED:
                return
            if transfer.mode == "warm":
                self.moves.move_source_to_consult(uow, transfer, source_leg)
            else:
                self.legs.end_leg(uow, source_leg, "cancel", "cold transfer: A drops once the caller is held")

        self.units.run(work)

    def hold_failed(self, transfer_id: str, reason: str) -> None:
        """Twilio could not put the caller on hold: the transfer fails and the caller stays with A."""

        def work(uow: UnitOfWork) -> None:
            transfer = self.moves.fresh(uow, transfer_id)
            if transfer is None or not self.moves.apply(
                uow, transfer, "fail", end_reason=f"could not hold the caller: {reason}"
            ):
                return
            for leg in uow.legs.of_transfer(transfer.id, L.LIVE):
                self.legs.end_leg(uow, leg, "cancel", "transfer failed")
            call = uow.calls.get(transfer.call_id, fresh=True)
            if call is not None and call.state == C.ON_HOLD:
                uow.transition(call, C.CALL, "hold_failed")
                uow.timeline.record(call.id, "caller_stays_with_agent", transfer_id=transfer.id)

        self.units.run(work)
