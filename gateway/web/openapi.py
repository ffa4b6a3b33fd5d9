"""The OpenAPI 3.1 document of every HTTP endpoint, served at /openapi.json, and a docs page.

Written as data next to the code it describes; tests/integration/test_openapi.py keeps it
equal to the registered routes, and a schemathesis run fuzzes the API through it.
"""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, jsonify

from gateway.domain import calls as C
from gateway.domain import integrator_events as E
from gateway.domain import legs as L
from gateway.domain import transfers as T
from gateway.services import api_keys

bp = Blueprint("openapi", __name__)

ERROR = {"$ref": "#/components/schemas/Error"}
# Security requirement objects: each scheme's list of scopes (none here).
AGENT: list[dict[str, list[str]]] = [{"agentCredential": []}, {"consoleSession": []}]
ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}, {"apiKey": []}]  # a key: GET any scope, else write
# Reads of call data: an agent (by the access rule), or an integrator's API key of either scope.
READER: list[dict[str, list[str]]] = [*AGENT, {"apiKey": []}]
TWILIO: list[dict[str, list[str]]] = [{"twilioSignature": []}]
NOT_A_SUPERVISOR = (
    "the board and listen-in are for supervisors; ask an admin to add you as one "
    "(flask --app gateway agents add <id> --name <name> --supervisor)"
)


def _json_body(properties: dict, required: tuple = ()) -> dict:
    # The API treats an empty string as a missing field: a required string is at least one character.
    properties = {
        name: (schema | {"minLength": 1}) if name in required and schema.get("type") == "string" else schema
        for name, schema in properties.items()
    }
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


# Error bodies: {"error": <sentence>}; each status has an example of what the API really says.
ERROR_EXAMPLES = {
    "400": ("Bad input; nothing changed", "missing field: status"),
    "401": ("Not signed in", "sign in as an agent (Authorization: Bearer <credential>)"),
    "403": ("Not allowed", "not your call"),
    "404": ("Unknown id", "unknown call"),
    "409": ("Not allowed in the current state", "this call is no longer ringing for you"),
    "410": ("Over for good: nothing changed", "this call has ended: The call has ended."),
}
ADMIN_401 = "admin token required (Authorization: Bearer <ADMIN_TOKEN>)"
ADMIN_403 = "the admin API is disabled: set ADMIN_TOKEN"


def _error(code: str, example: str | None = None) -> dict:
    description, default = ERROR_EXAMPLES[code]
    return {
        "description": description,
        "content": {"application/json": {"schema": ERROR, "example": {"error": example or default}}},
    }


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, required: tuple | None = None) -> dict:
    """A reply object: every property is always present (required) and nothing else may appear,
    so a field added in the code but not here fails the response-validation test."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else list(required),
        "additionalProperties": False,
    }


OK_REPLY = _obj({"ok": {"const": True}})


def _api(
    summary,
    *,
    status="200",
    params=(),
    body=None,
    security=AGENT,
    tag="calls",
    extra=(),
    reply=OK_REPLY,
    errors=None,
    query=(),
    description=None,
):
    """``reply``: the JSON schema of the success body; ``errors``: {status: example message}
    where the operation's own message is more telling than the generic one."""
    errors = errors or {}
    responses: dict[str, object] = {status: {"description": "OK", "content": {"application/json": {"schema": reply}}}}
    admin = security is ADMIN
    responses["400"] = _error("400", errors.get("400"))
    if security:
        responses["401"] = _error("401", errors.get("401") or (ADMIN_401 if admin else None))
    if security or "429" in extra:
        responses["429"] = {
            "description": "Too many failed attempts (or resends): wait Retry-After seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": ERROR}},
        }
    if security is AGENT and "403" not in extra:
        responses["403"] = _error("403", api_keys.NOT_AN_AGENT)  # an API key on an agent's endpoint
    for code in (c for c in extra if c != "429"):
        if code == "403" and admin:
            refused = _error(code, errors.get(code) or ADMIN_403)
            refused["description"] += "; or a read-only API key on a write"
            responses[code] = refused
        else:
            responses[code] = _error(code, errors.get(code))
    if any(code in errors for code in ("502", "503")):
        for code in ("502", "503"):
            responses[code] = {
                "description": "A provider (Twilio, LiveKit) failed; 503 when retrying may help",
                "content": {
                    "application/json": {
                        "schema": _ref("ProviderError"),
                        "example": {"error": errors.get(code), "provider": "twilio", "kind": "http_500"},
                    }
                },
            }
    op = _op(summary, tag=tag, security=security, body=body, params=params, responses=responses)
    if query:
        op.setdefault("parameters", []).extend(query)
    if description:
        op["description"] = description
    return op


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
    "target_team": {
        "type": "string",
        "description": "A team: its first free member is offered the caller with the summary; with nobody free the "
        "transfer waits in team_busy (notice: the expected wait) for queue or cancel",
    },
    "mode": {"type": "string", "enum": ["warm", "cold"]},
    "notes": {"type": "string", "maxLength": 2000},
}
AGENT_FIELDS = {
    "id": {"type": "string"},
    "name": {"type": "string"},
    "phone": {"type": "string"},
    "browser": {"type": "boolean"},
    "status": {"type": "string", "enum": ["available", "busy", "offline"]},
    "role": {
        "type": "string",
        "enum": ["agent", "supervisor"],
        "description": "supervisor: also sees the board (/board, /api/supervisor/…) and may listen in",
    },
}
TRANSFER_STATES = [*T.ACTIVE, *T.TERMINAL]  # the domain's states, in the order a transfer moves
STATUS = {"status": {"type": "string", "enum": ["available", "busy", "offline"]}}
AGENT_FIELDS["teams"] = {"type": "array", "items": {"type": "string"}, "maxItems": 50}
TEAM_FIELDS = {
    "id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,39}$"},
    "name": {"type": "string", "maxLength": 120},
    "hold_music_url": {"type": "string", "description": "Audio for this team's waiting callers (HOLD_MUSIC_URL)"},
    "max_wait_s": {"type": "number", "minimum": 10, "maximum": 7200, "description": "default QUEUE_TIMEOUT_S"},
    "numbers": {"type": "array", "items": {"type": "string", "pattern": r"^\+[1-9]\d{6,14}$"}},
}

