"""The Twilio double against the real twilio client and a tiny signed-webhook gateway.

The "gateway" here is a small Flask app on loopback that validates every
request's X-Twilio-Signature and answers TwiML set per test; the LiveKit side
of <Dial><Sip> is a minimal stand-in for the LiveKit double's /_sim/sip API.
"""

import json
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask, request
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from gateway.sandbox.twilio_sim import TwilioSimulator

AUTH_TOKEN = "test-auth-token"
ACCOUNT_SID = "AC" + "ab" * 16
OUR_NUMBER = "+15550000000"
CALLER = "+15557654321"
SCALE = 0.01


class LoopbackTwilioHttpClient(TwilioHttpClient):
    """Sends the twilio client's https://api.twilio.com requests to the simulator."""

    def __init__(self, origin: str):
        super().__init__()
        self.origin = origin.rstrip("/")
        self.session.trust_env = False

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        return super().request(method, self.origin + url[len(f"{parts.scheme}://{parts.netloc}") :], *args, **kwargs)


class Served:
    """A WSGI app on a loopback port in a daemon thread."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class FakeGateway:
    """Answers TwiML per path and records every request with its signature check."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.validator = RequestValidator(AUTH_TOKEN)
        self._lock = threading.Lock()
        app = Flask("fake-gateway")
        app.add_url_rule("/<path:path>", "any", self._handle, methods=["GET", "POST"])
        self.served = Served(app)
        self.url = self.served.url

    def route(self, path, reply):
        """reply: a TwiML string, a (body, status) tuple, or a callable(form) returning either."""
        self.routes[path] = reply

    def _handle(self, path):
        params = request.form.to_dict() if request.method == "POST" else {}
        valid = self.validator.validate(
            request.url, request.form if request.method == "POST" else {}, request.headers.get("X-Twilio-Signature", "")
        )
        form = request.form.to_dict() if request.method == "POST" else request.args.to_dict()
        with self._lock:
            self.requests.append(
                {"path": "/" + path, "form": form, "valid": valid, "method": request.method, "params": params}
            )
        reply = self.routes.get("/" + path, ("", 200))
        if callable(reply):
            reply = reply(form)
        body, status = reply if isinstance(reply, tuple) else (reply, 200)
        return Response(body, status=status, mimetype="text/xml")

    def received(self, path):
        with self._lock:
            return [r["form"] for r in self.requests if r["path"] == path]

    def wait_for(self, path, count=1, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(path)
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError(f"{path} requested {len(self.received(path))} times, wanted {count}: {self.requests}")

    def all_signed(self):
        with self._lock:
            return bool(self.requests) and all(r["valid"] for r in self.requests)


class FakeLiveKitSip:
    """Just the LiveKit double's /_sim/sip endpoints: invite, poll, bye."""

    def __init__(self):
        self.answer_after = 0.05  # real seconds of ringing; None = never answers
        self.reject_code = None
        self.sessions = {}
        self.invites = []
        self.byes = []
        self._lock = threading.Lock()
        self.served = Served(self._app)
        self.url = self.served.url

    @Request.application
    def _app(self, req):
        parts = req.path.strip("/").split("/")  # _sim, sip, ...
        with self._lock:
            if parts[2:] == ["invite"] and req.method == "POST":
                body = req.get_json()
                self.invites.append(body)
                if self.reject_code:
                    return _json({"error": "rejected", "sip_status_code": self.reject_code}, 404)
                session_id = "SCL_" + uuid.uuid4().hex[:12]
                self.sessions[session_id] = {
                    "session_id": session_id,
                    "room": "room-abc",
                    "status": "ringing",
                    "identity": "sip_" + body["from"],
                    "started": time.monotonic(),
                }
                return _json(self._state(session_id))
            if len(parts) == 3 and req.method == "GET" and parts[2] in self.sessions:
                return _json(self._state(parts[2]))
            if len(parts) == 4 and parts[3] == "bye" and parts[2] in self.sessions:
                self.byes.append(parts[2])
                self.sessions[parts[2]]["status"] = "hangup"
                return _json(self._state(parts[2]))
        return _json({"error": "not found"}, 404)

    def _state(self, session_id):
        session = self.sessions[session_id]
        ringing_for = time.monotonic() - session["started"]
        if session["status"] == "ringing" and self.answer_after is not None and ringing_for >= self.answer_after:
            session["status"] = "active"
        return {k: v for k, v in session.items() if k != "started"}

    def hang_up_all(self, sip_status_code=None):
        """As if the agent left the room (RemoveParticipant sends BYE to Twilio)."""
        with self._lock:
            for session in self.sessions.values():
                session["status"] = "hangup"
                if sip_status_code:
                    session["sip_status_code"] = sip_status_code


def _json(data, status=200):
    return Response(json.dumps(data), status=status, mimetype="application/json")


def twiml(body):
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


@pytest.fixture
def gateway():
    gw = FakeGateway()
    yield gw
    gw.served.stop()


@pytest.fixture
def livekit():
    lk = FakeLiveKitSip()
    yield lk
    lk.served.stop()


@pytest.fixture
def sim(livekit):
    simulator = TwilioSimulator(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, livekit_url=livekit.url, time_scale=SCALE
    ).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim):
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=LoopbackTwilioHttpClient(sim.url))


