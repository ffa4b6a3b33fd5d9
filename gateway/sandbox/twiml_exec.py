"""The phone-network half of the Twilio double: one call's life and the TwiML it runs.

`CallRunner` is the worker thread of one simulated call. It rings, answers (or
not), fetches TwiML from the gateway with signed webhooks, and executes it verb
by verb the way Twilio does, recording on the `SimCall` what the person on the
line experiences. `TwilioSimulator` (twilio_sim.py) owns the REST API and hands
each new call to a runner; the two meet through a small "carrier" interface
(`send_webhook`, `livekit`, `create_child_call`, `new_sid`, `time_scale`, ...)
so this module imports nothing from there.

Modelled (durations are simulated seconds, multiplied by the carrier's
time_scale):
- Say (0.05 s a word, or the carrier's ``say_seconds_per_word``: 0.35 s is a person's pace),
  Play (2 s a play), Pause, loop="0" = until interrupted;
  Gather (DTMF, numDigits, finishOnKey, timeout between digits, barge-in over
  the nested prompt, actionOnEmptyResult; with input="speech" / "dtmf speech", words the
  caller says (SimCall.speak) while it listens, its prompts included, end it with
  SpeechResult and Confidence, the first input of either kind winning, as Twilio's
  <Gather> reference describes); Redirect; Hangup; Reject (busy /
  no-answer); Record; Start/Stop of Transcription and Stream.
- Dial with one Sip noun (INVITE to the LiveKit double over HTTP, ringback,
  bridge, BYE, timeout = the attribute + Twilio's ~5 s slack) or one Number
  noun (another scripted phone); answerOnBridge, callerId, timeLimit, the
  action URL with DialCallStatus & co., and the noun's status callbacks.
- REST redirects and hangups reach the runner as `Redirected` / `HungUp`
  exceptions raised from `SimCall.wait`; a Dial that is interrupted hangs up
  its child leg and still requests its action URL (reply ignored), like Twilio.
- Voice-URL failures go to the fallback URL with ErrorCode / ErrorUrl; a
  failure with no usable fallback is an application error that ends the call.
- Fire-and-forget callbacks (status, transcription, a redirected Dial's
  action) go out in order on a per-call dispatcher thread, never holding up
  the call, as Twilio's do.

Deliberately not modelled: speechTimeout and partial speech results (words said are one final
result at once), Conference / Queue / Client /
Enqueue / Connect (they end the call with error 12100), simultaneous dialling
(only a Dial's first noun is dialled), Dial recording, an empty <Record> being
skipped (the simulated caller always says something), content-type handling
(every TwiML reply is parsed as XML), HTTP redirects from the gateway (a 3xx is
a retrieval failure), audio itself.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urljoin, urlsplit

log = logging.getLogger(__name__)

# Simulated durations, in simulated seconds (the carrier's time_scale applies).
SAY_SECONDS_PER_WORD = 0.05  # fast, for tests of behaviour; a carrier may set its own pace
# How fast Polly really speaks: about 170 words a minute (provider-facts.md, "People are slower
# than doubles"). Tests of timers set the simulator's say_seconds_per_word to this, at time_scale 1.
PERSON_SAY_SECONDS_PER_WORD = 0.35
PLAY_SECONDS_PER_LOOP = 2.0
DEFAULT_PAUSE = 1.0
DEFAULT_GATHER_TIMEOUT = 5.0
DEFAULT_RECORD_TIMEOUT = 5.0
DEFAULT_RECORD_MAX_LENGTH = 3600.0
DEFAULT_DIAL_TIMEOUT = 30.0
DIAL_TIMEOUT_RANGE = (5.0, 600.0)
DIAL_TIMEOUT_SLACK = 5.0  # Twilio rings about 5 s past <Dial timeout>.
DEFAULT_DIAL_TIME_LIMIT = 14400.0
BUSY_SIGNAL_SECONDS = 1.0
REDIRECT_FROM_DIAL_SILENCE = 0.5  # the gap Twilio leaves when a REST update pulls a call out of <Dial>
AMD_SECONDS = {"human": 2.0, "machine_start": 3.0, "machine_end_beep": 6.0}

# Real seconds: how often a Dial looks at its child leg.
LEG_POLL_INTERVAL = 0.02
SIP_POLL_FAILURES_TO_GIVE_UP = 5

# Error codes recorded as ("app_error", code).
ERR_INVALID_URL = 11100
ERR_HTTP_RETRIEVAL = 11200
ERR_DOCUMENT_PARSE = 12100
ERR_SIMULATOR_BUG = 0  # a bug in the simulator itself; the traceback is logged

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
SIP_CODE_FOR_DIAL_STATUS = {"completed": 200, "busy": 486, "no-answer": 487, "canceled": 487}
NO_SIP_ANSWER = 503  # what a Dial reports when the LiveKit double gave no SIP status


def rfc2822_now() -> str:
    """Twilio's timestamp format (RFC 2822, UTC)."""
    return format_datetime(datetime.now(UTC))