NULLABLE_STRING = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "format": "date-time", "description": "UTC, ISO 8601 with a Z"}
CALL_STATES = sorted(C.CALL.states)
LEG_STATES = sorted(L.LEG.states)

# The bodies the API returns (gateway/services/views.py, agents.py and teams.py build them).
SCHEMAS: dict[str, dict] = {
    "Error": {
        "type": "object",
        "properties": {"error": {"type": "string", "description": "A sentence saying what was wrong"}},
        "required": ["error"],
        "examples": [{"error": "missing field: status"}],
    },
    "ProviderError": {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "provider": {"type": "string", "enum": ["twilio", "livekit", "openai"]},
            "kind": {"type": "string", "description": "e.g. timeout, connection, http_500"},
        },
        "required": ["error", "provider", "kind"],
    },
    "Agent": _obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "phone": NULLABLE_STRING,
            "browser": {"type": "boolean"},
            "status": {"type": "string", "enum": ["available", "busy", "offline"]},
            "role": {"type": "string", "enum": ["agent", "supervisor"]},
            "idle_since": TIME,
            "not_responding": {
                "oneOf": [_ref("NotResponding"), {"type": "null"}],
                "description": "Why the gateway set this agent offline; null once the agent sets a status",
            },
            "teams": {"type": "array", "items": {"type": "string"}, "description": "Admin replies only"},
        },
        required=("id", "name", "phone", "browser", "status", "role", "idle_since", "not_responding"),
    ),
    "NotResponding": _obj(
        {
            "call_id": {"type": "string"},
            "caller": {"type": "string", "description": "The caller's number, last four digits only (…8691)"},
            "at": TIME,
            "reason": {
                "type": "string",
                "enum": ["missed", "declined", "returned"],
                "description": (
                    "missed: the offer rang out; declined: a caller waiting in line was declined; returned: "
                    "a caller sent back after a failed transfer found nobody (the console was gone)"
                ),
            },
        }
    ),
    "Delivery": _obj(
        {
            "id": {"type": "integer"},
            "event_id": {"type": "string"},
            "type": {"type": "string", "enum": list(E.EVENT_TYPES)},
            "call_id": {"type": "string"},
            "url": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "integer"},
            "last_status": {"type": ["integer", "null"], "description": "The receiver's last HTTP status"},
            "last_error": NULLABLE_STRING,
            "created_at": TIME,
            "delivered_at": TIME,
        }
    ),
    "MissedOffer": _obj(
        {
            "call_id": {"type": "string"},
            "caller": {"type": "string", "description": "The caller's number, last four digits only (…8691)"},
            "at": TIME,
        }
    ),
    "AgentPresence": _obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["available", "busy", "offline"]},
            "browser": {"type": "boolean"},
            "phone": {"type": "boolean", "description": "Answers on a phone (the number is not shown)"},
            "not_responding": {
                "type": "boolean",
                "description": "Offline because the gateway set them so after a missed offer",
            },
        }
    ),
    "Leg": _obj(
        {
            "leg_id": {"type": "string"},
            "call_id": {"type": "string"},
            "room": {"type": "string"},
            "state": {"type": "string", "enum": LEG_STATES},
            "kind": {"type": "string", "enum": ["browser", "phone"]},
            "transfer_id": NULLABLE_STRING,
        }
    ),
    "Call": _obj(
        {
            "id": {"type": "string", "description": "The gateway's id (call_…)"},
            "twilio_sid": {"type": "string", "description": "The caller's Twilio CallSid (CA…)"},
            "from": NULLABLE_STRING,
            "to": NULLABLE_STRING,
            "room": {"type": "string"},
            "state": {"type": "string", "enum": CALL_STATES},
            "agent_id": {"type": ["string", "null"], "description": "The agent who has the call now"},
            "created_at": TIME,
            "connected_at": TIME,
            "ended_at": TIME,
            "end_reason": NULLABLE_STRING,
            "channel": {"type": "string", "enum": ["phone", "web"], "description": "How the caller reached us"},
            "facts": {
                "type": ["object", "null"],
                "description": "What is known beyond the number: a web call's verified context under `context`",
            },
            "withheld": {
                "type": "boolean",
                "description": "The caller withheld their number: `from` is what the carrier sent (e.g. "
                "`anonymous`), not a number; it cannot be called back",
            },
        }
    ),
    "TimelineEntry": _obj(
        {
            "id": {"type": "integer", "description": "Increasing; the event stream resumes after it"},
            "call_id": {"type": "string"},
            "transfer_id": NULLABLE_STRING,
            "agent_id": NULLABLE_STRING,
            "kind": {"type": "string", "examples": ["call_received", "agent_joined", "call_ended"]},
            "detail": {"type": "object"},
            "at": TIME,
        }
    ),
    "TranscriptLine": _obj({"speaker": {"type": "string"}, "text": {"type": "string"}, "at": TIME}),
    "Note": _obj({"agent_id": NULLABLE_STRING, "text": {"type": "string"}, "at": TIME}),
    "Summary": _obj(
        {
            "reason": {"type": "string"},
            "key_facts": {"type": "array", "items": {"type": "string"}},
            "tried": {"type": "array", "items": {"type": "string"}},
            "mood": {"type": "string"},
            "next_step": {"type": "string"},
        }
    ),
    "Offer": _obj(
        {
            "leg_id": {"type": "string"},
            "call_id": {"type": "string"},
            "caller": NULLABLE_STRING,
            "channel": {"type": "string", "enum": ["phone", "web"], "description": "web: a call from the caller page"},
            "context": {
                "type": ["object", "null"],
                "description": "A web call's context, verified (signed by the website); null otherwise",
                "additionalProperties": {"type": "string"},
            },
            "room": {"type": "string"},
            "kind": {"type": "string", "enum": ["call", "transfer"]},
            "waiting_s": {"type": "number"},
            "callback": {
                "type": "boolean",
                "description": "A caller who asked to be called back: accepting dials them and bridges them in",
            },
            "transfer": {"$ref": "#/components/schemas/Transfer"},
            "from_agent": {"type": "string", "description": "Name of the transferring agent"},
        },
        required=("leg_id", "call_id", "caller", "channel", "context", "room", "kind", "waiting_s"),
    ),
    "JoinToken": _obj(
        {
            "room": {"type": "string"},
            "token": {"type": "string", "description": "LiveKit access token: this room only, join only, 10 min"},
            "url": {"type": "string", "description": "LiveKit URL for livekit-client's Room.connect(url, token)"},
            "leg_id": {"type": "string"},
            "call_id": {"type": "string"},
            "transfer_id": NULLABLE_STRING,
        }
    ),
    "Room": _obj(
        {
            "room": {"type": "string"},
            "call_id": {"type": "string"},
            "kind": {"type": "string", "enum": ["call", "consult"]},
            "mine": {"type": "boolean"},
        }
    ),
    "Team": _obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "hold_music_url": NULLABLE_STRING,
            "max_wait_s": {"type": ["number", "null"]},
            "members": {"type": "array", "items": {"type": "string"}},
            "numbers": {"type": "array", "items": {"type": "string"}},
            "waiting": {"type": "integer"},
        }
    ),
}

