"""Twilio webhooks. Every request's X-Twilio-Signature is checked against PUBLIC_BASE_URL.

The services answer a reply value (``services/replies.py``); ``answer`` renders it as TwiML
(``web/replies.py``). TwiML endpoints never answer 5xx: on any unexpected error the caller hears
an apology (Twilio would otherwise play its generic application error).
"""

from __future__ import annotations

import functools
import json
import logging

from flask import Blueprint, Response, current_app, request
from twilio.request_validator import RequestValidator

from gateway.services.ports import Dest
from gateway.services.replies import ENDED_BY_AGENT, VOICEMAIL_THANKS, Goodbye, Nothing, Reply
from gateway.web.replies import render

log = logging.getLogger(__name__)
bp = Blueprint("twilio", __name__, url_prefix="/twilio")
MAX_FIELD = 2000
# Endpoints whose answer is TwiML a caller (or agent) will hear.
TWIML_VIEWS = {
    "voice",
    "fallback",
    "dial_action",
    "hold",
    "queue",
    "queue_choice",
    "bridge",
    "apology",
    "goodbye",
    "voicemail",
    "leg_answer",
    "leg_gather",
    "leg_bridge",
    "leg_dial_action",
}


# The view that answers each destination the services name (web/urls.py builds their URLs).
ENDPOINTS: dict[Dest, str] = {
    Dest.MENU: "twilio.menu",
    Dest.BRIDGE: "twilio.bridge",
    Dest.HOLD: "twilio.hold",
    Dest.QUEUE: "twilio.queue",
    Dest.QUEUE_CHOICE: "twilio.queue_choice",
    Dest.APOLOGY: "twilio.apology",
    Dest.GOODBYE: "twilio.goodbye",
    Dest.VOICEMAIL: "twilio.voicemail",
    Dest.DIAL_ACTION: "twilio.dial_action",
    Dest.SIP_STATUS: "twilio.sip_status",
    Dest.TRANSCRIPTION: "twilio.transcription",
    Dest.SMS_STATUS: "twilio.sms_status",
    Dest.CALLBACK_ANSWER: "twilio.callback_answer",
    Dest.CALLBACK_STATUS: "twilio.callback_status",
    Dest.LEG_ANSWER: "twilio.leg_answer",
    Dest.LEG_GATHER: "twilio.leg_gather",
    Dest.LEG_BRIDGE: "twilio.leg_bridge",
    Dest.LEG_DIAL_ACTION: "twilio.leg_dial_action",
    Dest.LEG_STATUS: "twilio.leg_status",
}


def _services():
    return current_app.extensions["gateway"]


def xml(body: str) -> Response:
    return Response(body, mimetype="text/xml")


def answer(reply: Reply) -> Response:
    return xml(render(reply, _services().gw))


def _apology(call_id: str | None = None) -> Response:
    """A caller is on the line and something failed: a clear apology (voicemail when offered)."""
    return answer(_services().answers.apology(call_id, technical=True))


