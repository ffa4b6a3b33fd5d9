"""A loopback Twilio: the REST API the gateway calls and the phone network behind it.

`TwilioSimulator` is a real HTTP server (werkzeug, threaded, daemon thread) that
answers the parts of Twilio's 2010-04-01 REST API the gateway uses, closely
enough that the official `twilio.rest.Client` works against it once its
requests' origin is rewritten to `sim.url`. It also plays the phone network:
scripted phones answer (or not) outbound calls, test code places inbound calls,
and every call runs on its own thread (`twiml_exec.CallRunner`) that sends
signed webhooks to the gateway and executes the TwiML it gets back.
`<Dial><Sip>` legs reach the LiveKit double over its `/_sim/sip/*` HTTP API.

Modelled REST resources: Accounts (fetch), Calls (create, fetch, list with
Status / To / From / ParentCallSid filters, update: redirect with Url or Twiml,
Status=completed|canceled), Messages (create with GSM-7 / UCS-2 segment count,
fetch, list; sent/delivered status callbacks), IncomingPhoneNumbers (list by
PhoneNumber, fetch, update; a number with a ``trunk_sid`` or ``voice_application_sid`` ignores its
voice URL, as Twilio documents for both fields), a call's real-time Transcriptions (create on an
in-progress call, stop by SID or name; every running session transcribes, so two sessions
duplicate every line). HTTP basic auth with the account SID and auth
token; errors are Twilio's JSON error bodies and codes. Faults and latency can
be injected per path.

Deliberately not modelled: paging beyond one page, subaccounts and API keys,
conferences, recordings as REST resources, media messages,
trial-account and opt-out errors (inject them as faults), SIP domains and
Elastic SIP Trunking, redirecting a <Dial> child leg with new TwiML (400).

`/_sim/*` control endpoints (no auth) let another process drive calls, e.g. a
"place a test call" button in the sandbox console: calls (place, list, show,
hangup, press, speak), phones, numbers, messages, webhooks (the log of every
request sent to the gateway) and faults.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from gateway.sandbox.twiml_exec import (
    FINAL_STATUSES,
    SAY_SECONDS_PER_WORD,
    CallRunner,
    CallSetup,
    HungUp,
    PhoneScript,
    Redirected,
    SerialDispatcher,
    TwimlSource,
    WebhookResult,
    rfc2822_now,
)

log = logging.getLogger(__name__)

__all__ = ["TwilioSimulator", "SimCall", "PhoneScript"]

DEFAULT_ACCOUNT_SID = "AC" + "00" * 16
API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
HANG_SECONDS = 30.0
STOP_BUDGET_SECONDS = 1.0  # how long stop() waits for call threads before giving up on them

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")  # each costs two septets


def sms_segments(body: str) -> int:
    """Segments Twilio bills: GSM-7 160/153 septets, else UCS-2 70/67 code units."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in body):
        units = len(body) + sum(ch in GSM7_EXTENDED for ch in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def _rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment else None


class SimCall:
    """One simulated call leg, as the person on the line experiences it.

    Thread-safe: the call's runner thread writes to it, tests and HTTP
    handlers read it and act on it (hangup, press, speak). `events` is an
    ordered snapshot of what happened; `current` is what the person hears now;
    `timeline` lists every change of `current` with its monotonic time.
    """

    def __init__(
        self,
        sim: TwilioSimulator,
        sid: str,
        from_: str,
        to: str,
        direction: str,
        setup: CallSetup | None = None,
        script: PhoneScript | None = None,
        parent_call_sid: str | None = None,
    ):
        self._sim = sim
        self.sid = sid
        self.from_ = from_
        self.to = to
        self.direction = direction
        self.parent_call_sid = parent_call_sid
        self.setup = setup or CallSetup()
        self.script = script or PhoneScript.unscripted(to if direction != "inbound" else from_)
        self.answered_by: str | None = None
        self.room: str | None = None
        self.date_created = datetime.now(UTC)
        self.start_time: datetime | None = None
        self.end_time: datetime | None = None
        self._cond = threading.Condition(threading.RLock())
        self._status = "ringing" if direction == "inbound" else "queued"
        self._events: list = [("status", self._status)]
        self._created = time.monotonic()
        self._timeline: list = [(self._created, "ringing")]
        self._answered_at: float | None = None
        self._ended_at: float | None = None
        self._interrupt: Redirected | HungUp | None = None  # a pending one for the runner
        self._digits = ""
        # Words said to a <Gather input="speech"> that is listening (its prompts included).
        self._speech: list[str] = []
        self._listening_speech = False
        self._hangup_at: float | None = None
        self._transcriptions: list[dict] = []  # running real-time transcription sessions
        self.callbacks = SerialDispatcher(f"callbacks-{sid}")  # this call's webhooks that don't hold it up

    # -- what tests read ---------------------------------------------------------

    @property
    def status(self) -> str:
        with self._cond:
            return self._status

    @property
    def current(self) -> str:
        with self._cond:
            return self._timeline[-1][1]

    @property
    def events(self) -> list:
        with self._cond:
            return list(self._events)

    @property
    def timeline(self) -> list:
        with self._cond:
            return list(self._timeline)

    @property
    def answered(self) -> bool:
        with self._cond:
            return self._answered_at is not None

    @property
    def ended(self) -> bool:
        with self._cond:
            return self._status in FINAL_STATUSES

    @property
    def duration(self) -> int:
        """Simulated seconds since the answer (Twilio's CallDuration)."""
        with self._cond:
            if self._answered_at is None:
                return 0
            end = self._ended_at or time.monotonic()
            return int(round((end - self._answered_at) / self._sim.time_scale))

    def time_in(self, state_prefix: str) -> float:
        """Real seconds spent with `current` starting with `state_prefix`."""
        return sum(end - start for start, end, state in self._segments() if state.startswith(state_prefix))

    def silence_gaps(self) -> list:
        """(offset from the call's creation, length) of every stretch of dead air, in real seconds."""
        return [(start - self._created, end - start) for start, end, state in self._segments() if state == "silence"]

    def _segments(self) -> list:
        with self._cond:
            timeline = list(self._timeline)
            end = self._ended_at or time.monotonic()
        bounds = [moment for moment, _ in timeline[1:]] + [end]
        return [(start, stop, state) for (start, state), stop in zip(timeline, bounds, strict=False)]

    def wait_for(self, predicate: Callable[[SimCall], bool], timeout: float = 5.0) -> SimCall:
        """Block until predicate(call) holds; AssertionError with the call's history otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"call {self.sid} timed out after {timeout}s: status={self._status} "
                        f"current={self.current} events={self._events}"
                    )
                self._cond.wait(remaining)
        return self

    def wait_status(self, *statuses: str, timeout: float = 5.0) -> str:
        self.wait_for(lambda call: call.status in statuses, timeout)
        return self.status

    def wait_current(self, prefix: str, timeout: float = 5.0) -> str:
        self.wait_for(lambda call: call.current.startswith(prefix), timeout)
        return self.current

    def snapshot(self) -> dict:
        """JSON-ready state for the /_sim control API."""
        with self._cond:
            return {
                "sid": self.sid,
                "from": self.from_,
                "to": self.to,
                "direction": self.direction,
                "parent_call_sid": self.parent_call_sid,
                "status": self._status,
                "current": self.current,
                "room": self.room,
                "answered_by": self.answered_by,
                "duration": self.duration,
                "events": [list(event) for event in self._events],
            }

    # -- what the person on the line does ----------------------------------------

    def hangup(self) -> bool:
        """The person on this line hangs up now (the caller, or the callee of an outbound call)."""
        return self._request_hangup("caller" if self.direction == "inbound" else "callee")

    def press(self, digits: str) -> None:
        """Press keys; the current or next <Gather> (or a <Record> finish key) gets them."""
        with self._cond:
            self._digits += digits
            self._cond.notify_all()

    def speak(self, text: str, track: str = "inbound_track", final: bool = True) -> int | None:
        """Say something; with real-time transcription on, Twilio posts it to the callback.
        A <Gather> listening for speech (input="speech" or "dtmf speech") hears it too.

        Returns the callback's HTTP status, or None when nothing was
        transcribed (no transcription started, or another track). The post
        goes out after the call's earlier callbacks (transcription-started first).
        """
        if track == "inbound_track" and final:
            with self._cond:
                if self._listening_speech:
                    self._speech.append(text)
                    self._cond.notify_all()
        return self.callbacks.call(lambda: self.post_transcript(text, track, final))

    def listen_for_speech(self, on: bool) -> None:
        """A speech <Gather> starts (or stops) listening; words said outside one are not gathered."""
        with self._cond:
            self._listening_speech = on
            if not on:
                self._speech.clear()

    def has_speech(self) -> bool:
        with self._cond:
            return bool(self._speech)

    def take_speech(self) -> str:
        with self._cond:
            words, self._speech = " ".join(self._speech), []
            return words

    def post_transcript(self, text: str, track: str, final: bool) -> int | None:
        """Send one transcription-content callback now (speak() queues this), once per running
        session: two sessions on one call transcribe the same words twice."""
        with self._cond:
            running = [t for t in self._transcriptions if t["track"] in ("both_tracks", track)]
            if not running or self.ended:
                return None
            for transcription in running:
                transcription["sequence"] += 1
            sessions = [(t, t["sequence"]) for t in running]
        status = None
        for transcription, sequence in sessions:
            status = self._post_transcript(transcription, sequence, text, track, final)
        return status

    def _post_transcript(self, transcription: dict, sequence: int, text: str, track: str, final: bool) -> int | None:
        params = {
            "AccountSid": self._sim.account_sid,
            "CallSid": self.sid,
            "TranscriptionSid": transcription["sid"],
            "TranscriptionEvent": "transcription-content",
            "TranscriptionData": json.dumps({"transcript": text, "confidence": 0.93}),
            "Track": track,
            "SequenceId": str(sequence),
            "Final": "true" if final else "false",
            "LanguageCode": "en-US",
            "Timestamp": rfc2822_now(),
        }
        if not final:
            params["Stability"] = "0.8"
        if transcription["name"]:
            params["Name"] = transcription["name"]
        url, method = transcription["url"], transcription["method"]
        result = self._sim.send_webhook(self.sid, "transcription", url, method, params)
        return result.status

    # -- control from the simulator (REST updates, stop) ---------------------------

    def _request_hangup(self, who: str) -> bool:
        with self._cond:
            if self.ended:
                return False
            if not isinstance(self._interrupt, HungUp):
                self._interrupt = HungUp(who)
            self._cond.notify_all()
            return True

    def _request_redirect(self, source: TwimlSource) -> bool:
        with self._cond:
            if self.ended:
                return False
            if not isinstance(self._interrupt, HungUp):  # a pending hangup wins
                self._interrupt = Redirected(source)
            self._cond.notify_all()
            return True

    # -- what the runner uses --------------------------------------------------------

    def pending_hangup(self) -> bool:
        """For a dialled child leg: has someone asked to hang it up?"""
        with self._cond:
            return isinstance(self._interrupt, HungUp)

    def check_interrupt(self) -> None:
        """Raise a pending REST redirect (once) or hangup (every time)."""
        with self._cond:
            pending = self._interrupt
            if isinstance(pending, Redirected):
                self._interrupt = None
                raise pending
            if isinstance(pending, HungUp):
                raise HungUp(pending.who)

    def wait(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Let `seconds` (real) pass on the line; True as soon as `until()` holds.

        Raises Redirected / HungUp when control is taken from outside, and
        enforces the script's hangup_after.
        """
        deadline = time.monotonic() + max(0.0, seconds)
        with self._cond:
            while True:
                self.check_interrupt()
                if until is not None and until():
                    return True
                now = time.monotonic()
                if self._hangup_at is not None and now >= self._hangup_at:
                    self._hangup_at = None
                    self._interrupt = HungUp("caller" if self.direction == "inbound" else "callee")
                    continue
                if now >= deadline:
                    return False
                wake = min(deadline, self._hangup_at if self._hangup_at is not None else math.inf)
                self._cond.wait(None if wake == math.inf else wake - now)

    def has_digits(self) -> bool:
        with self._cond:
            return bool(self._digits)

    def pending_digits(self) -> str:
        with self._cond:
            return self._digits

    def take_digits(self) -> str:
        with self._cond:
            digits, self._digits = self._digits, ""
            return digits

    def add_event(self, *event) -> None:
        with self._cond:
            self._events.append(tuple(event))
            self._cond.notify_all()

    def set_current(self, state: str) -> None:
        with self._cond:
            if self._timeline[-1][1] != state:
                self._timeline.append((time.monotonic(), state))
                self._cond.notify_all()

    def set_status(self, status: str) -> None:
        with self._cond:
            if self._status != status:
                self._status = status
                self._events.append(("status", status))
                self._cond.notify_all()

    def mark_answered(self) -> None:
        """The call is answered: in-progress from now, and the script's hangup timer starts."""
        with self._cond:
            if self._answered_at is not None:
                return
            self._answered_at = time.monotonic()
            self.start_time = datetime.now(UTC)
            if self.script.hangup_after is not None:
                self._hangup_at = self._answered_at + self.script.hangup_after * self._sim.time_scale
            self.set_status("in-progress")

    def finish(self, status: str) -> None:
        with self._cond:
            if self.ended:
                return
            self._ended_at = time.monotonic()
            self.end_time = datetime.now(UTC)
            self.room = None
            self.set_status(status)
            self.set_current("ended")

    def start_transcription(self, sid: str, url: str, method: str, track: str, name: str | None) -> dict:
        """A new session; an earlier one keeps running (Twilio starts another for every <Start>)."""
        with self._cond:
            transcription = {"sid": sid, "url": url, "method": method, "track": track, "name": name, "sequence": 0}
            self._transcriptions.append(transcription)
            return dict(transcription)

    def stop_transcription(self, which: str | None = None) -> list[dict]:
        """Stop the session with this SID or name, or every session; returns the ones stopped."""
        with self._cond:
            stopped = [t for t in self._transcriptions if which is None or which in (t["sid"], t["name"])]
            self._transcriptions = [t for t in self._transcriptions if t not in stopped]
            return stopped

    @property
    def transcriptions(self) -> list[dict]:
        """The running sessions."""
        with self._cond:
            return [dict(t) for t in self._transcriptions]

    def transcription_event(self, transcription: dict, event: str) -> None:
        """A transcription-started/-stopped callback, in order with the call's other callbacks."""
        params = {
            "AccountSid": self._sim.account_sid,
            "CallSid": self.sid,
            "TranscriptionSid": transcription["sid"],
            "TranscriptionEvent": event,
            "Timestamp": rfc2822_now(),
            "Track": transcription["track"],
            "LanguageCode": "en-US",
        }
        if transcription["name"]:
            params["Name"] = transcription["name"]
        url, method = transcription["url"], transcription["method"]
        self.callbacks.submit(lambda: self._sim.send_webhook(self.sid, "transcription", url, method, params))

    def webhook_params(self, status: str | None = None) -> dict:
        """Twilio's standard voice request parameters for this call."""
        params = {
            "AccountSid": self._sim.account_sid,
            "CallSid": self.sid,
            "From": self.from_,
            "To": self.to,
            "Caller": self.from_,
            "Called": self.to,
            "CallStatus": status or self.status,
            "Direction": self.direction,
            "ApiVersion": API_VERSION,
        }
        if self.parent_call_sid:
            params["ParentCallSid"] = self.parent_call_sid
        return params

    def __repr__(self) -> str:
        return f"<SimCall {self.sid} {self.direction} {self.from_}->{self.to} {self.status} {self.current}>"


class _QuietHandler(WSGIRequestHandler):
    """No access log: the doubles are chatty enough in a failing test's output."""

    def log_request(self, code="-", size="-") -> None:
        pass


class TwilioSimulator:
    """Twilio's REST API and phone network on loopback, for tests and the sandbox.

    The carrier side (`send_webhook`, `livekit`, `create_child_call`, `phone`,
    `new_sid`, `time_scale`) is what `CallRunner` uses to act on the world.
    """

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = "sandbox-auth-token",
        livekit_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float = 0.01,
        http_timeout: float = 15,
    ):
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.livekit_url = livekit_url.rstrip("/") if livekit_url else None
        self.time_scale = time_scale
        # Simulated seconds per spoken word of <Say>; see twiml_exec.PERSON_SAY_SECONDS_PER_WORD.
        self.say_seconds_per_word = SAY_SECONDS_PER_WORD
        self.http_timeout = http_timeout
        self._host, self._port = host, port
        self._validator = RequestValidator(auth_token)
        self._lock = threading.RLock()
        self._calls: dict = {}
        self._runner_threads: list = []
        self._messages: dict = {}
        self._numbers: dict = {}
        self._phones: dict = {}
        self._faults: list = []
        self._latencies: list = []
        self._webhook_log: list = []
        self._stopping = threading.Event()
        self._http = threading.local()
        self._message_callbacks = SerialDispatcher("message-callbacks")
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = Map(self._rules())

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> TwilioSimulator:
        self._server = server = make_server(
            self._host, self._port, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="twilio-sim", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Hang up every call (no more webhooks go out) and stop the server, within ~2 s."""
        if self._server is None:
            return
        self._stopping.set()
        for call in self.calls():
            call._request_hangup("api")
        deadline = time.monotonic() + STOP_BUDGET_SECONDS
        for thread in list(self._runner_threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._message_callbacks.close()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(1.0)
        self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("TwilioSimulator is not started")
        return f"http://{self._host}:{self._server.server_port}"

    # -- test-facing API -----------------------------------------------------------------

    def add_number(
        self,
        phone_number: str,
        voice_url: str | None = None,
        status_callback: str | None = None,
        voice_fallback_url: str | None = None,
        voice_method: str = "POST",
        status_callback_events: tuple = ("completed",),
        trunk_sid: str | None = None,
        voice_application_sid: str | None = None,
    ) -> str:
        """Own a phone number (an IncomingPhoneNumber); returns its PN sid.

        Twilio sends a number's status callback only for `completed`; pass
        all of CALL_EVENTS in `status_callback_events` to get every event.
        """
        sid = self.new_sid("PN")
        now = datetime.now(UTC)
        with self._lock:
            self._numbers[sid] = {
                "sid": sid,
                "phone_number": phone_number,
                "friendly_name": phone_number,
                "voice_url": voice_url,
                "voice_method": voice_method,
                "voice_fallback_url": voice_fallback_url,
                "voice_fallback_method": "POST",
                "status_callback": status_callback,
                "status_callback_method": "POST",
                "status_callback_events": frozenset(status_callback_events),
                # Either one takes the number's calls away from its voice URL (Elastic SIP Trunking,
                # e.g. LiveKit's own Twilio quick-start, or a TwiML app); setting one clears the other.
                "trunk_sid": trunk_sid,
                "voice_application_sid": None if trunk_sid else voice_application_sid,
                "date_created": now,
                "date_updated": now,
            }
        return sid

    def script_phone(
        self,
        number: str,
        answer: bool = True,
        answer_after: float = 2.0,
        digits: str | None = "1",
        machine: bool = False,
        busy: bool = False,
        hangup_after: float | None = None,
        gather_delay: float = 0.0,
    ) -> PhoneScript:
        """Say how the phone at `number` behaves when called (or when it calls us)."""
        script = PhoneScript(number, answer, answer_after, digits, machine, busy, hangup_after, gather_delay)
        with self._lock:
            self._phones[number] = script
        return script

    def place_inbound_call(self, from_: str = "+15557654321", to: str = "+15550000000", speech=None) -> SimCall:
        """A caller dials one of our numbers; `speech` (a string or list) is what they
        say, as transcription callbacks, once real-time transcription starts.

        `from_` is passed on as it is, checked against nothing: a caller who withholds their
        number reaches Twilio with whatever the carrier sends ("anonymous", "Restricted", "",
        the keypad spelling "+266696687"...), and Twilio hands it to the voice URL as From
        (https://www.twilio.com/docs/api/errors/13214: "Carriers may send invalid Caller IDs
        on Incoming calls to Twilio")."""
        number = self._number_by_phone(to)
        if number is None:
            raise ValueError(f"{to} is not a number of this simulator; add_number() it first")
        utterances = (speech,) if isinstance(speech, str) else tuple(speech or ())
        if number["trunk_sid"] or number["voice_application_sid"]:
            # Twilio routes the call to the trunk or the TwiML app: the voice URL is never requested.
            # Here nobody answers there; the caller gets a failed call and the gateway hears nothing.
            call = SimCall(self, self.new_sid("CA"), from_, to, "inbound", CallSetup(), script=self.phone(from_))
            call.add_event("routed_elsewhere", number["trunk_sid"] or number["voice_application_sid"])
            with self._lock:
                self._calls[call.sid] = call
            call.finish("failed")
            return call
        setup = CallSetup(
            source=TwimlSource(url=number["voice_url"], method=number["voice_method"]) if number["voice_url"] else None,
            fallback=(
                TwimlSource(url=number["voice_fallback_url"], method=number["voice_fallback_method"])
                if number["voice_fallback_url"]
                else None
            ),
            status_callback=number["status_callback"],
            status_callback_method=number["status_callback_method"],
            status_events=number["status_callback_events"],
            speech=utterances,
        )
        call = SimCall(self, self.new_sid("CA"), from_, to, "inbound", setup, script=self.phone(from_))
        self._launch(call)
        return call

    def phone_press(self, call_sid: str, digits: str) -> None:
        self.call(call_sid).press(digits)

    def calls(self) -> list:
        """Every call, including dialled child legs, oldest first."""
        with self._lock:
            return list(self._calls.values())

    def call(self, sid: str) -> SimCall:
        with self._lock:
            return self._calls[sid]

    def messages(self) -> list:
        with self._lock:
            return [self._message_json(message) for message in self._messages.values()]

    def webhooks(self, kind: str | None = None, call_sid: str | None = None) -> list:
        """Every webhook request sent: dicts of kind, call_sid, url, method, params, status, error."""
        with self._lock:
            return [
                dict(entry)
                for entry in self._webhook_log
                if (kind is None or entry["kind"] == kind) and (call_sid is None or entry["call_sid"] == call_sid)
            ]

    def inject_fault(
        self,
        path_contains: str = "Messages",
        status: int = 500,
        code: int = 20500,
        count: int = 1,
        retry_after: float | None = None,
        hang: bool = False,
    ) -> None:
        """Make the next `count` REST requests whose path contains `path_contains` fail."""
        with self._lock:
            self._faults.append(
                {
                    "path_contains": path_contains,
                    "status": status,
                    "code": code,
                    "count": count,
                    "retry_after": retry_after,
                    "hang": hang,
                }
            )

    def inject_latency(self, seconds: float, path_contains: str = "") -> None:
        """Delay every REST request whose path contains `path_contains` (until clear_faults)."""
        with self._lock:
            self._latencies.append((seconds, path_contains))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latencies.clear()

    # -- carrier API (used by CallRunner) ---------------------------------------------------

    def new_sid(self, prefix: str) -> str:
        return prefix + uuid.uuid4().hex

    def phone(self, number: str) -> PhoneScript | None:
        with self._lock:
            return self._phones.get(number)

    def create_child_call(self, parent: SimCall, to: str, from_: str) -> SimCall:
        """Register the outbound-dial leg of a <Dial>; the parent's runner drives it."""
        child = SimCall(self, self.new_sid("CA"), from_, to, "outbound-dial", parent_call_sid=parent.sid)
        with self._lock:
            self._calls[child.sid] = child
        return child

    def send_webhook(self, call_sid: str | None, kind: str, url: str, method: str, params: dict) -> WebhookResult:
        """One signed request to the gateway, like Twilio's; never raises."""
        method = "GET" if (method or "POST").upper() == "GET" else "POST"
        entry: dict[str, Any] = {
            "kind": kind,
            "call_sid": call_sid,
            "url": url,
            "method": method,
            "params": dict(params),
            "status": None,
            "error": None,
        }
        with self._lock:
            self._webhook_log.append(entry)
        if self._stopping.is_set():
            entry["error"] = "simulator stopped"
            return WebhookResult(error=entry["error"])
        if method == "GET":
            target = url + ("&" if "?" in url else "?") + urlencode(params)
            signature = self._validator.compute_signature(target, {})
            body = None
        else:
            target, body = url, params
            signature = self._validator.compute_signature(url, params)
        headers = {
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        try:
            response = self._session().request(
                method,
                target,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=(min(10.0, self.http_timeout), self.http_timeout),
            )
        except requests.RequestException as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            return WebhookResult(error=entry["error"])
        entry["status"] = response.status_code
        return WebhookResult(status=response.status_code, text=response.text)

    def livekit(self, method: str, path: str, body: dict | None = None, timeout: float | None = None):
        """Call the LiveKit double's /_sim API: (status, JSON dict); ConnectionError if unreachable."""
        if not self.livekit_url:
            raise ConnectionError("the simulator has no livekit_url")
        try:
            response = self._session().request(
                method, self.livekit_url + path, json=body, timeout=timeout or self.http_timeout
            )
        except requests.RequestException as exc:
            raise ConnectionError(str(exc)) from exc
        try:
            reply = response.json()
        except ValueError:
            reply = {}
        return response.status_code, reply if isinstance(reply, dict) else {}

    def _session(self) -> requests.Session:
        """One session per thread (requests sessions are not thread-safe); no proxies from the env."""
        session = getattr(self._http, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            self._http.session = session
        return session

    def _launch(self, call: SimCall) -> None:
        thread = threading.Thread(target=CallRunner(self, call).run, name=f"call-{call.sid}", daemon=True)
        with self._lock:
            self._calls[call.sid] = call
            self._runner_threads = [t for t in self._runner_threads if t.is_alive()] + [thread]
        thread.start()

    def _number_by_phone(self, phone_number: str) -> dict | None:
        with self._lock:
            return next((n for n in self._numbers.values() if n["phone_number"] == phone_number), None)

    # -- HTTP -------------------------------------------------------------------------------------

    def _rules(self) -> list:
        account = f"/{API_VERSION}/Accounts/<account>"
        return [
            Rule(f"{account}.json", endpoint="account", methods=["GET"]),
            Rule(f"{account}/Calls.json", endpoint="calls", methods=["GET", "POST"]),
            Rule(f"{account}/Calls/<sid>.json", endpoint="call", methods=["GET", "POST"]),
            Rule(f"{account}/Calls/<sid>/Transcriptions.json", endpoint="transcriptions", methods=["POST"]),
            Rule(f"{account}/Calls/<sid>/Transcriptions/<which>.json", endpoint="transcription", methods=["POST"]),
            Rule(f"{account}/Messages.json", endpoint="messages", methods=["GET", "POST"]),
            Rule(f"{account}/Messages/<sid>.json", endpoint="message", methods=["GET"]),
            Rule(f"{account}/IncomingPhoneNumbers.json", endpoint="numbers", methods=["GET"]),
            Rule(f"{account}/IncomingPhoneNumbers/<sid>.json", endpoint="number", methods=["GET", "POST"]),
            Rule("/_sim/calls", endpoint="sim_calls", methods=["GET", "POST"]),
            Rule("/_sim/calls/<sid>", endpoint="sim_call", methods=["GET"]),
            Rule("/_sim/calls/<sid>/<action>", endpoint="sim_call_action", methods=["POST"]),
            Rule("/_sim/phones", endpoint="sim_phones", methods=["POST"]),
            Rule("/_sim/numbers", endpoint="sim_numbers", methods=["POST"]),
            Rule("/_sim/messages", endpoint="sim_messages", methods=["GET"]),
            Rule("/_sim/webhooks", endpoint="sim_webhooks", methods=["GET"]),
            Rule("/_sim/faults", endpoint="sim_faults", methods=["POST", "DELETE"]),
        ]

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except Exception:
            log.exception("Twilio simulator failed on %s %s", request.method, request.path)
            response = _twilio_error(500, 20500, "Internal Server Error")
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        is_api = request.path.startswith(f"/{API_VERSION}/")
        if is_api:
            self._apply_latency(request.path)
            fault = self._take_fault(request.path)
            if fault is not None:
                return self._fault_response(fault)
            if not self._authorized(request):
                response = _twilio_error(401, 20003, "Authenticate")
                response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
                return response
        try:
            endpoint, matched = self._routes.bind_to_environ(request.environ).match()
        except MethodNotAllowed:
            return _twilio_error(405, 20004, "Method not allowed")
        except (NotFound, HTTPException):
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        args = dict(matched)
        if is_api and args.pop("account") != self.account_sid:
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return getattr(self, f"_http_{endpoint}")(request, **args)

    def _authorized(self, request: Request) -> bool:
        auth = request.authorization
        return auth is not None and auth.username == self.account_sid and auth.password == self.auth_token

    def _apply_latency(self, path: str) -> None:
        with self._lock:
            delay = sum(seconds for seconds, needle in self._latencies if needle in path)
        if delay:
            self._stopping.wait(delay)

    def _take_fault(self, path: str) -> dict | None:
        with self._lock:
            for fault in self._faults:
                if fault["count"] > 0 and fault["path_contains"] in path:
                    fault["count"] -= 1
                    return dict(fault)
        return None

    def _fault_response(self, fault: dict) -> Response:
        if fault["hang"]:
            self._stopping.wait(HANG_SECONDS)
        message = "Too Many Requests" if fault["status"] == 429 else "Simulated fault"
        response = _twilio_error(fault["status"], fault["code"], message)
        if fault["retry_after"] is not None:
            response.headers["Retry-After"] = str(fault["retry_after"])
        return response

    # -- REST: account and calls ------------------------------------------------------------------

    def _http_account(self, request: Request) -> Response:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}"
        return _json(
            {
                "sid": self.account_sid,
                "owner_account_sid": self.account_sid,
                "friendly_name": "Sandbox account",
                "status": "active",
                "type": "Full",
                "date_created": rfc2822_now(),
                "date_updated": rfc2822_now(),
                "uri": f"{uri}.json",
                "subresource_uris": {"calls": f"{uri}/Calls.json", "messages": f"{uri}/Messages.json"},
            }
        )

    def _http_calls(self, request: Request) -> Response:
        if request.method == "GET":
            args = request.args
            filters = {"Status": "status", "To": "to", "From": "from_", "ParentCallSid": "parent_call_sid"}
            calls = [
                call
                for call in self.calls()
                if all(getattr(call, attr) == args[name] for name, attr in filters.items() if name in args)
            ]
            calls.reverse()  # Twilio lists newest first
            return _json(_page("calls", [self._call_json(call) for call in calls], request))
        return self._create_call(request)

    def _create_call(self, request: Request) -> Response:
        form = request.form
        to, from_ = form.get("To", "").strip(), form.get("From", "").strip()
        if not to:
            return _twilio_error(400, 21201, "No 'To' number is specified")
        if not E164.match(to):
            return _twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_:
            return _twilio_error(400, 21213, "No 'From' number is specified")
        if not form.get("Url") and not form.get("Twiml"):
            return _twilio_error(400, 21205, "Url parameter is required.")
        events = {event for value in form.getlist("StatusCallbackEvent") for event in value.split()}
        if events - set(CALL_EVENTS):
            return _twilio_error(400, 21626, "Invalid 'StatusCallbackEvent'")
        machine_detection = form.get("MachineDetection") or None
        if machine_detection not in (None, "Enable", "DetectMessageEnd"):
            return _twilio_error(400, 21200, f"Invalid MachineDetection: {machine_detection}")
        try:
            timeout = min(max(int(form.get("Timeout", 60)), 1), 600)
        except ValueError:
            return _twilio_error(400, 21200, "Invalid Timeout")
        setup = CallSetup(
            source=_source(form, "Url", "Method", "Twiml"),
            fallback=_source(form, "FallbackUrl", "FallbackMethod"),
            status_callback=form.get("StatusCallback") or None,
            status_callback_method=form.get("StatusCallbackMethod", "POST").upper(),
            status_events=frozenset(events or {"completed"}),
            timeout=timeout,
            machine_detection=machine_detection,
            async_amd=form.get("AsyncAmd", "false").lower() == "true",
            async_amd_callback=form.get("AsyncAmdStatusCallback") or None,
            async_amd_callback_method=form.get("AsyncAmdStatusCallbackMethod", "POST").upper(),
        )
        call = SimCall(
            self,
            self.new_sid("CA"),
            from_,
            to,
            "outbound-api",
            setup,
            script=self.phone(to) or PhoneScript.unscripted(to),
        )
        body = self._call_json(call)  # before the runner moves it past "queued"
        self._launch(call)
        return _json(body, 201)

    def _http_call(self, request: Request, sid: str) -> Response:
        try:
            call = self.call(sid)
        except KeyError:
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if request.method == "GET":
            return _json(self._call_json(call))
        return self._update_call(call, request.form)

    def _http_transcriptions(self, request: Request, sid: str) -> Response:
        """Start a real-time transcription: "on any in-progress call" (Twilio's Calls Transcriptions
        subresource). The error for a call not in progress is inferred (21220, as for redirects)."""
        try:
            call = self.call(sid)
        except KeyError:
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if call.ended or not call.answered:
            return _twilio_error(400, 21220, "Call is not in-progress. Cannot start a transcription.")
        form = request.form
        transcription = call.start_transcription(
            sid=self.new_sid("GT"),
            url=form.get("StatusCallbackUrl") or "",
            method=form.get("StatusCallbackMethod", "POST").upper(),
            track=form.get("Track", "both_tracks"),
            name=form.get("Name") or None,
        )
        call.add_event("transcription_started", transcription["url"])
        if transcription["url"]:
            call.transcription_event(transcription, "transcription-started")
        for utterance in call.setup.speech:
            call.callbacks.submit(functools.partial(call.post_transcript, utterance, "inbound_track", True))
        return _json(self._transcription_json(call, transcription, "in-progress"), 201)

    def _http_transcription(self, request: Request, sid: str, which: str) -> Response:
        try:
            call = self.call(sid)
        except KeyError:
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if request.form.get("Status") != "stopped":
            return _twilio_error(400, 21218, f"Invalid Status: {request.form.get('Status')}")
        stopped = call.stop_transcription(which)
        if not stopped:
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        for transcription in stopped:
            call.add_event("transcription_stopped", transcription["url"])
            if transcription["url"]:
                call.transcription_event(transcription, "transcription-stopped")
        return _json(self._transcription_json(call, stopped[0], "stopped"))

    def _transcription_json(self, call: SimCall, transcription: dict, status: str) -> dict:
        return {
            "sid": transcription["sid"],
            "account_sid": self.account_sid,
            "call_sid": call.sid,
            "name": transcription["name"],
            "status": status,
            "date_updated": rfc2822_now(),
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call.sid}/Transcriptions/"
            f"{transcription['sid']}.json",
        }

    def _update_call(self, call: SimCall, form) -> Response:
        """Redirect or hang up a live call, as POST /Calls/{sid}.json does."""
        if call.ended:
            return _twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if form.get("StatusCallback"):
            call.setup.status_callback = form["StatusCallback"]
            call.setup.status_callback_method = form.get("StatusCallbackMethod", "POST").upper()
        status = form.get("Status")
        source = _source(form, "Url", "Method", "Twiml")
        if status in ("completed", "canceled"):
            if status == "canceled" and call.answered:
                return _json(self._call_json(call))  # Twilio ignores canceling an answered call
            body = self._call_json(call)
            # What it is about to become (an inbound call counts as connected to Twilio even while ringing).
            body["status"] = "completed" if call.answered or call.direction == "inbound" else "canceled"
            call._request_hangup("api")
            return _json(body)
        elif status:
            return _twilio_error(400, 21218, f"Invalid Status: {status}")
        elif source is not None:
            if call.direction == "outbound-dial":
                return _twilio_error(400, 21220, "The simulator does not model redirecting a <Dial> child leg")
            call._request_redirect(source)
        return _json(self._call_json(call))

    def _call_json(self, call: SimCall) -> dict:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call.sid}"
        return {
            "sid": call.sid,
            "parent_call_sid": call.parent_call_sid,
            "account_sid": self.account_sid,
            "to": call.to,
            "to_formatted": call.to,
            "from": call.from_,
            "from_formatted": call.from_,
            "phone_number_sid": None,
            "status": call.status,
            "direction": call.direction,
            "answered_by": call.answered_by,
            "api_version": API_VERSION,
            "date_created": _rfc2822(call.date_created),
            "date_updated": rfc2822_now(),
            "start_time": _rfc2822(call.start_time),
            "end_time": _rfc2822(call.end_time),
            "duration": str(call.duration) if call.ended else None,
            "price": None,
            "price_unit": "USD",
            "forwarded_from": None,
            "caller_name": None,
            "group_sid": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": f"{uri}.json",
            "subresource_uris": {
                "notifications": f"{uri}/Notifications.json",
                "recordings": f"{uri}/Recordings.json",
                "events": f"{uri}/Events.json",
            },
        }

    # -- REST: messages ---------------------------------------------------------------------------

    def _http_messages(self, request: Request) -> Response:
        if request.method == "GET":
            with self._lock:
                stored = list(self._messages.values())
            messages = [self._message_json(m) for m in reversed(stored)]
            if "To" in request.args:
                messages = [m for m in messages if m["to"] == request.args["To"]]
            return _json(_page("messages", messages, request))
        form = request.form
        to = form.get("To", "").strip()
        from_ = form.get("From", "").strip() or None
        service = form.get("MessagingServiceSid", "").strip() or None
        body = form.get("Body", "")
        if not E164.match(to):
            return _twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_ and not service:
            return _twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _twilio_error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return _twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        now = datetime.now(UTC)
        message = {
            "sid": self.new_sid("SM"),
            "to": to,
            "from": from_,
            "messaging_service_sid": service,
            "body": body,
            "status": "accepted" if service else "queued",
            "num_segments": sms_segments(body),
            "status_callback": form.get("StatusCallback") or None,
            "date_created": now,
            "date_updated": now,
        }
        with self._lock:
            self._messages[message["sid"]] = message
        reply = self._message_json(message)
        self._message_callbacks.submit(lambda: self._deliver_message(message))
        return _json(reply, 201)

    def _http_message(self, request: Request, sid: str) -> Response:
        with self._lock:
            message = self._messages.get(sid)
        if message is None:
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return _json(self._message_json(message))

    def _deliver_message(self, message: dict) -> None:
        """The carrier sends and delivers the message; Twilio reports both steps."""
        for status in ("sent", "delivered"):
            with self._lock:
                message["status"] = status
                message["date_updated"] = datetime.now(UTC)
            if message["status_callback"]:
                params = {
                    "AccountSid": self.account_sid,
                    "MessageSid": message["sid"],
                    "SmsSid": message["sid"],
                    "MessageStatus": status,
                    "SmsStatus": status,
                    "To": message["to"],
                    "From": message["from"] or "",
                    "ApiVersion": API_VERSION,
                }
                if message["messaging_service_sid"]:
                    params["MessagingServiceSid"] = message["messaging_service_sid"]
                self.send_webhook(None, "message_status", message["status_callback"], "POST", params)

    def _message_json(self, message: dict) -> dict:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message['sid']}"
        with self._lock:
            return {
                "sid": message["sid"],
                "account_sid": self.account_sid,
                "api_version": API_VERSION,
                "to": message["to"],
                "from": message["from"],
                "messaging_service_sid": message["messaging_service_sid"],
                "body": message["body"],
                "status": message["status"],
                "direction": "outbound-api",
                "num_segments": str(message["num_segments"]),
                "num_media": "0",
                "error_code": None,
                "error_message": None,
                "price": None,
                "price_unit": "USD",
                "date_created": _rfc2822(message["date_created"]),
                "date_updated": _rfc2822(message["date_updated"]),
                "date_sent": None,
                "uri": f"{uri}.json",
                "subresource_uris": {"media": f"{uri}/Media.json"},
            }

    # -- REST: phone numbers -------------------------------------------------------------------

    def _http_numbers(self, request: Request) -> Response:
        with self._lock:
            numbers = list(self._numbers.values())
        wanted = request.args.get("PhoneNumber")
        if wanted:
            numbers = [n for n in numbers if n["phone_number"] == wanted]
        return _json(_page("incoming_phone_numbers", [self._number_json(n) for n in numbers], request))

    def _http_number(self, request: Request, sid: str) -> Response:
        with self._lock:
            number = self._numbers.get(sid)
            if number is None:
                return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
            if request.method == "POST":
                fields = {
                    "VoiceUrl": "voice_url",
                    "VoiceMethod": "voice_method",
                    "VoiceFallbackUrl": "voice_fallback_url",
                    "VoiceFallbackMethod": "voice_fallback_method",
                    "StatusCallback": "status_callback",
                    "StatusCallbackMethod": "status_callback_method",
                    "FriendlyName": "friendly_name",
                }
                for form_name, key in fields.items():
                    if form_name in request.form:
                        value = request.form[form_name]
                        number[key] = value.upper() if key.endswith("_method") else (value or None)
                # "Setting a trunk_sid will automatically delete your voice_application_sid and vice
                # versa"; an empty value detaches (twilio-python's IncomingPhoneNumber.update).
                if "TrunkSid" in request.form:
                    number["trunk_sid"] = request.form["TrunkSid"] or None
                    if number["trunk_sid"]:
                        number["voice_application_sid"] = None
                if "VoiceApplicationSid" in request.form:
                    number["voice_application_sid"] = request.form["VoiceApplicationSid"] or None
                    if number["voice_application_sid"]:
                        number["trunk_sid"] = None
                number["date_updated"] = datetime.now(UTC)
            return _json(self._number_json(number))

    def _number_json(self, number: dict) -> dict:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{number['sid']}.json"
        return {
            "sid": number["sid"],
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "phone_number": number["phone_number"],
            "friendly_name": number["friendly_name"],
            "voice_url": number["voice_url"],
            "voice_method": number["voice_method"],
            "voice_fallback_url": number["voice_fallback_url"],
            "voice_fallback_method": number["voice_fallback_method"],
            "voice_caller_id_lookup": False,
            "status_callback": number["status_callback"],
            "status_callback_method": number["status_callback_method"],
            "sms_url": None,
            "sms_method": "POST",
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "status": "in-use",
            "origin": "twilio",
            "beta": False,
            "trunk_sid": number["trunk_sid"],
            "voice_application_sid": number["voice_application_sid"],
            "date_created": _rfc2822(number["date_created"]),
            "date_updated": _rfc2822(number["date_updated"]),
            "uri": uri,
        }

    # -- /_sim control API --------------------------------------------------------------------------

    def _http_sim_calls(self, request: Request) -> Response:
        if request.method == "GET":
            return _json({"calls": [call.snapshot() for call in self.calls()]})
        body = request.get_json(silent=True) or {}
        try:
            call = self.place_inbound_call(
                from_=body.get("from", "+15557654321"), to=body.get("to", "+15550000000"), speech=body.get("speech")
            )
        except ValueError as exc:
            return _json({"error": str(exc)}, 404)
        return _json({"sid": call.sid}, 201)

    def _http_sim_call(self, request: Request, sid: str) -> Response:
        try:
            return _json(self.call(sid).snapshot())
        except KeyError:
            return _json({"error": f"no call {sid}"}, 404)

    def _http_sim_call_action(self, request: Request, sid: str, action: str) -> Response:
        try:
            call = self.call(sid)
        except KeyError:
            return _json({"error": f"no call {sid}"}, 404)
        body = request.get_json(silent=True) or {}
        if action == "hangup":
            return _json({"hung_up": call.hangup()})
        if action == "press":
            call.press(str(body.get("digits", "")))
            return _json({"pressed": body.get("digits", "")})
        if action == "speak":
            status = call.speak(str(body.get("text", "")), body.get("track", "inbound_track"), body.get("final", True))
            return _json({"callback_status": status})
        return _json({"error": f"unknown action {action}"}, 404)

    def _http_sim_phones(self, request: Request) -> Response:
        body = dict(request.get_json(silent=True) or {})
        number = body.pop("number", None)
        if not number:
            return _json({"error": "number is required"}, 400)
        try:
            script = self.script_phone(number, **body)
        except TypeError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(asdict(script), 201)

    def _http_sim_numbers(self, request: Request) -> Response:
        body = dict(request.get_json(silent=True) or {})
        number = body.pop("number", None)
        if not number:
            return _json({"error": "number is required"}, 400)
        try:
            sid = self.add_number(number, **body)
        except TypeError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"sid": sid}, 201)

    def _http_sim_messages(self, request: Request) -> Response:
        return _json({"messages": self.messages()})

    def _http_sim_webhooks(self, request: Request) -> Response:
        return _json({"webhooks": self.webhooks(request.args.get("kind"), request.args.get("call_sid"))})

    def _http_sim_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_faults()
            return _json({"cleared": True})
        body = dict(request.get_json(silent=True) or {})
        try:
            if "latency" in body:
                self.inject_latency(float(body["latency"]), body.get("path_contains", ""))
            else:
                self.inject_fault(**body)
        except (TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"injected": body}, 201)


def _source(form, url_field: str, method_field: str, twiml_field: str | None = None) -> TwimlSource | None:
    """The TwiML source a REST form names; inline TwiML wins over a URL."""
    if twiml_field and form.get(twiml_field):
        return TwimlSource(twiml=form[twiml_field])
    if form.get(url_field):
        return TwimlSource(url=form[url_field], method=form.get(method_field, "POST").upper())
    return None


def _page(key: str, items: list, request: Request) -> dict:
    """Twilio's list envelope (one page)."""
    try:
        page_size = max(1, int(request.args.get("PageSize", 50)))
    except ValueError:
        page_size = 50
    items = items[:page_size]
    uri = request.full_path.rstrip("?")
    return {
        key: items,
        "first_page_uri": uri,
        "next_page_uri": None,
        "previous_page_uri": None,
        "page": 0,
        "page_size": page_size,
        "start": 0,
        "end": max(len(items) - 1, 0),
        "uri": uri,
    }


def _json(data, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def _twilio_error(status: int, code: int, message: str) -> Response:
    return _json(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status,
    )