def inbound(sim, gateway, voice_twiml, **number_options):
    gateway.route("/voice", voice_twiml)
    sim.add_number(OUR_NUMBER, voice_url=gateway.url + "/voice", **number_options)
    return sim.place_inbound_call(from_=CALLER, to=OUR_NUMBER)


# -- REST API through the real twilio client ---------------------------------------------------


def test_outbound_call_with_status_events_and_amd(sim, client, gateway):
    sim.script_phone("+15551110001", answer_after=1.0, digits="1")
    gateway.route("/outbound", twiml('<Gather numDigits="1" action="/choice"><Say>Press one</Say></Gather>'))
    gateway.route("/choice", twiml("<Say>Thanks</Say><Hangup/>"))

    created = client.calls.create(
        to="+15551110001",
        from_=OUR_NUMBER,
        url=gateway.url + "/outbound",
        status_callback=gateway.url + "/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        machine_detection="Enable",
    )

    assert created.sid.startswith("CA") and len(created.sid) == 34
    assert (created.status, created.direction, created.to) == ("queued", "outbound-api", "+15551110001")
    call = sim.call(created.sid)
    assert call.wait_status("completed") == "completed"
    assert ("gather", "1") in call.events and ("say", "Thanks") in call.events
    assert gateway.received("/outbound")[0]["AnsweredBy"] == "human"
    assert gateway.received("/choice")[0]["Digits"] == "1"
    statuses = gateway.wait_for("/status", count=4)
    assert [s["CallStatus"] for s in statuses] == ["initiated", "ringing", "in-progress", "completed"]
    assert [s["SequenceNumber"] for s in statuses] == ["0", "1", "2", "3"]
    assert statuses[-1]["CallbackSource"] == "call-progress-events" and "CallDuration" in statuses[-1]
    assert gateway.all_signed()
    fetched = client.calls(created.sid).fetch()
    assert fetched.status == "completed" and fetched.answered_by == "human"
    assert [c.sid for c in client.calls.list(status="completed", to="+15551110001")] == [created.sid]


def test_outbound_no_answer_busy_and_machine(sim, client, gateway):
    sim.script_phone("+15551110002", busy=True)
    sim.script_phone("+15551110003", machine=True, answer_after=0.5)
    gateway.route("/vm", twiml('<Gather timeout="1" action="/never"><Say>Leave a message</Say></Gather>'))
    nobody = client.calls.create(to="+15551110009", from_=OUR_NUMBER, url=gateway.url + "/vm", timeout=5)
    busy = client.calls.create(to="+15551110002", from_=OUR_NUMBER, url=gateway.url + "/vm")
    machine = client.calls.create(
        to="+15551110003", from_=OUR_NUMBER, url=gateway.url + "/vm", machine_detection="Enable"
    )

    assert sim.call(nobody.sid).wait_status("no-answer", "completed") == "no-answer"
    assert sim.call(busy.sid).wait_status("busy", "completed") == "busy"
    machine_call = sim.call(machine.sid)
    machine_call.wait_status("completed")
    assert machine_call.answered_by == "machine_start"
    assert ("gather", "") in machine_call.events  # machines never press keys
    assert gateway.received("/never") == []


def test_async_amd_get_webhook_and_callee_hangup(sim, client, gateway):
    sim.script_phone("+15551110005", answer_after=0.5, hangup_after=5.0)
    gateway.route("/hold", twiml('<Play loop="0">https://example.com/hold.mp3</Play>'))
    created = client.calls.create(
        to="+15551110005",
        from_=OUR_NUMBER,
        url=gateway.url + "/hold?leg=agent",
        method="GET",
        machine_detection="Enable",
        async_amd="true",
        async_amd_status_callback=gateway.url + "/amd",
    )
    call = sim.call(created.sid)
    call.wait_status("completed")
    assert call.events[-2:] == [("hangup", "callee"), ("status", "completed")]
    assert gateway.wait_for("/amd")[0]["AnsweredBy"] == "human"
    hold = gateway.received("/hold")[0]
    assert (hold["leg"], hold["CallSid"], hold["CallStatus"]) == ("agent", created.sid, "in-progress")
    assert "AnsweredBy" not in hold  # asynchronous AMD does not hold the TwiML fetch
    assert gateway.all_signed()


