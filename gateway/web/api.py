"""The REST API: agents (console), rooms, calls, transfers, summaries, and the seed endpoints.

Agents authenticate with the credential the CLI issued: ``Authorization: Bearer <credential>``
or the console's session cookie. The admin API takes ``Authorization: Bearer <ADMIN_TOKEN>``.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request, session

from gateway.adapters.twilio_client import ProviderError
from gateway.domain import access
from gateway.domain.access import Action
from gateway.domain.agents import E164, InvalidAgent
from gateway.domain.queues import InvalidTeam
from gateway.services import api_keys
from gateway.services.errors import Refusal, ServiceError
from gateway.services.views import SUPERVISOR_ONLY_KINDS, transfer_dict
from gateway.web import throttle as limits

bp = Blueprint("api", __name__, url_prefix="/api")
TWILIO_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")


SESSION_LIFETIME_S = 12 * 3600  # one shift: a console left signed in does not stay so for a month
JOIN_TOKEN_TTL_S = 60  # a LiveKit token only needs to live until the browser has joined
MAX_JSON_DEPTH = 32  # no request of this API nests deeper than 3; a 2,000-deep body is an attack


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class Throttled(ApiError):
    def __init__(self, retry_after: int, what: str):
        super().__init__(
            429, f"too many attempts ({what}); try again in {retry_after} s", {"Retry-After": str(retry_after)}
        )


# The HTTP status of each kind of refusal a service can give.
STATUS_OF = {
    Refusal.INVALID: 400,
    Refusal.NOT_FOUND: 404,
    Refusal.FORBIDDEN: 403,
    Refusal.CONFLICT: 409,
    Refusal.GONE: 410,
}


def status_of(error: ServiceError) -> int:
    return STATUS_OF[error.kind]


@bp.errorhandler(ApiError)
def _api_error(exc):
    return jsonify(error=str(exc)), exc.status, getattr(exc, "headers", {})


@bp.errorhandler(ServiceError)
def _refused(exc):
    return jsonify(error=str(exc)), status_of(exc)


@bp.errorhandler(ProviderError)
def _provider_error(exc):
    return jsonify(error=str(exc), provider=exc.provider, kind=exc.kind), 503 if exc.retryable else 502


@bp.errorhandler(InvalidAgent)
@bp.errorhandler(InvalidTeam)
def _invalid(exc):
    return jsonify(error=str(exc)), 400


def svc():
    return current_app.extensions["gateway"]


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json(raw: bytes) -> Any:
    """Strict JSON for every body this API reads: UTF-8, no lone surrogates (they cannot be
    stored or encoded), at most MAX_JSON_DEPTH deep. Anything else is a clear 400."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "body must be UTF-8 encoded JSON") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise ApiError(400, f"JSON nested too deeply (max {MAX_JSON_DEPTH})") from None
    except ValueError:
        raise ApiError(400, "body must be JSON") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise ApiError(400, f"JSON nested too deeply (max {MAX_JSON_DEPTH})")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "body contains invalid Unicode (a lone surrogate escape such as \\udfff)") from None
    return data


def body() -> dict:
    raw = request.get_data(cache=True)
    data = parse_json(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def field(data: dict, name: str, *, required: bool = True, kind: type = str, max_len: int = 4000) -> Any:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"missing field: {name}")
        return None
    if not isinstance(value, kind):
        raise ApiError(400, f"field {name} must be a {kind.__name__}")
    if isinstance(value, str) and len(value) > max_len:
        raise ApiError(400, f"field {name} is too long (max {max_len})")
    return value


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else None


def throttles() -> limits.Throttle:
    return current_app.extensions["throttle"]


def address() -> str:
    """The client's address: the peer's, or the one a trusted proxy (gateway.ops) vouched for."""
    return request.remote_addr or "unknown"


def credential_agent(credential: str) -> str:
    """The agent id a credential claims (it is ``<agent id>.<secret>``): the per-agent key."""
    return credential.split(".", 1)[0][:40] if "." in credential else "?"


def check_throttle(*checks: tuple[limits.Limit, str]) -> None:
    for limit, key in checks:
        wait = throttles().retry_after(limit, key)
        if wait is not None:
            raise Throttled(wait, limit.name)


