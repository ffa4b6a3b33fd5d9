"""The console's sandbox controls (``/console/sandbox/*``): registered by ``create_app`` only when
the composition root built the sandbox (``Services.sandbox_controls``); with real providers these
routes do not exist. Who may call: a signed-in agent (as the console's other requests)."""

from __future__ import annotations

import secrets
import time

import jwt
from flask import Blueprint, current_app, g, jsonify

from gateway.domain import access
from gateway.domain import web_calls as web_rules
from gateway.domain.agents import E164
from gateway.sandbox.controls import SandboxControls, SandboxUnreachable
from gateway.web import api, web_calls

bp = Blueprint("sandbox", __name__)


def svc():
    return current_app.extensions["gateway"]


def controls() -> SandboxControls:
    return svc().sandbox_controls


@bp.errorhandler(api.ApiError)
def _api_error(exc: api.ApiError):
    return jsonify(error=str(exc)), exc.status, exc.headers


@bp.errorhandler(SandboxUnreachable)
def _unreachable(exc: SandboxUnreachable):
    return jsonify(error=str(exc)), 502


# What a carrier commonly sends as From when the caller withholds their number (Twilio error 13214).
WITHHELD_FROM = "anonymous"


def _caller_number(data: dict) -> str:
    if data.get("withheld") is True:
        return WITHHELD_FROM
    number = data.get("from") or "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))
    if not isinstance(number, str) or not E164.match(number):
        raise api.ApiError(400, "from must be an E.164 number like +15551234567")
    return number


@bp.post("/console/sandbox/call")
@api.agent_required
def call():
    """Place a simulated inbound call: the caller dials the gateway's number, from ``from`` (E.164),
    from a withheld number (``withheld``: true), else from a random +1555 number."""
    caller = _caller_number(api.body())
    sid = controls().place_call(caller)
    ringing = _who_is_rung(sid)
    to = svc().gw.settings.twilio_phone_number
    return jsonify(sid=sid, ringing=ringing, withheld=caller == WITHHELD_FROM, **{"from": caller, "to": to}), 201


def _who_is_rung(sid: str, wait_s: float = 3.0) -> list[dict]:
    """The agents the new test call rings (routing decides it when the call's webhook arrives, a
    moment after it is placed), so the console can say who, not only that a call was placed.
    Empty when nobody is available yet (the caller waits in the queue)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        calls = svc().views.calls_by_twilio_sid(sid, None)
        if calls:
            timeline = svc().views.timeline(calls[0]["id"])
            rung = [e["agent_id"] for e in timeline if e["kind"] == "agent_ringing" and e["agent_id"]]
            if rung or any(e["kind"] == "no_agent" for e in timeline):
                agents = {a["id"]: a["name"] for a in svc().agents.list()}
                return [{"id": a, "name": agents.get(a, a)} for a in dict.fromkeys(rung)]
        time.sleep(0.05)
    return []


@bp.post("/console/sandbox/rtc/join")
@api.agent_required
def rtc_join():
    """Same-origin proxy to the fake LiveKit's browser join (it sends no CORS headers)."""
    token = api.field(api.body(), "token", max_len=4096)
    try:
        identity = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        identity = None
    if identity not in _own_identities():
        raise api.ApiError(403, "that token is not yours")
    data, status = controls().rtc_join(token)
    return jsonify(data), status


def _own_identities() -> set[str]:
    """The LiveKit identities the signed-in agent may use: its own, and a supervisor's listener."""
    actor = access.Actor.of(g.agent)
    return {actor.id} | ({access.listener_identity(actor.id)} if access.may_see_board(actor) else set())


@bp.post("/console/sandbox/rtc/leave")
@api.agent_required
def rtc_leave():
    data = api.body()
    room = api.field(data, "room", max_len=128)
    identity = api.field(data, "identity", required=False, max_len=60) or g.agent["id"]
    if identity not in _own_identities():
        raise api.ApiError(403, "that participant is not you")
    reply, status = controls().rtc_leave(room, identity)
    if status == 404:
        # Already out (the server moved or removed the agent, or the room closed): livekit-client's
        # Room.disconnect() resolves quietly then too, so the console sees no error for it.
        return jsonify(ok=True, already_left=True), 200
    return jsonify(reply), status


# ------------------------------------------------------------------ the web caller's media
# The caller page in sandbox mode joins the LiveKit double through these, as the console does;
# who may call: only with the web call's access token (web/web_calls.py), for that call's identity.
@bp.post("/call/sandbox/rtc/join")
def web_caller_join():
    token = api.field(api.body(), "token", max_len=4096)
    try:
        identity = jwt.decode(token, options={"verify_signature": False}).get("sub") or ""
    except jwt.PyJWTError:
        identity = ""
    parsed = web_rules.parse_identity(identity)
    if parsed is None:
        raise api.ApiError(403, "that is not a web caller's token")
    web_calls.authorized(parsed[0])
    data, status = controls().rtc_join(token)
    return jsonify(data), status


@bp.post("/call/sandbox/rtc/leave")
def web_caller_leave():
    data = api.body()
    identity = api.field(data, "identity", max_len=128)
    room = api.field(data, "room", max_len=128)
    parsed = web_rules.parse_identity(identity)
    if parsed is None:
        raise api.ApiError(403, "that is not a web caller's identity")
    web_calls.authorized(parsed[0])
    reply, status = controls().rtc_leave(room, identity)
    if status == 404:
        return jsonify(ok=True, already_left=True), 200
    return jsonify(reply), status