def test_reject_ends_an_unanswered_call_busy(sim, gateway):
    call = inbound(sim, gateway, twiml('<Reject reason="busy"/>'), status_callback=gateway.url + "/status")
    assert call.wait_status("busy", "completed") == "busy"
    assert gateway.wait_for("/status")[0]["CallStatus"] == "busy"
    assert call.duration == 0


def test_rest_errors_are_twilio_shaped(sim, client, gateway):
    with pytest.raises(TwilioRestException) as invalid_to:
        client.calls.create(to="12345", from_=OUR_NUMBER, url=gateway.url + "/x")
    assert (invalid_to.value.status, invalid_to.value.code) == (400, 21211)

    with pytest.raises(TwilioRestException) as unknown:
        client.calls("CA" + "0" * 32).update(twiml=twiml("<Hangup/>"))
    assert (unknown.value.status, unknown.value.code) == (404, 20404)

    bad_auth = requests.get(f"{sim.url}/2010-04-01/Accounts/{ACCOUNT_SID}.json", auth=(ACCOUNT_SID, "wrong"))
    assert bad_auth.status_code == 401
    assert bad_auth.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert client.api.v2010.accounts(ACCOUNT_SID).fetch().status == "active"


def test_update_of_completed_call_is_21220(sim, client, gateway):
    call = inbound(sim, gateway, twiml("<Hangup/>"))
    call.wait_status("completed")
    with pytest.raises(TwilioRestException) as ended:
        client.calls(call.sid).update(url=gateway.url + "/again")
    assert (ended.value.status, ended.value.code) == (400, 21220)


def test_messages_segments_errors_and_faults(sim, client, gateway):
    message = client.messages.create(
        to="+15551110001",
        from_=OUR_NUMBER,
        body="Your agent is on the way",
        status_callback=gateway.url + "/sms-status",
    )
    assert message.sid.startswith("SM") and message.status == "queued" and message.num_segments == "1"
    assert client.messages.create(to="+15551110001", from_=OUR_NUMBER, body="x" * 161).num_segments == "2"
    assert client.messages.create(to="+15551110001", from_=OUR_NUMBER, body="é" * 160).num_segments == "1"
    assert client.messages.create(to="+15551110001", from_=OUR_NUMBER, body="😀" * 36).num_segments == "2"
    assert [s["MessageStatus"] for s in gateway.wait_for("/sms-status", count=2)] == ["sent", "delivered"]

    for kwargs, code in [({"to": "555"}, 21211), ({"body": ""}, 21602), ({"body": "y" * 1601}, 21617)]:
        arguments = {"to": "+15551110001", "from_": OUR_NUMBER, "body": "hi", **kwargs}
        with pytest.raises(TwilioRestException) as error:
            client.messages.create(**arguments)
        assert error.value.code == code

    sim.inject_fault(path_contains="Messages", status=429, code=20429, retry_after=3)
    with pytest.raises(TwilioRestException) as limited:
        client.messages.create(to="+15551110001", from_=OUR_NUMBER, body="hi")
    assert limited.value.status == 429
    sim.inject_fault(path_contains="Messages", status=429, code=20429, retry_after=3)
    raw = requests.post(
        f"{sim.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        data={"To": "+15551110001", "From": OUR_NUMBER, "Body": "hi"},
    )
    assert (raw.status_code, raw.headers["Retry-After"], raw.json()["code"]) == (429, "3", 20429)
    assert client.messages.create(to="+15551110001", from_=OUR_NUMBER, body="hi").status == "queued"
    assert len(sim.messages()) == 5


def test_phone_number_lookup_and_update_drive_inbound_calls(sim, client, gateway):
    sid = sim.add_number(OUR_NUMBER)
    numbers = client.incoming_phone_numbers.list(phone_number=OUR_NUMBER)
    assert [n.sid for n in numbers] == [sid]
    updated = client.incoming_phone_numbers(sid).update(
        voice_url=gateway.url + "/voice", status_callback=gateway.url + "/status"
    )
    assert updated.voice_url == gateway.url + "/voice"
    assert client.incoming_phone_numbers(sid).fetch().status_callback == gateway.url + "/status"

    gateway.route("/voice", twiml("<Say>Hello there</Say>"))
    call = sim.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
    call.wait_status("completed")
    assert [s["CallStatus"] for s in gateway.wait_for("/status")] == ["completed"]  # numbers: completed only