def _authenticate_bearer(token: str) -> dict:
    keys = ((limits.BEARER_PER_ADDRESS, address()), (limits.BEARER_PER_AGENT, credential_agent(token)))
    check_throttle(*keys)
    agent = svc().agents.authenticate(token)
    if agent is None:
        for limit, key in keys:
            throttles().hit(limit, key)
        raise ApiError(401, "sign in as an agent (Authorization: Bearer <credential>)")
    return agent


def _authenticate_key(token: str) -> dict:
    keys = ((limits.BEARER_PER_ADDRESS, address()), (limits.BEARER_PER_AGENT, api_keys.key_id(token)))
    check_throttle(*keys)
    key = svc().api_keys.authenticate(token)
    if key is None:
        for limit, subject in keys:
            throttles().hit(limit, subject)
        raise ApiError(401, api_keys.UNKNOWN)
    return key


def presented_key() -> dict | None:
    """The API key the request carries (401 if it is unknown or revoked), or None."""
    token = bearer()
    return _authenticate_key(token) if token and api_keys.looks_like_key(token) else None


def current_agent() -> dict | None:
    """The agent a request speaks for (Bearer credential, or a live console session), or None."""
    token = bearer()
    if token:
        return _authenticate_bearer(token)
    if session.get("sid"):
        return svc().agents.session_agent(session["sid"])
    return None


def agent_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if presented_key() is not None:
            raise ApiError(403, api_keys.NOT_AN_AGENT)
        agent = current_agent()
        if agent is None:
            raise ApiError(401, "sign in as an agent (Authorization: Bearer <credential>)")
        g.agent = agent
        return view(*args, **kwargs)

    return wrapper


def reader_required(view):
    """An agent (what they may see by the access rule) or an API key of either scope (every call)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = presented_key()
        if key is None:
            return agent_required(view)(*args, **kwargs)
        g.api_key = key
        g.agent = {"id": key["id"], "name": key["name"], "role": access.INTEGRATION}
        return view(*args, **kwargs)

    return wrapper


def reader_id() -> str | None:
    """The agent whose calls a list is limited to; None for an API key (every call)."""
    return None if g.get("api_key") else g.agent["id"]


def admin_required(view):
    """ADMIN_TOKEN, or an API key: any scope reads (GET), a write key changes."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = presented_key()
        if key is not None:
            if request.method != "GET" and key["scope"] != api_keys.WRITE:
                raise ApiError(403, api_keys.READ_ONLY)
            g.api_key = key
            return view(*args, **kwargs)
        expected = svc().gw.settings.admin_token
        token = bearer()
        if not expected:
            raise ApiError(403, "the admin API is disabled: set ADMIN_TOKEN")
        check_throttle((limits.ADMIN_PER_ADDRESS, address()))
        # Bytes: compare_digest refuses a str with non-ASCII characters (a 500 before).
        if not token or not hmac.compare_digest(token.encode("utf-8", "surrogateescape"), expected.encode()):
            throttles().hit(limits.ADMIN_PER_ADDRESS, address())
            raise ApiError(401, "admin token required (Authorization: Bearer <ADMIN_TOKEN>)")
        return view(*args, **kwargs)

    return wrapper


def viewable(transfers: list[dict], call_id: str) -> list[dict]:
    """Transfers as this agent may see them: without their summaries unless it may read the call's
    content (an agent who handed the call on sees how it ended, not what was said since)."""
    facts = svc().views.call_facts(call_id)
    if facts is not None and access.may(access.Actor.of(g.agent), Action.READ, facts):
        return transfers
    return [t | {"summary": None} for t in transfers]


def authorize(call_id: str, action: Action, *, unknown_ok: bool = False) -> dict | None:
    """The call, if the signed-in agent may do ``action`` with it by the access rule; 404/403 otherwise
    (``unknown_ok``: an unknown call passes, for a use case that checks its input before the call)."""
    facts = svc().views.call_facts(call_id)
    if facts is None:
        if unknown_ok:
            return None
        raise ApiError(404, "unknown call")
    if not access.may(access.Actor.of(g.agent), action, facts):
        raise ApiError(
            403, f"you may not {action.value} this call (only its agent, a transfer's two sides, supervisors)"
        )
    return svc().views.call(call_id)