SECONDS = {"type": ["number", "null"], "description": "seconds; null when there is nothing to average"}
COUNT = {"type": "integer", "minimum": 0}
CALL_FIGURES = {
    "offered": COUNT | {"description": "Calls that arrived today"},
    "answered": COUNT | {"description": "An agent was connected with the caller"},
    "abandoned": COUNT | {"description": "The caller hung up before an answer or a voicemail prompt"},
    "voicemail": COUNT | {"description": "Sent to the apology and voicemail, never answered"},
    "in_progress": COUNT | {"description": "Ringing or waiting now"},
    "answered_within_threshold": COUNT,
    "service_level": {
        "type": ["number", "null"],
        "description": "answered within the threshold / (answered + abandoned + voicemail); null with none",
    },
    "average_wait_s": SECONDS | {"description": "Arrival to the agent connected, answered calls"},
    "average_handle_s": SECONDS | {"description": "Connected to the end, answered calls that ended"},
}
SCHEMAS["CallFigures"] = _obj(CALL_FIGURES)
SCHEMAS["TransferFigures"] = _obj(
    {
        "total": COUNT,
        "by_outcome": _obj(
            {
                k: COUNT
                for k in ("completed", "declined", "no_answer", "cancelled", "abandoned", "failed", "in_progress")
            }
        ),
        "median_initiate_to_connected_s": SECONDS | {"description": "Initiate to B in the consult room (median)"},
    }
)
SCHEMAS["Figures"] = _obj(CALL_FIGURES | {"transfers": _ref("TransferFigures")})
SCHEMAS["DayFigures"] = _obj(
    {
        "day_start": TIME | {"description": "Midnight in BOARD_TIMEZONE (in UTC): the figures count from here"},
        "timezone": {"type": "string", "description": "BOARD_TIMEZONE (IANA), UTC by default"},
        "now": TIME,
        "service_level_threshold_s": {"type": "number", "description": "SERVICE_LEVEL_S"},
        "overall": _ref("Figures"),
        "teams": {"type": "object", "additionalProperties": _ref("Figures"), "description": "By team id"},
        "channels": {"type": "object", "additionalProperties": _ref("CallFigures"), "description": "phone, web"},
        "intervals": {
            "type": "array",
            "description": "Answered and abandoned calls per 15 minutes of arrival, from day_start",
            "items": _obj({"start": TIME, "answered": COUNT, "abandoned": COUNT}),
        },
        "waiting": {
            "type": "array",
            "description": "Callers waiting in line at each minute of the last hour",
            "items": _obj({"at": TIME, "waiting": COUNT}),
        },
    }
)
SCHEMAS["BoardLive"] = _obj(
    {
        "at": TIME,
        "teams": {
            "type": "array",
            "items": _obj(
                {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "waiting": COUNT,
                    "longest_wait_s": {"type": "number"},
                    "callbacks_pending": COUNT,
                    "agents": _obj({k: COUNT for k in ("available", "on_call", "not_responding", "offline")}),
                }
            ),
        },
        "calls": {
            "type": "array",
            "items": _obj(
                {
                    "id": {"type": "string"},
                    "caller": {"type": "string", "description": "Masked: the last four digits"},
                    "team": {"type": "string"},
                    "channel": {"type": "string"},
                    "agent_id": NULLABLE_STRING,
                    "agent": NULLABLE_STRING,
                    "state": {
                        "type": "string",
                        "enum": ["queued", "ringing", "talking", "on hold", "in transfer", "voicemail"],
                    },
                    "in_state_s": {"type": "number", "description": "Since the call's last change"},
                    "waited_s": {"type": "number", "description": "Since the call arrived"},
                }
            ),
        },
        "transfers": {
            "type": "array",
            "items": _obj(
                {
                    "id": {"type": "string"},
                    "call_id": {"type": "string"},
                    "state": {"type": "string", "enum": list(T.ACTIVE)},
                    "mode": {"type": "string", "enum": ["warm", "cold"]},
                    "from_agent": NULLABLE_STRING,
                    "to": NULLABLE_STRING,
                    "elapsed_s": {"type": "number"},
                }
            ),
        },
    }
)
SCHEMAS["ListenGrant"] = _obj(
    {
        "call_id": {"type": "string"},
        "room": {"type": "string"},
        "identity": {"type": "string", "description": "listen:<supervisor id>"},
        "token": {
            "type": "string",
            "description": "LiveKit token: this room only, subscribe only, hidden, no data, 60 s to join",
        },
        "url": {"type": "string"},
    }
)