def test_injected_latency_and_hang_do_not_block_stop(gateway):
    simulator = TwilioSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, time_scale=SCALE).start()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=LoopbackTwilioHttpClient(simulator.url))
    simulator.inject_latency(0.2, path_contains="Accounts")
    started = time.monotonic()
    client.api.v2010.accounts(ACCOUNT_SID).fetch()
    assert time.monotonic() - started >= 0.2
    simulator.clear_faults()

    simulator.inject_fault(path_contains="Calls", hang=True)
    threading.Thread(
        target=lambda: requests.get(
            f"{simulator.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5
        ),
        daemon=True,
    ).start()
    gateway.route("/voice", twiml('<Play loop="0">https://example.com/hold.mp3</Play>'))
    simulator.add_number(OUR_NUMBER, voice_url=gateway.url + "/voice")
    call = simulator.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
    call.wait_current("play")
    time.sleep(0.1)
    started = time.monotonic()
    simulator.stop()
    assert time.monotonic() - started < 2.0
    assert call.status == "completed" and ("hangup", "api") in call.events


# -- inbound calls and TwiML -----------------------------------------------------------------------


def test_inbound_say_gather_redirect_hangup_all_signed(sim, gateway):
    sim.script_phone(CALLER, digits="2")
    gateway.route("/menu", twiml("<Redirect>/goodbye?from=menu</Redirect>"))
    gateway.route("/goodbye", twiml("<Say>Goodbye now</Say><Hangup/><Say>never said</Say>"))
    call = inbound(
        sim,
        gateway,
        twiml(
            '<Say>Welcome</Say><Gather numDigits="1" action="menu"><Say>Press two for sales</Say></Gather>'
            "<Say>We did not get that</Say>"
        ),
        status_callback=None,
    )

    call.wait_status("completed")
    assert call.events == [
        ("status", "ringing"),
        ("status", "in-progress"),
        ("say", "Welcome"),
        ("say", "Press two for sales"),
        ("gather", "2"),
        ("redirect", gateway.url + "/goodbye?from=menu"),
        ("say", "Goodbye now"),
        ("hangup", "twiml"),
        ("status", "completed"),
    ]
    voice = gateway.received("/voice")[0]
    assert (voice["CallStatus"], voice["Direction"], voice["From"], voice["To"]) == (
        "ringing",
        "inbound",
        CALLER,
        OUR_NUMBER,
    )
    assert voice["AccountSid"] == ACCOUNT_SID and voice["ApiVersion"] == "2010-04-01"
    assert gateway.received("/menu")[0]["Digits"] == "2"
    assert gateway.all_signed()
    assert call.current == "ended" and call.time_in("say") > 0


def test_gather_no_input_falls_through_then_press(sim, gateway):
    gateway.route("/digits", twiml("<Hangup/>"))
    call = inbound(
        sim,
        gateway,
        twiml(
            '<Gather timeout="2" action="/never"><Say>First try</Say></Gather>'
            '<Gather timeout="100" action="/digits"><Say>Second try</Say></Gather>'
        ),
    )
    call.wait_for(lambda c: ("say", "Second try") in c.events)
    call.wait_current("gather")
    call.press("42#")
    call.wait_status("completed")
    assert ("gather", "") in call.events and ("gather", "42") in call.events
    assert gateway.received("/never") == []
    assert gateway.received("/digits")[0]["Digits"] == "42"
    assert gateway.received("/digits")[0]["FinishedOnKey"] == "#"


def test_unknown_verb_is_an_application_error(sim, gateway):
    call = inbound(sim, gateway, twiml("<Say>Hi</Say><Conference>room</Conference>"))
    call.wait_status("completed")
    assert ("app_error", 12100) in call.events and ("hangup", "error") in call.events


def test_fallback_url_on_500_and_app_error_when_both_fail(sim, gateway):
    gateway.route("/fallback", twiml("<Say>Sorry, please hold</Say>"))
    call = inbound(sim, gateway, ("oops", 500), voice_fallback_url=gateway.url + "/fallback")
    call.wait_status("completed")
    assert ("say", "Sorry, please hold") in call.events
    fallback = gateway.received("/fallback")[0]
    assert fallback["ErrorCode"] == "11200" and fallback["ErrorUrl"] == gateway.url + "/voice"

    gateway.route("/fallback", ("not xml at all", 200))
    second = sim.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
    second.wait_status("completed")
    assert ("app_error", 12100) in second.events
    assert gateway.all_signed()