# ------------------------------------------------------------------ session
@bp.post("/auth/login")
def login():
    data = body()
    credential = field(data, "credential", max_len=200)
    keys = ((limits.SIGN_IN_PER_ADDRESS, address()), (limits.SIGN_IN_PER_AGENT, credential_agent(credential)))
    check_throttle(*keys)
    agent = svc().agents.authenticate(credential)
    if agent is None:
        for limit, key in keys:
            throttles().hit(limit, key)
        raise ApiError(401, "unknown agent or wrong credential")
    if session.get("sid"):
        svc().agents.end_session(session["sid"])
    session.clear()
    session["sid"] = svc().agents.open_session(agent["id"], SESSION_LIFETIME_S)
    session.permanent = True
    return jsonify(agent=agent)


@bp.post("/auth/logout")
def logout():
    # Ended on the server: a copy of the cookie saved before sign-out is worth nothing after it.
    if session.get("sid"):
        svc().agents.end_session(session["sid"])
    session.clear()
    return jsonify(ok=True)


@bp.get("/me")
@agent_required
def me():
    return jsonify(agent=g.agent, legs=svc().views.active_legs(g.agent["id"]))


# ------------------------------------------------------------------ agents
@bp.get("/agents")
@reader_required
def agents_presence():
    return jsonify(
        agents=[
            {k: a[k] for k in ("id", "name", "status", "browser")}
            | {"phone": bool(a["phone"]), "not_responding": a["not_responding"] is not None}
            for a in svc().agents.list()
        ]
    )


@bp.post("/agents/me/status")
@agent_required
def set_my_status():
    return jsonify(agent=svc().agents.set_status(g.agent["id"], field(body(), "status", max_len=16)))


@bp.get("/agents/me/offers")
@agent_required
def my_offers():
    return jsonify(offers=svc().views.offers(g.agent["id"]))


@bp.get("/agents/me/missed")
@agent_required
def my_missed_offers():
    return jsonify(missed=svc().views.missed_today(g.agent["id"]))


# ------------------------------------------------------------------- calls
@bp.get("/calls")
@reader_required
def calls_today():
    twilio_sid = request.args.get("twilio_sid")
    if twilio_sid is not None:
        # A CRM's telephony integration knows the caller's CallSid, not the gateway's call id.
        if not TWILIO_CALL_SID.fullmatch(twilio_sid):
            raise ApiError(400, "twilio_sid must be a Twilio CallSid (CA followed by 32 hex digits)")
        return jsonify(calls=svc().views.calls_by_twilio_sid(twilio_sid, reader_id()))
    return jsonify(calls=svc().views.calls_today(reader_id()))


@bp.get("/calls/<call_id>")
@reader_required
def call_detail(call_id):
    call = authorize(call_id, Action.VIEW)
    return jsonify(call=call, transfers=viewable(svc().views.transfers_of_call(call_id), call_id))


@bp.get("/calls/<call_id>/timeline")
@reader_required
def call_timeline(call_id):
    authorize(call_id, Action.VIEW)
    entries = svc().views.timeline(call_id)
    if not access.Actor.of(g.agent).oversees:
        entries = [e for e in entries if e["kind"] not in SUPERVISOR_ONLY_KINDS]
    return jsonify(timeline=entries)


@bp.get("/calls/<call_id>/transcript")
@reader_required
def call_transcript(call_id):
    authorize(call_id, Action.READ)
    return jsonify(transcript=svc().views.transcript(call_id), notes=svc().views.notes(call_id))


@bp.post("/calls/<call_id>/notes")
@agent_required
def add_note(call_id):
    authorize(call_id, Action.ANNOTATE)
    svc().records.add_note(call_id, g.agent["id"], field(body(), "text", max_len=2000))
    return jsonify(notes=svc().views.notes(call_id)), 201


def _token_for_leg(leg) -> dict:
    token = svc().gw.rooms.join_token(
        identity=g.agent["id"], name=g.agent["name"], room=leg.room, ttl_s=JOIN_TOKEN_TTL_S
    )
    return {
        "room": leg.room,
        "token": token,
        "url": svc().livekit_client_url,
        "leg_id": leg.id,
        "call_id": leg.call_id,
        "transfer_id": leg.transfer_id,
    }