def _list_of(key: str, name: str) -> dict:
    return _obj({key: {"type": "array", "items": _ref(name)}})


AGENT_REPLY = _obj({"agent": _ref("Agent")})
TEAM_REPLY = _obj({"team": _ref("Team")})
TRANSFER_REPLY = _obj({"transfer": _ref("Transfer")})
NOTES_REPLY = _list_of("notes", "Note")
CALL_409 = "this call is no longer ringing for you"
TWILIO_SID_QUERY = {
    "name": "twilio_sid",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "pattern": "^CA[0-9a-fA-F]{32}$"},
    "description": (
        "The caller's Twilio CallSid (what a telephony integration knows): the call with that CallSid, "
        "whatever its age, if the signed-in agent took part in it (an empty list otherwise)"
    ),
}

WEB_CALLER: list[dict[str, list[str]]] = [{"webCallAccess": []}]
# callback: the caller chose to be called back (POST …/callback); the page's part of the call is over.
WEB_STATES = ["queued", "connecting", "ringing", "connected", "on_hold", "callback", "ended"]
CALLER_TOKEN = {
    "room": {"type": "string"},
    "identity": {"type": "string", "description": "webcaller-<call id>-<generation>: one join, then removed if reused"},
    "token": {
        "type": "string",
        "description": "LiveKit token: this room only; publish the microphone only, subscribe, no data; 60 s to join",
    },
    "expires_in": {"type": "integer", "const": 60},
}
WEB_CALL_STATUS = _obj(
    {
        "call_id": {"type": "string"},
        "state": {"type": "string", "enum": WEB_STATES},
        "position": {"type": ["integer", "null"], "description": "Place in the team's line while queued"},
        "message": {"type": "string", "description": "What the page shows and says now"},
        "join": {"type": "boolean", "description": "Ask POST …/join for a token: the call moved to a room"},
        "room": NULLABLE_STRING,
        "hold_music_url": {"type": ["string", "null"], "description": "Played by the page while queued or on hold"},
        "transfer": {"type": "boolean", "description": "On hold for a transfer (only while on_hold)"},
    },
    required=("call_id", "state", "position", "message", "join", "room", "hold_music_url"),
)
WEB_CALL_429 = {
    "description": "Rate limit (per address, all addresses) or WEB_CALLS_MAX reached: wait Retry-After seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    "content": {
        "application/json": {
            "schema": ERROR,
            "example": {"error": "too many attempts (web calls per address); try again in 412 s"},
        }
    },
}


REJOIN_SECRET = {
    "type": "string",
    "description": "Keep it in the page's sessionStorage (never in a URL): POST …/rejoin takes it once, and "
    "answers the next one",
}
WEB_CALL_REJOIN = _api(
    "Get back into the call after a page reload or a dropped connection, within WEB_CALL_REJOIN_S of "
    "leaving: a new one-use token for the room the call is in now (its place in line, its agent kept), a "
    "new access token, and the next rejoin secret (the one used is refused from then on). Authenticated "
    "by the rejoin secret alone; a session the call's page still had in the room is removed.",
    security=[],
    tag="web calls",
    params=("call_id",),
    body=_json_body({"secret": {"type": "string", "maxLength": 200}}, ("secret",)),
    reply=_obj(
        {
            "call_id": {"type": "string"},
            "state": {"type": "string", "enum": WEB_STATES},
            **CALLER_TOKEN,
            "rejoin_secret": REJOIN_SECRET,
            "access": {"type": "string", "description": "Bearer token for this call's other endpoints (4 h)"},
            "livekit_url": {"type": "string"},
            "media": {"type": "string", "enum": ["livekit", "sandbox"]},
            "poll_s": {"type": "number", "description": "How often to ask for the status"},
        }
    ),
    extra=("403", "404", "409", "410", "429"),
    errors={
        "400": "missing field: secret",
        "409": "this call waits as a callback (or goes on by phone): the page has no part in it any more",
        "403": "this rejoin secret is not (or no longer) valid for this call: each one works once",
        "404": "unknown web call",
        "410": "you were away longer than 30 s, so the call has ended; please call again",
    },
)
WEB_CALL_REJOIN["responses"]["403"]["description"] = (
    "Not this call's current rejoin secret (a used one, a guess), or an origin not in WEB_CALL_ORIGINS; nothing changed"
)
WEB_CALL_REJOIN["responses"]["409"]["description"] = (
    "The caller chose to be called back (POST …/callback): the call goes on without the page"
)
WEB_CALL_REJOIN["responses"]["410"]["description"] = (
    "The call has ended, or its caller was away longer than WEB_CALL_REJOIN_S (the call ends then)"
)
WEB_CALL_REJOIN["responses"]["429"] = {
    **WEB_CALL_429,
    "description": "Rate limit (rejoins per address, per call): wait Retry-After seconds",
}