def test_voice_url_timeout_goes_to_fallback(gateway):
    simulator = TwilioSimulator(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, time_scale=SCALE, http_timeout=0.3
    ).start()
    try:
        gateway.route("/voice", lambda form: (time.sleep(1.0), twiml("<Say>late</Say>"))[1])
        gateway.route("/fallback", twiml("<Say>Fallback speaking</Say>"))
        simulator.add_number(OUR_NUMBER, voice_url=gateway.url + "/voice", voice_fallback_url=gateway.url + "/fallback")
        call = simulator.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
        call.wait_status("completed")
        assert ("say", "Fallback speaking") in call.events and ("say", "late") not in call.events
        assert gateway.received("/fallback")[0]["ErrorCode"] == "11200"
    finally:
        simulator.stop()


def test_rest_redirect_interrupts_play_loop(sim, client, gateway):
    gateway.route("/next", twiml("<Say>Thanks for holding</Say><Hangup/>"))
    call = inbound(sim, gateway, twiml('<Play loop="0">https://example.com/hold.mp3</Play>'))
    call.wait_current("play")
    client.calls(call.sid).update(url=gateway.url + "/next", method="POST")
    call.wait_status("completed")
    assert call.events[-5:] == [
        ("play", "https://example.com/hold.mp3"),
        ("redirect", gateway.url + "/next"),
        ("say", "Thanks for holding"),
        ("hangup", "twiml"),
        ("status", "completed"),
    ]

    second = sim.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
    second.wait_current("play")
    assert client.calls(second.sid).update(status="completed").status == "completed"
    assert second.wait_status("completed") == "completed" and ("hangup", "api") in second.events


def test_record_posts_recording_to_action(sim, gateway):
    gateway.route("/recorded", twiml("<Say>Got it</Say>"))
    call = inbound(sim, gateway, twiml('<Say>Leave a message</Say><Record action="/recorded" timeout="3"/>'))
    call.wait_status("completed")
    assert ("record",) in call.events and ("say", "Got it") in call.events
    recorded = gateway.received("/recorded")[0]
    assert recorded["RecordingSid"].startswith("RE") and recorded["RecordingSid"] in recorded["RecordingUrl"]
    assert recorded["RecordingDuration"] == "3"


def test_speak_posts_realtime_transcription(sim, gateway):
    call = inbound(
        sim,
        gateway,
        twiml(
            '<Start><Transcription statusCallbackUrl="/transcripts" track="inbound_track" name="t1"/></Start>'
            '<Pause length="100"/>'
        ),
    )
    call.wait_current("pause")
    assert ("transcription_started", gateway.url + "/transcripts") in call.events
    assert call.speak("my order number is 4411") == 200
    assert call.speak("hold music", track="outbound_track") is None  # not a transcribed track
    assert call.speak("and it broke", final=False) == 200
    call.hangup()
    call.wait_status("completed")
    callbacks = gateway.wait_for("/transcripts", count=4)
    assert [c["TranscriptionEvent"] for c in callbacks] == [
        "transcription-started",
        "transcription-content",
        "transcription-content",
        "transcription-stopped",
    ]
    first = callbacks[1]
    assert json.loads(first["TranscriptionData"]) == {"transcript": "my order number is 4411", "confidence": 0.93}
    assert (first["Track"], first["SequenceId"], first["Final"], first["CallSid"]) == (
        "inbound_track",
        "1",
        "true",
        call.sid,
    )
    assert callbacks[2]["SequenceId"] == "2" and callbacks[2]["Final"] == "false"
    assert gateway.all_signed()
    assert call.events[-2:] == [("hangup", "caller"), ("status", "completed")]


def test_scripted_speech_is_transcribed_once_transcription_starts(sim, gateway):
    gateway.route("/voice", twiml('<Start><Transcription statusCallbackUrl="/t"/></Start><Pause length="5"/>'))
    sim.add_number(OUR_NUMBER, voice_url=gateway.url + "/voice")
    call = sim.place_inbound_call(from_=CALLER, to=OUR_NUMBER, speech=["I was double charged.", "Twice!"])
    callbacks = gateway.wait_for("/t", count=3)
    assert [json.loads(c["TranscriptionData"])["transcript"] for c in callbacks[1:3]] == [
        "I was double charged.",
        "Twice!",
    ]
    call.wait_status("completed")


# -- <Dial> -------------------------------------------------------------------------------------