@bp.post("/calls/<call_id>/accept")
@agent_required
def accept_call(call_id):
    leg = svc().legs.browser_accept(g.agent["id"], call_id)
    if leg is None:
        raise ApiError(409, "this call is no longer ringing for you")
    return jsonify(_token_for_leg(leg))


@bp.post("/calls/<call_id>/decline")
@agent_required
def decline_call(call_id):
    if not svc().legs.browser_decline(g.agent["id"], call_id):
        raise ApiError(409, "this call is no longer ringing for you")
    return jsonify(ok=True)


@bp.post("/calls/<call_id>/hangup")
@agent_required
def hangup_call(call_id):
    if not svc().legs.agent_end_call(g.agent["id"], call_id):
        raise ApiError(409, "you are not the agent on this call, or it has ended")
    return jsonify(ok=True)


# ------------------------------------------------------------------- rooms
@bp.post("/rooms/create")
@admin_required
def create_room():
    name = field(body(), "room", max_len=120)
    svc().gw.rooms.create_room(name, metadata={"created_by": "admin"})
    return jsonify(room=name), 201


@bp.post("/rooms/join")
@agent_required
def join_room():
    room = field(body(), "room", max_len=128)
    leg = svc().views.leg_in_room(g.agent["id"], room)
    if leg is None:
        raise ApiError(403, "you have no accepted call in this room")
    return jsonify(_token_for_leg(leg))


@bp.get("/rooms")
@agent_required
def list_rooms():
    # An agent sees the rooms it is in; only supervisors and admins see every live room.
    mine = {leg_["room"] for leg_ in svc().views.active_legs(g.agent["id"])}
    oversees = access.Actor.of(g.agent).oversees
    rooms = [r | {"mine": r["room"] in mine} for r in svc().views.live_rooms() if oversees or r["room"] in mine]
    return jsonify(rooms=rooms)


@bp.post("/rooms/<room>/leave")
@agent_required
def leave_room(room):
    if not svc().legs.agent_leave_room(g.agent["id"], room):
        raise ApiError(404, "you are not in this room")
    return jsonify(ok=True)


# --------------------------------------------------------------- transfers
@bp.post("/transfer/initiate")
@agent_required
def initiate_transfer():
    data = body()
    target = field(data, "target", required=False, max_len=40)
    target_agent = field(data, "target_agent_id", required=False, max_len=40)
    target_number = field(data, "target_number", required=False, max_len=20)
    target_team = field(data, "target_team", required=False, max_len=40)
    if target and not (target_agent or target_number or target_team):
        target_number, target_agent = (target, None) if target.startswith("+") else (None, target)
    call_id = field(data, "call_id", required=False, max_len=40)
    if not call_id and data.get("room"):
        call_id = svc().room_events.call_id_for_room(field(data, "room", max_len=128))
    if not call_id:
        raise ApiError(400, "missing field: call_id (or room)")
    authorize(call_id, Action.TRANSFER, unknown_ok=True)
    transfer = svc().transfers.initiate(
        agent_id=g.agent["id"],
        call_id=call_id,
        target_agent_id=target_agent,
        target_number=target_number,
        target_team=target_team,
        mode=field(data, "mode", required=False, max_len=8) or "warm",
        notes=field(data, "notes", required=False, max_len=2000),
    )
    return jsonify(transfer=transfer_dict(transfer)), 202  # as committed: no read after the write


@bp.get("/transfers/<transfer_id>")
@reader_required
def transfer_detail(transfer_id):
    transfer = svc().views.transfer(transfer_id)
    if transfer is None:
        raise ApiError(404, "unknown transfer")
    authorize(transfer["call_id"], Action.VIEW)
    return jsonify(transfer=viewable([transfer], transfer["call_id"])[0])


@bp.post("/transfers/<transfer_id>/complete")
@agent_required
def complete_transfer(transfer_id):
    svc().transfers.complete(transfer_id, g.agent["id"])
    return jsonify(transfer=svc().views.transfer(transfer_id))