def _web(summary: str, reply: dict, *, status: str = "200", body=None, created: bool = False) -> dict:
    """The web-call endpoints: JSON errors, CORS for WEB_CALL_ORIGINS, 403 for other origins."""
    security = [] if created else WEB_CALLER
    errors = {
        "403": "web calls from https://elsewhere.example are not allowed: the site's origin must be listed in "
        "the gateway's WEB_CALL_ORIGINS",
        "404": "unknown web call",
        "409": "a token for this room was given already (each is single use)",
    }
    op = _api(
        summary,
        status=status,
        params=() if created else ("call_id",),
        body=body,
        security=security,
        tag="web calls",
        extra=("403",) if created else ("403", "404", "409"),
        reply=reply,
        errors={**errors, "401": "this web call's access token is required (Authorization: Bearer <access>)"},
    )
    if created:
        op["responses"]["429"] = WEB_CALL_429
        op["responses"]["503"] = {
            "description": "Nobody of the team is signed in: try later (Retry-After)",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {
                "application/json": {
                    "schema": ERROR,
                    "example": {
                        "error": "nobody can take calls right now; please try again later, or call us by phone"
                    },
                }
            },
        }
    return op


WEB_CALL_CALLBACK = _web(
    "Call me back instead: the waiting caller leaves a phone number and their place in line becomes a "
    "callback (same place, same rules as a phone caller's: when an agent accepts it, the gateway dials "
    "the number and bridges the caller in; tried once more after CALLBACK_RETRY_S, then missed). The "
    "page's part ends: its room is deleted, and join, rejoin and hang up answer 409 from then on. The "
    "reply is the status, state `callback`.",
    WEB_CALL_STATUS,
    body=_json_body(
        {
            "number": {
                "type": "string",
                "maxLength": 40,
                "description": "E.164, like +15551234567 (spaces, dashes, dots and brackets between digits "
                "are ignored)",
            }
        },
        ("number",),
    ),
)
WEB_CALL_CALLBACK["responses"]["400"]["description"] = "Not a number we can dial (E.164); nothing changed"
WEB_CALL_CALLBACK["responses"]["409"] = _error(
    "409", "a callback can only be asked for while the call is waiting in line: the call is connected"
)
WEB_CALL_CALLBACK["responses"]["409"]["description"] = (
    "The call is not waiting in line (ringing, connected, on hold, being offered to an agent, already a "
    "callback, or ended); nothing changed"
)
WEB_CALL_CALLBACK["responses"]["429"] = {
    **WEB_CALL_429,
    "description": "Rate limit (callback requests per address, per call): wait Retry-After seconds",
}

