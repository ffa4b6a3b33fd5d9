"""LiveKit webhooks: verified with WebhookReceiver over the raw body and raw Authorization header."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request
from livekit.protocol.models import DisconnectReason, ParticipantInfo

log = logging.getLogger(__name__)
bp = Blueprint("livekit", __name__, url_prefix="/livekit")


@bp.post("/webhook")
def webhook():
    services = current_app.extensions["gateway"]
    body = request.get_data(as_text=True)
    try:
        event = services.gw.rooms.webhook_receiver().receive(body, request.headers.get("Authorization", ""))
    except Exception as exc:
        services.metrics.rejected("livekit_signature")
        return Response(f"invalid LiveKit webhook: {exc}\n", status=401, mimetype="text/plain")
    services.calls.livekit_event(
        event_id=event.id,
        name=event.event,
        room=event.room.name,
        identity=event.participant.identity,
        kind="sip" if event.participant.kind == ParticipantInfo.Kind.SIP else "standard",
        attributes=dict(event.participant.attributes),
        replaced=event.participant.disconnect_reason == DisconnectReason.DUPLICATE_IDENTITY,
    )
    return Response(status=204)
