"""The smoke test's Twilio endpoints (``doctor --call``): signed like every Twilio webhook, each
records the hop it proves and answers the TwiML that leads to the next one."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request

import twiml
from gateway.ops import smoke
from gateway.web.twilio_hooks import form, signed, twiml_view
from twiml.documents import SipTarget

log = logging.getLogger(__name__)
bp = Blueprint("smoke", __name__, url_prefix="/twilio/smoke")


def _gw():
    return current_app.extensions["gateway"].gw


def _probe() -> str:
    probe = request.args.get("probe", "")
    return probe if probe.isalnum() and len(probe) <= 32 else ""


def _record(hop: str, **detail) -> None:
    probe = _probe()
    if probe:
        smoke.record_hop(_gw().store, probe, hop, **detail)


@bp.post("/answer")
@signed
@twiml_view("empty", rendered=True)  # a phone is on the line: never an error page
def answer():
    _record("voice_webhook", answered_by=form("AnsweredBy") or None)
    heard_url = smoke.hop_url(_gw().urls.origin, "heard", probe=_probe())
    return twiml.smoke_announcement(text=smoke.ANNOUNCEMENT, heard_url=heard_url)


@bp.post("/heard")
@signed
@twiml_view("empty", rendered=True)  # a phone is on the line: never an error page
def heard():
    """Requested by the <Redirect> after the announcement: it has been said in full."""
    _record("whisper_heard")
    gather_url = smoke.hop_url(_gw().urls.origin, "gather", probe=_probe())
    return twiml.smoke_prompt(prompt=smoke.PROMPT, gather_url=gather_url)


@bp.post("/gather")
@signed
@twiml_view("empty", rendered=True)  # a phone is on the line: never an error page
def gather():
    digits = form("Digits")
    _record("key_pressed", digits=digits)
    if digits != "1":
        return twiml.goodbye("No 1 was pressed, so the test stops here. Goodbye.")
    gw, probe = _gw(), _probe()
    s = gw.settings
    return twiml.smoke_bridge(
        room_token=smoke.TOKEN_PREFIX + probe,
        sip=SipTarget(s.livekit_sip_host, s.livekit_sip_username, s.livekit_sip_password),
        action_url=smoke.hop_url(gw.urls.origin, "dial-action", probe=probe),
        sip_status_url=smoke.hop_url(gw.urls.origin, "status", probe=probe, leg="sip"),
        message=smoke.BRIDGING,
        timeout_s=smoke.SIP_RING_S,
    )


@bp.post("/dial-action")
@signed
@twiml_view("empty", rendered=True)  # a phone is on the line: never an error page
def dial_action():
    _record("dial_ended", status=form("DialCallStatus"), sip_code=form("DialSipResponseCode") or None)
    return twiml.goodbye(smoke.ENDED)


@bp.post("/status")
@signed
def status():
    if request.args.get("leg") == "sip":
        _record("sip_leg", status=form("CallStatus"), sid=form("CallSid"))
    else:
        _record("status", status=form("CallStatus"))
    return Response(status=204)