class CallInterrupted(Exception):
    """Something outside the call's thread took control of the call."""


class Redirected(CallInterrupted):
    """A REST update gave the call new TwiML to run."""

    def __init__(self, source: TwimlSource):
        super().__init__(source)
        self.source = source
        self.after_dial = False  # set by <Dial>: Twilio leaves ~0.5 s of silence then


class HungUp(CallInterrupted):
    """The call is being hung up; `who` is "caller", "callee" or "api"."""

    def __init__(self, who: str):
        super().__init__(who)
        self.who = who


class AppError(Exception):
    """Twilio could not run the application: the caller hears the generic error."""

    def __init__(self, code: int, detail: str = ""):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class TwimlSource:
    """Where a call's next TwiML comes from: a URL to fetch or an inline document."""

    url: str | None = None
    method: str = "POST"
    twiml: str | None = None


@dataclass(frozen=True)
class Document:
    """A parsed TwiML <Response>; `url` is where it came from (None when inline)."""

    url: str | None
    root: ET.Element

    def resolve(self, ref: str | None) -> str:
        """Resolve a URL found in this document, as Twilio does, or fail with 11100."""
        ref = (ref or "").strip()
        if ref and urlsplit(ref).scheme in ("http", "https"):
            return ref
        if self.url:
            return urljoin(self.url, ref)
        raise AppError(ERR_INVALID_URL, f"cannot resolve {ref!r} in an inline TwiML document")


def parse_twiml(text: str, url: str | None) -> Document:
    """Parse a TwiML reply; anything but a <Response> document is error 12100."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise AppError(ERR_DOCUMENT_PARSE, f"{url or 'inline TwiML'}: {exc}") from None
    if root.tag != "Response":
        raise AppError(ERR_DOCUMENT_PARSE, f"{url or 'inline TwiML'}: root is <{root.tag}>")
    return Document(url, root)


@dataclass
class PhoneScript:
    """How the person (or machine) behind a simulated phone number behaves.

    The same script drives a callee (outbound calls, <Dial><Number>) and a
    caller (inbound calls from this number: digits, gather_delay, hangup_after).
    """

    number: str
    answer: bool = True
    answer_after: float = 2.0
    digits: str | None = "1"
    machine: bool = False
    busy: bool = False
    hangup_after: float | None = None
    gather_delay: float = 0.0

    @classmethod
    def unscripted(cls, number: str) -> PhoneScript:
        """A phone nobody picks up and nobody presses keys on."""
        return cls(number=number, answer=False, digits=None)


@dataclass
class CallSetup:
    """The call's configuration from calls.create or the dialled number."""

    source: TwimlSource | None = None
    fallback: TwimlSource | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_events: frozenset = frozenset({"completed"})
    timeout: float = 60.0
    machine_detection: str | None = None  # None, "Enable" or "DetectMessageEnd"
    async_amd: bool = False
    async_amd_callback: str | None = None
    async_amd_callback_method: str = "POST"
    speech: tuple = ()  # what an inbound caller says once transcription starts


