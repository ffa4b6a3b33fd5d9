"""Inbound calls: the voice webhook, routing agents, agent legs, and the call's lifecycle.

Webhook-facing functions only read and write the store and enqueue jobs; the jobs
(registered at the bottom) make the provider calls.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import twiml
from gateway.adapters.store import Store
from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Agent, Call, Leg, Transfer, Voicemail, utcnow
from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain.machine import IllegalTransition
from gateway.services.ports import Gateway
from twiml.documents import SipTarget

log = logging.getLogger(__name__)

APOLOGY = "We're sorry, no one is available to take your call right now."
APOLOGY_TECHNICAL = "We're sorry, we are having trouble connecting your call right now."
HOLD_FIRST = "Please hold while we connect you."
REASSURANCE = "Thank you for holding. Your call is important to us; please stay on the line."
ENDED_BY_AGENT = "The agent has ended the call. Thank you for calling. Goodbye."
LIVE_LEG_STATES = (L.RINGING, L.ACCEPTED, L.JOINED)


class CallService:
    def __init__(self, gw: Gateway):
        self.gw = gw
        self.store: Store = gw.store

    # ------------------------------------------------------------ helpers
    def sip_target(self) -> SipTarget:
        s = self.gw.settings
        return SipTarget(host=s.livekit_sip_host, username=s.livekit_sip_username, password=s.livekit_sip_password)

    def bridge_twiml(self, call: Call) -> str:
        urls, s = self.gw.urls, self.gw.settings
        return twiml.bridge_to_room(
            room_token=self.gw.room_token(call.room),
            sip=self.sip_target(),
            action_url=urls("/twilio/dial-action", call=call.id, room=call.room, gen=call.bridge_gen or 0),
            sip_status_url=urls("/twilio/sip-status", call=call.id),
            timeout_s=int(s.queue_timeout_s) + 10,
            headers={"X-GW-Call": call.id},
            transcription_url=urls("/twilio/transcription", call=call.id) if s.transcription_enabled else None,
        )

    def send_caller_to_bridge(self, session: Session, call: Call, room: str | None = None) -> None:
        """Redirect the caller (REST) into ``room`` (default: the call's room) as a new generation."""
        gen = (call.bridge_gen or 0) + 1
        self.store.compare_and_set(session, call, room=room or call.room, caller_identity=None, bridge_gen=gen)
        self.store.enqueue(session, "redirect_caller", {"call_id": call.id, "path": "/twilio/bridge", "gen": gen})

    def redirect_abandoned(self, call_id: str) -> None:
        """Our REST redirect never reached Twilio: a <Dial> ending from now on is real again.
        (The caller is not stuck: a closed room or the hold loop brings them to the current bridge.)"""

        def work(session: Session) -> None:
            call = session.get(Call, call_id, populate_existing=True)
            if call is not None and call.redirecting:
                self.store.compare_and_set(session, call, redirecting=False)

        self.store.run(work)

    def leg_bridge_twiml(self, leg: Leg) -> str:
        urls = self.gw.urls
        return twiml.bridge_to_room(
            room_token=self.gw.room_token(leg.room),
            sip=self.sip_target(),
            action_url=urls("/twilio/leg/dial-action", leg=leg.id),  # (no <Sip> progress: nothing to learn)
            timeout_s=60,
            caller_id=leg.phone,
            headers={"X-GW-Leg": leg.id},
        )

    def hold_twiml(self, call_id: str, first: bool = True, message: str | None = None) -> str:
        return twiml.hold(
            music_url=self.gw.settings.hold_music_url,
            loop_url=self.gw.urls("/twilio/hold", call=call_id, loop=1),
            message=(message or HOLD_FIRST) if first else None,
            reassurance=REASSURANCE,
        )

    def apology_twiml(self, call_id: str | None, technical: bool = False) -> str:
        voicemail = self.gw.settings.voicemail_enabled and call_id
        return twiml.apology(
            message=APOLOGY_TECHNICAL if technical else APOLOGY,
            voicemail_action_url=self.gw.urls("/twilio/voicemail", call=call_id) if voicemail else None,
        )

    @staticmethod
    def call_by_sid(session: Session, sid: str) -> Call | None:
        return session.execute(select(Call).where(Call.twilio_sid == sid)).scalar_one_or_none()

    @staticmethod
    def live_legs(session: Session, call_id: str, *, transfer_id: str | None = "any") -> list[Leg]:
        query = select(Leg).where(Leg.call_id == call_id, Leg.state.in_(LIVE_LEG_STATES))
        if transfer_id != "any":
            query = (
                query.where(Leg.transfer_id == transfer_id) if transfer_id else query.where(Leg.transfer_id.is_(None))
            )
        return list(session.execute(query.order_by(Leg.created_at)).scalars())

    @staticmethod
    def active_transfer(session: Session, call_id: str) -> Transfer | None:
        return session.execute(select(Transfer).where(Transfer.active_call_id == call_id)).scalar_one_or_none()

    # -------------------------------------------------------- voice webhook
    def inbound(self, *, call_sid: str, from_number: str, to_number: str) -> str:
        """Record the call, pick agent A, answer the bridge TwiML. Only database work here."""
        if self.gw.extras.get("livekit_down_until", 0) > utcnow().timestamp():
            # LiveKit failed moments ago: don't send the caller into a bridge that cannot work.
            def down(session: Session) -> str:
                call = self.call_by_sid(session, call_sid) or self._new_call(session, call_sid, from_number, to_number)
                if call.state == C.BRIDGING:
                    self.store.transition(session, call, C.CALL, "no_agent", end_reason="livekit_unavailable")
                    self.store.record(session, call.id, "livekit_unavailable")
                return call.id

            return self.apology_twiml(self.store.run(down), technical=True)

        def work(session: Session, retried: bool) -> tuple[Call, bool]:
            # A new CallSid is the rule: insert at once, and look for an earlier copy of this
            # webhook only when the unique sid refused the insert (a retry or a duplicate).
            call = self.call_by_sid(session, call_sid) if retried else None
            if call is not None:
                return call, False  # Twilio retried the webhook: same answer, nothing new
            call = self._new_call(session, call_sid, from_number, to_number)
            # Insert the call before touching agents: a duplicate webhook racing in on another
            # worker now waits on the unique sid and then reads this call, instead of finding
            # the agent row locked by us, storing a "no agent" call and winning the commit.
            session.flush()
            # (No CreateRoom: the dispatch rule makes the room, configured, when the caller's SIP leg arrives.)
            if not self.ring_next_agent(session, call, tried=()):
                self.store.transition(session, call, C.CALL, "no_agent", end_reason="no_agent")
            else:
                self.store.enqueue(
                    session,
                    "queue_timeout",
                    {"call_id": call.id},
                    delay_s=self.gw.settings.queue_timeout_s,
                    timer_of=call.id,
                )
            return call, True

        try:
            call, _ = self.store.run(lambda session: work(session, retried=False))
        except IntegrityError:
            # This CallSid is stored already (a retried webhook, or a copy that raced in on another
            # worker and committed first): answer the same.
            call, _ = self.store.run(lambda session: work(session, retried=True))
        if call.state == C.VOICEMAIL:
            return self.apology_twiml(call.id)
        if call.state == C.ENDED:
            return twiml.goodbye()
        return self.bridge_twiml(call)

    def _new_call(self, session: Session, sid: str, from_number: str, to_number: str) -> Call:
        call = Call(
            id=new_id("call"),
            twilio_sid=sid,
            from_number=from_number,
            to_number=to_number,
            room=self.gw.room_name(sid),
            state=C.BRIDGING,
        )
        session.add(call)
        self.store.record(session, call.id, "call_received", caller=agent_rules.mask_phone(from_number))
        return call

    # --------------------------------------------------------------- routing
    def ring_next_agent(
        self, session: Session, call: Call, room: str | None = None, tried: Iterable[str] | None = None
    ) -> bool:
        """Ring the longest-idle available agent not yet tried on this call; False if none.

        Candidates are read in idle order with FOR UPDATE SKIP LOCKED (on Postgres), so calls
        arriving together are each given a different agent instead of fighting over one row.
        """
        if tried is None:
            tried = session.execute(
                select(Leg.agent_id).where(Leg.call_id == call.id, Leg.transfer_id.is_(None))
            ).scalars()
        tried = set(tried)
        query = select(Agent).where(
            Agent.status == agent_rules.AVAILABLE, (Agent.browser.is_(True)) | Agent.phone.isnot(None)
        )
        if tried:
            query = query.where(Agent.id.not_in(tried))
        # One row: locking several would hide free agents from calls arriving at the same moment.
        query = query.order_by(Agent.idle_since.asc().nulls_first(), Agent.id).limit(1)
        if not self.store.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        with session.no_autoflush:  # the new call's rows go in together at commit
            candidates = {a.id: a for a in session.execute(query.execution_options(populate_existing=True)).scalars()}
        choice = agent_rules.pick_agent([agent_view(a) for a in candidates.values()], exclude=list(tried))
        if choice is None:
            return False
        agent = candidates[choice.id]
        self.reserve_agent(session, agent)
        self.ring_agent(session, call, agent, room=room or call.room)
        return True

    def reserve_agent(self, session: Session, agent: Agent) -> bool:
        if agent.status != agent_rules.AVAILABLE:
            return False
        self.store.compare_and_set(session, agent, status=agent_rules.BUSY)
        return True

    def ring_agent(
        self, session: Session, call: Call, agent: Agent, *, room: str, transfer_id: str | None = None
    ) -> list[Leg]:
        """Offer the call to the agent's console and phone at once; the first to accept wins."""
        legs = []
        if agent.browser:
            legs.append(
                Leg(
                    id=new_id("leg"),
                    call_id=call.id,
                    transfer_id=transfer_id,
                    agent_id=agent.id,
                    kind="browser",
                    room=room,
                    state=L.RINGING,
                    identity=agent.id,
                )
            )
        if agent.phone:
            legs.append(
                Leg(
                    id=new_id("leg"),
                    call_id=call.id,
                    transfer_id=transfer_id,
                    agent_id=agent.id,
                    kind="phone",
                    phone=agent.phone,
                    room=room,
                    state=L.RINGING,
                    identity=f"sip_{agent.phone}",
                )
            )
        for leg in legs:
            session.add(leg)
            if leg.kind == "phone":
                self.store.enqueue(session, "dial_leg", dial_payload(leg))
        self.store.enqueue(
            session,
            "ring_timeout",
            {"leg_ids": [leg_.id for leg_ in legs], "call_id": call.id},
            delay_s=self.gw.settings.ring_timeout_s,
            timer_of=legs[0].id,
        )
        self.store.record(
            session,
            call.id,
            "agent_ringing",
            transfer_id=transfer_id,
            agent_id=agent.id,
            channels=[leg_.kind for leg_ in legs],
        )
        return legs

    def release_agent(self, session: Session, agent_id: str | None, *, missed: bool = False) -> None:
        """An agent with no live leg left becomes available again (a missed ring: offline)."""
        if not agent_id:
            return
        live = session.execute(select(Leg.id).where(Leg.agent_id == agent_id, Leg.state.in_(LIVE_LEG_STATES))).first()
        agent = session.get(Agent, agent_id, populate_existing=True)
        if agent is None or live or agent.status != agent_rules.BUSY:
            return
        status = agent_rules.OFFLINE if missed else agent_rules.AVAILABLE
        self.store.compare_and_set(session, agent, status=status, idle_since=utcnow())

    def end_leg(self, session: Session, leg: Leg, event: str, reason: str) -> bool:
        """Move a leg to a terminal state and undo its provider side (hang up / remove)."""
        was = leg.state
        try:
            outcome = self.store.transition(session, leg, L.LEG, event, end_reason=reason, ended_at=utcnow())
        except IllegalTransition:
            return False
        if not outcome.changed:
            return False
        if leg.kind == "phone":
            self.store.enqueue(session, "hangup_leg", {"leg_id": leg.id})
        elif event == "cancel" and was in (L.ACCEPTED, L.JOINED):
            # Accepted means a token was issued: the browser may be in the room, or about to be.
            self.store.enqueue(
                session, "remove_participant", {"room": leg.room, "identity": leg.identity, "call_id": leg.call_id}
            )
        self.store.record(
            session,
            leg.call_id,
            f"leg_{outcome.state}",
            transfer_id=leg.transfer_id,
            agent_id=leg.agent_id,
            channel=leg.kind,
            reason=reason,
        )
        self.release_agent(session, leg.agent_id, missed=(event == "no_answer" and leg.transfer_id is None))
        return True

    # ----------------------------------------------------------- accepting
    def accept_leg(self, session: Session, leg: Leg) -> bool:
        """First accept wins: the agent's other channel and nobody else keeps ringing."""
        try:
            outcome = self.store.transition(session, leg, L.LEG, "accept")
        except IllegalTransition:
            return False
        if not outcome.changed:
            return True
        self.stop_ringing(session, leg)
        self.store.record(
            session, leg.call_id, "leg_accepted", transfer_id=leg.transfer_id, agent_id=leg.agent_id, channel=leg.kind
        )
        if leg.transfer_id:
            self.gw.extras["transfers"].on_target_accepted(session, leg)
        return True

    def stop_ringing(self, session: Session, leg: Leg) -> None:
        """``leg`` was answered: the rest of its offer stops ringing, and so does the offer's ring
        timer (it is keyed by one of the offer's legs: this one or a sibling ended here)."""
        offer = [leg.id]
        for other in self.live_legs(session, leg.call_id, transfer_id=leg.transfer_id):
            if other.id != leg.id and other.state == L.RINGING:
                self.end_leg(session, other, "cancel", "answered elsewhere")
                if other.agent_id == leg.agent_id:
                    offer.append(other.id)
        self.store.cancel_timers(session, "ring_timeout", *offer)

    def browser_accept(self, agent_id: str, call_id: str) -> Leg | None:
        def work(session: Session) -> Leg | None:
            leg = (
                session.execute(
                    select(Leg)
                    .where(
                        Leg.call_id == call_id,
                        Leg.agent_id == agent_id,
                        Leg.kind == "browser",
                        Leg.state.in_((L.RINGING, L.ACCEPTED, L.JOINED)),
                    )
                    .order_by(Leg.created_at.desc())
                )
                .scalars()
                .first()
            )
            if leg is None or not self.accept_leg(session, leg):
                return None
            return leg

        return self.store.run(work)

    def browser_decline(self, agent_id: str, call_id: str) -> bool:
        def work(session: Session) -> bool:
            leg = (
                session.execute(
                    select(Leg).where(
                        Leg.call_id == call_id,
                        Leg.agent_id == agent_id,
                        Leg.kind == "browser",
                        Leg.state == L.RINGING,
                    )
                )
                .scalars()
                .first()
            )
            if leg is None:
                return False
            self.end_leg(session, leg, "decline", "declined in console")
            self.after_leg_failed(session, leg)
            return True

        return self.store.run(work)

    def after_leg_failed(self, session: Session, leg: Leg) -> None:
        """When every channel of an offer has failed, move on: next agent, or the transfer's fallback."""
        # The agent's other channel of the same offer (console and phone ring together).
        sibling_live = session.execute(
            select(Leg.id).where(
                Leg.call_id == leg.call_id,
                Leg.agent_id == leg.agent_id,
                Leg.transfer_id == leg.transfer_id,
                Leg.id != leg.id,
                Leg.state.in_(LIVE_LEG_STATES),
            )
        ).first()
        if sibling_live:
            return
        if leg.transfer_id:
            self.gw.extras["transfers"].on_target_failed(session, leg)
            return
        call = session.get(Call, leg.call_id, populate_existing=True)
        if (
            call is None
            or call.state not in (C.BRIDGING, C.ON_HOLD)
            or self.live_legs(session, call.id, transfer_id=None)
        ):
            return
        if not self.ring_next_agent(session, call):
            self.to_voicemail(session, call, "nobody answered")

    def to_voicemail(self, session: Session, call: Call, reason: str) -> None:
        try:
            outcome = self.store.transition(session, call, C.CALL, "no_agent", end_reason=reason)
        except IllegalTransition:
            return
        if outcome.changed:
            self.store.record(session, call.id, "no_agent", reason=reason)
            self.store.enqueue(session, "redirect_caller", {"call_id": call.id, "path": "/twilio/apology"})
            for leg in self.live_legs(session, call.id):
                self.end_leg(session, leg, "cancel", "caller sent to voicemail")

    # ---------------------------------------------------- phone agent legs
    def leg_answered(self, leg_id: str, answered_by: str | None) -> str:
        """The agent's phone picked up: whisper and ask for a key (a machine gets nothing)."""

        def work(session: Session) -> tuple[str, Leg | None, Call | None]:
            leg = session.get(Leg, leg_id)
            if leg is None or leg.state != L.RINGING:
                return "taken", leg, None
            if answered_by and (answered_by.startswith("machine") or answered_by == "fax"):
                self.end_leg(session, leg, "no_answer", "voicemail answered")
                self.after_leg_failed(session, leg)
                return "machine", leg, None
            return "offer", leg, session.get(Call, leg.call_id)

        verdict, leg, call = self.store.run(work)
        if verdict == "taken":
            return twiml.agent_taken()
        if verdict == "machine":
            return twiml.goodbye()
        if leg.transfer_id:
            return self.gw.extras["transfers"].whisper_twiml(leg)
        announcement = f"Incoming call from {spoken_number(call.from_number)}."
        return twiml.whisper_offer(announcement=announcement, gather_url=self.gw.urls("/twilio/leg/gather", leg=leg.id))

    def leg_digits(self, leg_id: str, digits: str) -> str:
        def work(session: Session) -> tuple[str, Leg | None]:
            leg = session.get(Leg, leg_id)
            if leg is None:
                return "gone", None
            if digits == "1":
                return ("accepted" if self.accept_leg(session, leg) else "taken"), leg
            if leg.state != L.RINGING:
                return "taken", leg
            if digits == "2":
                self.end_leg(session, leg, "decline", "declined by key 2")
            elif not digits:
                self.end_leg(session, leg, "no_answer", "no key pressed")
            else:
                return "retry", leg
            self.after_leg_failed(session, leg)
            return "ended", leg

        verdict, leg = self.store.run(work)
        if verdict == "accepted":
            return self.leg_bridge_twiml(leg)
        if verdict == "retry":
            return twiml.whisper_retry(
                message="Sorry, press 1 to accept or 2 to decline.",
                gather_url=self.gw.urls("/twilio/leg/gather", leg=leg.id),
            )
        if verdict == "taken":
            return twiml.agent_taken()
        return twiml.goodbye("Goodbye." if verdict == "ended" else None)

    def leg_status(self, leg_id: str, status: str, call_sid: str | None) -> None:
        """Twilio status callback of an agent's phone call."""

        def work(session: Session) -> None:
            leg = session.get(Leg, leg_id)
            if leg is None:
                return
            if call_sid and not leg.twilio_sid:
                self.store.compare_and_set(session, leg, twilio_sid=call_sid)
            if status in L.TWILIO_END_EVENTS and leg.state == L.RINGING:
                self.end_leg(session, leg, L.TWILIO_END_EVENTS[status], f"phone {status}")
                self.after_leg_failed(session, leg)
            elif status == "completed":
                if leg.state == L.RINGING:
                    self.end_leg(session, leg, "no_answer", "hung up before accepting")
                    self.after_leg_failed(session, leg)
                elif leg.state in (L.ACCEPTED, L.JOINED):
                    self.leg_left(session, leg, "agent hung up")

        self.store.run(work)

    def leg_dial_ended(self, leg_id: str) -> str:
        """The agent's <Dial> into the room ended: the agent's phone call ends too."""
        return twiml.goodbye()

    def leg_left(self, session: Session, leg: Leg, reason: str) -> None:
        if not self.end_leg(session, leg, "leave", reason):
            return
        transfers = self.gw.extras["transfers"]
        if leg.transfer_id or transfers.involves(session, leg):
            transfers.on_agent_left(session, leg)
            return
        call = session.get(Call, leg.call_id, populate_existing=True)
        if call is None or call.state != C.CONNECTED or call.room != leg.room:
            return
        others = [
            leg_ for leg_ in self.live_legs(session, call.id) if leg_.room == call.room and leg_.state == L.JOINED
        ]
        if not others:
            # The last agent hung up outside a transfer: end the call politely, never leave dead air.
            self.store.record(session, call.id, "agent_ended_call", agent_id=leg.agent_id)
            self.store.enqueue(session, "redirect_caller", {"call_id": call.id, "path": "/twilio/goodbye"})

    # ------------------------------------------------------ caller lifecycle
    def caller_status(self, call_sid: str, status: str) -> None:
        if status not in ("completed", "busy", "failed", "no-answer", "canceled"):
            return

        def work(session: Session) -> None:
            call = self.call_by_sid(session, call_sid)
            if call is None:
                return
            self.hangup(session, call, f"caller {status}")

        self.store.run(work)

    def hangup(self, session: Session, call: Call, reason: str) -> None:
        outcome = self.store.transition(session, call, C.CALL, "hangup", end_reason=reason, ended_at=utcnow())
        if not outcome.changed:
            return
        self.store.record(session, call.id, "call_ended", reason=reason)
        transfer = self.active_transfer(session, call.id)
        if transfer is not None:
            self.gw.extras["transfers"].on_caller_hangup(session, transfer)
        rooms = {call.room}
        for leg in self.live_legs(session, call.id):
            rooms.add(leg.room)
            self.end_leg(session, leg, "cancel", "caller hung up")
        for room in sorted(rooms):
            self.store.enqueue(session, "delete_room", {"room": room, "call_id": call.id}, dedupe_key=f"delete:{room}")
        self.store.enqueue(
            session, "purge_call_data", {"call_id": call.id}, delay_s=self.gw.settings.retention_hours * 3600
        )

    def dial_ended(
        self, call_id: str, room: str, dial_status: str, call_status: str, sip_code: str | None, gen: str = "0"
    ) -> str:
        """The caller's <Dial> into a room ended. Decide what the caller hears next."""
        if call_status in ("completed", "canceled", "failed", "busy", "no-answer"):
            return twiml.empty()  # the caller is gone; Twilio ignores this reply

        def work(session: Session) -> tuple[str, Call | None]:
            call = session.get(Call, call_id)
            if call is None:
                return "apology", None
            if call.state == C.ENDED:
                return "goodbye", call
            if call.state == C.VOICEMAIL:
                return "apology", call
            if call.state == C.ON_HOLD or call.room != room or gen != str(call.bridge_gen or 0) or call.redirecting:
                # We moved the caller on purpose (REST redirect), or served a newer <Dial> since:
                # Twilio ignores this reply. Were we ever wrong, the hold loop re-bridges the caller.
                return "hold", call
            if dial_status in ("failed", "busy", "no-answer", "canceled"):
                self.store.record(session, call.id, "bridge_failed", status=dial_status, sip_code=sip_code)
                self.to_voicemail_now(session, call, f"bridge {dial_status}")
                return ("apology_technical" if dial_status == "failed" else "apology"), call
            # The room side hung up (room closed, participant removed) while the caller stays on the line.
            self.store.record(session, call.id, "bridge_lost", status=dial_status)
            self.store.transition(session, call, C.CALL, "hold")
            for leg in self.live_legs(session, call.id, transfer_id=None):
                self.end_leg(session, leg, "cancel", "bridge lost")
            if not self.ring_next_agent(session, call, room=call.room):
                self.to_voicemail_now(session, call, "nobody available after bridge lost")
                return "apology", call
            return "hold", call

        verdict, call = self.store.run(work)
        if verdict in ("apology", "apology_technical"):
            return self.apology_twiml(call.id if call else None, technical=call is None or verdict != "apology")
        if verdict == "goodbye":
            return twiml.goodbye()
        return self.hold_twiml(call.id, first=True)

    def to_voicemail_now(self, session: Session, call: Call, reason: str) -> None:
        """Like to_voicemail, but the apology is this webhook's reply (no redirect needed)."""
        outcome = self.store.transition(session, call, C.CALL, "no_agent", end_reason=reason)
        if outcome.changed:
            self.store.record(session, call.id, "no_agent", reason=reason)
            for leg in self.live_legs(session, call.id):
                self.end_leg(session, leg, "cancel", "caller sent to voicemail")

    def sip_leg_status(self, call_id: str, child_sid: str, status: str) -> None:
        """<Sip> child-leg progress: remember the child CallSid LiveKit will report."""
        if status != "initiated" or not child_sid:
            return  # ringing, answered, completed: acknowledged (and logged), nothing to store

        def work(session: Session) -> None:
            call = session.get(Call, call_id)
            if call is None or not child_sid:
                return
            if status == "initiated" and call.dial_sid != child_sid:
                self.store.compare_and_set(session, call, dial_sid=child_sid)

        self.store.run(work)

    def voicemail(self, call_id: str, recording_url: str, duration: str | None) -> None:
        def work(session: Session) -> None:
            if session.get(Call, call_id) is None:
                return
            session.add(
                Voicemail(
                    call_id=call_id,
                    recording_url=recording_url,
                    duration_s=float(duration) if duration and duration.isdigit() else None,
                )
            )
            self.store.record(session, call_id, "voicemail_left")

        self.store.run(work)

    def queue_timeout(self, call_id: str) -> None:
        def work(session: Session) -> None:
            call = session.get(Call, call_id)
            if call is not None and call.state == C.BRIDGING and call.connected_at is None:
                self.to_voicemail(session, call, "queue timeout")

        self.store.run(work)

    def ring_timeout(self, leg_ids: Iterable[str]) -> None:
        def work(session: Session) -> None:
            ended = []
            for leg_id in leg_ids:
                leg = session.get(Leg, leg_id, populate_existing=True)
                if leg is not None and leg.state == L.RINGING:
                    self.end_leg(session, leg, "no_answer", "ring timeout")
                    ended.append(leg)
            if ended:
                self.after_leg_failed(session, ended[-1])

        self.store.run(work)

    def agent_end_call(self, agent_id: str, call_id: str) -> bool:
        """The agent pressed hang up: the caller hears goodbye, every leg ends."""

        def work(session: Session) -> bool:
            call = session.get(Call, call_id)
            if call is None or call.state == C.ENDED or call.agent_id != agent_id:
                return False
            self.store.record(session, call.id, "agent_ended_call", agent_id=agent_id)
            self.store.enqueue(session, "redirect_caller", {"call_id": call.id, "path": "/twilio/goodbye"})
            return True

        return self.store.run(work)

    # ------------------------------------------------------ LiveKit events
    def participant_joined(self, session: Session, room: str, identity: str, kind: str, attributes: dict) -> None:
        leg = self._leg_for_participant(session, room, identity, kind, attributes)
        if leg is not None:
            was = leg.state
            outcome = (
                self.store.transition(session, leg, L.LEG, "join") if leg.state in (L.RINGING, L.ACCEPTED) else None
            )
            if outcome and outcome.changed:
                self.store.record(
                    session,
                    leg.call_id,
                    "agent_joined",
                    transfer_id=leg.transfer_id,
                    agent_id=leg.agent_id,
                    room=room,
                    channel=leg.kind,
                )
                if leg.transfer_id:
                    self.gw.extras["transfers"].on_target_joined(session, leg)
                if leg.state == L.JOINED:
                    offer = [leg.id] if was == L.RINGING else []  # joined with no accept before: answered now
                    for other in self.live_legs(session, leg.call_id, transfer_id=leg.transfer_id):
                        if other.id != leg.id and other.state == L.RINGING and other.agent_id == leg.agent_id:
                            self.end_leg(session, other, "cancel", "answered elsewhere")
                            offer.append(other.id)
                    self.store.cancel_timers(session, "ring_timeout", *offer)
                    if leg.transfer_id is None:
                        self._bridge_held_caller(session, leg)
            self._maybe_connected(session, leg.call_id, room)
            return
        if kind == "standard":
            stale = session.execute(
                select(Leg.call_id).where(
                    Leg.room == room, Leg.identity == identity, Leg.kind == "browser", Leg.state == L.CANCELLED
                )
            ).first()
            if stale:  # joined with a token for a leg we already withdrew: take them out again
                self.store.enqueue(
                    session, "remove_participant", {"room": room, "identity": identity, "call_id": stale.call_id}
                )
            return
        if kind == "sip":
            call = session.execute(select(Call).where(Call.room == room, Call.state != C.ENDED)).scalars().first()
            if call is None:
                return
            call_sid_attr = attributes.get("sip.twilio.callSid", "")
            verified = bool(call.dial_sid) and call.dial_sid == call_sid_attr
            changes = {"caller_identity": identity}
            if not call.dial_sid and call_sid_attr:
                changes["dial_sid"] = call_sid_attr
            self.store.compare_and_set(session, call, **changes)
            self.store.record(session, call.id, "caller_joined", room=room, verified=verified)
            self._maybe_connected(session, call.id, room)

    def participant_left(self, session: Session, room: str, identity: str, kind: str, attributes: dict) -> None:
        leg = self._leg_for_participant(session, room, identity, kind, attributes, joined_only=True)
        if leg is not None:
            self.leg_left(session, leg, "left the room")
            return
        call = (
            session.execute(select(Call).where(Call.room == room, Call.caller_identity == identity)).scalars().first()
        )
        if call is not None:
            self.store.compare_and_set(session, call, caller_identity=None)
            self.store.record(session, call.id, "caller_left_room", room=room)

    def room_finished(self, session: Session, room: str) -> None:
        legs = session.execute(select(Leg).where(Leg.room == room, Leg.state.in_((L.ACCEPTED, L.JOINED)))).scalars()
        for leg in legs:
            self.leg_left(session, leg, "room closed")

    def _leg_for_participant(
        self, session: Session, room: str, identity: str, kind: str, attributes: dict, joined_only: bool = False
    ) -> Leg | None:
        states = (L.JOINED,) if joined_only else LIVE_LEG_STATES
        leg_id = attributes.get("gw.leg")
        if leg_id:
            leg = session.get(Leg, leg_id, populate_existing=True)
            return leg if leg is not None and leg.room == room and leg.state in states else None
        wanted_kind = "phone" if kind == "sip" else "browser"
        return (
            session.execute(
                select(Leg)
                .where(
                    Leg.room == room,
                    Leg.identity == identity,
                    Leg.kind == wanted_kind,
                    Leg.state.in_(states),
                )
                .order_by(Leg.created_at.desc())
            )
            .scalars()
            .first()
        )

    def _bridge_held_caller(self, session: Session, leg: Leg) -> None:
        """A held caller being re-routed: the agent is in the room now, so bring the caller in."""
        call = session.get(Call, leg.call_id, populate_existing=True)
        if call is None or call.state != C.ON_HOLD or call.room != leg.room or self.active_transfer(session, call.id):
            return
        self.store.transition(session, call, C.CALL, "rebridge")
        self.send_caller_to_bridge(session, call)
        self.store.record(session, call.id, "caller_bridging", room=leg.room, agent_id=leg.agent_id)

    def _maybe_connected(self, session: Session, call_id: str, room: str) -> None:
        call = session.get(Call, call_id, populate_existing=True)
        if call is None or call.room != room or not call.caller_identity or call.state != C.BRIDGING:
            return
        joined = [leg_ for leg_ in self.live_legs(session, call.id) if leg_.room == room and leg_.state == L.JOINED]
        if not joined:
            return
        owner = (
            joined[-1].agent_id
            if not call.agent_id or call.agent_id not in {leg_.agent_id for leg_ in joined}
            else call.agent_id
        )
        if call.connected_at is None:
            self.store.cancel_timers(session, "queue_timeout", call.id)  # connected: it never waits again
        self.store.transition(
            session, call, C.CALL, "agent_joined", agent_id=owner, connected_at=call.connected_at or utcnow()
        )
        self.store.record(session, call.id, "caller_connected", room=room, agents=[leg_.agent_id for leg_ in joined])


def agent_view(agent: Agent) -> agent_rules.AgentView:
    return agent_rules.AgentView(
        id=agent.id,
        name=agent.name,
        phone=agent.phone,
        browser=agent.browser,
        status=agent.status,
        idle_since=agent.idle_since,
    )


def spoken_number(number: str) -> str:
    """Digits read one by one, so TTS does not say 'fifteen billion…'."""
    return " ".join(ch for ch in (number or "an unknown number") if ch.isdigit()) or "an unknown number"


class CallEdges(CallService):
    """The remaining webhook entry points (redirect targets, transcription, SMS status, LiveKit)."""

    def bridge_for(self, call_id: str, redirected: bool = True) -> str:
        """TwiML for the caller's next step; a <Dial> served here is a new bridge generation.

        Only the newest <Dial> counts: the action of any earlier one (the hold loop and a REST
        redirect can each fetch one) is then recognised as superseded. ``redirected`` says this
        fetch is the one our REST redirect caused, which ends the redirect's in-flight window.
        """

        def work(session: Session) -> Call | None:
            call = session.get(Call, call_id, populate_existing=True)
            if call is not None and call.state in (C.BRIDGING, C.CONNECTED):
                changes = {"bridge_gen": (call.bridge_gen or 0) + 1}
                if redirected and call.redirecting:
                    changes["redirecting"] = False
                self.store.compare_and_set(session, call, **changes)
            return call

        call = self.store.run(work)
        if call is None:
            return self.apology_twiml(None, technical=True)
        if call.state == C.ENDED:
            return twiml.goodbye()
        if call.state in (C.VOICEMAIL,):
            return self.apology_twiml(call.id)
        if call.state == C.ON_HOLD:
            return self.hold_twiml(call.id, first=False)
        return self.bridge_twiml(call)

    def hold_for(self, call_id: str, first: bool) -> str:
        """The hold loop, only while the call is on hold: otherwise where the call is now."""
        call = self.store.read(lambda s: s.get(Call, call_id))
        if call is not None and call.state == C.ON_HOLD:
            return self.hold_twiml(call.id, first=first)
        return self.bridge_for(call_id, redirected=False)

    def leg_bridge_for(self, leg_id: str) -> str:
        leg = self.store.read(lambda s: s.get(Leg, leg_id))
        if leg is None or leg.state not in (L.ACCEPTED, L.JOINED):
            return twiml.goodbye()
        return self.leg_bridge_twiml(leg)

    def fallback_used(self, call_sid: str, error_code: str, error_url: str) -> None:
        def work(session: Session) -> None:
            call = self.call_by_sid(session, call_sid) if call_sid else None
            self.store.record(
                session,
                call.id if call else "unknown",
                "twilio_fallback",
                error_code=error_code[:16],
                error_url=error_url[:300],
            )

        self.store.run(work)

    def transcript_line(self, call_id: str, key: str, speaker: str, text: str) -> None:
        from gateway.adapters.store.models import TranscriptLine
        from gateway.domain.summary import redact

        def work(session: Session) -> None:
            if session.get(Call, call_id) is None:
                return
            exists = session.execute(
                select(TranscriptLine.id).where(TranscriptLine.call_id == call_id, TranscriptLine.source_key == key)
            ).first()
            if not exists:
                session.add(TranscriptLine(call_id=call_id, source_key=key, speaker=speaker, text=redact(text)[:2000]))
                self.store.record(session, call_id, "transcript", speaker=speaker)

        self.store.run(work)

    def sms_status(self, message_sid: str, status: str) -> None:
        from gateway.adapters.store.models import Message

        def work(session: Session) -> None:
            message = session.execute(select(Message).where(Message.twilio_sid == message_sid)).scalars().first()
            if message is not None and message.status != status:
                message.status = status

        self.store.run(work)

    def add_note(self, call_id: str, agent_id: str, text: str) -> None:
        from gateway.adapters.store.models import Note
        from gateway.domain.summary import redact

        def work(session: Session) -> None:
            session.add(Note(call_id=call_id, agent_id=agent_id, text=redact(text.strip())))
            self.store.record(session, call_id, "note_added", agent_id=agent_id)

        self.store.run(work)

    def agent_leave_room(self, agent_id: str, room: str) -> bool:
        """The agent leaves a room from the console: their leg ends and LiveKit removes them."""

        def work(session: Session) -> bool:
            leg = (
                session.execute(
                    select(Leg).where(Leg.agent_id == agent_id, Leg.room == room, Leg.state.in_((L.ACCEPTED, L.JOINED)))
                )
                .scalars()
                .first()
            )
            if leg is None:
                return False
            self.store.enqueue(
                session, "remove_participant", {"room": room, "identity": leg.identity, "call_id": leg.call_id}
            )
            self.leg_left(session, leg, "left from the console")
            return True

        return self.store.run(work)

    def call_id_for_room(self, room: str) -> str | None:
        return self.store.read(
            lambda s: (
                s.execute(select(Call.id).where(Call.room == room).order_by(Call.created_at.desc())).scalars().first()
            )
        )

    def livekit_event(
        self, *, event_id: str, name: str, room: str, identity: str, kind: str, attributes: dict, replaced: bool = False
    ) -> None:
        """Dispatch one verified LiveKit webhook; a retried event id is ignored."""
        leaving = name in ("participant_left", "participant_connection_aborted") and not replaced
        if name not in ("participant_joined", "room_finished") and not leaving:
            return  # room_started, track events, a replaced session: nothing to do, nothing to store
        key = f"lk:{event_id}" if event_id else None

        def work(session: Session) -> None:
            # The receipt commits with the event's effect, or not at all: a crash in between
            # leaves LiveKit's retry to be handled, never silently skipped.
            if key and not self.store.first_time(session, key):
                return
            if name == "participant_joined":
                self.participant_joined(session, room, identity, kind, attributes)
            elif leaving:
                # (A leave caused by the same identity joining again — page reload, full reconnect —
                # is not the agent leaving: the new session carries on the leg; filtered above.)
                self.participant_left(session, room, identity, kind, attributes)
            elif name == "room_finished":
                self.room_finished(session, room)

        with contextlib.suppress(IntegrityError):  # the same event id handled concurrently by another worker
            self.store.run(work)


def dial_payload(leg: Leg) -> dict:
    """What the dial_leg job needs to place the leg's call without reading it back."""
    return {"leg_id": leg.id, "to": leg.phone, "transfer": bool(leg.transfer_id)}