SIP_URI = "sip:agent@sandbox.sip.livekit.cloud;transport=tcp?X-Transfer-Id=tr_1"


def sip_dial(action="/dial-done", timeout=30, extra=""):
    return twiml(
        f'<Say>Connecting you</Say><Dial action="{action}" timeout="{timeout}" answerOnBridge="true" {extra}>'
        f'<Sip username="twilio" password="s3cret" statusCallback="/leg" '
        f'statusCallbackEvent="initiated ringing answered completed">{SIP_URI}</Sip></Dial>'
        "<Say>After dial</Say>"
    )


def test_dial_sip_bridges_and_rest_redirect_still_requests_action(sim, client, gateway, livekit):
    livekit.answer_after = 0.1
    gateway.route("/dial-done", twiml("<Say>ignored reply</Say>"))
    gateway.route("/back", twiml("<Say>Back with you</Say><Hangup/>"))
    call = inbound(sim, gateway, sip_dial())

    call.wait_current("bridged")
    assert call.current == "bridged:room-abc" and call.room == "room-abc"
    invite = livekit.invites[0]
    child = [c for c in sim.calls() if c.parent_call_sid == call.sid][0]
    assert invite["uri"] == SIP_URI and (invite["username"], invite["password"]) == ("twilio", "s3cret")
    assert invite["from"] == CALLER and invite["twilio_call_sid"] == child.sid != call.sid
    assert invite["twilio_account_sid"] == ACCOUNT_SID

    client.calls(call.sid).update(url=gateway.url + "/back")
    call.wait_status("completed")
    assert livekit.byes == [list(livekit.sessions)[0]]
    action = gateway.wait_for("/dial-done")[0]
    assert (action["DialCallStatus"], action["DialBridged"], action["DialCallSid"]) == ("completed", "true", child.sid)
    assert action["DialSipResponseCode"] == "200" and action["DialSipCallId"] == list(livekit.sessions)[0]
    kinds = [e[0] for e in call.events]
    assert kinds.index("dial") < kinds.index("ringback") < kinds.index("bridged") < kinds.index("dial_end")
    assert ("dial_end", "completed") in call.events and ("say", "Back with you") in call.events
    assert ("say", "ignored reply") not in call.events and ("say", "After dial") not in call.events
    gaps = [length for _, length in call.silence_gaps()]
    assert any(length >= 0.5 * SCALE for length in gaps)
    legs = gateway.wait_for("/leg", count=4)
    assert [leg["CallStatus"] for leg in legs] == ["initiated", "ringing", "in-progress", "completed"]
    assert all(leg["ParentCallSid"] == call.sid and leg["CallSid"] == child.sid for leg in legs)
    assert child.status == "completed" and child.direction == "outbound-dial"
    assert gateway.all_signed()


def test_answer_on_bridge_keeps_caller_ringing_until_bridged(sim, gateway, livekit):
    livekit.answer_after = 0.2
    gateway.route("/voice", twiml('<Dial answerOnBridge="true"><Sip>sip:agent@lk.example;transport=tcp</Sip></Dial>'))
    sim.add_number(
        OUR_NUMBER,
        voice_url=gateway.url + "/voice",
        status_callback=gateway.url + "/status",
        status_callback_events=("initiated", "ringing", "answered", "completed"),
    )
    call = sim.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
    call.wait_current("ringback")
    assert call.status == "ringing"
    call.wait_current("bridged")
    assert call.status == "in-progress"
    livekit.hang_up_all()
    call.wait_status("completed")
    assert ("dial_end", "completed") in call.events
    assert [s["CallStatus"] for s in gateway.wait_for("/status", count=4)] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]


def test_livekit_ending_the_bridge_runs_the_action_twiml(sim, gateway, livekit):
    gateway.route("/dial-done", lambda form: twiml(f"<Say>Dial ended {form['DialCallStatus']}</Say>"))
    call = inbound(sim, gateway, sip_dial())
    call.wait_current("bridged")
    livekit.hang_up_all()
    call.wait_status("completed")
    assert ("say", "Dial ended completed") in call.events
    assert ("say", "After dial") not in call.events  # the action's TwiML replaces the rest
    assert livekit.byes == []  # LiveKit hung up; Twilio sends no BYE back


