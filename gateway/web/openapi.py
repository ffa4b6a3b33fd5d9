"""The OpenAPI 3.1 document of every HTTP endpoint, served at /openapi.json, and a docs page.

Written as data next to the code it describes; tests/integration/test_openapi.py keeps it
equal to the registered routes, and a schemathesis run fuzzes the API through it.
"""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__)

ERROR = {"$ref": "#/components/schemas/Error"}
# Security requirement objects: each scheme's list of scopes (none here).
AGENT: list[dict[str, list[str]]] = [{"agentCredential": []}, {"consoleSession": []}]
ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]
TWILIO: list[dict[str, list[str]]] = [{"twilioSignature": []}]


def _json_body(properties: dict, required: tuple = ()) -> dict:
    return {
        "required": bool(required),
        "content": {
            "application/json": {"schema": {"type": "object", "properties": properties, "required": list(required)}}
        },
    }


def _form_body(properties: dict, required: tuple = ()) -> dict:
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": properties, "required": list(required)}
            }
        },
    }


def _op(summary: str, *, tag: str, security=None, body=None, params=(), responses=None) -> dict:
    op = {"summary": summary, "tags": [tag], "responses": responses or {"200": {"description": "OK"}}}
    if security is not None:
        op["security"] = security
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = (
            [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
            if all(isinstance(p, str) for p in params)
            else list(params)
        )
    return op


def _api(summary, *, status="200", params=(), body=None, security=AGENT, tag="calls", extra=(), reply=None):
    ok: dict[str, object] = {"description": "OK"}
    if reply is not None:
        ok["content"] = {"application/json": {"schema": reply}}
    responses = {
        status: ok,
        "400": {"description": "Bad input", "content": {"application/json": {"schema": ERROR}}},
        "401": {"description": "Not signed in"},
    }
    for code in extra:
        responses[code] = {
            "description": {"403": "Not allowed", "404": "Unknown id", "409": "Not now", "202": "Accepted"}.get(
                code, "See message"
            ),
            "content": {"application/json": {"schema": ERROR}},
        }
    return _op(summary, tag=tag, security=security, body=body, params=params, responses=responses)


def _twiml(summary, query=(), fields=None, required=()):
    params = [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query]
    return _op(
        summary,
        tag="twilio webhooks",
        security=TWILIO,
        body=_form_body(fields or {"CallSid": {"type": "string"}}, required),
        params=params,
        responses={
            "200": {"description": "TwiML", "content": {"text/xml": {}}},
            "204": {"description": "Recorded"},
            "400": {"description": "Malformed form"},
            "403": {"description": "Invalid X-Twilio-Signature"},
        },
    )


CALL_FIELDS = {
    "CallSid": {"type": "string"},
    "From": {"type": "string"},
    "To": {"type": "string"},
    "CallStatus": {"type": "string"},
    "AccountSid": {"type": "string"},
}
TARGET = {
    "call_id": {"type": "string"},
    "room": {"type": "string"},
    "target": {"type": "string"},
    "target_agent_id": {"type": "string"},
    "target_number": {"type": "string", "pattern": r"^\+[1-9]\d{6,14}$"},
    "mode": {"type": "string", "enum": ["warm", "cold"]},
    "notes": {"type": "string", "maxLength": 2000},
}
AGENT_FIELDS = {
    "id": {"type": "string"},
    "name": {"type": "string"},
    "phone": {"type": "string"},
    "browser": {"type": "boolean"},
    "status": {"type": "string", "enum": ["available", "busy", "offline"]},
}
TRANSFER_STATES = [
    "initiated",
    "consulting",
    "target_ringing",
    "target_accepted",
    "conferenced",
    "completed",
    "cancelled",
    "declined",
    "no_answer",
    "abandoned",
    "failed",
]
TRANSFER_REPLY = {
    "type": "object",
    "properties": {"transfer": {"$ref": "#/components/schemas/Transfer"}},
    "required": ["transfer"],
}
STATUS = {"status": {"type": "string", "enum": ["available", "busy", "offline"]}}
AGENT_FIELDS["teams"] = {"type": "array", "items": {"type": "string"}, "maxItems": 50}
TEAM_FIELDS = {
    "id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,39}$"},
    "name": {"type": "string", "maxLength": 120},
    "hold_music_url": {"type": "string", "description": "Audio for this team's waiting callers (HOLD_MUSIC_URL)"},
    "max_wait_s": {"type": "number", "minimum": 10, "maximum": 7200, "description": "default QUEUE_TIMEOUT_S"},
    "numbers": {"type": "array", "items": {"type": "string", "pattern": r"^\+[1-9]\d{6,14}$"}},
}