@bp.post("/transfers/<transfer_id>/cancel")
@agent_required
def cancel_transfer(transfer_id):
    svc().transfers.cancel(transfer_id, g.agent["id"])
    return jsonify(transfer=svc().views.transfer(transfer_id))


@bp.post("/transfers/<transfer_id>/queue")
@agent_required
def queue_transfer(transfer_id):
    """Nobody free in the target team: keep the caller in that team's queue (A is free)."""
    svc().transfers.queue(transfer_id, g.agent["id"])
    return jsonify(transfer=svc().views.transfer(transfer_id))


@bp.post("/transfers/<transfer_id>/leave")
@agent_required
def leave_transfer(transfer_id):
    svc().transfers.leave(transfer_id, g.agent["id"])
    return jsonify(transfer=svc().views.transfer(transfer_id))


@bp.post("/transfers/<transfer_id>/accept")
@agent_required
def accept_transfer(transfer_id):
    transfer = svc().views.transfer(transfer_id)
    if transfer is None:
        raise ApiError(404, "unknown transfer")
    leg = svc().legs.browser_accept(g.agent["id"], transfer["call_id"])
    if leg is None or leg.transfer_id != transfer_id:
        raise ApiError(409, "this transfer is no longer offered to you")
    return jsonify(_token_for_leg(leg))


@bp.post("/transfers/<transfer_id>/decline")
@agent_required
def decline_transfer(transfer_id):
    transfer = svc().views.transfer(transfer_id)
    if transfer is None:
        raise ApiError(404, "unknown transfer")
    if not svc().legs.browser_decline(g.agent["id"], transfer["call_id"]):
        raise ApiError(409, "this transfer is no longer offered to you")
    return jsonify(ok=True)


@bp.post("/summary/generate")
@agent_required
def generate_summary():
    call_id = field(body(), "call_id", max_len=40)
    authorize(call_id, Action.SUMMARISE)
    summary, source = svc().summaries.summary_now(call_id)
    return jsonify(call_id=call_id, summary=summary, source=source)


@bp.post("/twilio/transfer")
@agent_required
def phone_transfer():
    """Seed endpoint: a cold transfer of the caller to a phone number."""
    data = body()
    to = field(data, "to", max_len=20)
    if not E164.match(to):
        raise ApiError(400, f"to {to!r} is not an E.164 number")
    authorize(field(data, "call_id", max_len=40), Action.TRANSFER, unknown_ok=True)
    transfer = svc().transfers.initiate(
        agent_id=g.agent["id"],
        call_id=field(data, "call_id", max_len=40),
        target_agent_id=None,
        target_number=to,
        mode="cold",
        notes=field(data, "notes", required=False, max_len=2000),
    )
    return jsonify(transfer=svc().views.transfer(transfer.id)), 202


@bp.post("/twilio/sms-summary")
@agent_required
def sms_summary():
    """Seed endpoint: send a transfer's summary again, to the transfer's target or an agent in the
    directory (never to any other number), a few times at most."""
    data = body()
    transfer = svc().views.transfer(field(data, "transfer_id", max_len=40))
    if transfer is None:
        raise ApiError(404, "unknown transfer")
    authorize(transfer["call_id"], Action.RESEND)
    to = field(data, "to", required=False, max_len=20)
    agent_id = field(data, "agent_id", required=False, max_len=40) or (None if to else transfer["target_agent_id"])
    agent = svc().agents.get(agent_id) if agent_id else None
    if agent_id and agent is None:
        raise ApiError(400, "no agent with that id in the directory")
    destination = access.resend_destination(
        to=to,
        agent_phone=agent["phone"] if agent else None,
        agent_known=agent is not None,
        target_number=transfer["target_number"],
    )
    if destination is None:
        raise ApiError(
            400,
            "that agent has no phone number"
            if agent
            else "a summary goes only to the transfer's target or an agent in the directory (agent_id)",
        )
    if transfer["summary"] is None:
        raise ApiError(409, "the summary is not ready yet")
    keys = ((limits.RESEND_PER_TRANSFER, transfer["id"]), (limits.RESEND_PER_AGENT, g.agent["id"]))
    check_throttle(*keys)
    for limit, key in keys:
        throttles().hit(limit, key)
    svc().summaries.resend_sms(transfer["id"], destination)
    return jsonify(ok=True), 202


