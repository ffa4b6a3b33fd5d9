"""The REST API: agents (console), rooms, calls, transfers, summaries, and the seed endpoints.

Agents authenticate with the credential the CLI issued: ``Authorization: Bearer <credential>``
or the console's session cookie. The admin API takes ``Authorization: Bearer <ADMIN_TOKEN>``.
"""

from __future__ import annotations

import functools
import hmac
import re
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request, session

from gateway.adapters.twilio_client import ProviderError
from gateway.domain.agents import E164, InvalidAgent
from gateway.domain.queues import InvalidTeam
from gateway.services.transfers import TransferError
from gateway.services.views import transfer_dict

bp = Blueprint("api", __name__, url_prefix="/api")
TWILIO_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@bp.errorhandler(ApiError)
@bp.errorhandler(TransferError)
def _api_error(exc):
    return jsonify(error=str(exc)), exc.status


@bp.errorhandler(ProviderError)
def _provider_error(exc):
    return jsonify(error=str(exc), provider=exc.provider, kind=exc.kind), 503 if exc.retryable else 502


@bp.errorhandler(InvalidAgent)
@bp.errorhandler(InvalidTeam)
def _invalid(exc):
    return jsonify(error=str(exc)), 400


def svc():
    return current_app.extensions["gateway"]


def body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        if request.data:
            raise ApiError(400, "body must be JSON")
        data = {}
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


def agent_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        agent = None
        token = bearer()
        if token:
            agent = svc().agents.authenticate(token)
        elif session.get("agent_id"):
            agent = svc().agents.get(session["agent_id"])
            if agent is None or session.get("secret_hash_prefix") != svc().agents.fingerprint(agent["id"]):
                agent = None
        if agent is None:
            raise ApiError(401, "sign in as an agent (Authorization: Bearer <credential>)")
        g.agent = agent
        return view(*args, **kwargs)

    return wrapper


def admin_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        expected = svc().gw.settings.admin_token
        token = bearer()
        if not expected:
            raise ApiError(403, "the admin API is disabled: set ADMIN_TOKEN")
        if not token or not hmac.compare_digest(token, expected):
            raise ApiError(401, "admin token required (Authorization: Bearer <ADMIN_TOKEN>)")
        return view(*args, **kwargs)

    return wrapper


def call_visible(call_id: str) -> dict:
    call = svc().views.call(call_id)
    if call is None:
        raise ApiError(404, "unknown call")
    if not svc().views.agent_on_call(g.agent["id"], call_id):
        raise ApiError(403, "not your call")
    return call


# ------------------------------------------------------------------ session
@bp.post("/auth/login")
def login():
    data = body()
    agent = svc().agents.authenticate(field(data, "credential", max_len=200))
    if agent is None:
        raise ApiError(401, "unknown agent or wrong credential")
    session.clear()
    session["agent_id"] = agent["id"]
    session["secret_hash_prefix"] = svc().agents.fingerprint(agent["id"])
    session.permanent = True
    return jsonify(agent=agent)


@bp.post("/auth/logout")
def logout():
    session.clear()
    return jsonify(ok=True)


@bp.get("/me")
@agent_required
def me():
    return jsonify(agent=g.agent, legs=svc().views.active_legs(g.agent["id"]))


# ------------------------------------------------------------------ agents
@bp.get("/agents")
@agent_required
def agents_presence():
    return jsonify(
        agents=[
            {k: a[k] for k in ("id", "name", "status", "browser")} | {"phone": bool(a["phone"])}
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


# ------------------------------------------------------------------- calls
@bp.get("/calls")
@agent_required
def calls_today():
    twilio_sid = request.args.get("twilio_sid")
    if twilio_sid is not None:
        # A CRM's telephony integration knows the caller's CallSid, not the gateway's call id.
        if not TWILIO_CALL_SID.fullmatch(twilio_sid):
            raise ApiError(400, "twilio_sid must be a Twilio CallSid (CA followed by 32 hex digits)")
        return jsonify(calls=svc().views.calls_by_twilio_sid(twilio_sid, g.agent["id"]))
    return jsonify(calls=svc().views.calls_today(g.agent["id"]))


@bp.get("/calls/<call_id>")
@agent_required
def call_detail(call_id):
    call = call_visible(call_id)
    return jsonify(call=call, transfers=svc().views.transfers_of_call(call_id))


@bp.get("/calls/<call_id>/timeline")
@agent_required
def call_timeline(call_id):
    call_visible(call_id)
    return jsonify(timeline=svc().views.timeline(call_id))


@bp.get("/calls/<call_id>/transcript")
@agent_required
def call_transcript(call_id):
    call_visible(call_id)
    return jsonify(transcript=svc().views.transcript(call_id), notes=svc().views.notes(call_id))


@bp.post("/calls/<call_id>/notes")
@agent_required
def add_note(call_id):
    call_visible(call_id)
    svc().records.add_note(call_id, g.agent["id"], field(body(), "text", max_len=2000))
    return jsonify(notes=svc().views.notes(call_id)), 201


def _token_for_leg(leg) -> dict:
    token = svc().gw.rooms.join_token(identity=g.agent["id"], name=g.agent["name"], room=leg.room)
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
    mine = {leg_["room"] for leg_ in svc().views.active_legs(g.agent["id"])}
    return jsonify(rooms=[r | {"mine": r["room"] in mine} for r in svc().views.live_rooms()])


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
    if target and not (target_agent or target_number):
        target_number, target_agent = (target, None) if target.startswith("+") else (None, target)
    call_id = field(data, "call_id", required=False, max_len=40)
    if not call_id and data.get("room"):
        call_id = svc().room_events.call_id_for_room(field(data, "room", max_len=128))
    if not call_id:
        raise ApiError(400, "missing field: call_id (or room)")
    transfer = svc().transfers.initiate(
        agent_id=g.agent["id"],
        call_id=call_id,
        target_agent_id=target_agent,
        target_number=target_number,
        mode=field(data, "mode", required=False, max_len=8) or "warm",
        notes=field(data, "notes", required=False, max_len=2000),
    )
    return jsonify(transfer=transfer_dict(transfer)), 202  # as committed: no read after the write


@bp.get("/transfers/<transfer_id>")
@agent_required
def transfer_detail(transfer_id):
    transfer = svc().views.transfer(transfer_id)
    if transfer is None:
        raise ApiError(404, "unknown transfer")
    call_visible(transfer["call_id"])
    return jsonify(transfer=transfer)


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
    call_visible(call_id)
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
    """Seed endpoint: send a transfer's summary again, to an agent or a number."""
    data = body()
    transfer = svc().views.transfer(field(data, "transfer_id", max_len=40))
    if transfer is None:
        raise ApiError(404, "unknown transfer")
    call_visible(transfer["call_id"])
    to = field(data, "to", required=False, max_len=20)
    agent_id = field(data, "agent_id", required=False, max_len=40)
    if agent_id:
        agent = svc().agents.get(agent_id)
        if agent is None or not agent["phone"]:
            raise ApiError(400, "that agent has no phone number")
        to = agent["phone"]
    if not to or not E164.match(to):
        raise ApiError(400, "give agent_id or an E.164 number in to")
    if transfer["summary"] is None:
        raise ApiError(409, "the summary is not ready yet")
    svc().summaries.resend_sms(transfer["id"], to)
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


@bp.post("/admin/agents/<agent_id>/status")
@admin_required
def admin_set_status(agent_id):
    if svc().agents.get(agent_id) is None:
        raise ApiError(404, "unknown agent")
    return jsonify(agent=svc().agents.set_status(agent_id, field(body(), "status", max_len=16)))
