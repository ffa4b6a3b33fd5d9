"""LiveKit room and participant events: who is in which room.

One verified webhook is one unit of work: its receipt commits with its effect. A participant
is matched to an agent's leg (by the ``gw.leg`` SIP attribute, or by identity), or is the
caller's SIP leg; joins connect the call, leaves end legs, a closed room ends what was in it.
To react to a new LiveKit event, add it to ``livekit_event`` and a method here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from livekit.protocol.models import ParticipantInfo
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.adapters.store import Store
from gateway.adapters.store.models import Call, Leg, WebJoin, utcnow
from gateway.adapters.store.uow import Session
from gateway.domain import access
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.domain import web_calls as W
from gateway.services import job_types as J
from gateway.services.agent_legs import AgentLegs
from gateway.services.legs import Legs
from gateway.services.listen_in import listener_entitled
from gateway.services.lookups import LIVE_LEG_STATES, active_transfer, live_legs
from gateway.services.ports import LegOutcomes, Rooms
from gateway.services.routing import Routing

LEAVING = ("participant_left", "participant_connection_aborted")


class RoomEvents:
    def __init__(
        self,
        store: Store,
        legs: Legs,
        agent_legs: AgentLegs,
        routing: Routing,
        transfers: LegOutcomes,
        rooms: Rooms | None = None,
        transcribe: bool = False,
        end_call: Callable[[Session, Call, str], None] | None = None,
        web_rejoin_s: float = 0.0,
    ):
        self.store, self.legs, self.agent_legs, self.routing = store, legs, agent_legs, routing
        self.transfers, self.rooms, self.transcribe = transfers, rooms, transcribe
        # Ends a call whose web caller left and did not come back within ``web_rejoin_s``
        # (Caller.hangup): a web caller has no line that stays.
        self.end_call = end_call
        self.web_rejoin_s = web_rejoin_s

    # ------------------------------------------------------- reconciling
    def reconcile_room(self, call_id: str, room: str, round_: int = 0, gone: str | None = None) -> None:
        """A join (or ``gone``'s leave) was expected by now: ask LiveKit who is in the room and
        apply what its webhooks did not say (lost, late, refused, or never configured). Another
        look follows while something is still awaited, up to the last of RECONCILE_AFTER_S."""
        present = {p.identity: p for p in self.rooms.list_participants(room)} if self.rooms else {}

        def work(session: Session) -> None:
            call = session.get(Call, call_id, populate_existing=True)
            if call is None or call.state == C.ENDED:
                return
            for identity, participant in present.items():
                kind = "sip" if participant.kind == ParticipantInfo.Kind.SIP else "standard"
                attributes = dict(participant.attributes)
                if self._known(session, call, room, identity, kind, attributes):
                    continue
                self.store.record(session, call_id, "livekit_reconciled", room=room, identity=identity, saw="joined")
                self.participant_joined(session, room, identity, kind, attributes)
            if gone and gone not in present:
                leg = self._leg_for_participant(session, room, gone, "standard", {}, joined_only=True)
                leg = leg or self._leg_for_participant(session, room, gone, "sip", {}, joined_only=True)
                if leg is not None:
                    self.store.record(session, call_id, "livekit_reconciled", room=room, identity=gone, saw="left")
                    self.participant_left(session, room, gone, "sip" if leg.kind == "phone" else "standard", {})
            awaited = (call.room == room and call.state != C.ENDED and not call.caller_identity) or any(
                leg.room == room and leg.state == L.ACCEPTED for leg in live_legs(session, call_id)
            )
            if awaited and round_ + 1 < len(L.RECONCILE_AFTER_S):
                self.store.enqueue(
                    session,
                    J.ReconcileRoom(call_id, room, round_ + 1),
                    delay_s=L.RECONCILE_AFTER_S[round_ + 1],
                )

        self.store.run(work)

    def _known(
        self, session: Session, call: Call, room: str, identity: str, kind: str, attributes: dict[str, str]
    ) -> bool:
        """Whether this participant's join is already recorded (or is nobody we track)."""
        leg = self._leg_for_participant(session, room, identity, kind, attributes)
        if leg is not None:
            return leg.state == L.JOINED
        if W.is_web_identity(identity):
            join = session.get(WebJoin, identity)
            return join is None or join.joined_at is not None
        if kind == "sip" and call.room == room:
            return call.caller_identity == identity
        return True  # a browser we never offered this room, or a SIP leg of another call: webhooks handle it

    def livekit_event(
        self,
        *,
        event_id: str,
        name: str,
        room: str,
        identity: str,
        kind: str,
        attributes: dict[str, str],
        replaced: bool = False,
    ) -> None:
        """Dispatch one verified LiveKit webhook; a retried event id is ignored."""
        leaving = name in LEAVING and not replaced
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

    def call_id_for_room(self, room: str) -> str | None:
        return self.store.read(
            lambda s: (
                s.execute(select(Call.id).where(Call.room == room).order_by(Call.created_at.desc())).scalars().first()
            )
        )

    # ------------------------------------------------------------- joins
    def participant_joined(
        self, session: Session, room: str, identity: str, kind: str, attributes: dict[str, str]
    ) -> None:
        leg = self._leg_for_participant(session, room, identity, kind, attributes)
        if leg is not None:
            self._leg_joined(session, leg, room)
            self._maybe_connected(session, leg.call_id, room)
        elif kind == "standard" and W.is_web_identity(identity):
            self._web_caller_joined(session, room, identity)
        elif kind == "standard":
            if listener_entitled(session, room, identity):
                return  # a supervisor listening in: neither an agent nor the caller; nothing changes
            self._not_entitled_joined(session, room, identity)
        elif kind == "sip":
            self._caller_joined(session, room, identity, attributes)

    def _leg_joined(self, session: Session, leg: Leg, room: str) -> None:
        was = leg.state
        outcome = self.store.transition(session, leg, L.LEG, "join") if leg.state in (L.RINGING, L.ACCEPTED) else None
        if not (outcome and outcome.changed):
            return
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
            self.transfers.on_target_joined(session, leg)
        if leg.state != L.JOINED:
            return
        offer = [leg.id] if was == L.RINGING else []  # joined with no accept before: answered now
        for other in live_legs(session, leg.call_id, transfer_id=leg.transfer_id):
            if other.id != leg.id and other.state == L.RINGING and other.agent_id == leg.agent_id:
                self.legs.end_leg(session, other, "cancel", "answered elsewhere")
                offer.append(other.id)
        self.store.cancel_timers(session, J.RingTimeout.kind, *offer)
        if leg.transfer_id is None:
            self._bridge_held_caller(session, leg)

    def _not_entitled_joined(self, session: Session, room: str, identity: str) -> None:
        """A browser participant with no live leg in this room is not entitled to be there now
        (domain/access.py), whatever its legs were (left, declined, cancelled, moved on) and whatever
        token it kept: LiveKit only checks a token when joining, so the gateway takes it out."""
        live = session.execute(
            select(Leg.identity, Leg.room).where(
                Leg.room == room, Leg.identity == identity, Leg.kind == "browser", Leg.state.in_(LIVE_LEG_STATES)
            )
        ).all()
        if access.may_be_in_room(identity, room, [(row[0] or "", row[1]) for row in live]):
            return
        call_id = session.execute(
            select(Leg.call_id).where(Leg.room == room).order_by(Leg.created_at.desc()).limit(1)
        ).scalar()
        self.store.enqueue(session, J.RemoveParticipant(room, identity, call_id))
        if call_id:
            self.store.record(session, call_id, "participant_removed", room=room, identity=identity)

    def _caller_joined(self, session: Session, room: str, identity: str, attributes: dict[str, str]) -> None:
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

    def _web_caller_joined(self, session: Session, room: str, identity: str) -> None:
        """A web caller joined with a token the gateway gave: the first join with it, into the room
        it was given for, while the call is in that room, is the caller; anything else is removed
        (a token used twice, kept past its move, or for a call that ended)."""
        join = session.get(WebJoin, identity, populate_existing=True)
        call = session.get(Call, join.call_id, populate_existing=True) if join is not None else None
        refused = (
            "unknown token"
            if join is None or call is None
            else "token already used"
            if join.joined_at is not None
            else "call ended"
            if call.state == C.ENDED
            else "not this call's room now"
            if join.room != room or call.room != room
            else None
        )
        if refused is not None:
            self.store.enqueue(session, J.RemoveParticipant(room, identity, call.id if call else None))
            if call is not None:
                self.store.record(session, call.id, "participant_removed", room=room, identity=identity, why=refused)
            return
        assert join is not None and call is not None
        self.store.compare_and_set(session, join, joined_at=utcnow())
        self.store.cancel_timers(session, J.WebJoinDeadline.kind, join.id)
        self.store.compare_and_set(session, call, caller_identity=identity)
        self.store.record(session, call.id, "caller_joined", room=room, channel=W.CHANNEL_WEB)
        self._maybe_connected(session, call.id, room)

    def _web_caller_left(self, session: Session, room: str, identity: str) -> None:
        """A web caller left a room. The page's newest session leaving the call's room (or the room
        it waits on hold in) is the caller gone: a reload, a dropped connection or a closed page
        look the same from here, so the call keeps its place (queue entry, agent) for
        WEB_CALL_REJOIN_S, and ends then unless the page came back for it (services/web_calls.py).
        An older session left behind by a move, or replaced by a rejoin, is nobody leaving."""
        join = session.get(WebJoin, identity, populate_existing=True)
        if join is None or join.joined_at is None or join.left_at is not None:
            return
        self.store.compare_and_set(session, join, left_at=utcnow())
        call = session.get(Call, join.call_id, populate_existing=True)
        if call is None or call.state == C.ENDED:
            return
        newest = session.execute(select(func.max(WebJoin.gen)).where(WebJoin.call_id == call.id)).scalar()
        if call.caller_identity == identity:
            self.store.compare_and_set(session, call, caller_identity=None)
        if join.gen != newest:
            self.store.record(session, call.id, "caller_left_room", room=room)
            return
        if not (room == call.room or call.state == C.ON_HOLD):
            # The room the call moved away from: the page follows the call to the next one (POST
            # …/join); a page that is gone by then does not keep the call past the grace period.
            self.store.record(session, call.id, "caller_left_room", room=room)
            if self.web_rejoin_s > 0:
                self._await_web_caller(session, call, join)
            return
        if self.web_rejoin_s <= 0:
            if self.end_call is not None:
                self.end_call(session, call, "web caller hung up")
            return
        self.store.record(session, call.id, "web_caller_away", room=room, rejoin_s=self.web_rejoin_s)
        self._await_web_caller(session, call, join)

    def _await_web_caller(self, session: Session, call: Call, join: WebJoin) -> None:
        self.store.enqueue(session, J.WebRejoinDeadline(call.id, join.gen), delay_s=self.web_rejoin_s, timer_of=join.id)

    def _bridge_held_caller(self, session: Session, leg: Leg) -> None:
        """A held caller being re-routed: the agent is in the room now, so bring the caller in."""
        call = session.get(Call, leg.call_id, populate_existing=True)
        if (
            call is None
            or call.state not in (C.ON_HOLD, C.QUEUED)
            or call.room != leg.room
            or active_transfer(session, call.id)
        ):
            return
        entry = self.routing.queues.live_entry(session, call.id)
        if entry is not None and entry.kind == Q.CALLBACK:
            # The caller is off the line: the agent is here, so now we dial them (services.callbacks).
            if entry.state == Q.OFFERED:
                self.routing.queues.start_callback(session, entry, leg.agent_id)
            return
        if entry is not None:  # a waiting caller's agent is in the room: answered
            self.routing.queues.end(session, entry, "answered", "agent joined")
        self.store.transition(session, call, C.CALL, "rebridge")
        self.routing.send_caller_to_bridge(session, call)
        self.store.record(session, call.id, "caller_bridging", room=leg.room, agent_id=leg.agent_id)

    def _maybe_connected(self, session: Session, call_id: str, room: str) -> None:
        call = session.get(Call, call_id, populate_existing=True)
        if call is None or call.room != room or not call.caller_identity or call.state != C.BRIDGING:
            return
        joined = [leg_ for leg_ in live_legs(session, call.id) if leg_.room == room and leg_.state == L.JOINED]
        if not joined:
            return
        owner = (
            joined[-1].agent_id
            if not call.agent_id or call.agent_id not in {leg_.agent_id for leg_ in joined}
            else call.agent_id
        )
        if call.connected_at is None:
            self.store.cancel_timers(session, J.QueueTimeout.kind, call.id)  # connected: it never waits again
            if self.transcribe:
                # Once per call, now that it is answered (Twilio starts transcriptions only on calls
                # in progress); the session is call-scoped and outlives every later re-bridge.
                self.store.enqueue(session, J.StartTranscription(call.id), dedupe_key=f"transcription:{call.id}")
        self.store.transition(
            session, call, C.CALL, "agent_joined", agent_id=owner, connected_at=call.connected_at or utcnow()
        )
        self.store.record(session, call.id, "caller_connected", room=room, agents=[leg_.agent_id for leg_ in joined])

    # ------------------------------------------------------------ leaves
    def participant_left(
        self, session: Session, room: str, identity: str, kind: str, attributes: dict[str, str]
    ) -> None:
        leg = self._leg_for_participant(session, room, identity, kind, attributes, joined_only=True)
        if leg is not None:
            self.agent_legs.leg_left(session, leg, "left the room")
            return
        if kind == "standard" and W.is_web_identity(identity):
            self._web_caller_left(session, room, identity)
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
            self.agent_legs.leg_left(session, leg, "room closed")

    def _leg_for_participant(
        self,
        session: Session,
        room: str,
        identity: str,
        kind: str,
        attributes: dict[str, str],
        joined_only: bool = False,
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
                .where(Leg.room == room, Leg.identity == identity, Leg.kind == wanted_kind, Leg.state.in_(states))
                .order_by(Leg.created_at.desc())
            )
            .scalars()
            .first()
        )