# ------------------------------------------------------------------- admin
@bp.get("/admin/agents")
@admin_required
def admin_list_agents():
    return jsonify(agents=svc().agents.list())


@bp.post("/admin/agents")
@admin_required
def admin_add_agent():
    data = body()
    browser = data.get("browser", True)
    if not isinstance(browser, bool):
        raise ApiError(400, "field browser must be true or false")
    credential = svc().agents.add(
        field(data, "id", max_len=40),
        field(data, "name", max_len=120),
        field(data, "phone", required=False, max_len=20),
        browser,
        field(data, "status", required=False, max_len=16) or "offline",
        teams=string_list(data, "teams"),
        role=field(data, "role", required=False, max_len=16) or "agent",
    )
    return jsonify(agent=svc().agents.get(data["id"], with_teams=True), credential=credential), 201


def string_list(data: dict, name: str, *, required: bool = False, max_items: int = 50) -> list[str] | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"missing field: {name}")
        return None
    if not isinstance(value, list) or len(value) > max_items or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"field {name} must be a list of at most {max_items} strings")
    return value


@bp.put("/admin/agents/<agent_id>/teams")
@admin_required
def admin_set_agent_teams(agent_id):
    if svc().agents.get(agent_id) is None:
        raise ApiError(404, "unknown agent")
    svc().teams.set_agent_teams(agent_id, string_list(body(), "teams", required=True))
    return jsonify(agent=svc().agents.get(agent_id, with_teams=True))


def _max_wait(data: dict):
    value = data.get("max_wait_s")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ApiError(400, "field max_wait_s must be a number of seconds")
    return value


@bp.get("/admin/teams")
@admin_required
def admin_list_teams():
    return jsonify(teams=svc().teams.list())


@bp.post("/admin/teams")
@admin_required
def admin_add_team():
    data = body()
    team = svc().teams.add(
        field(data, "id", max_len=40),
        field(data, "name", max_len=120),
        hold_music_url=field(data, "hold_music_url", required=False, max_len=500),
        max_wait_s=_max_wait(data),
        numbers=string_list(data, "numbers") or [],
    )
    return jsonify(team=team), 201


@bp.patch("/admin/teams/<team_id>")
@admin_required
def admin_update_team(team_id):
    if svc().teams.get(team_id) is None:
        raise ApiError(404, "unknown team")
    data = body()
    changes = {}
    if "name" in data:
        changes["name"] = field(data, "name", max_len=120)
    if "hold_music_url" in data:
        changes["hold_music_url"] = field(data, "hold_music_url", required=False, max_len=500)
    if "max_wait_s" in data:
        changes["max_wait_s"] = _max_wait(data)
    if "numbers" in data:
        changes["numbers"] = string_list(data, "numbers", required=True)
    return jsonify(team=svc().teams.update(team_id, **changes))


@bp.delete("/admin/teams/<team_id>")
@admin_required
def admin_remove_team(team_id):
    if svc().teams.get(team_id) is None:
        raise ApiError(404, "unknown team")
    try:
        svc().teams.remove(team_id)
    except InvalidTeam as exc:
        raise ApiError(409, str(exc)) from None
    return jsonify(ok=True)


@bp.delete("/admin/agents/<agent_id>")
@admin_required
def admin_remove_agent(agent_id):
    if svc().agents.get(agent_id) is None:
        raise ApiError(404, "unknown agent")
    svc().agents.remove(agent_id)
    return jsonify(ok=True)


@bp.put("/admin/agents/<agent_id>/role")
@admin_required
def admin_set_role(agent_id):
    if svc().agents.get(agent_id) is None:
        raise ApiError(404, "unknown agent")
    return jsonify(agent=svc().agents.set_role(agent_id, field(body(), "role", max_len=16)))


@bp.post("/admin/agents/<agent_id>/status")
@admin_required
def admin_set_status(agent_id):
    if svc().agents.get(agent_id) is None:
        raise ApiError(404, "unknown agent")
    return jsonify(agent=svc().agents.set_status(agent_id, field(body(), "status", max_len=16), by="admin"))
