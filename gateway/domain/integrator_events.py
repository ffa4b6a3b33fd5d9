"""Events for integrators (a CRM's webhook receiver): which timeline entries become which event,
the typed reason of a transfer's ending, and the signature of a delivery. Plain Python, no I/O.

The timeline is where every service already writes what happened, in the same transaction as the
change itself; an event is a stable, documented projection of some of its entries.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

# timeline kind -> event type (transfer_* states map to transfer.<state>)
CALL_EVENTS = {
    "call_received": "call.queued",
    "call_ended": "call.ended",
    "voicemail_left": "call.voicemail_left",
    "summary_ready": "summary.ready",
    "transfer_initiated": "transfer.initiated",
    "transfer_target_accepted": "transfer.accepted",
    "transfer_declined": "transfer.declined",
    "transfer_no_answer": "transfer.no_answer",
    "transfer_completed": "transfer.completed",
    "transfer_failed": "transfer.failed",
    "transfer_cancelled": "transfer.cancelled",
    "transfer_abandoned": "transfer.abandoned",
}
EVENT_TYPES = (
    "call.queued",
    "call.answered",
    "call.ended",
    "call.voicemail_left",
    "transfer.initiated",
    "transfer.offered",
    "transfer.accepted",
    "transfer.declined",
    "transfer.no_answer",
    "transfer.completed",
    "transfer.failed",
    "transfer.cancelled",
    "transfer.abandoned",
    "summary.ready",
)

# A transfer's end_reason (a sentence for people) -> a code for programs.
REASON_CODES = {
    "B declined": "target_declined",
    "B's voicemail answered": "target_voicemail",
    "B did not answer": "target_no_answer",
    "B did not accept": "target_no_key_pressed",
    "B was busy": "target_busy",
    "B's phone could not be reached": "target_unreachable",
    "A hung up before B accepted": "source_hung_up",
    "B left during the introduction": "target_left",
    "B left the consult room": "target_left",
    "caller hung up": "caller_hung_up",
    "cancelled by agent": "cancelled_by_agent",
}
REASON_TYPES = (*sorted(set(REASON_CODES.values())), "hold_failed", "other")

SIGNATURE_HEADER = "X-Gateway-Signature"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
EVENT_ID_HEADER = "X-Gateway-Event-Id"
EVENT_TYPE_HEADER = "X-Gateway-Event"
REPLAY_WINDOW_S = 300


def reason_code(reason: str | None) -> str | None:
    if not reason:
        return None
    if reason.startswith("could not hold the caller"):
        return "hold_failed"
    return REASON_CODES.get(reason, "other")


def event_for(
    kind: str, transfer_id: str | None, agent_id: str | None, detail: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """The event type and its ``data`` for a timeline entry, or None when integrators get none."""
    if kind == "leg_accepted":
        # The first agent to accept the call answers it; in a transfer, B's acceptance is
        # transfer.accepted (its own entry), not a new answer.
        return None if transfer_id else ("call.answered", {"agent_id": agent_id})
    if kind in ("agent_ringing", "target_ringing"):
        if not transfer_id:
            return None
        return "transfer.offered", {"agent_id": agent_id, "channels": list(detail.get("channels") or [])}
    event_type = CALL_EVENTS.get(kind)
    if event_type is None:
        return None
    data: dict[str, Any] = {}
    if kind == "call_ended":
        data["reason"] = detail.get("reason")
    elif kind == "transfer_initiated":
        data.update(mode=detail.get("mode"), target=detail.get("target"), agent_id=agent_id)
    elif kind == "summary_ready":
        data["source"] = detail.get("source")
    elif kind.startswith("transfer_"):
        reason = detail.get("reason")
        data.update(reason=reason_code(reason), reason_text=reason)
    return event_type, data


def envelope(
    *,
    event_id: str,
    event_type: str,
    created_at: str | None,
    call: dict[str, Any],
    transfer_id: str | None,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The JSON body of one event (what is signed and sent): described by ``event_schemas``."""
    return {
        "id": event_id,
        "type": event_type,
        "created_at": created_at,
        "call": {key: call.get(key) for key in ("id", "channel", "twilio_sid", "from", "to")},
        "transfer_id": transfer_id,
        "data": data,
    }


# --- the documented shape of every event (/openapi.json: "webhooks" and components/schemas) ----------
_STR_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
_REASON = {
    "reason": {
        "type": ["string", "null"],
        "enum": [*REASON_TYPES, None],
        "description": "Why the transfer ended, for programs (null while it has not ended)",
    },
    "reason_text": {**_STR_OR_NULL, "description": "The same, in words"},
}
# The ``data`` of each event type, as ``event_for`` builds it.
DATA_FIELDS: dict[str, dict[str, Any]] = {
    "call.queued": {},
    "call.answered": {"agent_id": {**_STR_OR_NULL, "description": "The agent who accepted the call"}},
    "call.ended": {"reason": {**_STR_OR_NULL, "description": "How it ended, in words"}},
    "call.voicemail_left": {},
    "transfer.initiated": {
        "mode": {"type": ["string", "null"], "enum": ["warm", "cold", None]},
        "target": {**_STR_OR_NULL, "description": "The target agent's id, or the number (masked)"},
        "agent_id": {**_STR_OR_NULL, "description": "The transferring agent"},
    },
    "transfer.offered": {
        "agent_id": {**_STR_OR_NULL, "description": "The target agent (null: a phone number)"},
        "channels": {"type": "array", "items": {"type": "string", "enum": ["browser", "phone"]}},
    },
    **{
        t: _REASON
        for t in EVENT_TYPES
        if t.startswith("transfer.") and t not in ("transfer.initiated", "transfer.offered")
    },
    "summary.ready": {"source": {"type": ["string", "null"], "enum": ["openai", "fallback", None]}},
}


def schema_name(event_type: str) -> str:
    """components/schemas name of an event type's body: call.ended -> CallEndedEvent."""
    return "".join(part.capitalize() for part in event_type.replace(".", "_").split("_")) + "Event"


def event_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each event type's body, by ``schema_name``: every field always present and
    nothing else (a field added to ``envelope`` or ``event_for`` but not here fails the tests)."""

    def strict(properties: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }

    call = strict(
        {
            "id": {"type": "string", "description": "The gateway's call id (call_…)"},
            "channel": {
                "type": ["string", "null"],
                "enum": ["phone", "web", None],
                "description": "phone, or web (the caller page: no CallSid, no numbers)",
            },
            "twilio_sid": {**_STR_OR_NULL, "description": "The caller's Twilio CallSid"},
            "from": _STR_OR_NULL,
            "to": _STR_OR_NULL,
        }
    )
    return {
        schema_name(event_type): strict(
            {
                "id": {
                    "type": "string",
                    "description": "evt_…: the same on every retry and replay (deduplicate by it)",
                },
                "type": {"const": event_type},
                "created_at": {"type": "string", "format": "date-time", "description": "UTC, ISO 8601 with a Z"},
                "call": call,
                "transfer_id": _STR_OR_NULL,
                "data": strict(DATA_FIELDS[event_type]),
            }
        )
        for event_type in EVENT_TYPES
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``, hex: what the signature header carries (v1=…)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float) -> bool:
    """What a receiver does: the timestamp is recent (replays of old deliveries are refused) and
    the signature matches (compared in constant time)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > REPLAY_WINDOW_S:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature)