def test_caller_hangup_inside_dial(sim, gateway, livekit):
    gateway.route("/dial-done", twiml("<Say>never heard</Say>"))
    call = inbound(sim, gateway, sip_dial(), status_callback=None)
    sim.add_number("+15550000001", voice_url=gateway.url + "/voice", status_callback=gateway.url + "/status")
    call.wait_current("bridged")
    call.hangup()
    call.wait_status("completed")
    assert len(livekit.byes) == 1
    action = gateway.wait_for("/dial-done")[0]
    assert (action["CallStatus"], action["DialCallStatus"]) == ("completed", "completed")
    assert ("say", "never heard") not in call.events
    assert call.events[-3:] == [("dial_end", "completed"), ("hangup", "caller"), ("status", "completed")]


def test_dial_no_answer_times_out_and_sends_bye(sim, gateway, livekit):
    livekit.answer_after = None
    gateway.route("/dial-done", lambda form: twiml(f"<Say>Status {form['DialCallStatus']}</Say>"))
    call = inbound(sim, gateway, sip_dial(timeout=5))
    call.wait_status("completed")
    assert ("dial_end", "no-answer") in call.events and ("say", "Status no-answer") in call.events
    assert len(livekit.byes) == 1
    action = gateway.received("/dial-done")[0]
    assert (action["DialBridged"], action["DialSipResponseCode"]) == ("false", "487")
    assert call.time_in("ringback") >= 0.9 * (5 + 5) * SCALE  # <Dial timeout> plus Twilio's ~5 s (timer slack)


def test_redirect_while_ringing_cancels_the_dial(sim, client, gateway, livekit):
    livekit.answer_after = None
    gateway.route("/dial-done", twiml("<Say>ignored</Say>"))
    gateway.route("/apology", twiml("<Say>Nobody is free</Say>"))
    call = inbound(sim, gateway, sip_dial())
    call.wait_current("ringback")
    client.calls(call.sid).update(url=gateway.url + "/apology")
    call.wait_status("completed")
    assert gateway.wait_for("/dial-done")[0]["DialCallStatus"] == "canceled"
    assert ("say", "Nobody is free") in call.events and len(livekit.byes) == 1


def test_sip_rejection_fails_the_dial(sim, gateway, livekit):
    livekit.reject_code = 404
    gateway.route(
        "/dial-done", lambda form: twiml(f"<Say>{form['DialCallStatus']} {form['DialSipResponseCode']}</Say>")
    )
    call = inbound(sim, gateway, sip_dial())
    call.wait_status("completed")
    assert ("say", "failed 404") in call.events


def test_sip_busy_while_ringing(sim, gateway, livekit):
    livekit.answer_after = None
    gateway.route("/dial-done", lambda form: twiml(f"<Say>{form['DialCallStatus']}</Say>"))
    call = inbound(sim, gateway, sip_dial())
    call.wait_current("ringback")
    livekit.hang_up_all(sip_status_code=486)
    call.wait_status("completed")
    assert ("say", "busy") in call.events


def test_dial_number_bridges_scripted_phone_until_it_hangs_up(sim, gateway):
    sim.script_phone("+15553330000", answer_after=1.0, hangup_after=3.0)
    call = inbound(
        sim,
        gateway,
        twiml('<Dial callerId="+15550000000"><Number>+15553330000</Number></Dial><Say>The agent left</Say>'),
    )
    call.wait_status("completed")
    assert ("bridged", "+15553330000") in call.events and ("dial_end", "completed") in call.events
    assert ("say", "The agent left") in call.events
    child = [c for c in sim.calls() if c.parent_call_sid == call.sid][0]
    assert child.from_ == "+15550000000" and child.status == "completed"


def test_rest_hangup_of_the_child_leg_ends_the_bridge(sim, client, gateway, livekit):
    call = inbound(sim, gateway, sip_dial(action="/dial-done"))
    gateway.route("/dial-done", twiml("<Say>Agent gone</Say>"))
    call.wait_current("bridged")
    child = [c for c in sim.calls() if c.parent_call_sid == call.sid][0]
    client.calls(child.sid).update(status="completed")
    call.wait_status("completed")
    assert ("say", "Agent gone") in call.events and len(livekit.byes) == 1


# -- HTTP control API ---------------------------------------------------------------------------