PATHS = {
    "/api/auth/login": {
        "post": _api(
            "Sign in with the credential the CLI issued (sets the console session)",
            tag="agents",
            security=[],
            body=_json_body({"credential": {"type": "string"}}, ("credential",)),
        )
    },
    "/api/auth/logout": {"post": _api("Sign out", tag="agents", security=[])},
    "/api/me": {"get": _api("The signed-in agent and their live legs", tag="agents")},
    "/api/agents": {"get": _api("Agents with their presence", tag="agents")},
    "/api/agents/me/status": {"post": _api("Set my presence", tag="agents", body=_json_body(STATUS, ("status",)))},
    "/api/agents/me/offers": {"get": _api("Calls and transfers ringing for me", tag="agents")},
    "/api/calls": {"get": _api("Today's calls I took part in")},
    "/api/calls/{call_id}": {"get": _api("A call and its transfers", params=("call_id",), extra=("403", "404"))},
    "/api/calls/{call_id}/timeline": {"get": _api("A call's timeline", params=("call_id",), extra=("403", "404"))},
    "/api/calls/{call_id}/transcript": {
        "get": _api("Live transcript and notes", params=("call_id",), extra=("403", "404"))
    },
    "/api/calls/{call_id}/notes": {
        "post": _api(
            "Add a note (feeds the summary)",
            status="201",
            params=("call_id",),
            body=_json_body({"text": {"type": "string"}}, ("text",)),
            extra=("403", "404"),
        )
    },
    "/api/calls/{call_id}/accept": {
        "post": _api(
            "Accept a ringing call; returns a LiveKit token for its room only", params=("call_id",), extra=("409",)
        )
    },
    "/api/calls/{call_id}/decline": {"post": _api("Decline a ringing call", params=("call_id",), extra=("409",))},
    "/api/calls/{call_id}/hangup": {"post": _api("End the call for the caller", params=("call_id",), extra=("409",))},
    "/api/rooms/create": {
        "post": _api(
            "Create a LiveKit room (admin)",
            status="201",
            tag="rooms",
            security=ADMIN,
            body=_json_body({"room": {"type": "string"}}, ("room",)),
            extra=("403",),
        )
    },
    "/api/rooms/join": {
        "post": _api(
            "A join token for a room where I have an accepted call",
            tag="rooms",
            body=_json_body({"room": {"type": "string"}}, ("room",)),
            extra=("403",),
        )
    },
    "/api/rooms": {"get": _api("Live rooms", tag="rooms")},
    "/api/rooms/{room}/leave": {"post": _api("Leave a room", tag="rooms", params=("room",), extra=("404",))},
    "/api/transfer/initiate": {
        "post": _api(
            "Start a warm or cold transfer",
            status="202",
            tag="transfers",
            body=_json_body(TARGET),
            extra=("403", "404", "409"),
            reply=TRANSFER_REPLY,
        )
    },
    "/api/transfers/{transfer_id}": {
        "get": _api(
            "A transfer with its summary",
            tag="transfers",
            params=("transfer_id",),
            extra=("403", "404"),
            reply=TRANSFER_REPLY,
        )
    },
    **{
        f"/api/transfers/{{transfer_id}}/{verb}": {
            "post": _api(text, tag="transfers", params=("transfer_id",), extra=("403", "404", "409"), reply=reply)
        }
        for verb, text, reply in (
            ("complete", "Connect the caller (three-way)", TRANSFER_REPLY),
            ("cancel", "Cancel; the caller returns", TRANSFER_REPLY),
            ("leave", "A leaves after the introduction", TRANSFER_REPLY),
            ("accept", "B accepts; token for the consult room", None),
            ("decline", "B declines", None),
        )
    },
    "/api/summary/generate": {
        "post": _api(
            "Summary of a call on demand",
            tag="transfers",
            body=_json_body({"call_id": {"type": "string"}}, ("call_id",)),
            extra=("403", "404"),
        )
    },
    "/api/twilio/transfer": {
        "post": _api(
            "Cold transfer to a phone number",
            status="202",
            tag="transfers",
            body=_json_body(
                {"call_id": {"type": "string"}, "to": TARGET["target_number"], "notes": {"type": "string"}},
                ("call_id", "to"),
            ),
            extra=("403", "404", "409"),
        )
    },
    "/api/twilio/sms-summary": {
        "post": _api(
            "Send a transfer's summary again by SMS",
            status="202",
            tag="transfers",
            body=_json_body(
                {"transfer_id": {"type": "string"}, "agent_id": {"type": "string"}, "to": {"type": "string"}},
                ("transfer_id",),
            ),
            extra=("403", "404", "409"),
        )
    },
    "/api/admin/agents": {
        "get": _api("List agents", tag="admin", security=ADMIN, extra=("403",)),
        "post": _api(
            "Add an agent; returns its credential once",
            status="201",
            tag="admin",
            security=ADMIN,
            body=_json_body(AGENT_FIELDS, ("id", "name")),
            extra=("403",),
        ),
    },
    "/api/admin/agents/{agent_id}": {
        "delete": _api("Remove an agent", tag="admin", security=ADMIN, params=("agent_id",), extra=("403", "404"))
    },
    "/api/admin/agents/{agent_id}/status": {
        "post": _api(
            "Set an agent's presence",
            tag="admin",
            security=ADMIN,
            params=("agent_id",),
            body=_json_body(STATUS, ("status",)),
            extra=("403", "404"),
        )
    },
    "/api/admin/agents/{agent_id}/teams": {
        "put": _api(
            "Replace the teams an agent serves",
            tag="admin",
            security=ADMIN,
            params=("agent_id",),
            body=_json_body({"teams": AGENT_FIELDS["teams"]}, ("teams",)),
            extra=("403", "404"),
        )
    },
    "/api/admin/teams": {
        "get": _api(
            "List teams with members, numbers and callers waiting", tag="admin", security=ADMIN, extra=("403",)
        ),
        "post": _api(
            "Add a team (a queue)",
            status="201",
            tag="admin",
            security=ADMIN,
            body=_json_body(TEAM_FIELDS, ("id", "name")),
            extra=("403",),
        ),
    },
    "/api/admin/teams/{team_id}": {
        "patch": _api(
            "Change a team's name, hold music, max wait or numbers",
            tag="admin",
            security=ADMIN,
            params=("team_id",),
            body=_json_body({k: v for k, v in TEAM_FIELDS.items() if k != "id"}),
            extra=("403", "404"),
        ),
        "delete": _api(
            "Remove a team nobody is waiting in",
            tag="admin",
            security=ADMIN,
            params=("team_id",),
            extra=("403", "404", "409"),
        ),
    },
    "/healthz": {"get": _op("Process alive", tag="ops")},
    "/readyz": {
        "get": _op(
            "Database, migrations and LiveKit reachable",
            tag="ops",
            responses={"200": {"description": "Ready"}, "503": {"description": "Not ready"}},
        )
    },
    "/metrics": {
        "get": _op(
            "Prometheus metrics (Bearer METRICS_TOKEN when set)",
            tag="ops",
            responses={"200": {"description": "Metrics"}, "401": {"description": "Token required"}},
        )
    },
    "/livekit/webhook": {
        "post": _op(
            "LiveKit webhook (Authorization: JWT with the body's sha256)",
            tag="livekit",
            body={"required": True, "content": {"application/webhook+json": {"schema": {"type": "object"}}}},
            responses={"204": {"description": "Handled"}, "401": {"description": "Invalid"}},
        )
    },
    "/twilio/voice": {"post": _twiml("Inbound call: bridge into a LiveKit room (never 5xx)", fields=CALL_FIELDS)},
    "/twilio/fallback": {
        "post": _twiml(
            "Twilio fallback URL: records ErrorCode/ErrorUrl, apologises",
            fields={**CALL_FIELDS, "ErrorCode": {"type": "string"}, "ErrorUrl": {"type": "string"}},
        )
    },
    "/twilio/status": {
        "post": _twiml("Caller's status callback", fields=CALL_FIELDS, required=("CallSid", "CallStatus"))
    },
    "/twilio/dial-action": {
        "post": _twiml(
            "The caller's <Dial> ended",
            query=("call", "room", "gen"),
            fields={**CALL_FIELDS, "DialCallStatus": {"type": "string"}},
        )
    },
    "/twilio/sip-status": {
        "post": _twiml(
            "<Sip> child-leg progress", query=("call",), fields=CALL_FIELDS, required=("CallSid", "CallStatus")
        )
    },
    "/twilio/hold": {"post": _twiml("Hold music with reassurance, looping", query=("call", "loop"))},
    "/twilio/bridge": {"post": _twiml("Bridge the caller into the call's current room", query=("call",))},
    "/twilio/apology": {"post": _twiml("Apology and voicemail", query=("call",))},
    "/twilio/goodbye": {"post": _twiml("Goodbye (call ended by the agent)")},
    "/twilio/voicemail": {
        "post": _twiml(
            "Recording finished",
            query=("call",),
            fields={"RecordingUrl": {"type": "string"}, "RecordingDuration": {"type": "string"}},
        )
    },
    "/twilio/leg/answer": {
        "post": _twiml(
            "Agent's phone answered: whisper, press 1",
            query=("leg", "wait"),
            fields={**CALL_FIELDS, "AnsweredBy": {"type": "string"}},
        )
    },
    "/twilio/leg/gather": {
        "post": _twiml("Agent pressed a key", query=("leg",), fields={"Digits": {"type": "string"}})
    },
    "/twilio/leg/bridge": {"post": _twiml("Bridge an agent's phone into its room", query=("leg",))},
    "/twilio/leg/dial-action": {"post": _twiml("Agent's <Dial> ended", query=("leg",))},
    "/twilio/leg/status": {
        "post": _twiml("Agent phone call status", query=("leg",), fields=CALL_FIELDS, required=("CallStatus",))
    },
    "/twilio/leg/sip-status": {"post": _twiml("Agent <Sip> child-leg progress", query=("leg",))},
    "/twilio/transcription": {
        "post": _twiml(
            "Real-time transcription callback",
            query=("call",),
            fields={
                "TranscriptionEvent": {"type": "string"},
                "TranscriptionData": {"type": "string"},
                "Track": {"type": "string"},
                "Final": {"type": "string"},
                "SequenceId": {"type": "string"},
            },
        )
    },
    "/twilio/smoke/answer": {
        "post": _twiml(
            "doctor --call: the test call was answered (whisper)",
            query=("probe",),
            fields={**CALL_FIELDS, "AnsweredBy": {"type": "string"}},
        )
    },
    "/twilio/smoke/heard": {"post": _twiml("doctor --call: the whisper was said; ask for 1", query=("probe",))},
    "/twilio/smoke/gather": {
        "post": _twiml(
            "doctor --call: the key pressed; bridge into LiveKit",
            query=("probe",),
            fields={"Digits": {"type": "string"}},
        )
    },
    "/twilio/smoke/dial-action": {
        "post": _twiml(
            "doctor --call: the SIP bridge ended",
            query=("probe",),
            fields={"DialCallStatus": {"type": "string"}, "DialSipResponseCode": {"type": "string"}},
        )
    },
    "/twilio/smoke/status": {
        "post": _twiml(
            "doctor --call: status of the test call or its SIP leg", query=("probe", "leg"), fields=CALL_FIELDS
        )
    },
    "/twilio/sms-status": {
        "post": _twiml(
            "SMS delivery status",
            fields={"MessageSid": {"type": "string"}, "MessageStatus": {"type": "string"}},
            required=("MessageSid", "MessageStatus"),
        )
    },
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Warm-transfer gateway",
        "version": "1.0.0",
        "description": "Telephony-first warm transfers: Twilio calls bridged into LiveKit rooms.",
    },
    "paths": PATHS,
    "components": {
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "Transfer": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "call_id": {"type": "string"},
                    "state": {"type": "string", "enum": TRANSFER_STATES},
                    "mode": {"type": "string", "enum": ["warm", "cold"]},
                    "source_agent_id": {"type": "string"},
                    "target_agent_id": {"type": ["string", "null"]},
                    "target_number": {"type": ["string", "null"]},
                    "consult_room": {"type": ["string", "null"]},
                    "summary": {"type": ["object", "null"]},
                    "summary_source": {"type": ["string", "null"]},
                    "end_reason": {"type": ["string", "null"]},
                    "created_at": {"type": ["string", "null"]},
                    "ended_at": {"type": ["string", "null"]},
                    "active": {"type": "boolean", "description": "Not yet in a final state."},
                    "allowed_actions": {
                        "type": "array",
                        "items": {"type": "string", "enum": ["complete", "cancel", "leave", "accept", "decline"]},
                        "description": (
                            "What the API accepts now: complete, cancel, leave (the transferring agent), "
                            "accept, decline (the target). complete is listed once the target is in the "
                            "consult room. Clients render their controls from this instead of the states."
                        ),
                    },
                },
                "required": ["id", "call_id", "state", "mode", "active", "allowed_actions"],
            },
        },
        "securitySchemes": {
            "agentCredential": {"type": "http", "scheme": "bearer", "description": "Credential from `agents add`"},
            "consoleSession": {"type": "apiKey", "in": "cookie", "name": "session"},
            "adminToken": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"},
            "twilioSignature": {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature"},
        },
    },
}


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(DOCUMENT)


@bp.get("/docs")
def docs():
    """A readable page rendered on the server (no CDN, works offline)."""
    rows = []
    for path, operations in PATHS.items():
        for method, op in operations.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(op['tags'][0])}</td><td>{escape(op['summary'])}</td></tr>"
            )
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Gateway API</title>"
        "<style>body{font:15px system-ui;margin:2rem}td,th{padding:.3rem .6rem;border-bottom:1px solid #ddd;"
        "text-align:left}</style></head><body><h1>Warm-transfer gateway API</h1>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>"
        "<table><thead><tr><th>Method</th><th>Path</th><th>Area</th><th>What it does</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>"
    )
    return Response(html, mimetype="text/html")
