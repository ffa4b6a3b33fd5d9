"""LiveKit webhooks: verified with WebhookReceiver over the raw body and raw Authorization header."""

from __future__ import annotations

import logging
import threading

import jwt
from flask import Blueprint, Response, current_app, request
from livekit.protocol.models import DisconnectReason, ParticipantInfo

from gateway.ops import smoke

log = logging.getLogger(__name__)
bp = Blueprint("livekit", __name__, url_prefix="/livekit")

# API keys other than ours that signed a webhook, each logged once per process: a LiveKit server
# or Cloud project whose webhooks use another key is a configuration mistake to name clearly, not
# a stream of identical errors (LiveKit retries every delivery).
_foreign_keys: set[str] = set()
_foreign_lock = threading.Lock()


def _signing_key(authorization: str) -> str | None:
    """The API key (JWT ``iss``) a webhook claims to be signed with; None when unreadable."""
    try:
        return jwt.decode(authorization, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None


def _log_foreign_key(key: str, ours: str) -> None:
    with _foreign_lock:
        if key in _foreign_keys:
            return
        _foreign_keys.add(key)
    log.error(
        "LiveKit webhook signed with API key %r, but this gateway holds %r: every such webhook is refused. "
        "Set the webhook's api_key in the LiveKit server config (or the key of the Cloud project's webhook) to "
        "LIVEKIT_API_KEY, or give the gateway that key and its secret",
        key,
        ours,
    )


@bp.post("/webhook")
def webhook():
    services = current_app.extensions["gateway"]
    body = request.get_data(as_text=True)
    authorization = request.headers.get("Authorization", "")
    try:
        event = services.gw.rooms.webhook_receiver().receive(body, authorization)
    except Exception as exc:
        services.metrics.rejected("livekit_signature")
        key, ours = _signing_key(authorization), services.gw.settings.livekit_api_key
        if key and key != ours:
            _log_foreign_key(key, ours)
            return Response(f"invalid LiveKit webhook: signed with unknown API key {key}\n", 401, mimetype="text/plain")
        return Response(f"invalid LiveKit webhook: {exc}\n", status=401, mimetype="text/plain")
    probe = smoke.probe_of_room(event.room.name, services.gw.settings.livekit_room_prefix)
    if probe and event.event == "participant_joined":  # a doctor --call test call reached the gateway
        smoke.record_hop(
            services.gw.store, probe, "livekit_webhook", event=event.event, identity=event.participant.identity
        )
    services.room_events.livekit_event(
        event_id=event.id,
        name=event.event,
        room=event.room.name,
        identity=event.participant.identity,
        kind="sip" if event.participant.kind == ParticipantInfo.Kind.SIP else "standard",
        attributes=dict(event.participant.attributes),
        replaced=event.participant.disconnect_reason == DisconnectReason.DUPLICATE_IDENTITY,
    )
    return Response(status=204)
