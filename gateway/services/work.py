"""Job handlers: the provider calls behind every state change, run by the JobRunner."""

from __future__ import annotations

import logging
import time

from sqlalchemy import delete, select

from gateway.adapters.store.models import Call, Leg, Note, TranscriptLine, Transfer
from gateway.adapters.twilio_client import ProviderError
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.services.calls import CallService
from gateway.services.jobs import JobRunner
from gateway.services.ports import Gateway
from gateway.services.transfers import TransferService

log = logging.getLogger(__name__)
LIVEKIT_DOWN_FOR_S = 30


def register(runner: JobRunner, gw: Gateway, calls: CallService, transfers: TransferService) -> None:
    store = gw.store

    def load(model, key):
        return store.peek(model, key)  # a look before a provider call: no ORM session needed

    def create_room(p: dict) -> None:
        call = load(Call, p["call_id"])
        if call is None or call.state == C.ENDED:
            return
        room = p.get("room") or call.room
        metadata = {"call_id": call.id, "twilio_call_sid": call.twilio_sid, "transfer_id": p.get("transfer_id")}
        try:
            gw.rooms.create_room(
                room,
                metadata=metadata,
                empty_timeout_s=C.ROOM_EMPTY_TIMEOUT_S,
                departure_timeout_s=C.ROOM_DEPARTURE_TIMEOUT_S,
            )
        except ProviderError:
            gw.extras["livekit_down_until"] = time.time() + LIVEKIT_DOWN_FOR_S
            raise
        gw.extras["livekit_down_until"] = 0

    def delete_room(p: dict) -> None:
        gw.rooms.delete_room(p["room"])

    def remove_participant(p: dict) -> None:
        gw.rooms.remove_participant(p["room"], p["identity"])

    def move_participant(p: dict) -> None:
        gw.rooms.move_participant(p["room"], p["identity"], p["destination"])

    def dial_leg(p: dict) -> None:
        if p.get("_fresh") and "to" in p:
            # Straight from the commit that created the leg: it is ringing and not dialled yet
            # (a withdrawal racing in is caught below, after the dial). No read on B's path.
            leg_id, to, for_transfer = p["leg_id"], p["to"], p["transfer"]
        else:
            leg = load(Leg, p["leg_id"])
            if leg is None or leg.state != L.RINGING or leg.twilio_sid:
                return
            leg_id, to, for_transfer = leg.id, leg.phone, bool(leg.transfer_id)
        sid = gw.telephony.place_call(
            to=to,
            url=gw.urls("/twilio/leg/answer", leg=leg_id),
            status_callback=gw.urls("/twilio/leg/status", leg=leg_id),
            timeout_s=int(gw.settings.ring_timeout_s),
            machine_detection=for_transfer,
        )

        def save(session):
            fresh = session.get(Leg, leg_id, populate_existing=True)
            if not fresh.twilio_sid:
                store.compare_and_set(session, fresh, twilio_sid=sid)
            return fresh.state

        state = store.run(save)
        if state not in (L.RINGING, L.ACCEPTED, L.JOINED):
            gw.telephony.hangup(sid)  # withdrawn while we were dialling
        elif for_transfer:
            transfers.on_target_dialed(leg_id)

    def hangup_leg(p: dict) -> None:
        leg = load(Leg, p["leg_id"])
        if leg is not None and leg.twilio_sid:
            gw.telephony.hangup(leg.twilio_sid)

    def redirect_caller(p: dict) -> None:
        bridging = p["path"] == "/twilio/bridge"

        def claim(session) -> str | None:
            call = session.get(Call, p["call_id"], populate_existing=True)
            if call is None or call.state == C.ENDED:
                return None
            if bridging and p.get("gen") is not None and (call.bridge_gen or 0) != p["gen"]:
                return None  # the caller already fetched a newer bridge (hold loop, or our earlier run)
            if bridging and not call.redirecting:
                store.compare_and_set(session, call, redirecting=True)
            return call.twilio_sid

        sid = store.run(claim)
        if sid:
            gw.telephony.redirect(sid, gw.urls(p["path"], call=p["call_id"]))

    def redirect_leg(p: dict) -> None:
        leg = load(Leg, p["leg_id"])
        if leg is None or leg.state not in (L.ACCEPTED, L.JOINED) or not leg.twilio_sid:
            return
        gw.telephony.redirect(leg.twilio_sid, gw.urls(p["path"], leg=leg.id))

    def hold_caller(p: dict) -> None:
        call = load(Call, p["call_id"])
        if call is None or call.state != C.ON_HOLD:
            return
        gw.telephony.redirect(call.twilio_sid, gw.urls("/twilio/hold", call=call.id))
        transfers.on_caller_held(p["transfer_id"])

    def purge_call_data(p: dict) -> None:
        """Transcripts and summaries do not outlive the retention period."""

        def work(session):
            session.execute(delete(TranscriptLine).where(TranscriptLine.call_id == p["call_id"]))
            session.execute(delete(Note).where(Note.call_id == p["call_id"]))
            for transfer in session.execute(select(Transfer).where(Transfer.call_id == p["call_id"])).scalars():
                store.compare_and_set(session, transfer, summary=None, notes=None)
            store.record(session, p["call_id"], "call_data_purged")

        store.run(work)

    handlers = {
        "create_room": create_room,
        "delete_room": delete_room,
        "remove_participant": remove_participant,
        "move_participant": move_participant,
        "dial_leg": dial_leg,
        "hangup_leg": hangup_leg,
        "redirect_caller": redirect_caller,
        "redirect_leg": redirect_leg,
        "hold_caller": hold_caller,
        "ring_timeout": lambda p: calls.ring_timeout(p["leg_ids"]),
        "queue_timeout": lambda p: calls.queue_timeout(p["call_id"]),
        "summarize": lambda p: transfers.summarize(p["transfer_id"]),
        "summary_deadline": lambda p: transfers.summary_deadline(p["transfer_id"]),
        "send_sms": lambda p: transfers.send_sms(p["transfer_id"], p["to"]),
        "intro_timeout": lambda p: transfers.intro_timeout(p["transfer_id"]),
        "purge_call_data": purge_call_data,
    }
    for kind, handler in handlers.items():
        runner.register(kind, handler)

    def on_error(kind: str, payload: dict, exc: BaseException) -> None:
        """A job gave up. Record it on the call's timeline and keep the caller safe."""
        provider = getattr(exc, "provider", "gateway")
        gw.extras.get("metrics_provider_error", lambda *a: None)(provider, getattr(exc, "kind", type(exc).__name__))

        def work(session):
            call_id = payload.get("call_id")
            leg = session.get(Leg, payload["leg_id"]) if payload.get("leg_id") else None
            if leg is not None:
                call_id = leg.call_id
            if call_id is None and payload.get("transfer_id"):
                transfer = session.get(Transfer, payload["transfer_id"])
                call_id = transfer.call_id if transfer else None
            if call_id is None:
                return
            store.record(session, call_id, "provider_error", job=kind, provider=provider, error=str(exc)[:200])
            if kind == "dial_leg" and leg is not None and leg.state == L.RINGING:
                calls.end_leg(session, leg, "fail", "could not place the call")
                calls.after_leg_failed(session, leg)
            elif kind == "move_participant":
                # Not LiveKit Cloud after all: fall back to the default path (A rejoins with a token).
                store.enqueue(
                    session,
                    "remove_participant",
                    {"room": payload["room"], "identity": payload["identity"], "call_id": call_id},
                )
            elif kind == "create_room" and not payload.get("room"):
                # (A caller's-room job stored before the dispatch rule made those rooms.)
                call = session.get(Call, call_id, populate_existing=True)
                if call is not None and call.state == C.BRIDGING and call.connected_at is None:
                    calls.to_voicemail(session, call, "LiveKit unavailable")

        store.run(work)
        if kind == "redirect_caller":
            calls.redirect_abandoned(payload["call_id"])
        if kind == "hold_caller":
            transfers.hold_failed(payload["transfer_id"], str(exc)[:120])

    runner.on_error = on_error