PATHS = {
    "/api/web-calls": {
        "post": _web(
            "Place a web call (the caller page, or a site in WEB_CALL_ORIGINS): a token for its room, the call's "
            "access token for status, join and hang up, and its rejoin secret",
            _obj(
                {
                    "call_id": {"type": "string"},
                    "state": {"type": "string", "enum": CALL_STATES},
                    **CALLER_TOKEN,
                    "rejoin_secret": REJOIN_SECRET,
                    "access": {"type": "string", "description": "Bearer token for this call's other endpoints (4 h)"},
                    "livekit_url": {"type": "string"},
                    "media": {"type": "string", "enum": ["livekit", "sandbox"]},
                    "context": {
                        "type": "string",
                        "enum": ["verified", "ignored", "none"],
                        "description": "Whether the signed context was verified (ignored: unsigned, forged, expired)",
                    },
                    "poll_s": {"type": "number", "description": "How often to ask for the status"},
                }
            ),
            status="201",
            created=True,
            body=_json_body(
                {
                    "team": {"type": "string", "maxLength": 40, "description": "The team (queue); default: default"},
                    "context": {
                        "type": "string",
                        "maxLength": 4096,
                        "description": "Caller context the website signed: base64url(JSON with exp).hex(HMAC-SHA256)",
                    },
                }
            ),
        )
    },
    "/api/web-calls/{call_id}": {"get": _web("Where the web caller is now (the page polls it)", WEB_CALL_STATUS)},
    "/api/web-calls/{call_id}/join": {
        "post": _web(
            "A token for the room the call moved to (once per move)",
            _obj({**CALLER_TOKEN, "livekit_url": {"type": "string"}}),
        )
    },
    "/api/web-calls/{call_id}/hangup": {
        "post": _web(
            "The web caller hangs up: the call ends at once (no rejoin); 409 once it waits as a callback",
            WEB_CALL_STATUS,
        )
    },
    "/api/web-calls/{call_id}/rejoin": {"post": WEB_CALL_REJOIN},
    "/api/web-calls/{call_id}/callback": {"post": WEB_CALL_CALLBACK},
    "/api/auth/login": {
        "post": _api(
            "Sign in with the credential the CLI issued (sets the console session)",
            tag="agents",
            security=[],
            body=_json_body({"credential": {"type": "string"}}, ("credential",)),
            reply=AGENT_REPLY,
            extra=("401", "429"),
            errors={"401": "unknown agent or wrong credential"},
        )
    },
    "/api/auth/logout": {"post": _api("Sign out", tag="agents", security=[])},
    "/api/me": {
        "get": _api(
            "The signed-in agent and their live legs",
            tag="agents",
            reply=_obj({"agent": _ref("Agent"), "legs": {"type": "array", "items": _ref("Leg")}}),
        )
    },
    "/api/agents": {
        "get": _api(
            "Agents with their presence", tag="agents", security=READER, reply=_list_of("agents", "AgentPresence")
        )
    },
    "/api/agents/me/status": {
        "post": _api("Set my presence", tag="agents", body=_json_body(STATUS, ("status",)), reply=AGENT_REPLY)
    },
    "/api/agents/me/offers": {
        "get": _api("Calls and transfers ringing for me", tag="agents", reply=_list_of("offers", "Offer"))
    },
    "/api/webhooks/deliveries": {
        "get": _api(
            "Event webhook deliveries, newest first, a page at a time (the CLI's `webhooks log`)",
            tag="integrations",
            security=ADMIN,
            extra=("403",),
            query=(
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                },
                {
                    "name": "before",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1},
                    "description": "The next_before of the previous page",
                },
                {"name": "call_id", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "state",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["pending", "delivered", "failed"]},
                },
            ),
            reply=_obj(
                {
                    "deliveries": {"type": "array", "items": _ref("Delivery")},
                    "next_before": {
                        "type": ["integer", "null"],
                        "description": "Pass as ?before= for the next page; null on the last page",
                    },
                }
            ),
            errors={"400": "limit must be a whole number from 1 to 200"},
        )
    },
    "/api/webhooks/replay": {
        "post": _api(
            "Send chosen events again, same id and body (the CLI's `webhooks replay`); a write key or ADMIN_TOKEN",
            status="202",
            tag="integrations",
            security=ADMIN,
            extra=("403",),
            body=_json_body(
                {
                    "event_id": {"type": "string", "description": "One event (evt_…)"},
                    "call_id": {"type": "string", "description": "Every event of a call"},
                    "failed_only": {"type": "boolean", "description": "Only deliveries that were given up on"},
                }
            ),
            reply=_obj({"queued": {"type": "integer", "description": "Deliveries queued"}}),
            errors={"400": "choose what to replay: event_id, call_id or failed_only"},
        )
    },
    "/api/agents/me/missed": {
        "get": _api(
            "Calls offered to me in the last 24 hours that rang out unanswered (and I did not take later)",
            tag="agents",
            reply=_list_of("missed", "MissedOffer"),
        )
    },
    "/api/calls": {
        "get": _api(
            "Today's calls I took part in (an API key: every call), or the call with a Twilio CallSid",
            security=READER,
            reply=_list_of("calls", "Call"),
            query=(TWILIO_SID_QUERY,),
            errors={"400": "twilio_sid must be a Twilio CallSid (CA followed by 32 hex digits)"},
        )
    },
    "/api/calls/{call_id}": {
        "get": _api(
            "A call and its transfers",
            security=READER,
            params=("call_id",),
            extra=("403", "404"),
            reply=_obj({"call": _ref("Call"), "transfers": {"type": "array", "items": _ref("Transfer")}}),
        )
    },
    "/api/calls/{call_id}/timeline": {
        "get": _api(
            "A call's timeline",
            security=READER,
            params=("call_id",),
            extra=("403", "404"),
            reply=_list_of("timeline", "TimelineEntry"),
        )
    },
    "/api/calls/{call_id}/transcript": {
        "get": _api(
            "Live transcript and notes",
            security=READER,
            params=("call_id",),
            extra=("403", "404"),
            reply=_obj(
                {
                    "transcript": {"type": "array", "items": _ref("TranscriptLine")},
                    "notes": NOTES_REPLY["properties"]["notes"],
                }
            ),
        )
    },
    "/api/calls/{call_id}/notes": {
        "post": _api(
            "Add a note (feeds the summary)",
            status="201",
            params=("call_id",),
            body=_json_body({"text": {"type": "string"}}, ("text",)),
            extra=("403", "404"),
            reply=NOTES_REPLY,
        )
    },
    "/api/calls/{call_id}/accept": {
        "post": _api(
            "Accept a ringing call; returns a LiveKit token for its room only",
            params=("call_id",),
            extra=("409",),
            reply=_ref("JoinToken"),
            errors={"409": CALL_409},
        )
    },
    "/api/calls/{call_id}/decline": {
        "post": _api("Decline a ringing call", params=("call_id",), extra=("409",), errors={"409": CALL_409})
    },
    "/api/calls/{call_id}/hangup": {
        "post": _api(
            "End the call for the caller",
            params=("call_id",),
            extra=("409",),
            errors={"409": "you are not the agent on this call, or it has ended"},
        )
    },
    "/api/rooms/create": {
        "post": _api(
            "Create a LiveKit room (admin)",
            status="201",
            tag="rooms",
            security=ADMIN,
            body=_json_body({"room": {"type": "string"}}, ("room",)),
            extra=("403",),
            reply=_obj({"room": {"type": "string"}}),
            errors={"503": "LiveKit: create room failed (timeout)"},
        )
    },
    "/api/rooms/join": {
        "post": _api(
            "A join token for a room where I have an accepted call (the way back into a call's or the consult room)",
            tag="rooms",
            body=_json_body({"room": {"type": "string"}}, ("room",)),
            extra=("403",),
            reply=_ref("JoinToken"),
            errors={"403": "you have no accepted call in this room"},
        )
    },
    "/api/rooms": {"get": _api("Live rooms", tag="rooms", reply=_list_of("rooms", "Room"))},
    "/api/rooms/{room}/leave": {
        "post": _api(
            "Leave a room", tag="rooms", params=("room",), extra=("404",), errors={"404": "you are not in this room"}
        )
    },
    "/api/transfer/initiate": {
        "post": _api(
            "Start a warm or cold transfer",
            status="202",
            tag="transfers",
            body=_json_body(TARGET),
            extra=("403", "404", "409"),
            reply=TRANSFER_REPLY,
            errors={
                "403": "only the agent currently on this call may transfer it",
                "404": "unknown target agent",
                "409": "a transfer is already in progress for this call",
            },
        )
    },
    "/api/transfers/{transfer_id}": {
        "get": _api(
            "A transfer with its summary and the actions allowed now",
            security=READER,
            tag="transfers",
            params=("transfer_id",),
            extra=("403", "404"),
            reply=TRANSFER_REPLY,
            errors={"404": "unknown transfer"},
        )
    },
    **{
        f"/api/transfers/{{transfer_id}}/{verb}": {
            "post": _api(
                text,
                tag="transfers",
                params=("transfer_id",),
                extra=("403", "404", "409"),
                reply=reply,
                errors={"404": "unknown transfer", "403": forbidden, "409": conflict},
            )
        }
        for verb, text, reply, forbidden, conflict in (
            (
                "complete",
                "Connect the caller (three-way); allowed once the target is in the consult room",
                TRANSFER_REPLY,
                "only the transferring agent may do this",
                "B has not joined the consult room",
            ),
            (
                "queue",
                "Nobody free in the target team (team_busy): keep the caller in its queue at transfer priority",
                TRANSFER_REPLY,
                "only the transferring agent may do this",
                "cannot queue now: transfer is consulting",
            ),
            (
                "cancel",
                "Cancel; the caller returns",
                TRANSFER_REPLY,
                "only the transferring agent may do this",
                "cannot cancel now: transfer is completed",
            ),
            (
                "leave",
                "A leaves after the introduction",
                TRANSFER_REPLY,
                "only the transferring agent may do this",
                "cannot leave now: transfer is consulting",
            ),
            (
                "accept",
                "B accepts (the one way to accept a transfer offer); returns B's token for the consult room",
                _ref("JoinToken"),
                "not your transfer",
                "this transfer is no longer offered to you",
            ),
            (
                "decline",
                "B declines",
                OK_REPLY,
                "not your transfer",
                "this transfer is no longer offered to you",
            ),
        )
    },
    "/api/summary/generate": {
        "post": _api(
            "Summary of a call on demand",
            tag="transfers",
            body=_json_body({"call_id": {"type": "string"}}, ("call_id",)),
            extra=("403", "404"),
            reply=_obj(
                {
                    "call_id": {"type": "string"},
                    "summary": _ref("Summary"),
                    "source": {"type": "string", "enum": ["openai", "fallback"]},
                }
            ),
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
            reply=TRANSFER_REPLY,
            errors={"400": "to '5550001234' is not an E.164 number"},
        )
    },
    "/api/twilio/sms-summary": {
        "post": _api(
            "Send a transfer's summary again by SMS, to the transfer's target or an agent in the directory",
            status="202",
            tag="transfers",
            body=_json_body(
                {"transfer_id": {"type": "string"}, "agent_id": {"type": "string"}, "to": {"type": "string"}},
                ("transfer_id",),
            ),
            extra=("403", "404", "409"),
            errors={"404": "unknown transfer", "409": "the summary is not ready yet"},
        )
    },
    "/api/admin/agents": {
        "get": _api("List agents", tag="admin", security=ADMIN, extra=("403",), reply=_list_of("agents", "Agent")),
        "post": _api(
            "Add an agent; returns its credential once",
            status="201",
            tag="admin",
            security=ADMIN,
            body=_json_body(AGENT_FIELDS, ("id", "name")),
            extra=("403",),
            reply=_obj({"agent": _ref("Agent"), "credential": {"type": "string", "description": "Shown once"}}),
        ),
    },
    "/api/admin/agents/{agent_id}": {
        "delete": _api(
            "Remove an agent",
            tag="admin",
            security=ADMIN,
            params=("agent_id",),
            extra=("403", "404"),
            errors={"404": "unknown agent"},
        )
    },
    "/api/admin/agents/{agent_id}/status": {
        "post": _api(
            "Set an agent's presence",
            tag="admin",
            security=ADMIN,
            params=("agent_id",),
            body=_json_body(STATUS, ("status",)),
            extra=("403", "404"),
            reply=AGENT_REPLY,
            errors={"404": "unknown agent"},
        )
    },
    "/api/admin/agents/{agent_id}/role": {
        "put": _api(
            "Make an agent a supervisor (the board, listen-in) or an agent again; a demoted supervisor stops listening",
            tag="admin",
            security=ADMIN,
            params=("agent_id",),
            body=_json_body({"role": AGENT_FIELDS["role"]}, ("role",)),
            extra=("403", "404"),
            reply=AGENT_REPLY,
            errors={"404": "unknown agent"},
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
            reply=AGENT_REPLY,
            errors={"404": "unknown agent"},
        )
    },
    "/api/admin/teams": {
        "get": _api(
            "List teams with members, numbers and callers waiting",
            tag="admin",
            security=ADMIN,
            extra=("403",),
            reply=_list_of("teams", "Team"),
        ),
        "post": _api(
            "Add a team (a queue)",
            status="201",
            tag="admin",
            security=ADMIN,
            body=_json_body(TEAM_FIELDS, ("id", "name")),
            extra=("403",),
            reply=TEAM_REPLY,
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
            reply=TEAM_REPLY,
            errors={"404": "unknown team"},
        ),
        "delete": _api(
            "Remove a team nobody is waiting in",
            tag="admin",
            security=ADMIN,
            params=("team_id",),
            extra=("403", "404", "409"),
            errors={"404": "unknown team"},
        ),
    },
    "/api/supervisor/board": {
        "get": _api(
            "The supervisor's board: teams, calls and transfers in progress, and the day's figures (supervisors)",
            tag="supervisor",
            extra=("403",),
            reply=_obj({"live": _ref("BoardLive"), "figures": _ref("DayFigures")}),
            errors={"403": NOT_A_SUPERVISOR},
        )
    },
    "/api/supervisor/figures": {
        "get": _api(
            "The day's figures, overall, per team and per channel (supervisors)",
            tag="supervisor",
            extra=("403",),
            reply=_obj({"figures": _ref("DayFigures")}),
            errors={"403": NOT_A_SUPERVISOR},
        )
    },
    "/api/supervisor/export.csv": {
        "get": {
            **_api("Today's calls and transfers as CSV, one row each (supervisors)", tag="supervisor", extra=("403",)),
            "responses": {
                "200": {"description": "CSV (text/csv), header row first", "content": {"text/csv": {}}},
                "401": _error("401"),
                "403": _error("403", NOT_A_SUPERVISOR),
            },
        }
    },
    "/api/supervisor/calls/{call_id}/listen": {
        "post": _api(
            "Listen to a live call: a hidden, subscribe-only LiveKit token for its room (supervisors)",
            status="201",
            tag="supervisor",
            params=("call_id",),
            extra=("403", "404", "409"),
            reply=_ref("ListenGrant"),
            errors={
                "403": NOT_A_SUPERVISOR,
                "404": "unknown call",
                "409": "the caller is not talking with an agent now (queued); listen again once the call is connected",
            },
        )
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
    "/twilio/queue": {
        "post": _twiml("A waiting caller's loop: place in line, estimated wait, team music", query=("call", "loop"))
    },
    "/twilio/queue/choice": {
        "post": _twiml(
            "A waiting caller's key or words: 1 or 'voicemail' leaves a message, 2 or 'call me back' asks for a "
            "callback that keeps their place, anything else keeps waiting",
            query=("call",),
            fields={"Digits": {"type": "string"}, "SpeechResult": {"type": "string"}},
        )
    },
    "/twilio/menu": {
        "post": _twiml(
            "The caller's answer to a number's menu of teams: a key, a team's name, or nothing (asked again)",
            query=("call", "attempt"),
            fields={"Digits": {"type": "string"}, "SpeechResult": {"type": "string"}},
        )
    },
    "/twilio/callback/answer": {
        "post": _twiml(
            "A caller we call back answered: greeting, then bridged to the agent waiting for them",
            query=("call", "attempt"),
            fields=CALL_FIELDS,
        )
    },
    "/twilio/callback/status": {
        "post": _twiml(
            "Our callback's final status: unanswered is tried once more, then missed",
            query=("call", "attempt"),
            fields=CALL_FIELDS,
            required=("CallSid", "CallStatus"),
        )
    },
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
        "post": _twiml(
            "Agent pressed a key (again=1: after the repeated prompt)",
            query=("leg", "again"),
            fields={"Digits": {"type": "string"}},
        )
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
    # Event webhooks (EVENT_WEBHOOK_URLS): one POST per event, signed; bodies as components/schemas.
    "webhooks": {
        event_type: {
            "post": {
                "summary": f"{event_type} (X-Gateway-Event header); sign and verify as the README says",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(E.schema_name(event_type))}},
                },
                "responses": {"2XX": {"description": "Received; anything else is retried with backoff"}},
            }
        }
        for event_type in E.EVENT_TYPES
    },
    "components": {
        "schemas": {
            **SCHEMAS,
            **E.event_schemas(),
            "Transfer": _obj(
                {
                    "id": {"type": "string"},
                    "call_id": {"type": "string"},
                    "state": {"type": "string", "enum": TRANSFER_STATES},
                    "mode": {"type": "string", "enum": ["warm", "cold"]},
                    "source_agent_id": {"type": "string"},
                    "target_agent_id": NULLABLE_STRING,
                    "target_number": NULLABLE_STRING,
                    "target_team": NULLABLE_STRING,
                    "notice": {
                        "type": ["string", "null"],
                        "description": "In team_busy: 'No one free in Billing — the caller would wait about N min…'",
                    },
                    "consult_room": NULLABLE_STRING,
                    "notes": {"type": ["string", "null"], "description": "The transferring agent's notes for B"},
                    "summary": {"oneOf": [_ref("Summary"), {"type": "null"}]},
                    "summary_source": {"type": ["string", "null"], "enum": ["openai", "fallback", None]},
                    "end_reason": {
                        "type": ["string", "null"],
                        "description": "Why it ended (declined, no_answer, caller_hangup, cancelled, a failure)",
                    },
                    "created_at": TIME,
                    "offered_at": TIME | {"description": "When the target was first rung (console and/or phone)"},
                    "target_joined_at": TIME
                    | {"description": "When the target was first in the consult room (null if never)"},
                    "ended_at": TIME,
                    "active": {"type": "boolean", "description": "Not yet in a final state."},
                    "allowed_actions": {
                        "type": "array",
                        "items": {
                            "type": "string",
                            "enum": ["complete", "queue", "cancel", "leave", "accept", "decline"],
                        },
                        "description": (
                            "What the API accepts now: complete, queue (team_busy), cancel, leave (the transferring "
                            "agent), "
                            "accept, decline (the target). complete is listed once the target is in the "
                            "consult room. Clients render their controls from this instead of the states."
                        ),
                    },
                }
            ),
        },
        "securitySchemes": {
            "agentCredential": {"type": "http", "scheme": "bearer", "description": "Credential from `agents add`"},
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "An integrator's key (GWK_…) from `api-keys add NAME --scope read|write`: read keys read "
                    "calls, transfers, presence and the webhook delivery log; write keys also use the admin "
                    "API and replay. Keys never act as an agent (403). Revoked keys get 401."
                ),
            },
            "consoleSession": {"type": "apiKey", "in": "cookie", "name": "session"},
            "adminToken": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"},
            "twilioSignature": {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature"},
            "webCallAccess": {
                "type": "http",
                "scheme": "bearer",
                "description": "The `access` token POST /api/web-calls (or the newest POST …/rejoin) gave for "
                "that call; a rejoin replaces it (403 with the earlier one)",
            },
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
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    )
    return response