@dataclass
class WebhookResult:
    """What came back from one webhook request (status None = no HTTP answer)."""

    status: int | None = None
    text: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class SerialDispatcher:
    """Runs fire-and-forget work (callbacks) in order on one background thread.

    Twilio's status callbacks never hold up the call, so the runner hands them
    to this queue instead of sending them inline.
    """

    def __init__(self, name: str):
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._lock = threading.Lock()
        self._started = False
        self._closed = False

    def submit(self, work: Callable[[], object]) -> bool:
        """Queue `work`; False when the dispatcher is already closed."""
        with self._lock:
            if self._closed:
                return False
            if not self._started:
                self._thread.start()
                self._started = True
            self._queue.put(work)
            return True

    def call(self, work: Callable[[], object]):
        """Run `work` in turn after what is queued and return its result (None if closed)."""
        if threading.current_thread() is self._thread:
            return work()
        done, results = threading.Event(), []

        def run() -> None:
            try:
                results.append(work())
            finally:
                done.set()

        if not self.submit(run):
            return None
        done.wait()
        return results[0] if results else None

    def close(self) -> None:
        """Finish what is queued, then let the thread end."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._started:
                self._queue.put(None)

    def _loop(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            try:
                work()
            except Exception:  # a callback must never take the dispatcher down
                log.exception("background callback failed")


@dataclass
class _Ended:
    """The TwiML ended the call (Hangup, Reject, or no verbs left)."""

    status: str
    who: str


@dataclass
class _DialTarget:
    """The noun a <Dial> dials, with its status-callback settings."""

    kind: str  # "sip" or "number"
    address: str
    username: str | None = None
    password: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_events: frozenset = frozenset()
    sequence: int = 0  # the next SequenceNumber of the noun's status callbacks


class _SipLeg:
    """The child leg of <Dial><Sip>: an INVITE to the LiveKit double, then polling."""

    def __init__(self, carrier, child, target: _DialTarget, caller_id: str):
        self._carrier = carrier
        self._child = child
        self._target = target
        self._caller_id = caller_id
        self.session_id: str | None = None
        self.room: str | None = None
        self.sip_status_code: int | None = None
        self._failures = 0
        self._hung_up = False

    @property
    def label(self) -> str:
        return self.room or self._target.address

    @property
    def sip_call_id(self) -> str:
        return self.session_id or ""

    def start(self) -> str:
        """Send the INVITE; returns "ringing", "active" or "hangup"."""
        body = {
            "uri": self._target.address,
            "username": self._target.username,
            "password": self._target.password,
            "from": self._caller_id,
            "headers": {},
            "twilio_call_sid": self._child.sid,
            "twilio_account_sid": self._carrier.account_sid,
        }
        try:
            status, reply = self._carrier.livekit("POST", "/_sim/sip/invite", body)
        except ConnectionError as exc:
            log.warning("SIP INVITE for %s got no answer: %s", self._child.sid, exc)
            self.sip_status_code = NO_SIP_ANSWER
            return "hangup"
        if status != 200:
            self.sip_status_code = int(reply.get("sip_status_code") or NO_SIP_ANSWER)
            return "hangup"
        self.session_id = reply.get("session_id")
        self.room = reply.get("room")
        return self._state_from(reply)

    def poll(self) -> str:
        try:
            status, reply = self._carrier.livekit("GET", f"/_sim/sip/{self.session_id}")
        except ConnectionError:
            self._failures += 1
            return "hangup" if self._failures >= SIP_POLL_FAILURES_TO_GIVE_UP else "unknown"
        self._failures = 0
        if status == 404:
            return "hangup"
        if status != 200:
            return "unknown"
        return self._state_from(reply)

    def _state_from(self, reply: dict) -> str:
        self.room = reply.get("room") or self.room
        if reply.get("sip_status_code"):
            self.sip_status_code = int(reply["sip_status_code"])
        state = reply.get("status")
        return state if state in ("ringing", "active", "hangup") else "unknown"

    def failure_status(self) -> str:
        """DialCallStatus when the session ended before it was bridged."""
        return "busy" if self.sip_status_code == 486 else "failed"

    def hang_up(self) -> None:
        """Send BYE (or CANCEL) to the LiveKit double; idempotent, errors ignored."""
        if self._hung_up or not self.session_id:
            return
        self._hung_up = True
        try:
            self._carrier.livekit("POST", f"/_sim/sip/{self.session_id}/bye", {}, timeout=2.0)
        except ConnectionError as exc:
            log.warning("BYE for SIP session %s failed: %s", self.session_id, exc)


class _PhoneLeg:
    """The child leg of <Dial><Number>: another scripted phone, timed in memory."""

    def __init__(self, carrier, script: PhoneScript):
        self._scale = carrier.time_scale
        self._script = script
        self._started = time.monotonic()
        self._answered_at: float | None = None
        self._hung_up = False
        self.room = None
        self.sip_status_code = None
        self.sip_call_id = ""

    @property
    def label(self) -> str:
        return self._script.number

    def start(self) -> str:
        return self.poll()

    def poll(self) -> str:
        script, elapsed = self._script, time.monotonic() - self._started
        if self._hung_up or script.busy:
            return "hangup"
        if not script.answer or elapsed < script.answer_after * self._scale:
            return "ringing"
        if self._answered_at is None:
            self._answered_at = time.monotonic()
        if (
            script.hangup_after is not None
            and time.monotonic() - self._answered_at >= script.hangup_after * self._scale
        ):
            return "hangup"
        return "active"

    def failure_status(self) -> str:
        return "busy" if self._script.busy else "no-answer"

    def hang_up(self) -> None:
        self._hung_up = True


class CallRunner:
    """Plays Twilio for one call: rings, answers, fetches and executes TwiML.

    Runs on its own thread (`run`). Everything that happens is recorded on the
    SimCall; control from outside (REST updates, hangups, key presses) arrives
    through the SimCall as well.
    """

    def __init__(self, carrier, call):
        self.carrier = carrier
        self.call = call
        self.dispatcher = call.callbacks
        self._status_sequence = 0
        self._amd_timer: threading.Timer | None = None

    # -- lifecycle ---------------------------------------------------------

    def run(self) -> None:
        """Thread target: the whole life of the call, never raising."""
        call = self.call
        try:
            document = self._connect_inbound() if call.direction == "inbound" else self._connect_outbound()
            if document is not None:
                ended = self._execute(document)
                self._end(ended.status, ended.who)
        except HungUp as hangup:
            self._end("completed", hangup.who)
        except AppError as exc:
            self._app_error(exc.code, exc.detail)
        except Exception:
            log.exception("simulated call %s crashed", call.sid)
            self._app_error(ERR_SIMULATOR_BUG, "simulator bug")
        finally:
            if self._amd_timer is not None:
                self._amd_timer.cancel()
            self.dispatcher.close()

    def _connect_inbound(self) -> Document | None:
        """A caller dialled our number: Twilio fetches the voice URL while it rings."""
        self._status_callback("initiated")
        self._status_callback("ringing")
        return self._fetch_voice(self.call.setup.source, {})

    def _connect_outbound(self) -> Document | None:
        """calls.create: ring the scripted phone, then answer, busy or no-answer."""
        call, setup, script = self.call, self.call.setup, self.call.script
        self._status_callback("initiated")
        call.set_status("ringing")
        self._status_callback("ringing")
        if script.busy:
            outcome, ring_seconds = "busy", BUSY_SIGNAL_SECONDS
        elif script.answer and script.answer_after <= setup.timeout:
            outcome, ring_seconds = "answered", script.answer_after
        else:
            outcome, ring_seconds = "no-answer", setup.timeout
        source = self._ring(ring_seconds, setup.source)
        if source is None:
            return None
        if outcome != "answered":
            self._end(outcome, None)
            return None
        return self._answer_outbound(source)

    def _ring(self, seconds: float, source: TwimlSource | None) -> TwimlSource | None:
        """Ring for `seconds`; returns the TwiML source to run on answer, None if it ended.

        A REST redirect while ringing replaces the source; a hangup cancels the
        call (the API) or declines it (the phone's owner).
        """
        deadline = time.monotonic() + self.scaled(seconds)
        while True:
            try:
                self.call.wait(deadline - time.monotonic())
                return source
            except Redirected as redirect:
                source = redirect.source
            except HungUp as hangup:
                self._end("canceled" if hangup.who == "api" else "busy", None)
                return None

    def _answer_outbound(self, source: TwimlSource) -> Document:
        call, setup = self.call, self.call.setup
        detection = setup.machine_detection
        if detection:
            if not call.script.machine:
                call.answered_by = "human"
            else:
                call.answered_by = "machine_end_beep" if detection == "DetectMessageEnd" else "machine_start"
        self._answer()
        extra = {}
        if detection and setup.async_amd:
            self._schedule_async_amd()
        elif detection:
            try:
                call.wait(self.scaled(AMD_SECONDS[call.answered_by]))  # synchronous AMD holds the fetch
            except Redirected as redirect:
                source = redirect.source
            extra["AnsweredBy"] = call.answered_by
        return self._fetch_voice(source, extra)

    def _schedule_async_amd(self) -> None:
        setup, call = self.call.setup, self.call
        if not setup.async_amd_callback:
            return
        seconds = AMD_SECONDS[call.answered_by]

        def post_result() -> None:
            params = call.webhook_params()
            params.update(AnsweredBy=call.answered_by, MachineDetectionDuration=str(int(seconds * 1000)))
            self.dispatcher.submit(
                lambda: self.carrier.send_webhook(
                    call.sid, "amd", setup.async_amd_callback, setup.async_amd_callback_method, params
                )
            )

        self._amd_timer = threading.Timer(self.scaled(seconds), post_result)
        self._amd_timer.daemon = True
        self._amd_timer.start()

    def _answer(self) -> None:
        """The call is answered now (once): status in-progress, `answered` callback."""
        if self.call.answered:
            return
        self.call.mark_answered()
        self._status_callback("answered")

    def _end(self, status: str, who: str | None) -> None:
        """End the call once: hangup event, final status, transcription and status callbacks."""
        call = self.call
        if call.ended:
            return
        if who:
            call.add_event("hangup", who)
        call.finish(status)
        for transcription in call.stop_transcription():
            self._transcription_callback(transcription, "transcription-stopped")
        self._status_callback("completed")

    def _app_error(self, code: int, detail: str) -> None:
        """Twilio's "an application error has occurred": the call ends."""
        if self.call.ended:
            return
        log.info("call %s: application error %s %s", self.call.sid, code, detail)
        self.call.add_event("app_error", code)
        self._end("completed", "error")

    # -- TwiML ---------------------------------------------------------------

    def _fetch_voice(self, source: TwimlSource | None, extra: dict) -> Document:
        """Fetch the call's first document, going to the fallback URL on failure."""
        if source is None:
            raise AppError(ERR_HTTP_RETRIEVAL, "no voice URL configured")
        try:
            return self._load(source, "voice", extra)
        except AppError as failure:
            fallback = self.call.setup.fallback
            if fallback is None or source.url is None:
                raise
            params = dict(extra, ErrorCode=str(failure.code), ErrorUrl=source.url)
            return self._load(fallback, "fallback", params)

    def _load(self, source: TwimlSource, kind: str, extra: dict | None = None) -> Document:
        if source.twiml is not None:
            return parse_twiml(source.twiml, None)
        if source.url is None:
            raise ValueError("a TwimlSource names a URL or carries TwiML")
        return self._fetch(source.url, source.method, extra or {}, kind)

    def _fetch(self, url: str, method: str, extra: dict, kind: str) -> Document:
        """Request TwiML from the gateway; the line is silent (or still ringing) meanwhile."""
        self._idle()
        params = self.call.webhook_params()
        params.update(extra)
        result = self.carrier.send_webhook(self.call.sid, kind, url, method, params)
        if not result.ok:
            raise AppError(ERR_HTTP_RETRIEVAL, f"{url}: {result.error or result.status}")
        return parse_twiml(result.text, url)

    def _idle(self) -> None:
        """Between verbs the caller hears silence, or ringing if not answered yet."""
        self.call.set_current("silence" if self.call.answered else "ringing")

    def _execute(self, document: Document) -> _Ended:
        """Run documents until the call ends, following actions and REST redirects."""
        pending: Redirected | None = None
        while True:
            try:
                if pending is not None:
                    self.call.add_event("redirect", pending.source.url)  # None for inline TwiML
                    if pending.after_dial:
                        self._idle()
                        self.call.wait(self.scaled(REDIRECT_FROM_DIAL_SILENCE))
                    document = self._load(pending.source, "redirect")
                    pending = None
                return self._run(document)
            except Redirected as redirect:
                pending = redirect

    def _run(self, document: Document) -> _Ended:
        while True:
            next_document = None
            for verb in document.root:
                self.call.check_interrupt()
                outcome = self._run_verb(verb, document)
                if isinstance(outcome, _Ended):
                    return outcome
                if isinstance(outcome, Document):
                    next_document = outcome
                    break
            if next_document is None:
                return _Ended("completed", "twiml")
            document = next_document

    def _run_verb(self, verb: ET.Element, document: Document):
        """Execute one verb: None = go on, a Document = continue there, _Ended = stop."""
        handler = {
            "Say": self._say,
            "Play": self._play,
            "Pause": self._pause,
            "Gather": self._gather,
            "Redirect": self._redirect,
            "Hangup": self._hangup,
            "Reject": self._reject,
            "Record": self._record,
            "Start": self._start,
            "Stop": self._stop,
            "Dial": self._dial,
        }.get(verb.tag)
        if handler is None:
            raise AppError(ERR_DOCUMENT_PARSE, f"<{verb.tag}> is not a TwiML verb the simulator knows")
        waits_for_bridge = verb.tag == "Dial" and verb.get("answerOnBridge") == "true"
        if verb.tag not in ("Reject", "Redirect") and not waits_for_bridge:
            self._answer()
        return handler(verb, document)

    def _say(self, verb: ET.Element, document: Document, until=None):
        text = " ".join("".join(verb.itertext()).split())  # SSML children keep their text
        loops = _int_attr(verb, "loop", 1)
        self.call.add_event("say", text)
        self.call.set_current("say")
        pace = getattr(self.carrier, "say_seconds_per_word", SAY_SECONDS_PER_WORD)
        seconds = math.inf if loops == 0 else len(text.split()) * pace * loops
        self.call.wait(self.scaled(seconds), until=until)

    def _play(self, verb: ET.Element, document: Document, until=None):
        url = (verb.text or "").strip()
        loops = _int_attr(verb, "loop", 1)
        self.call.add_event("play", url)
        self.call.set_current("play")
        seconds = math.inf if loops == 0 else PLAY_SECONDS_PER_LOOP * loops
        self.call.wait(self.scaled(seconds), until=until)

    def _pause(self, verb: ET.Element, document: Document, until=None):
        length = _float_attr(verb, "length", DEFAULT_PAUSE)
        self.call.add_event("pause", length)
        self.call.set_current("pause")
        self.call.wait(self.scaled(length), until=until)

    def _gather(self, verb: ET.Element, document: Document):
        call = self.call
        inputs = verb.get("input", "dtmf").split()
        speech = "speech" in inputs
        dtmf = "dtmf" in inputs

        def heard() -> bool:  # a key press (or words, when listening for them) barges in
            return (dtmf and call.has_digits()) or (speech and call.has_speech())

        prompts = {"Say": self._say, "Play": self._play, "Pause": self._pause}
        call.listen_for_speech(speech)
        try:
            for prompt in verb:
                if prompt.tag not in prompts:
                    raise AppError(ERR_DOCUMENT_PARSE, f"<{prompt.tag}> cannot be nested in <Gather>")
                prompts[prompt.tag](prompt, document, until=heard)
                if heard():
                    break
            if speech and not call.has_digits():
                call.set_current("gather")
                call.wait(self.scaled(_float_attr(verb, "timeout", DEFAULT_GATHER_TIMEOUT)), until=heard)
            said = call.take_speech() if speech else ""
        finally:
            call.listen_for_speech(False)
        if said:
            call.add_event("gather_speech", said)
            params = {"SpeechResult": said, "Confidence": "0.92"}
            action = document.resolve(verb.get("action"))
            return self._fetch(action, verb.get("method", "POST"), params, "gather")
        digits, finished_on = self._collect_digits(
            num_digits=_int_attr(verb, "numDigits", 0),
            finish_key=verb.get("finishOnKey", "#"),
            timeout=0 if speech and not call.has_digits() else _float_attr(verb, "timeout", DEFAULT_GATHER_TIMEOUT),
        )
        call.add_event("gather", digits)
        if not digits and verb.get("actionOnEmptyResult") != "true":
            return None
        params = {"Digits": digits}
        if finished_on:
            params["FinishedOnKey"] = finished_on
        action = document.resolve(verb.get("action"))
        return self._fetch(action, verb.get("method", "POST"), params, "gather")

    def _collect_digits(self, num_digits: int, finish_key: str, timeout: float) -> tuple:
        """Collect keys like Twilio: until numDigits, finishOnKey, or `timeout` without a key.

        A scripted phone presses its digits `gather_delay` seconds after the
        prompt, unless keys were already pressed (press() wins over the script).
        """
        call, script = self.call, self.call.script
        call.set_current("gather")
        if (
            script.digits
            and not script.machine
            and not call.has_digits()
            and not call.wait(self.scaled(script.gather_delay), until=call.has_digits)
        ):
            call.press(script.digits)
        collected = ""
        while call.wait(self.scaled(timeout), until=call.has_digits):
            for key in call.take_digits():
                if finish_key and key in finish_key:
                    return collected, key
                collected += key
                if num_digits and len(collected) >= num_digits:
                    return collected, None
        return collected, None

    def _redirect(self, verb: ET.Element, document: Document):
        url = document.resolve(verb.text)
        self.call.add_event("redirect", url)
        return self._fetch(url, verb.get("method", "POST"), {}, "redirect")

    def _hangup(self, verb: ET.Element, document: Document):
        return _Ended("completed", "twiml")

    def _reject(self, verb: ET.Element, document: Document):
        if self.call.answered:
            return _Ended("completed", "twiml")
        return _Ended("busy" if verb.get("reason") == "busy" else "no-answer", "twiml")

    def _record(self, verb: ET.Element, document: Document):
        """Record until the silence timeout, maxLength, a finish key, or hangup."""
        call = self.call
        finish_keys = verb.get("finishOnKey", "1234567890*#")
        limit = min(
            _float_attr(verb, "timeout", DEFAULT_RECORD_TIMEOUT),
            _float_attr(verb, "maxLength", DEFAULT_RECORD_MAX_LENGTH),
        )
        action = document.resolve(verb.get("action"))
        method = verb.get("method", "POST")
        call.add_event("record")
        call.set_current("record")
        started = time.monotonic()

        def recording_params(digits: str | None) -> dict:
            sid = self.carrier.new_sid("RE")
            account = self.carrier.account_sid
            params = {
                "RecordingSid": sid,
                "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{account}/Recordings/{sid}",
                "RecordingDuration": str(self.simulated_seconds(time.monotonic() - started)),
            }
            if digits:
                params["Digits"] = digits
            return params

        pressed = lambda: any(key in finish_keys for key in call.pending_digits())  # noqa: E731
        try:
            finished_by_key = call.wait(self.scaled(limit), until=pressed)
        except HungUp:
            params = dict(call.webhook_params("completed"), **recording_params("hangup"))
            self.dispatcher.submit(lambda: self.carrier.send_webhook(call.sid, "record", action, method, params))
            raise
        key = next((k for k in call.take_digits() if k in finish_keys), None) if finished_by_key else None
        return self._fetch(action, method, recording_params(key), "record")

    def _start(self, verb: ET.Element, document: Document):
        for child in verb:
            if child.tag == "Transcription":
                transcription = self.call.start_transcription(
                    sid=self.carrier.new_sid("GT"),
                    url=document.resolve(child.get("statusCallbackUrl")),
                    method=child.get("statusCallbackMethod", "POST"),
                    track=child.get("track", "both_tracks"),
                    name=child.get("name"),
                )
                self.call.add_event("transcription_started", transcription["url"])
                self._transcription_callback(transcription, "transcription-started")
                for utterance in self.call.setup.speech:
                    self.dispatcher.submit(
                        lambda text=utterance: self.call.post_transcript(text, "inbound_track", True)
                    )
            elif child.tag == "Stream":
                self.call.add_event("stream_started", child.get("url", ""))
            else:
                raise AppError(ERR_DOCUMENT_PARSE, f"<Start><{child.tag}> is not modelled")

    def _stop(self, verb: ET.Element, document: Document):
        for child in verb:
            if child.tag == "Transcription":
                for transcription in self.call.stop_transcription(child.get("name")):
                    self.call.add_event("transcription_stopped", transcription["url"])
                    self._transcription_callback(transcription, "transcription-stopped")
            elif child.tag == "Stream":
                self.call.add_event("stream_stopped", child.get("name", ""))
            else:
                raise AppError(ERR_DOCUMENT_PARSE, f"<Stop><{child.tag}> is not modelled")

    # -- Dial ------------------------------------------------------------------

    def _dial(self, verb: ET.Element, document: Document):
        call = self.call
        target = self._dial_target(verb, document)
        low, high = DIAL_TIMEOUT_RANGE
        ring_seconds = min(max(_float_attr(verb, "timeout", DEFAULT_DIAL_TIMEOUT), low), high) + DIAL_TIMEOUT_SLACK
        time_limit = _float_attr(verb, "timeLimit", DEFAULT_DIAL_TIME_LIMIT)
        answer_on_bridge = verb.get("answerOnBridge") == "true"
        caller_id = verb.get("callerId") or call.from_
        action = document.resolve(verb.get("action")) if verb.get("action") else None
        method = verb.get("method", "POST")

        child = self.carrier.create_child_call(call, to=target.address, from_=caller_id)
        leg: _SipLeg | _PhoneLeg
        if target.kind == "sip":
            leg = _SipLeg(self.carrier, child, target, caller_id)
        else:
            leg = _PhoneLeg(self.carrier, self.carrier.phone(target.address) or PhoneScript.unscripted(target.address))
        call.add_event("dial", target.address)
        self._leg_callback(target, child, "initiated")

        bridged_at: float | None = None
        ringing_announced = False
        ring_deadline = time.monotonic() + self.scaled(ring_seconds)
        limit_deadline = math.inf
        try:
            state = leg.start()
            while True:
                now = time.monotonic()
                if child.pending_hangup():
                    leg.hang_up()
                    outcome = "completed" if bridged_at else "canceled"
                    break
                if state == "hangup":
                    outcome = "completed" if bridged_at else leg.failure_status()
                    break
                if state == "active" and bridged_at is None:
                    bridged_at = now
                    limit_deadline = now + self.scaled(time_limit)
                    child.mark_answered()
                    self._leg_callback(target, child, "answered")
                    if answer_on_bridge:
                        self._answer()
                    call.room = leg.room
                    call.add_event("bridged", leg.label)
                    call.set_current(f"bridged:{leg.label}")
                if bridged_at is None:
                    if state == "ringing" and not ringing_announced:
                        ringing_announced = True
                        call.add_event("ringback")
                        call.set_current("ringback")
                        child.set_status("ringing")
                        self._leg_callback(target, child, "ringing")
                    if now >= ring_deadline:
                        leg.hang_up()
                        outcome = "no-answer"
                        break
                elif now >= limit_deadline:
                    leg.hang_up()
                    outcome = "completed"
                    break
                call.wait(LEG_POLL_INTERVAL)
                state = leg.poll()
        except CallInterrupted as interrupt:
            leg.hang_up()
            outcome = "completed" if bridged_at else "canceled"
            params = self._close_dial(target, child, leg, outcome, bridged_at)
            if action:
                status = "completed" if isinstance(interrupt, HungUp) else None
                request = dict(call.webhook_params(status), **params)
                self.dispatcher.submit(
                    lambda: self.carrier.send_webhook(call.sid, "dial_action", action, method, request)
                )
            if isinstance(interrupt, Redirected):
                interrupt.after_dial = True
            raise
        params = self._close_dial(target, child, leg, outcome, bridged_at)
        self._idle()
        if action is None:
            return None
        return self._fetch(action, method, params, "dial_action")

    def _dial_target(self, verb: ET.Element, document: Document) -> _DialTarget:
        nouns = list(verb)
        if not nouns:
            number = (verb.text or "").strip()
            if not number:
                raise AppError(ERR_DOCUMENT_PARSE, "<Dial> has nothing to dial")
            return _DialTarget("number", number)
        noun = nouns[0]
        if noun.tag not in ("Sip", "Number"):
            raise AppError(ERR_DOCUMENT_PARSE, f"<Dial><{noun.tag}> is not modelled")
        callback = noun.get("statusCallback")
        return _DialTarget(
            kind="sip" if noun.tag == "Sip" else "number",
            address=(noun.text or "").strip(),
            username=noun.get("username"),
            password=noun.get("password"),
            status_callback=document.resolve(callback) if callback else None,
            status_callback_method=noun.get("statusCallbackMethod", "POST"),
            status_events=frozenset((noun.get("statusCallbackEvent") or "completed").split()),
        )

    def _close_dial(self, target: _DialTarget, child, leg, outcome: str, bridged_at: float | None) -> dict:
        """End the child leg and build the Dial action's parameters."""
        call = self.call
        call.room = None
        child.finish(outcome)
        self._leg_callback(target, child, "completed")
        call.add_event("dial_end", outcome)
        bridged_seconds = time.monotonic() - bridged_at if bridged_at else 0.0
        params = {
            "DialCallStatus": outcome,
            "DialCallSid": child.sid,
            "DialCallDuration": str(self.simulated_seconds(bridged_seconds)),
            "DialBridged": "true" if bridged_at else "false",
        }
        if target.kind == "sip":
            code = SIP_CODE_FOR_DIAL_STATUS.get(outcome) or leg.sip_status_code or NO_SIP_ANSWER
            params["DialSipCallId"] = leg.sip_call_id
            params["DialSipResponseCode"] = str(code)
        return params

    # -- callbacks -------------------------------------------------------------

    def _status_callback(self, event: str) -> None:
        """The call's own status callback, if it asked for this event."""
        call, setup = self.call, self.call.setup
        if not setup.status_callback or event not in setup.status_events:
            return
        status = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}.get(event, call.status)
        params = call.webhook_params(status)
        params.update(
            SequenceNumber=str(self._status_sequence),
            Timestamp=rfc2822_now(),
            CallbackSource="call-progress-events",
        )
        if event == "completed":
            params["CallDuration"] = str(call.duration)
        if call.answered_by:
            params["AnsweredBy"] = call.answered_by
        self._status_sequence += 1
        url, method = setup.status_callback, setup.status_callback_method
        self.dispatcher.submit(lambda: self.carrier.send_webhook(call.sid, "status", url, method, params))

    def _leg_callback(self, target: _DialTarget, child, event: str) -> None:
        """The <Sip>/<Number> noun's status callback for the dialled child leg."""
        if not target.status_callback or event not in target.status_events:
            return
        status = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}.get(event, child.status)
        params = child.webhook_params(status)
        params.update(
            SequenceNumber=str(target.sequence),
            Timestamp=rfc2822_now(),
            CallbackSource="call-progress-events",
        )
        if event == "completed":
            params["CallDuration"] = str(child.duration)
        target.sequence += 1
        url, method = target.status_callback, target.status_callback_method
        self.dispatcher.submit(lambda: self.carrier.send_webhook(child.sid, "dial_status", url, method, params))

    def _transcription_callback(self, transcription: dict, event: str) -> None:
        params = {
            "AccountSid": self.carrier.account_sid,
            "CallSid": self.call.sid,
            "TranscriptionSid": transcription["sid"],
            "TranscriptionEvent": event,
            "Timestamp": rfc2822_now(),
            "Track": transcription["track"],
            "LanguageCode": "en-US",
        }
        if transcription["name"]:
            params["Name"] = transcription["name"]
        url, method = transcription["url"], transcription["method"]
        self.dispatcher.submit(lambda: self.carrier.send_webhook(self.call.sid, "transcription", url, method, params))

    # -- time ------------------------------------------------------------------

    def scaled(self, simulated_seconds: float) -> float:
        """Real seconds for a simulated duration."""
        return simulated_seconds * self.carrier.time_scale

    def simulated_seconds(self, real_seconds: float) -> int:
        """Whole simulated seconds for a real duration (what Twilio would report)."""
        return int(round(real_seconds / self.carrier.time_scale))


def _int_attr(element: ET.Element, name: str, default: int) -> int:
    try:
        return int(element.get(name, default))
    except (TypeError, ValueError):
        return default


def _float_attr(element: ET.Element, name: str, default: float) -> float:
    try:
        return float(element.get(name, default))
    except (TypeError, ValueError):
        return default
