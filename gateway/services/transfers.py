"""The warm-transfer process manager.

Reacts to events (agent clicks, leg answers, participants joining or leaving, timers)
with transitions of the transfer state machine and with jobs that move the caller and
the agents between hold and rooms. Every ending keeps the caller on the line: on hold,
back with A, with B, or back in routing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import twiml
from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Agent, Call, Leg, Message, Note, TranscriptLine, Transfer, utcnow
from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import summary as S
from gateway.domain import transfers as T
from gateway.domain.machine import IllegalTransition
from gateway.services.calls import CallService, dial_payload
from gateway.services.ports import Gateway

log = logging.getLogger(__name__)


class TransferError(Exception):
    """A request the transfer rules refuse; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class TransferService:
    def __init__(self, gw: Gateway, calls: CallService):
        self.gw, self.calls, self.store = gw, calls, gw.store

    # ------------------------------------------------------------ queries
    def involves(self, session: Session, leg: Leg) -> bool:
        transfer = self.calls.active_transfer(session, leg.call_id)
        return transfer is not None and leg.agent_id == transfer.source_agent_id

    def get(self, transfer_id: str) -> Transfer | None:
        return self.store.read(lambda s: s.get(Transfer, transfer_id))

    # ---------------------------------------------------------- initiate
    def initiate(
        self,
        *,
        agent_id: str,
        call_id: str,
        target_agent_id: str | None,
        target_number: str | None,
        mode: str,
        notes: str | None,
    ) -> Transfer:
        if mode not in ("warm", "cold"):
            raise TransferError(400, "mode must be warm or cold")
        if bool(target_agent_id) == bool(target_number):
            raise TransferError(400, "give exactly one target: target_agent_id or target_number")
        if target_number and not agent_rules.E164.match(target_number):
            raise TransferError(400, f"target_number {target_number!r} is not an E.164 number")

        def work(session: Session) -> Transfer:
            # One round trip: the call, A's leg in its room, and any transfer already active.
            found = session.execute(
                select(Call, Leg, Transfer.id)
                .where(Call.id == call_id)
                .outerjoin(
                    Leg,
                    (Leg.call_id == Call.id)
                    & (Leg.agent_id == agent_id)
                    & (Leg.room == Call.room)
                    & (Leg.state == L.JOINED),
                )
                .outerjoin(Transfer, Transfer.active_call_id == Call.id)
                .limit(1)
            ).first()
            if found is None:
                raise TransferError(404, "unknown call")
            call, source_leg, active_transfer_id = found
            if call.agent_id != agent_id:
                raise TransferError(403, "only the agent currently on this call may transfer it")
            if active_transfer_id is not None:
                raise TransferError(409, "a transfer is already in progress for this call")
            if source_leg is None:
                raise TransferError(409, "you are not connected to this call's room")
            if call.state != C.CONNECTED:
                raise TransferError(409, f"the call is {call.state}, not connected")
            target = None
            if target_agent_id:
                target = session.get(Agent, target_agent_id, populate_existing=True)
                if target is None:
                    raise TransferError(404, "unknown target agent")
                if target.id == agent_id:
                    raise TransferError(400, "cannot transfer to yourself")
                if target.status != agent_rules.AVAILABLE:
                    raise TransferError(409, f"{target.name} is {target.status}")
            transfer = Transfer(
                id=new_id("xfer"),
                call_id=call.id,
                source_agent_id=agent_id,
                source_leg_id=source_leg.id,
                target_agent_id=target_agent_id,
                target_number=target_number,
                mode=mode,
                state=T.INITIATED,
                active_call_id=call.id,
                consult_room=self.gw.room_name("x" + new_id("")[1:]),
                notes=notes,
            )
            # Inserted with the rest at commit, where the unique active_call_id refuses a concurrent
            # second transfer (IntegrityError below): until then its changes are plain attributes.
            session.add(transfer)
            if notes:
                session.add(Note(call_id=call.id, agent_id=agent_id, text=notes))
            self.store.record(
                session,
                call.id,
                "transfer_initiated",
                transfer_id=transfer.id,
                agent_id=agent_id,
                mode=mode,
                target=target_agent_id or agent_rules.mask_phone(target_number),
            )
            # Summary first: it runs while B is being reached, never after.
            self.store.enqueue(session, "summarize", {"transfer_id": transfer.id})
            self.store.enqueue(
                session,
                "summary_deadline",
                {"transfer_id": transfer.id},
                delay_s=self.gw.settings.summary_deadline_s,
                timer_of=transfer.id,
            )
            self.store.transition(session, call, C.CALL, "hold")
            self.store.enqueue(session, "hold_caller", {"call_id": call.id, "transfer_id": transfer.id})
            self.store.enqueue(
                session, "create_room", {"call_id": call.id, "room": transfer.consult_room, "transfer_id": transfer.id}
            )
            # A stays with the caller until the caller is really on hold (see on_caller_held):
            # if Twilio cannot put the caller on hold, nobody has left them alone.
            self._reach_target(session, transfer, call, target)
            return transfer

        try:
            return self.store.run(work)
        except IntegrityError:
            raise TransferError(409, "a transfer is already in progress for this call") from None

    def _move_source_to_consult(self, session: Session, transfer: Transfer, source_leg: Leg) -> None:
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
            self.store.enqueue(session, "redirect_leg", {"leg_id": consult.id, "path": "/twilio/leg/bridge"})
        elif self.gw.settings.use_move_participant:
            # LiveKit Cloud only: move A's media session instead of A reconnecting with a new token.
            self.store.enqueue(
                session,
                "move_participant",
                {
                    "room": source_leg.room,
                    "identity": source_leg.identity,
                    "destination": transfer.consult_room,
                    "call_id": transfer.call_id,
                },
            )
        else:
            self.store.enqueue(
                session,
                "remove_participant",
                {"room": source_leg.room, "identity": source_leg.identity, "call_id": transfer.call_id},
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

    def _reach_target(self, session: Session, transfer: Transfer, call: Call, target: Agent | None) -> None:
        if target is not None:
            self.calls.reserve_agent(session, target)
            legs = self.calls.ring_agent(session, call, target, room=transfer.consult_room, transfer_id=transfer.id)
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
            self.store.enqueue(session, "dial_leg", dial_payload(leg))
            self.store.enqueue(
                session,
                "ring_timeout",
                {"leg_ids": [leg.id], "call_id": call.id},
                delay_s=self.gw.settings.ring_timeout_s,
                timer_of=leg.id,
            )
            self.store.record(session, call.id, "target_ringing", transfer_id=transfer.id, channels=["phone"])
            legs = [leg]
        transfer.target_leg_id = legs[0].id
        self.store.compare_and_set(session, transfer, target_leg_id=legs[0].id)
        if all(leg_.kind == "browser" for leg_ in legs):
            self.apply(session, transfer, "target_dialed")

    # ---------------------------------------------------------- transitions
    def apply(self, session: Session, transfer: Transfer, event: str, **changes) -> bool:
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
                    self.store.cancel_timers(session, "intro_timeout", transfer.id)
                extra["reason"] = transfer.end_reason
            self.store.record(session, transfer.call_id, f"transfer_{outcome.state}", transfer_id=transfer.id, **extra)
        return outcome.changed

    def _fresh(self, session: Session, transfer_id: str | None) -> Transfer | None:
        return session.get(Transfer, transfer_id, populate_existing=True) if transfer_id else None

    # ------------------------------------------------------- agent requests
    def _owned(self, session: Session, transfer_id: str, agent_id: str) -> Transfer:
        transfer = self._fresh(session, transfer_id)
        if transfer is None:
            raise TransferError(404, "unknown transfer")
        if transfer.source_agent_id != agent_id:
            raise TransferError(403, "only the transferring agent may do this")
        return transfer

    def complete(self, transfer_id: str, agent_id: str) -> Transfer:
        """A says connect: bridge the caller from hold into the room where A and B are."""

        def work(session: Session) -> Transfer:
            transfer = self._owned(session, transfer_id, agent_id)
            if transfer.state == T.CONFERENCED:
                return transfer  # double click
            joined = session.execute(select(Leg).where(Leg.transfer_id == transfer.id, Leg.state == L.JOINED)).scalars()
            target_joined = [leg_ for leg_ in joined if leg_.agent_id != transfer.source_agent_id]
            if transfer.state != T.TARGET_ACCEPTED or not target_joined:
                raise TransferError(
                    409,
                    f"cannot connect now: transfer is {transfer.state}"
                    + ("" if target_joined else ", and B has not joined the consult room"),
                )
            self._connect_caller(session, transfer)
            self.store.enqueue(
                session,
                "intro_timeout",
                {"transfer_id": transfer.id},
                delay_s=self.gw.settings.intro_timeout_s,
                timer_of=transfer.id,
            )
            return transfer

        return self.store.run(work)

    def leave(self, transfer_id: str, agent_id: str) -> Transfer:
        def work(session: Session) -> Transfer:
            transfer = self._owned(session, transfer_id, agent_id)
            if transfer.state == T.COMPLETED:
                return transfer
            if transfer.state != T.CONFERENCED:
                raise TransferError(409, f"cannot leave now: transfer is {transfer.state}")
            self._drop_source(session, transfer, "left after introduction")
            return transfer

        return self.store.run(work)

    def cancel(self, transfer_id: str, agent_id: str) -> Transfer:
        def work(session: Session) -> Transfer:
            transfer = self._owned(session, transfer_id, agent_id)
            if transfer.state == T.CANCELLED:
                return transfer
            if not self.apply(session, transfer, "cancel", end_reason="cancelled by agent"):
                raise TransferError(409, f"cannot cancel now: transfer is {transfer.state}")
            self._return_caller(session, transfer)
            return transfer

        return self.store.run(work)

    # -------------------------------------------------------------- moves
    def _connect_caller(self, session: Session, transfer: Transfer) -> None:
        self.apply(session, transfer, "connect")
        call = session.get(Call, transfer.call_id, populate_existing=True)
        self._bridge_caller(session, call, transfer.consult_room, transfer)

    def _bridge_caller(self, session: Session, call: Call, room: str, transfer: Transfer | None) -> None:
        """Caller from hold into ``room`` (the old room is closed once nobody needs it)."""
        if call.state == C.ENDED:
            return
        old_room = call.room
        if call.state == C.ON_HOLD:
            self.store.transition(session, call, C.CALL, "rebridge")
        self.calls.send_caller_to_bridge(session, call, room=room)
        self.store.record(session, call.id, "caller_bridging", transfer_id=transfer.id if transfer else None, room=room)
        if old_room != room:
            self.store.enqueue(
                session, "delete_room", {"room": old_room, "call_id": call.id}, dedupe_key=f"delete:{old_room}"
            )

    def _drop_source(self, session: Session, transfer: Transfer, reason: str) -> None:
        if not self.apply(session, transfer, "source_left", end_reason=reason):
            return
        for leg in session.execute(
            select(Leg).where(
                Leg.transfer_id == transfer.id,
                Leg.agent_id == transfer.source_agent_id,
                Leg.state.in_((L.ACCEPTED, L.JOINED)),
            )
        ).scalars():
            self.calls.end_leg(session, leg, "cancel", reason)
        call = session.get(Call, transfer.call_id, populate_existing=True)
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
        owner = (joined_target or target).agent_id if (joined_target or target) else None
        self.store.compare_and_set(session, call, agent_id=owner)
        self.store.record(
            session,
            call.id,
            "call_owner_changed",
            transfer_id=transfer.id,
            agent_id=owner,
            target=agent_rules.mask_phone(transfer.target_number) if not owner else None,
        )

    def _return_caller(self, session: Session, transfer: Transfer) -> None:
        """After a failed or cancelled transfer: B's legs end; the caller goes back to A, or to routing."""
        for leg in session.execute(
            select(Leg).where(Leg.transfer_id == transfer.id, Leg.state.in_(self.calls_live()))
        ).scalars():
            if leg.agent_id != transfer.source_agent_id:
                self.calls.end_leg(session, leg, "cancel", f"transfer {transfer.state}")
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
            self._bridge_caller(session, call, source.room, transfer)
            return
        self._route_held_caller(session, call, transfer.consult_room, prefer=transfer.source_agent_id)

    def _route_held_caller(self, session: Session, call: Call, room: str, prefer: str | None = None) -> None:
        """The caller stays on hold while the next agent is rung; bridged when that agent joins."""
        self.store.compare_and_set(session, call, room=room, caller_identity=None, agent_id=None)
        if prefer:
            agent = session.get(Agent, prefer, populate_existing=True)
            if agent is not None and self.calls.reserve_agent(session, agent):
                self.calls.ring_agent(session, call, agent, room=room)
                return
        if not self.calls.ring_next_agent(session, call, room=room):
            self.calls.to_voicemail(session, call, "no agent after transfer")

    @staticmethod
    def calls_live():
        return (L.RINGING, L.ACCEPTED, L.JOINED)

    # ------------------------------------------------------------ events
    def on_target_accepted(self, session: Session, leg: Leg) -> None:
        transfer = self._fresh(session, leg.transfer_id)
        if transfer is None:
            return
        if transfer.state in (T.INITIATED, T.CONSULTING):
            self.apply(session, transfer, "target_dialed")
        self.apply(session, transfer, "target_accepted")
        if leg.agent_id:
            self.store.compare_and_set(session, transfer, target_leg_id=leg.id)

    def on_target_joined(self, session: Session, leg: Leg) -> None:
        transfer = self._fresh(session, leg.transfer_id)
        if transfer is None or leg.agent_id == transfer.source_agent_id:
            return
        if transfer.state in (T.INITIATED, T.CONSULTING, T.TARGET_RINGING):
            self.on_target_accepted(session, leg)
        if transfer.mode == "cold" and transfer.state == T.TARGET_ACCEPTED:
            self._connect_caller(session, transfer)
            self._drop_source(session, transfer, "cold transfer")

    def on_target_failed(self, session: Session, leg: Leg) -> None:
        transfer = self._fresh(session, leg.transfer_id)
        if transfer is None:
            return
        if transfer.state in (T.INITIATED, T.CONSULTING):
            # B's phone may fail before our own "dialled" bookkeeping lands: same outcome.
            self.apply(session, transfer, "target_dialed")
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
        if self.apply(session, transfer, event, end_reason=reason):
            self._return_caller(session, transfer)

    def on_agent_left(self, session: Session, leg: Leg) -> bool:
        """An agent involved in a transfer left. True if the transfer handled it."""
        transfer = self._fresh(session, leg.transfer_id) or self.calls.active_transfer(session, leg.call_id)
        if transfer is None or T.TRANSFER.is_terminal(transfer.state):
            return False
        if leg.agent_id == transfer.source_agent_id and (
            leg.transfer_id == transfer.id or leg.id == transfer.source_leg_id
        ):
            if transfer.state == T.CONFERENCED:
                self._drop_source(session, transfer, "A left")
            elif transfer.state == T.TARGET_ACCEPTED:
                # A hung up after B accepted: the caller goes to B without A.
                self._connect_caller(session, transfer)
                self._drop_source(session, transfer, "A hung up after B accepted")
            else:
                # A hung up before B accepted: withdraw B's offer, the caller goes back to routing.
                self.apply(session, transfer, "cancel", end_reason="A hung up before B accepted")
                for other in session.execute(
                    select(Leg).where(Leg.transfer_id == transfer.id, Leg.state.in_(self.calls_live()))
                ).scalars():
                    self.calls.end_leg(session, other, "cancel", "offer withdrawn: A hung up")
                call = session.get(Call, transfer.call_id, populate_existing=True)
                if call is not None and call.state != C.ENDED:
                    self._route_held_caller(session, call, transfer.consult_room)
            return True
        if leg.transfer_id == transfer.id and leg.agent_id != transfer.source_agent_id:
            if transfer.state == T.CONFERENCED:
                self.apply(session, transfer, "fail", end_reason="B left during the introduction")
                call = session.get(Call, transfer.call_id, populate_existing=True)
                self.store.compare_and_set(session, call, agent_id=transfer.source_agent_id)
            elif transfer.state == T.TARGET_ACCEPTED and self.apply(
                session, transfer, "fail", end_reason="B left the consult room"
            ):
                self._return_caller(session, transfer)
            return True
        return leg.transfer_id is None and leg.agent_id == transfer.source_agent_id

    def on_caller_hangup(self, session: Session, transfer: Transfer) -> None:
        self.apply(session, transfer, "caller_hangup", end_reason="caller hung up")

    def intro_timeout(self, transfer_id: str) -> None:
        def work(session: Session) -> None:
            transfer = self._fresh(session, transfer_id)
            if transfer is not None and transfer.state == T.CONFERENCED:
                self._drop_source(session, transfer, "introduction time over")

        self.store.run(work)

    def on_target_dialed(self, leg_id: str) -> None:
        def work(session: Session) -> None:
            leg = session.get(Leg, leg_id)
            transfer = self._fresh(session, leg.transfer_id) if leg else None
            if transfer is not None:
                self.apply(session, transfer, "target_dialed")

        self.store.run(work)

    def on_caller_held(self, transfer_id: str) -> None:
        """The caller hears hold music now: A may leave their room (warm: for the consult room)."""

        def work(session: Session) -> None:
            transfer = self._fresh(session, transfer_id)
            if transfer is None:
                return
            self.store.record(session, transfer.call_id, "caller_on_hold", transfer_id=transfer.id)
            if T.TRANSFER.is_terminal(transfer.state):
                return
            self.apply(session, transfer, "consult_ready")
            source_leg = session.get(Leg, transfer.source_leg_id, populate_existing=True)
            if source_leg is None or source_leg.state != L.JOINED:
                return
            if transfer.mode == "warm":
                self._move_source_to_consult(session, transfer, source_leg)
            else:
                self.calls.end_leg(session, source_leg, "cancel", "cold transfer: A drops once the caller is held")

        self.store.run(work)

    def hold_failed(self, transfer_id: str, reason: str) -> None:
        """Twilio could not put the caller on hold: the transfer fails and the caller stays with A."""

        def work(session: Session) -> None:
            transfer = self._fresh(session, transfer_id)
            if transfer is None or not self.apply(
                session, transfer, "fail", end_reason=f"could not hold the caller: {reason}"
            ):
                return
            for leg in session.execute(
                select(Leg).where(Leg.transfer_id == transfer.id, Leg.state.in_(self.calls_live()))
            ).scalars():
                self.calls.end_leg(session, leg, "cancel", "transfer failed")
            call = session.get(Call, transfer.call_id, populate_existing=True)
            if call is not None and call.state == C.ON_HOLD:
                self.store.transition(session, call, C.CALL, "hold_failed")
                self.store.record(session, call.id, "caller_stays_with_agent", transfer_id=transfer.id)

        self.store.run(work)

    # ------------------------------------------------------------ summary
    def summary_inputs(self, session: Session, call_id: str) -> tuple[dict, list, list]:
        call = session.get(Call, call_id)
        lines = (
            session.execute(select(TranscriptLine).where(TranscriptLine.call_id == call_id).order_by(TranscriptLine.id))
            .scalars()
            .all()
        )
        notes = session.execute(select(Note.text).where(Note.call_id == call_id).order_by(Note.id)).scalars().all()
        agent = session.get(Agent, call.agent_id) if call.agent_id else None
        start = call.connected_at or call.created_at
        facts = {
            "caller_number": agent_rules.mask_phone(call.from_number),
            "minutes_on_call": round((utcnow() - start).total_seconds() / 60, 1),
            "agent": agent.name if agent else None,
        }
        return facts, [(line.speaker, line.text) for line in lines], list(notes)

    def summarize(self, transfer_id: str) -> None:
        """OpenAI within the deadline; the local summary otherwise. First writer wins."""

        def read(session: Session):
            transfer = session.get(Transfer, transfer_id)
            if transfer is None or transfer.summary is not None:
                return None
            return transfer.created_at, self.summary_inputs(session, transfer.call_id)

        got = self.store.read(read)
        if got is None:
            return
        created_at, (facts, transcript, notes) = got
        remaining = self.gw.settings.summary_deadline_s - (utcnow() - created_at).total_seconds()
        summary, source, error = None, "fallback", None
        if self.gw.summarizer is not None and remaining > 0.05:
            try:
                answer = self.gw.summarizer.complete_json(
                    S.build_messages(facts, transcript, notes), timeout_s=remaining
                )
                summary = S.validate(answer)
                source = "openai" if summary else "fallback"
                error = None if summary else "unusable answer"
            except Exception as exc:  # any OpenAI failure: the transfer goes on
                error = getattr(exc, "kind", type(exc).__name__)
                self.gw.extras.get("metrics_provider_error", lambda *a: None)("openai", error)
        if summary is None:
            summary = S.fallback(facts, transcript, notes)
        self.store_summary(transfer_id, summary, source, error)

    def summary_deadline(self, transfer_id: str) -> None:
        def read(session: Session):
            transfer = session.get(Transfer, transfer_id)
            if transfer is None or transfer.summary is not None:
                return None
            return self.summary_inputs(session, transfer.call_id)

        inputs = self.store.read(read)
        if inputs is not None:
            self.store_summary(transfer_id, S.fallback(*inputs), "fallback", "deadline passed")

    def store_summary(self, transfer_id: str, summary: dict, source: str, error: str | None) -> None:
        def work(session: Session) -> None:
            transfer = self._fresh(session, transfer_id)
            if transfer is None or transfer.summary is not None:
                return
            self.store.compare_and_set(session, transfer, summary=summary, summary_source=source)
            self.store.cancel_timers(session, "summary_deadline", transfer.id)
            detail = {"source": source}
            if error:
                detail["openai_error"] = error
            self.store.record(
                session,
                transfer.call_id,
                "summary_ready",
                transfer_id=transfer.id,
                elapsed_ms=int((utcnow() - transfer.created_at).total_seconds() * 1000),
                **detail,
            )
            number = self.target_phone(session, transfer)
            if number and not T.TRANSFER.is_terminal(transfer.state):
                self.store.enqueue(
                    session,
                    "send_sms",
                    {"transfer_id": transfer.id, "to": number},
                    dedupe_key=f"sms:{transfer.id}:{number}",
                )

        self.store.run(work)

    @staticmethod
    def target_phone(session: Session, transfer: Transfer) -> str | None:
        if transfer.target_number:
            return transfer.target_number
        agent = session.get(Agent, transfer.target_agent_id) if transfer.target_agent_id else None
        return agent.phone if agent else None

    def summary_now(self, call_id: str) -> tuple[dict, str]:
        """On demand (seed endpoint): the same inputs and deadline as a transfer's summary."""
        facts, transcript, notes = self.store.read(lambda s: self.summary_inputs(s, call_id))
        if self.gw.summarizer is not None:
            try:
                answer = self.gw.summarizer.complete_json(
                    S.build_messages(facts, transcript, notes), timeout_s=self.gw.settings.summary_deadline_s
                )
                summary = S.validate(answer)
                if summary:
                    return summary, "openai"
            except Exception as exc:
                self.gw.extras.get("metrics_provider_error", lambda *a: None)("openai", getattr(exc, "kind", "error"))
        return S.fallback(facts, transcript, notes), "fallback"

    def resend_sms(self, transfer_id: str, to: str) -> None:
        def work(session: Session) -> None:
            self.store.enqueue(session, "send_sms", {"transfer_id": transfer_id, "to": to})

        self.store.run(work)

    def send_sms(self, transfer_id: str, to: str) -> None:
        def read(session: Session):
            transfer = session.get(Transfer, transfer_id)
            source = session.get(Agent, transfer.source_agent_id) if transfer else None
            return transfer, (source.name if source else "an agent")

        transfer, source_name = self.store.read(read)
        if transfer is None or transfer.summary is None:
            return
        link = self.gw.urls("/console", transfer=transfer.id)
        body = S.sms_body(transfer.summary, source_name, link)
        message_id = new_id("msg")
        try:
            sid = self.gw.telephony.send_sms(to=to, body=body, status_callback=self.gw.urls("/twilio/sms-status"))
            status, error = "sent", None
        except Exception as exc:
            sid, status, error = None, "failed", str(exc)[:200]

        def write(session: Session) -> None:
            session.add(
                Message(id=message_id, transfer_id=transfer_id, to_number=to, body=body, twilio_sid=sid, status=status)
            )
            self.store.record(
                session,
                transfer.call_id,
                "sms_sent" if sid else "sms_failed",
                transfer_id=transfer_id,
                to=agent_rules.mask_phone(to),
                error=error,
            )

        self.store.run(write)

    def whisper_twiml(self, leg: Leg) -> str:
        """B's phone: the summary spoken, then press 1 / 2. Waits briefly if it is not ready yet."""

        def read(session: Session):
            transfer = session.get(Transfer, leg.transfer_id)
            source = session.get(Agent, transfer.source_agent_id) if transfer else None
            return transfer, (source.name if source else "an agent")

        transfer, source_name = self.store.read(read)
        gather_url = self.gw.urls("/twilio/leg/gather", leg=leg.id)
        if transfer is None or T.TRANSFER.is_terminal(transfer.state):
            return twiml.agent_taken("This transfer is no longer needed. Goodbye.")
        if transfer.summary is None:
            waited = utcnow() - transfer.created_at
            if waited < timedelta(seconds=self.gw.settings.summary_deadline_s + 2):
                return twiml.whisper_wait(
                    message=f"Transfer from {source_name}. One moment, preparing the summary.",
                    retry_url=self.gw.urls("/twilio/leg/answer", leg=leg.id, wait=1),
                )
            announcement = f"Transfer from {source_name}."
        else:
            announcement = S.spoken(transfer.summary, source_name)
        return twiml.whisper_offer(announcement=announcement, gather_url=gather_url)