def test_control_endpoints_drive_a_call(sim, gateway):
    gateway.route("/voice", twiml('<Gather action="/got" numDigits="1" timeout="100"><Say>Choose</Say></Gather>'))
    gateway.route("/got", twiml('<Pause length="100"/>'))
    assert (
        requests.post(
            f"{sim.url}/_sim/numbers", json={"number": OUR_NUMBER, "voice_url": gateway.url + "/voice"}
        ).status_code
        == 201
    )
    phone = requests.post(f"{sim.url}/_sim/phones", json={"number": "+15551112222", "answer_after": 1})
    assert phone.status_code == 201 and phone.json()["answer_after"] == 1
    sid = requests.post(f"{sim.url}/_sim/calls", json={"from": CALLER, "to": OUR_NUMBER}).json()["sid"]
    call = sim.call(sid)
    call.wait_current("gather")
    requests.post(f"{sim.url}/_sim/calls/{sid}/press", json={"digits": "3"})
    call.wait_current("pause")
    state = requests.get(f"{sim.url}/_sim/calls/{sid}").json()
    assert state["status"] == "in-progress" and ["gather", "3"] in state["events"]
    assert requests.post(f"{sim.url}/_sim/calls/{sid}/hangup").json() == {"hung_up": True}
    call.wait_status("completed")
    assert [c["sid"] for c in requests.get(f"{sim.url}/_sim/calls").json()["calls"]] == [sid]

    requests.post(f"{sim.url}/_sim/faults", json={"path_contains": "Messages", "status": 503, "code": 20503})
    failed = requests.post(
        f"{sim.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        data={"To": CALLER, "From": OUR_NUMBER, "Body": "x"},
    )
    assert failed.status_code == 503 and failed.json()["code"] == 20503
    requests.delete(f"{sim.url}/_sim/faults")
    assert requests.get(f"{sim.url}/_sim/messages").json() == {"messages": []}


def test_a_number_on_a_trunk_or_app_ignores_its_voice_url_until_detached(sim, client, gateway):
    """Twilio: "If a trunk_sid is present, we ignore all of the voice urls"; the same for a
    voice_application_sid; setting one clears the other; an empty value detaches."""
    gateway.route("/voice", twiml("<Say>Hello there</Say>"))
    sid = sim.add_number(OUR_NUMBER, voice_url=gateway.url + "/voice", trunk_sid="TK" + "1" * 32)
    number = client.incoming_phone_numbers(sid).fetch()
    assert (number.trunk_sid, number.voice_application_sid) == ("TK" + "1" * 32, None)
    lost = sim.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
    assert lost.status == "failed" and gateway.received("/voice") == []

    moved = client.incoming_phone_numbers(sid).update(voice_application_sid="AP" + "2" * 32)
    assert (moved.trunk_sid, moved.voice_application_sid) == (None, "AP" + "2" * 32)
    assert sim.place_inbound_call(from_=CALLER, to=OUR_NUMBER).status == "failed"

    client.incoming_phone_numbers(sid).update(voice_application_sid="")
    call = sim.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
    call.wait_status("completed")
    assert ("say", "Hello there") in call.events


def test_rest_transcriptions_start_on_an_answered_call_and_stop_by_name(sim, client, gateway):
    call = inbound(sim, gateway, twiml('<Say>Welcome</Say><Pause length="100"/>'))
    call.wait_current("pause")
    started = client.calls(call.sid).transcriptions.create(
        name="gw-call-1", status_callback_url=gateway.url + "/t", track="both_tracks"
    )
    assert started.name == "gw-call-1" and started.status == "in-progress"
    assert call.speak("my order number is 4411") == 200
    stopped = client.calls(call.sid).transcriptions("gw-call-1").update(status="stopped")
    assert stopped.status == "stopped"
    assert call.speak("nobody hears this") is None
    events = [c["TranscriptionEvent"] for c in gateway.wait_for("/t", count=3)]
    assert events == ["transcription-started", "transcription-content", "transcription-stopped"]
    call.hangup()


def test_rest_transcription_needs_an_in_progress_call(sim, client, gateway):
    sim.add_number(OUR_NUMBER, voice_url=gateway.url + "/voice")
    sim.script_phone("+15559990000", answer_after=500)
    gateway.route("/voice", twiml('<Dial answerOnBridge="true" timeout="600"><Number>+15559990000</Number></Dial>'))
    call = sim.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
    call.wait_current("ringback", timeout=5)
    with pytest.raises(TwilioRestException) as info:
        client.calls(call.sid).transcriptions.create(status_callback_url=gateway.url + "/t")
    assert (info.value.status, info.value.code) == (400, 21220)
    call.hangup()


def test_two_transcription_sessions_duplicate_every_line(sim, gateway):
    start = '<Start><Transcription statusCallbackUrl="/t"/></Start>'
    call = inbound(sim, gateway, twiml(start + start + '<Pause length="100"/>'))
    call.wait_current("pause")
    call.speak("my order number is 4411")
    lines = [c for c in gateway.wait_for("/t", count=4) if c["TranscriptionEvent"] == "transcription-content"]
    assert len(lines) == 2 and len({c["TranscriptionSid"] for c in lines}) == 2
    call.hangup()