def signed(view):
    """403 unless the request carries a valid Twilio signature for its public URL."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        services = _services()
        url = (
            services.gw.urls.origin + request.full_path.rstrip("?")
            if request.query_string
            else services.gw.urls.origin + request.path
        )
        signature = request.headers.get("X-Twilio-Signature", "")
        validator = RequestValidator(services.gw.settings.twilio_auth_token)
        if not signature or not validator.validate(url, request.form, signature):
            services.metrics.rejected("twilio_signature")
            return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")
        if any(len(v) > MAX_FIELD for v in request.form.values()):
            if view.__name__ in TWIML_VIEWS:  # a caller is on the line: never an error page
                return _apology()
            return Response("form field too long\n", status=400, mimetype="text/plain")
        return view(*args, **kwargs)

    return wrapper


def twiml_view(fallback: str = "apology", *, rendered: bool = False):
    """The view's reply rendered as TwiML; whatever goes wrong, answer 200 with TwiML that keeps the
    caller informed. ``rendered``: the view answers a TwiML document it built itself (the operator's
    test call in ``ops/smoke_web.py``, which is no service's use case and has no reply values)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            try:
                result = view(*args, **kwargs)
                return xml(result) if rendered else answer(result)
            except Exception:
                log.exception("TwiML endpoint %s failed", request.path)
                if fallback == "empty":
                    return answer(Nothing())
                return _apology(request.args.get("call"))

        return wrapper

    return decorate


def form(name: str, default: str = "") -> str:
    return (request.form.get(name) or default).strip()


def required(*names: str):
    """Missing fields: a clear 400 (Twilio always sends these, so only forged or broken requests lack them)."""
    missing = [n for n in names if not form(n)]
    if missing:
        raise MissingField(missing)


class MissingField(Exception):
    def __init__(self, names):
        super().__init__("missing form field(s): " + ", ".join(names))


@bp.errorhandler(MissingField)
def _missing(exc):
    return Response(str(exc) + "\n", status=400, mimetype="text/plain")


@bp.post("/voice")
@signed
def voice():
    services = _services()
    sid = form("CallSid")
    if not sid.startswith("CA"):
        # Still a caller on the line: never an error page.
        return _apology()
    # An empty From is a caller whose carrier sent no caller ID (Twilio error 13214): served like
    # anyone, as a withheld number (domain.caller_id).
    try:
        return answer(services.caller.inbound(call_sid=sid, from_number=form("From"), to_number=form("To")))
    except Exception:
        log.exception("voice webhook failed")
        return _apology()


@bp.post("/fallback")
@signed
def fallback():
    """Twilio's fallback URL: record what failed, and still give the caller a graceful answer."""
    services = _services()
    try:
        services.records.fallback_used(form("CallSid"), form("ErrorCode"), form("ErrorUrl"))
    except Exception:
        log.exception("recording a fallback failed")
    return _apology()


@bp.post("/status")
@signed
def status():
    required("CallSid", "CallStatus")
    _services().caller.caller_status(form("CallSid"), form("CallStatus"))
    return Response(status=204)


@bp.post("/dial-action")
@signed
@twiml_view()
def dial_action():
    return _services().caller.dial_ended(
        request.args.get("call", ""),
        request.args.get("room", ""),
        form("DialCallStatus"),
        form("CallStatus"),
        form("DialSipResponseCode") or None,
        request.args.get("gen", "0"),
    )


@bp.post("/sip-status")
@signed
def sip_status():
    required("CallSid", "CallStatus")
    _services().caller.sip_leg_status(request.args.get("call", ""), form("CallSid"), form("CallStatus"))
    return Response(status=204)


@bp.post("/hold")
@signed
@twiml_view()
def hold():
    return _services().caller.hold_for(request.args.get("call", ""), first=not request.args.get("loop"))


@bp.post("/queue")
@signed
@twiml_view()
def queue():
    """One pass of a waiting caller's loop: their place in line, the team's music, and again."""
    return _services().caller.queue_for(request.args.get("call", ""), first=not request.args.get("loop"))


@bp.post("/queue/choice")
@signed
@twiml_view()
def queue_choice():
    """A key or words from a waiting caller (the hold loop's <Gather>)."""
    return _services().caller.queue_choice(request.args.get("call", ""), form("Digits"), form("SpeechResult"))


@bp.post("/menu")
@signed
@twiml_view()
def menu():
    """The caller's answer to a number's menu: a key (Digits) or words (SpeechResult), or nothing."""
    try:
        attempt = int(request.args.get("attempt", "1"))
    except ValueError:
        attempt = 1
    return _services().caller.menu_choice(request.args.get("call", ""), form("Digits"), form("SpeechResult"), attempt)


def _attempt() -> int:
    try:
        return int(request.args.get("attempt", "1"))
    except ValueError:
        return 1


@bp.post("/callback/answer")
@signed
@twiml_view()
def callback_answer():
    """The caller we call back picked up: greeting, then into the room where their agent waits."""
    return _services().callbacks.answered(request.args.get("call", ""), form("CallSid"), _attempt())


@bp.post("/callback/status")
@signed
def callback_status():
    """Our callback's final status (no answer, busy, failed; or completed after the conversation)."""
    required("CallSid", "CallStatus")
    _services().callbacks.status(request.args.get("call", ""), form("CallSid"), _attempt(), form("CallStatus"))
    return Response(status=204)


@bp.post("/bridge")
@signed
@twiml_view()
def bridge():
    return _services().caller.bridge_for(request.args.get("call", ""))


@bp.post("/apology")
@signed
@twiml_view()
def apology():
    return _services().caller.apology_for(request.args.get("call") or None)


@bp.post("/goodbye")
@signed
@twiml_view()
def goodbye():
    return Goodbye(ENDED_BY_AGENT)


@bp.post("/voicemail")
@signed
@twiml_view()
def voicemail():
    if form("RecordingUrl"):
        _services().caller.voicemail(request.args.get("call", ""), form("RecordingUrl"), form("RecordingDuration"))
    return Goodbye(VOICEMAIL_THANKS)


@bp.post("/leg/answer")
@signed
@twiml_view("empty")
def leg_answer():
    return _services().legs.leg_answered(request.args.get("leg", ""), form("AnsweredBy") or None)


@bp.post("/leg/gather")
@signed
@twiml_view("empty")
def leg_gather():
    return _services().legs.leg_digits(
        request.args.get("leg", ""), form("Digits"), again=bool(request.args.get("again"))
    )


@bp.post("/leg/bridge")
@signed
@twiml_view("empty")
def leg_bridge():
    return _services().legs.leg_bridge_for(request.args.get("leg", ""))


@bp.post("/leg/dial-action")
@signed
@twiml_view("empty")
def leg_dial_action():
    return _services().legs.leg_dial_ended(request.args.get("leg", ""))


@bp.post("/leg/status")
@signed
def leg_status():
    required("CallStatus")
    _services().legs.leg_status(request.args.get("leg", ""), form("CallStatus"), form("CallSid") or None)
    return Response(status=204)


# Kept for legs bridged by TwiML from an earlier release, which still asked for <Sip> progress.
@bp.post("/leg/sip-status")
@signed
def leg_sip_status():
    return Response(status=204)


@bp.post("/transcription")
@signed
def transcription():
    """Real-time transcription callbacks: final caller/agent lines feed the summary."""
    event = form("TranscriptionEvent")
    if event != "transcription-content" or form("Final").lower() != "true":
        return Response(status=204)
    try:
        data = json.loads(form("TranscriptionData") or "{}")
    except json.JSONDecodeError:
        return Response("TranscriptionData is not JSON\n", status=400, mimetype="text/plain")
    text = str(data.get("transcript", "")).strip() if isinstance(data, dict) else ""
    if text:
        speaker = "caller" if form("Track") == "inbound_track" else "agent"
        key = f"{form('TranscriptionSid')}:{form('SequenceId')}"
        _services().records.transcript_line(request.args.get("call", ""), key, speaker, text)
    return Response(status=204)


@bp.post("/sms-status")
@signed
def sms_status():
    required("MessageSid", "MessageStatus")
    _services().records.sms_status(form("MessageSid"), form("MessageStatus"))
    return Response(status=204)
