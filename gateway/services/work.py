"""Job handlers: the provider calls behind every state change, and the timers, run by the JobRunner.

One method per job kind, marked ``@handles(<its job class>)`` (services/job_types.py); ``on_error``
is what happens when a job gives up for good (with each kind's fallback). A new job: its
dataclass in job_types.py, a handler here, and ``store.enqueue(session, <the job>)`` where needed.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select

from gateway.adapters.store import Store
from gateway.adapters.store.models import (
    Call,
    Leg,
    Message,
    Note,
    QueueEntry,
    TranscriptLine,
    Transfer,
    Voicemail,
    WebCallKey,
)
from gateway.adapters.store.uow import Session
from gateway.adapters.twilio_client import ProviderError
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain.agents import mask_phone
from gateway.domain.caller_id import is_withheld
from gateway.domain.web_calls import on_the_page
from gateway.services import job_types as J
from gateway.services.agent_legs import AgentLegs
from gateway.services.caller import Caller
from gateway.services.job_types import handles
from gateway.services.jobs import JobRunner
from gateway.services.legs import Legs
from gateway.services.lookups import existing
from gateway.services.ports import Dest, Gateway, LiveKitHealth, ProviderErrors
from gateway.services.room_events import RoomEvents
from gateway.services.routing import Routing
from gateway.services.summaries import Summaries
from gateway.services.transfer_events import TransferEvents
from gateway.services.web_calls import WebCallers

log = logging.getLogger(__name__)


class ProviderWork:
    def __init__(
        self,
        gw: Gateway,
        *,
        legs: Legs,
        routing: Routing,
        caller: Caller,
        agent_legs: AgentLegs,
        transfer_events: TransferEvents,
        summaries: Summaries,
        livekit: LiveKitHealth,
        provider_errors: ProviderErrors,
        room_events: RoomEvents,
        web_callers: WebCallers,
    ):
        self.gw, self.store = gw, gw.store
        self.legs, self.routing, self.caller, self.agent_legs = legs, routing, caller, agent_legs
        self.transfer_events, self.summaries = transfer_events, summaries
        self.livekit, self.provider_errors = livekit, provider_errors
        self.room_events, self.web_callers = room_events, web_callers

    def register(self, runner: JobRunner) -> None:
        runner.register_jobs(self)
        runner.on_error = self.on_error

    # ------------------------------------------------------------ timers
    @handles(J.RingTimeout)
    def ring_timeout(self, job: J.RingTimeout) -> None:
        self.agent_legs.ring_timeout(job.leg_ids)

    @handles(J.WhisperTimeout)
    def whisper_timeout(self, job: J.WhisperTimeout) -> None:
        self.agent_legs.whisper_timeout(job.leg_id, job.phase)

    @handles(J.ReconcileRoom)
    def reconcile_room(self, job: J.ReconcileRoom) -> None:
        self.room_events.reconcile_room(job.call_id, job.room, job.round, job.gone)

    @handles(J.QueueTimeout)
    def queue_timeout(self, job: J.QueueTimeout) -> None:
        self.caller.queue_timeout(job.call_id)

    @handles(J.IntroTimeout)
    def intro_timeout(self, job: J.IntroTimeout) -> None:
        self.transfer_events.intro_timeout(job.transfer_id)

    @handles(J.ReturnTimeout)
    def return_timeout(self, job: J.ReturnTimeout) -> None:
        self.transfer_events.return_timeout(job.call_id, job.leg_id)

    @handles(J.WebJoinDeadline)
    def web_join_deadline(self, job: J.WebJoinDeadline) -> None:
        self.web_callers.join_deadline(job.call_id, job.gen)

    @handles(J.WebRejoinDeadline)
    def web_rejoin_deadline(self, job: J.WebRejoinDeadline) -> None:
        self.web_callers.rejoin_deadline(job.call_id, job.gen)

    @handles(J.SummaryDeadline)
    def summary_deadline(self, job: J.SummaryDeadline) -> None:
        self.summaries.summary_deadline(job.transfer_id)

    # --------------------------------------------------------- summaries
    @handles(J.Summarize)
    def summarize(self, job: J.Summarize) -> None:
        self.summaries.summarize(job.transfer_id)

    @handles(J.SendSms)
    def send_sms(self, job: J.SendSms) -> None:
        self.summaries.send_sms(job.transfer_id, job.to)

    def _load(self, model: type[Any], key: str) -> Any:  # the row's columns by name (Store.peek), or None
        return self.store.peek(model, key)  # a look before a provider call: no ORM session needed

    # ------------------------------------------------------------- LiveKit
    @handles(J.CreateRoom)
    def create_room(self, job: J.CreateRoom) -> None:
        call = self._load(Call, job.call_id)
        if call is None or call.state == C.ENDED:
            return
        room = job.room or call.room
        metadata = {"call_id": call.id, "twilio_call_sid": call.twilio_sid, "transfer_id": job.transfer_id}
        try:
            self.gw.rooms.create_room(
                room,
                metadata=metadata,
                empty_timeout_s=C.ROOM_EMPTY_TIMEOUT_S,
                departure_timeout_s=C.ROOM_DEPARTURE_TIMEOUT_S,
            )
        except ProviderError:
            self.livekit.failed()
            raise
        self.livekit.recovered()

    @handles(J.DeleteRoom)
    def delete_room(self, job: J.DeleteRoom) -> None:
        self.gw.rooms.delete_room(job.room)

    @handles(J.RemoveParticipant)
    def remove_participant(self, job: J.RemoveParticipant) -> None:
        self.gw.rooms.remove_participant(job.room, job.identity)
        if call_id := job.call_id:  # LiveKit reports the leave by webhook; if it does not, a look will
            self.store.run(lambda session: self.routing.expect_in_room(session, call_id, job.room, gone=job.identity))

    @handles(J.MoveParticipant)
    def move_participant(self, job: J.MoveParticipant) -> None:
        self.gw.rooms.move_participant(job.room, job.identity, job.destination)

    # -------------------------------------------------------------- Twilio
    @handles(J.StartTranscription)
    def start_transcription(self, job: J.StartTranscription) -> None:
        """One named real-time transcription per call, by REST on the answered call."""
        call = self.store.peek(Call, job.call_id)
        if call is None or call.state == C.ENDED or on_the_page(call.channel, call.twilio_sid):
            return  # (a web call has no Twilio leg to transcribe: its summary uses the agents' notes)
        try:
            self.gw.telephony.start_transcription(
                call.twilio_sid,
                name=transcription_name(call.id),
                status_callback_url=self.gw.urls(Dest.TRANSCRIPTION, call=call.id),
            )
        except ProviderError as exc:
            if exc.code != 21220:
                raise
            # "Not in progress": LiveKit's answer may reach our webhook before Twilio has marked the
            # call answered, so try again shortly, unless the call has ended meanwhile.
            current = self.store.peek(Call, job.call_id)
            if current is not None and current.state != C.ENDED:
                raise ProviderError("twilio", "not_in_progress_yet", str(exc), retryable=True) from exc

    @handles(J.DialLeg)
    def dial_leg(self, job: J.DialLeg) -> None:
        gw = self.gw
        if job.fresh and job.to is not None:
            # Straight from the commit that created the leg: it is ringing and not dialled yet
            # (a withdrawal racing in is caught below, after the dial). No read on B's path.
            leg_id, to, for_transfer = job.leg_id, job.to, job.transfer
        else:
            leg = self._load(Leg, job.leg_id)
            if leg is None or leg.state != L.RINGING or leg.twilio_sid:
                return
            leg_id, to, for_transfer = leg.id, leg.phone, bool(leg.transfer_id)
        sid = gw.telephony.place_call(
            to=to,
            url=gw.urls(Dest.LEG_ANSWER, leg=leg_id),
            status_callback=gw.urls(Dest.LEG_STATUS, leg=leg_id),
            timeout_s=int(gw.settings.ring_timeout_s),
            machine_detection=for_transfer,
        )

        def save(session: Session) -> str:
            fresh = existing(session, Leg, leg_id, fresh=True)
            if not fresh.twilio_sid:
                self.store.compare_and_set(session, fresh, twilio_sid=sid)
            return fresh.state

        state = self.store.run(save)
        if state not in (L.RINGING, L.ACCEPTED, L.JOINED):
            gw.telephony.hangup(sid)  # withdrawn while we were dialling
        elif for_transfer:
            self.transfer_events.on_target_dialed(leg_id)

    @handles(J.HangupLeg)
    def hangup_leg(self, job: J.HangupLeg) -> None:
        leg = self._load(Leg, job.leg_id)
        if leg is not None and leg.twilio_sid:
            self.gw.telephony.hangup(leg.twilio_sid)

    @handles(J.RedirectCaller)
    def redirect_caller(self, job: J.RedirectCaller) -> None:
        dest = self.gw.urls.destination(job.dest)
        web = self.store.peek(Call, job.call_id)
        if web is not None and on_the_page(web.channel, web.twilio_sid):
            self.web_callers.redirected(job.call_id, dest)  # no Twilio leg: the page follows
            return
        bridging = dest == Dest.BRIDGE

        def claim(session: Session) -> tuple[str, bool] | None:
            call = session.get(Call, job.call_id, populate_existing=True)
            if call is None or call.state == C.ENDED:
                return None
            if bridging and job.gen is not None and (call.bridge_gen or 0) != job.gen:
                return None  # the caller already fetched a newer bridge (hold loop, or our earlier run)
            if bridging and not call.redirecting:
                self.store.compare_and_set(session, call, redirecting=True)
            return call.twilio_sid, call.connected_at is not None

        claimed = self.store.run(claim)
        if not claimed:
            return
        sid, was_connected = claimed
        if dest in CONVERSATION_OVER and was_connected and self.gw.settings.transcription_enabled:
            # The conversation is over: stop the call's transcription by name, before the caller
            # hears goodbye or the apology, rather than transcribe that and the voicemail too.
            try:
                self.gw.telephony.stop_transcription(sid, transcription_name(job.call_id))
            except ProviderError as exc:  # never a reason to keep the caller from the next TwiML
                log.warning("stopping the transcription of %s failed: %s", job.call_id, exc)
        self.gw.telephony.redirect(sid, self.gw.urls(dest, call=job.call_id))

    @handles(J.RedirectLeg)
    def redirect_leg(self, job: J.RedirectLeg) -> None:
        leg = self._load(Leg, job.leg_id)
        if leg is None or leg.state not in (L.ACCEPTED, L.JOINED) or not leg.twilio_sid:
            return
        self.gw.telephony.redirect(leg.twilio_sid, self.gw.urls(self.gw.urls.destination(job.dest), leg=leg.id))

    @handles(J.HoldCaller)
    def hold_caller(self, job: J.HoldCaller) -> None:
        call = self._load(Call, job.call_id)
        if call is None or call.state != C.ON_HOLD:
            return
        if not on_the_page(call.channel, call.twilio_sid):  # a web caller's page plays the hold music itself
            self.gw.telephony.redirect(call.twilio_sid, self.gw.urls(Dest.HOLD, call=call.id))
        self.transfer_events.on_caller_held(job.transfer_id)

    # ----------------------------------------------------------- retention
    @handles(J.PurgeCallData)
    def purge_call_data(self, job: J.PurgeCallData) -> None:
        """Nothing a caller said or that was written about them outlives the retention period: the
        transcript, notes, summaries, the SMS that carried them (body and number), the voicemail's
        recording link, the caller's number and the number a callback was to dial (masked to their last
        four digits, as in the logs) and what a website said about a web caller (the call's facts)."""
        store: Store = self.store

        def work(session: Session) -> None:
            call_id = job.call_id
            session.execute(delete(TranscriptLine).where(TranscriptLine.call_id == call_id))
            session.execute(delete(Note).where(Note.call_id == call_id))
            session.execute(delete(Voicemail).where(Voicemail.call_id == call_id))
            session.execute(delete(WebCallKey).where(WebCallKey.id == call_id))
            transfer_ids = select(Transfer.id).where(Transfer.call_id == call_id)
            session.execute(delete(Message).where(Message.transfer_id.in_(transfer_ids)))
            for transfer in session.execute(select(Transfer).where(Transfer.call_id == call_id)).scalars():
                store.compare_and_set(session, transfer, summary=None, notes=None)
            call = session.get(Call, call_id)
            # A withheld caller's From ("anonymous", or its keypad spelling) is nobody's number: kept,
            # so the call still reads as withheld rather than as four digits of no one.
            if call is not None and not call.from_number.startswith("…") and not is_withheld(call.from_number):
                store.compare_and_set(session, call, from_number=mask_phone(call.from_number))
            if call is not None and call.facts:  # a web caller's verified context (name, email, page…)
                store.compare_and_set(session, call, facts=None)
            # The number a callback was to dial: the caller's own, or the one a web caller typed in.
            for entry in session.execute(
                select(QueueEntry).where(QueueEntry.call_id == call_id, QueueEntry.callback_number.is_not(None))
            ).scalars():
                number = entry.callback_number or ""
                if not number.startswith("…"):
                    store.compare_and_set(session, entry, callback_number=mask_phone(number))
            store.record(session, call_id, "call_data_purged")

        store.run(work)

    # -------------------------------------------------------------- failure
    def on_error(self, kind: str, payload: dict[str, Any], exc: BaseException) -> None:
        """A job gave up. Record it on the call's timeline and keep the caller safe."""
        provider = getattr(exc, "provider", "gateway")
        self.provider_errors(provider, getattr(exc, "kind", type(exc).__name__))
        self.store.run(lambda session: self._record_failure(session, kind, payload, provider, exc))
        if kind == J.RedirectCaller.kind:
            self.caller.redirect_abandoned(payload["call_id"])
        if kind == J.HoldCaller.kind:
            self.transfer_events.hold_failed(payload["transfer_id"], str(exc)[:120])

    def _record_failure(
        self, session: Session, kind: str, payload: dict[str, Any], provider: str, exc: BaseException
    ) -> None:
        call_id = payload.get("call_id")
        leg = session.get(Leg, payload["leg_id"]) if payload.get("leg_id") else None
        if leg is not None:
            call_id = leg.call_id
        if call_id is None and payload.get("transfer_id"):
            transfer = session.get(Transfer, payload["transfer_id"])
            call_id = transfer.call_id if transfer else None
        if call_id is None:
            return
        self.store.record(session, call_id, "provider_error", job=kind, provider=provider, error=str(exc)[:200])
        if kind == J.DialLeg.kind and leg is not None and leg.state == L.RINGING:
            self.legs.end_leg(session, leg, "fail", "could not place the call")
            self.agent_legs.after_leg_failed(session, leg)
        elif kind == J.MoveParticipant.kind:
            # Not LiveKit Cloud after all: fall back to the default path (A rejoins with a token).
            self.store.enqueue(session, J.RemoveParticipant(payload["room"], payload["identity"], call_id=call_id))
        elif kind == J.CreateRoom.kind and not payload.get("room"):
            # (A caller's-room job stored before the dispatch rule made those rooms.)
            call = session.get(Call, call_id, populate_existing=True)
            if call is not None and call.state == C.BRIDGING and call.connected_at is None:
                self.routing.to_voicemail(session, call, "LiveKit unavailable")


CONVERSATION_OVER = (Dest.GOODBYE, Dest.APOLOGY)


def transcription_name(call_id: str) -> str:
    """The name a call's transcription is started and stopped by (unique per call)."""
    return f"gw-{call_id}"
