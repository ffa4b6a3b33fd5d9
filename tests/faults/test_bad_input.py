"""Bad input: forged, replayed and stale signatures; malformed, oversized and unknown-id requests;
out-of-order and duplicated provider callbacks; illegal transfer requests.

Every request here must be refused with a clear 4xx (or, for a TwiML endpoint, answered
with graceful TwiML) and must change nothing: the calls, legs and transfers tables are
compared column by column before and after. Replays and duplicates may be accepted (2xx),
but have no second effect.

State used (built through the HTTP surface only): call 1 — caller with Alice, Alice
transferring to Bob (Bob's offer ringing, caller on hold); call 2 — caller with Carol;
Dave is available and free; Erin is a phone agent ringing on a third call.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

from tests.faults._counts import bump
from tests.faults.inproc import (
    CALLER,
    LK_KEY,
    ORIGIN,
    SIP_KIND,
    TOKEN,
    Harness,
    livekit_auth,
    livekit_body,
    twilio_signature,
)

SID1, SID2, SID3 = "CA" + "1" * 32, "CA" + "2" * 32, "CA" + "3" * 32
ERIN_PHONE = "+15550004444"


@pytest.fixture
def h(database_url):
    harness = Harness(database_url)
    for agent in ("alice", "bob", "carol"):
        harness.add_agent(agent)
    harness.call1 = harness.connected_call(SID1, "alice")
    harness.transfer1 = harness.warm_transfer(harness.call1, "alice", "bob")
    harness.add_agent("dave", status="offline")
    harness.call2 = harness.connected_call(SID2, "carol", caller="+15557650002")
    harness.add_agent("erin", phone=ERIN_PHONE, browser=False)  # the only one free: call 3 rings her phone
    harness.call3 = harness.inbound_call(SID3, caller="+15557650003")
    harness.erin_leg = next(leg_ for leg_ in harness.legs(harness.call3.id) if leg_.agent_id == "erin")
    harness.services.agents.set_status("dave", "available")
    yield harness
    harness.close()


class Unchanged:
    """``with Unchanged(h):`` — the calls/legs/transfers snapshot must be identical afterwards.
    ``ignore_version``: a duplicate may rewrite a row with the same values (a new version), nothing else."""

    def __init__(self, harness: Harness, ignore_version: bool = False):
        self.h, self.ignore_version = harness, ignore_version

    def snapshot(self) -> dict:
        return self.h.snapshot(exclude=("version",) if self.ignore_version else ())

    def __enter__(self):
        self.before = self.snapshot()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            after = self.snapshot()
            for table in self.before:
                assert after[table] == self.before[table], f"{table} changed:\n{self.before[table]}\n{after[table]}"


def tried(n: int = 1) -> None:
    bump("bad_inputs_tried", n)


def twiml_ok(reply) -> bool:
    return reply.status_code == 200 and reply.mimetype == "text/xml" and reply.data.lstrip().startswith(b"<?xml")


# Realistic forms for every Twilio endpoint (they would have an effect if they were signed).
def twilio_requests(h: Harness) -> list[tuple[str, dict, dict]]:
    c1, leg = h.call1, h.erin_leg
    return [
        ("/twilio/voice", {"CallSid": "CA" + "9" * 32, "From": CALLER, "To": "+15550100000"}, {}),
        ("/twilio/fallback", {"CallSid": SID1, "ErrorCode": "11200", "ErrorUrl": ORIGIN + "/twilio/voice"}, {}),
        ("/twilio/status", {"CallSid": SID1, "CallStatus": "completed"}, {}),
        (
            "/twilio/dial-action",
            {"CallSid": SID1, "DialCallStatus": "failed", "CallStatus": "in-progress"},
            {"call": c1.id, "room": c1.room},
        ),
        ("/twilio/sip-status", {"CallSid": "CA" + "8" * 32, "CallStatus": "initiated"}, {"call": c1.id}),
        ("/twilio/hold", {"CallSid": SID1}, {"call": c1.id}),
        ("/twilio/queue", {"CallSid": SID1}, {"call": c1.id}),
        ("/twilio/queue/choice", {"CallSid": SID1, "Digits": "1"}, {"call": c1.id}),
        ("/twilio/menu", {"CallSid": SID1, "Digits": "1"}, {"call": c1.id, "attempt": "1"}),
        ("/twilio/callback/answer", {"CallSid": SID1, "CallStatus": "in-progress"}, {"call": c1.id, "attempt": "1"}),
        ("/twilio/callback/status", {"CallSid": SID1, "CallStatus": "no-answer"}, {"call": c1.id, "attempt": "1"}),
        ("/twilio/bridge", {"CallSid": SID1}, {"call": c1.id}),
        ("/twilio/apology", {"CallSid": SID1}, {"call": c1.id}),
        ("/twilio/goodbye", {"CallSid": SID1}, {"call": c1.id}),
        ("/twilio/voicemail", {"CallSid": SID1, "RecordingUrl": "https://x/r.mp3"}, {"call": c1.id}),
        ("/twilio/leg/answer", {"CallSid": "CA" + "7" * 32}, {"leg": leg.id}),
        ("/twilio/leg/gather", {"CallSid": "CA" + "7" * 32, "Digits": "1"}, {"leg": leg.id}),
        ("/twilio/leg/bridge", {"CallSid": "CA" + "7" * 32}, {"leg": leg.id}),
        ("/twilio/leg/dial-action", {"CallSid": "CA" + "7" * 32}, {"leg": leg.id}),
        ("/twilio/leg/status", {"CallSid": "CA" + "7" * 32, "CallStatus": "busy"}, {"leg": leg.id}),
        ("/twilio/leg/sip-status", {"CallSid": "CA" + "7" * 32, "CallStatus": "initiated"}, {"leg": leg.id}),
        (
            "/twilio/transcription",
            {
                "CallSid": SID1,
                "TranscriptionEvent": "transcription-content",
                "Final": "true",
                "TranscriptionData": json.dumps({"transcript": "hi"}),
                "Track": "inbound_track",
                "TranscriptionSid": "GT1",
                "SequenceId": "1",
            },
            {"call": c1.id},
        ),
        ("/twilio/sms-status", {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}, {}),
        # doctor --call's test call: each would record a hop of probe "p1"
        ("/twilio/smoke/answer", {"CallSid": "CA" + "6" * 32}, {"probe": "p1"}),
        ("/twilio/smoke/heard", {"CallSid": "CA" + "6" * 32}, {"probe": "p1"}),
        ("/twilio/smoke/gather", {"CallSid": "CA" + "6" * 32, "Digits": "1"}, {"probe": "p1"}),
        ("/twilio/smoke/dial-action", {"CallSid": "CA" + "6" * 32, "DialCallStatus": "busy"}, {"probe": "p1"}),
        ("/twilio/smoke/status", {"CallSid": "CA" + "6" * 32, "CallStatus": "completed"}, {"probe": "p1"}),
    ]


def test_every_twilio_endpoint_is_covered(h):
    routes = {r.rule for r in h.app.url_map.iter_rules() if r.rule.startswith("/twilio/")}
    assert routes <= {path for path, _, _ in twilio_requests(h)}, routes


# ------------------------------------------------------------------ signatures
def test_forged_stale_and_missing_twilio_signatures_change_nothing(h):
    other_form = {"CallSid": SID2, "CallStatus": "completed"}
    stale = twilio_signature(ORIGIN + "/twilio/status", other_form)  # a real signature, of another request
    with Unchanged(h):
        for path, form, query in twilio_requests(h):
            target = path + ("?" + urlencode(query) if query else "")
            cases = {
                "missing": h.twilio(path, form, query=query, sign=False),
                "empty": h.twilio(path, form, query=query, signature=""),
                "forged (other token)": h.client.post(
                    target,
                    data=form,
                    headers={"X-Twilio-Signature": twilio_signature(ORIGIN + target, form, token="not-" + TOKEN)},
                ),
                "other url": h.client.post(
                    target,
                    data=form,
                    headers={"X-Twilio-Signature": twilio_signature("https://evil.example" + target, form)},
                ),
                "internal url": h.client.post(
                    target,
                    data=form,
                    headers={"X-Twilio-Signature": twilio_signature("http://localhost" + target, form)},
                ),
                "stale (another request's)": h.twilio(path, form, query=query, signature=stale),
                "tampered body": h.client.post(
                    target,
                    data={**form, "Tampered": "1"},
                    headers={"X-Twilio-Signature": twilio_signature(ORIGIN + target, form)},
                ),
                "tampered query": h.client.post(
                    path + "?" + urlencode({**query, "call": "x", "leg": "y"}),
                    data=form,
                    headers={"X-Twilio-Signature": twilio_signature(ORIGIN + target, form)},
                ),
                "garbage": h.twilio(path, form, query=query, signature="A" * 28),
            }
            tried(len(cases))
            for name, reply in cases.items():
                assert reply.status_code == 403, (path, name, reply.status_code, reply.data)
                assert b"invalid Twilio signature" in reply.data


def test_forged_expired_and_mismatched_livekit_webhooks_change_nothing(h):
    import jwt

    body = livekit_body("participant_joined", h.transfer1["consult_room"], identity="bob", event_id="EV_forged")
    digest = __import__("base64").b64encode(__import__("hashlib").sha256(body.encode()).digest()).decode()
    now = int(time.time())
    expired = jwt.encode(
        {"iss": LK_KEY, "nbf": now - 900, "exp": now - 600, "sha256": digest},
        "lk-secret-" + "s" * 40,
        algorithm="HS256",
    )
    not_yet = jwt.encode(
        {"iss": LK_KEY, "nbf": now + 600, "exp": now + 900, "sha256": digest},
        "lk-secret-" + "s" * 40,
        algorithm="HS256",
    )
    cases = {
        "no auth": h.client.post("/livekit/webhook", data=body),
        "garbage": h.livekit(body, auth="garbage"),
        "bearer prefix of a forged token": h.livekit(body, auth="Bearer " + livekit_auth(body, secret="x" * 40)),
        "wrong secret": h.livekit(body, auth=livekit_auth(body, secret="y" * 40)),
        "wrong key": h.livekit(body, auth=livekit_auth(body, key="other-key")),
        "expired (stale)": h.livekit(body, auth=expired),
        "not yet valid": h.livekit(body, auth=not_yet),
        "hash of another body": h.livekit(body, auth=livekit_auth(body.replace("bob", "eve"))),
        "alg none": h.livekit(body, auth=jwt.encode({"iss": LK_KEY, "sha256": digest}, None, algorithm="none")),
    }
    tried(len(cases))
    with Unchanged(h):
        for name, reply in cases.items():
            assert reply.status_code == 401, (name, reply.status_code, reply.data)


# --------------------------------------------------------------------- replays
def test_replayed_twilio_requests_have_no_second_effect(h):
    c2 = h.call2
    status = {"CallSid": SID2, "CallStatus": "completed", "CallDuration": "42"}
    assert h.twilio("/twilio/status", status).status_code == 204
    assert h.call_by_sid(SID2).state == "ended"
    gather = {"CallSid": "CA" + "7" * 32, "Digits": "1"}
    first = h.twilio("/twilio/leg/gather", gather, query={"leg": h.erin_leg.id})
    assert first.status_code == 200 and b"<Dial" in first.data  # Erin accepted: bridged to the room
    voice = {"CallSid": SID3, "From": "+15557650003", "To": "+15550100000"}
    first_voice = h.twilio("/twilio/voice", voice)
    ended = [e["kind"] for e in h.services.views.timeline(c2.id)].count("call_ended")
    with Unchanged(h):
        for _ in range(3):
            assert h.twilio("/twilio/status", status).status_code == 204
            again = h.twilio("/twilio/leg/gather", gather, query={"leg": h.erin_leg.id})
            assert again.status_code == 200
            assert h.twilio("/twilio/voice", voice).data == first_voice.data
            tried(3)
    assert [e["kind"] for e in h.services.views.timeline(c2.id)].count("call_ended") == ended == 1


def test_replayed_and_duplicated_livekit_events_have_no_second_effect(h):
    room = h.transfer1["consult_room"]
    assert h.api("POST", f"/api/transfers/{h.transfer1['id']}/accept", "bob").status_code == 200
    body = livekit_body("participant_joined", room, identity="bob", event_id="EV_bob")
    auth = livekit_auth(body)
    assert h.livekit(body, auth).status_code == 204
    assert next(leg_ for leg_ in h.legs(h.call1.id) if leg_.agent_id == "bob").state == "joined"
    # A duplicate of the caller's participant_joined rewrites the call row with the same values.
    with Unchanged(h, ignore_version=True):
        for i in range(3):
            assert h.livekit(body, auth).status_code == 204  # the same delivery again
            dup = livekit_body("participant_joined", room, identity="bob", event_id=f"EV_bob_dup{i}")
            assert h.livekit(dup).status_code == 204  # the same event under a new id
            caller = livekit_body(
                "participant_joined",
                h.call2.room,
                identity="sip_+15557650002",
                kind=SIP_KIND,
                attributes={"sip.twilio.callSid": "CA" + "d" * 32},
                event_id=f"EV_c{i}",
            )
            assert h.livekit(caller).status_code == 204
            tried(3)


# ------------------------------------------------------- malformed and oversized
def test_malformed_bodies_are_refused_clearly(h):
    creds = {"Authorization": f"Bearer {h.credentials['alice']}"}
    with Unchanged(h):
        for data in (b"{", b"[]", b"null", b"\xff\xfe", b'{"call_id": 5}', b'"text"', b'{"a":' * 50):
            reply = h.client.post("/api/transfer/initiate", data=data, content_type="application/json", headers=creds)
            assert reply.status_code == 400, (data, reply.status_code, reply.data)
            assert reply.json.get("error")
            tried()
        for body in (
            {"call_id": h.call1.id, "target_agent_id": ["bob"]},
            {"call_id": {"x": 1}},
            {"call_id": h.call1.id, "target_agent_id": "bob", "mode": "lukewarm"},
            {"call_id": h.call1.id, "target_number": "12345"},
            {"call_id": h.call1.id, "target_agent_id": "bob", "target_number": "+15550001111"},
            {"call_id": "x" * 41, "target_agent_id": "bob"},
            {"room": 7},
            {},
        ):
            reply = h.api("POST", "/api/transfer/initiate", "alice", body)
            assert reply.status_code == 400, (body, reply.status_code, reply.data)
            tried()
        # Signed Twilio requests missing their fields: a clear 400, or graceful TwiML for a caller's leg.
        for path in ("/twilio/status", "/twilio/sip-status", "/twilio/leg/status", "/twilio/sms-status"):
            reply = h.twilio(path, {"Junk": "1"}, query={"call": h.call1.id, "leg": h.erin_leg.id})
            assert reply.status_code == 400 and b"missing form field" in reply.data, (path, reply.data)
            tried()
        for path in ("/twilio/voice", "/twilio/dial-action", "/twilio/leg/gather"):
            assert twiml_ok(h.twilio(path, {"Junk": "1"}, query={"call": "?", "leg": "?"})), path
            tried()
        reply = h.twilio(
            "/twilio/transcription",
            {"TranscriptionEvent": "transcription-content", "Final": "true", "TranscriptionData": "{not json"},
            query={"call": h.call1.id},
        )
        assert reply.status_code == 400
        # A signed LiveKit webhook whose body is not a WebhookEvent (only LiveKit can sign one: an
        # empty event is acknowledged and ignored, anything unparsable refused).
        for body in ("not json", '{"event": 5}', '{"room": "x"', "\u0000"):
            reply = h.livekit(body)
            assert reply.status_code in (400, 401), (body, reply.status_code)
            tried()
        for body in ("[]", "{}", '{"event": "participant_joined"}', '{"event": "room_finished", "room": {}}'):
            reply = h.livekit(body)
            assert reply.status_code in (204, 400, 401), (body, reply.status_code)
            tried()


def post_oversized(h: Harness, path: str) -> dict:
    """Every way of sending more than 256 KiB to ``path``; returns {case: status}."""
    big = "x" * (256 * 1024 + 1)
    if path.startswith("/twilio/"):
        form = {"CallSid": SID1, "Body": big}
        return {
            "signed": h.twilio(path, form, query={"call": h.call1.id}).status_code,
            "unsigned": h.client.post(path, data=form).status_code,
        }
    if path.startswith("/livekit/"):
        return {"signed": h.livekit(big).status_code, "unsigned": h.client.post(path, data=big).status_code}
    creds = {
        "Authorization": "Bearer admin-fault-token"
        if path.startswith(("/api/admin/", "/api/rooms/create"))
        else f"Bearer {h.credentials['alice']}"
    }
    return {
        "agent": h.client.post(
            path, data=json.dumps({"notes": big, "text": big}), content_type="application/json", headers=creds
        ).status_code
    }


def post_paths(h: Harness) -> list[str]:
    ids = {"call_id": h.call1.id, "transfer_id": h.transfer1["id"], "room": h.call1.room, "agent_id": "alice"}
    paths = []
    for rule in h.app.url_map.iter_rules():
        if "POST" in rule.methods:
            path = rule.rule
            for name, value in ids.items():
                path = path.replace(f"<{name}>", value)
            paths.append(path)
    return paths


def test_oversized_bodies_get_413(h):
    """Every endpoint that reads its body refuses more than 256 KiB with 413 (an unsigned Twilio request
    is refused with 403 before its body is read)."""
    reading = (
        "/twilio/",
        "/livekit/",
        "/api/transfer/initiate",
        f"/api/calls/{h.call1.id}/notes",
        "/api/auth/login",
        "/api/agents/me/status",
        "/api/rooms/join",
        "/api/summary/generate",
        "/api/twilio/",
        "/api/admin/agents",
    )
    with Unchanged(h):
        for path in post_paths(h):
            if not path.startswith(reading):
                continue
            statuses = post_oversized(h, path)
            tried(len(statuses))
            for case, status in statuses.items():
                allowed = (
                    (403, 413)
                    if case == "unsigned" and path.startswith("/twilio/")
                    else (401, 413)
                    if case == "unsigned"
                    else (413,)
                )
                assert status in allowed, (path, case, status)


def test_oversized_bodies_are_refused_before_any_handler_runs(h):
    """Every POST, whether or not its handler reads the body (this once cancelled transfers and hung up calls
    on 257 KiB requests: Werkzeug enforces MAX_CONTENT_LENGTH only when the body is read)."""
    wrong = {}
    before = h.snapshot()
    for path in post_paths(h):
        statuses = post_oversized(h, path)
        tried(len(statuses))
        bad = {
            case: status
            for case, status in statuses.items()
            if status != 413 and not (case == "unsigned" and status in (401, 403))
        }
        if bad:
            wrong[path] = bad
    assert not wrong, wrong
    assert h.snapshot() == before


# ------------------------------------------------------------------ unknown ids
def test_unknown_ids_are_refused_and_change_nothing(h):
    with Unchanged(h):
        for method, path, agent, expected in [
            ("GET", "/api/calls/call_nope", "alice", 404),
            ("GET", "/api/calls/call_nope/timeline", "alice", 404),
            ("POST", "/api/calls/call_nope/accept", "alice", 409),
            ("POST", "/api/calls/call_nope/decline", "alice", 409),
            ("POST", "/api/calls/call_nope/hangup", "alice", 409),
            ("POST", "/api/calls/call_nope/notes", "alice", 404),
            ("GET", "/api/transfers/xfer_nope", "alice", 404),
            ("POST", "/api/transfers/xfer_nope/complete", "alice", 404),
            ("POST", "/api/transfers/xfer_nope/cancel", "alice", 404),
            ("POST", "/api/transfers/xfer_nope/leave", "alice", 404),
            ("POST", "/api/transfers/xfer_nope/accept", "bob", 404),
            ("POST", "/api/transfers/xfer_nope/decline", "bob", 404),
            ("POST", "/api/rooms/room_nope/leave", "alice", 404),
            ("POST", "/api/rooms/join", "alice", 403),
            ("DELETE", "/api/admin/agents/nobody", None, 404),
            ("POST", "/api/admin/agents/nobody/status", None, 404),
        ]:
            headers = {"Authorization": "Bearer admin-fault-token"} if agent is None else {}
            body = {"room": "room_nope", "text": "hi", "status": "available"}
            reply = (
                h.api(method, path, agent, body)
                if agent
                else h.client.open(path, method=method, json=body, headers=headers)
            )
            assert reply.status_code == expected, (path, reply.status_code, reply.data)
            assert reply.json.get("error")
            tried()
        reply = h.api("POST", "/api/transfer/initiate", "alice", {"call_id": "call_nope", "target_agent_id": "bob"})
        assert reply.status_code == 404
        reply = h.api("POST", "/api/transfer/initiate", "carol", {"call_id": h.call2.id, "target_agent_id": "nobody"})
        assert reply.status_code == 404
        tried(2)
        for path, form, query in [
            ("/twilio/status", {"CallSid": "CA" + "f" * 32, "CallStatus": "completed"}, {}),
            ("/twilio/leg/status", {"CallSid": "CA" + "f" * 32, "CallStatus": "completed"}, {"leg": "leg_nope"}),
            ("/twilio/sip-status", {"CallSid": "CA" + "f" * 32, "CallStatus": "initiated"}, {"call": "call_nope"}),
            ("/twilio/sms-status", {"MessageSid": "SM_nope", "MessageStatus": "failed"}, {}),
            (
                "/twilio/transcription",
                {
                    "TranscriptionEvent": "transcription-content",
                    "Final": "true",
                    "TranscriptionData": '{"transcript": "hi"}',
                },
                {"call": "call_nope"},
            ),
        ]:
            assert h.twilio(path, form, query=query).status_code == 204, path
            tried()
        for path, query, must in [
            ("/twilio/leg/gather", {"leg": "leg_nope"}, b"<Hangup"),
            ("/twilio/leg/answer", {"leg": "leg_nope"}, b""),
            ("/twilio/leg/bridge", {"leg": "leg_nope"}, b"<Hangup"),
            ("/twilio/bridge", {"call": "call_nope"}, b"<Say"),
            ("/twilio/dial-action", {"call": "call_nope", "room": "r"}, b"<Say"),
        ]:
            reply = h.twilio(
                path,
                {"CallSid": "CA" + "f" * 32, "Digits": "1", "DialCallStatus": "completed", "CallStatus": "in-progress"},
                query=query,
            )
            assert twiml_ok(reply) and must in reply.data, (path, reply.data)
            tried()
        for event, identity in (
            ("participant_joined", "alice"),
            ("participant_left", "alice"),
            ("room_finished", ""),
            ("participant_connection_aborted", "bob"),
        ):
            assert (
                h.livekit(livekit_body(event, "call_nope", identity=identity, event_id=f"EV_{event}_nope")).status_code
                == 204
            )
            tried()


def test_hold_loop_only_for_a_call_on_hold(h):
    """POST /twilio/hold loops only while the call is on hold (it once looped for any call id, forever),
    and POST /twilio/queue only while the caller waits in line."""
    looping = {}
    for loop in ("/twilio/hold", "/twilio/queue"):
        for name, call_id in (("unknown call", "call_nope"), ("connected call", h.call2.id)):
            reply = h.twilio(loop, {"CallSid": "CA" + "f" * 32}, query={"call": call_id, "loop": "1"})
            tried()
            assert twiml_ok(reply)
            if loop.encode() in reply.data and b"<Redirect" in reply.data:
                looping[f"{loop} {name}"] = reply.data[-160:]
    assert not looping, looping


# ----------------------------------------------- out-of-order and duplicated callbacks
def test_out_of_order_twilio_callbacks_change_nothing_once_final(h):
    leg = h.erin_leg
    assert (
        h.twilio(
            "/twilio/leg/status", {"CallSid": "CA" + "7" * 32, "CallStatus": "busy"}, query={"leg": leg.id}
        ).status_code
        == 204
    )
    assert next(leg_ for leg_ in h.legs(h.call3.id) if leg_.id == leg.id).state == "busy"
    with Unchanged(h):
        for status in ("initiated", "ringing", "in-progress", "answered", "busy", "no-answer", "completed", "busy"):
            assert (
                h.twilio(
                    "/twilio/leg/status", {"CallSid": "CA" + "7" * 32, "CallStatus": status}, query={"leg": leg.id}
                ).status_code
                == 204
            )
            tried()
        for digits in ("1", "2", ""):  # a key press arriving after the phone call ended
            reply = h.twilio(
                "/twilio/leg/gather", {"CallSid": "CA" + "7" * 32, "Digits": digits}, query={"leg": leg.id}
            )
            assert twiml_ok(reply) and b"<Dial" not in reply.data
            tried()
        reply = h.twilio(
            "/twilio/leg/answer", {"CallSid": "CA" + "7" * 32, "AnsweredBy": "human"}, query={"leg": leg.id}
        )
        assert twiml_ok(reply) and b"<Gather" not in reply.data
        tried()
    # The caller's own status callbacks: 'completed' first, then late progress events.
    assert h.twilio("/twilio/status", {"CallSid": SID2, "CallStatus": "completed"}).status_code == 204
    with Unchanged(h):
        for status in ("ringing", "in-progress", "completed", "busy"):
            assert h.twilio("/twilio/status", {"CallSid": SID2, "CallStatus": status}).status_code == 204
            tried()
        # The Dial of the ended caller reports back late: Twilio ignores the reply, nothing changes.
        reply = h.twilio(
            "/twilio/dial-action",
            {"CallSid": SID2, "DialCallStatus": "completed", "CallStatus": "completed"},
            query={"call": h.call2.id, "room": h.call2.room},
        )
        assert twiml_ok(reply)
        tried()


def test_dial_action_of_a_redirected_caller_changes_nothing(h):
    """Call 1's caller was moved on hold by a REST redirect: Twilio still posts the Dial's action."""
    c1 = h.call1
    with Unchanged(h):
        for _ in range(2):
            reply = h.twilio(
                "/twilio/dial-action",
                {"CallSid": SID1, "DialCallStatus": "completed", "CallStatus": "in-progress"},
                query={"call": c1.id, "room": c1.room},
            )
            assert twiml_ok(reply) and (b"<Play" in reply.data or b"<Say" in reply.data)
            tried()


def test_out_of_order_livekit_events_change_nothing(h):
    room = h.transfer1["consult_room"]
    with Unchanged(h):
        # Bob leaves before he ever joined (his offer is still ringing): nothing to end.
        assert h.livekit(livekit_body("participant_left", room, identity="bob", event_id="EV_l1")).status_code == 204
        # Carol joins a room she has no leg in; a stranger joins call 2's room.
        assert (
            h.livekit(livekit_body("participant_joined", room, identity="carol", event_id="EV_j1")).status_code == 204
        )
        assert (
            h.livekit(
                livekit_body("participant_joined", h.call2.room, identity="mallory", event_id="EV_j2")
            ).status_code
            == 204
        )
        # Alice joins call 1's old room again, although her leg there already ended.
        assert (
            h.livekit(livekit_body("participant_joined", h.call1.room, identity="alice", event_id="EV_j3")).status_code
            == 204
        )
        # A room that never had accepted legs finishes.
        assert h.livekit(livekit_body("room_finished", "call_unrelated", event_id="EV_f1")).status_code == 204
        tried(5)


# ------------------------------------------------------------ illegal transfers
def test_illegal_transfer_requests_are_refused_and_change_nothing(h):
    t1, c1, c2 = h.transfer1["id"], h.call1, h.call2
    cases = [
        ("bob completes Alice's transfer", "bob", "POST", f"/api/transfers/{t1}/complete", {}, 403),
        ("bob cancels Alice's transfer", "bob", "POST", f"/api/transfers/{t1}/cancel", {}, 403),
        ("carol leaves Alice's transfer", "carol", "POST", f"/api/transfers/{t1}/leave", {}, 403),
        (
            "carol transfers Alice's call",
            "carol",
            "POST",
            "/api/transfer/initiate",
            {"call_id": c1.id, "target_agent_id": "dave"},
            403,
        ),
        (
            "alice transfers Carol's call",
            "alice",
            "POST",
            "/api/transfer/initiate",
            {"call_id": c2.id, "target_agent_id": "dave"},
            403,
        ),
        (
            "dave transfers a call he is not on",
            "dave",
            "POST",
            "/api/twilio/transfer",
            {"call_id": c2.id, "to": "+15550001111"},
            403,
        ),
        (
            "a second transfer of call 1",
            "alice",
            "POST",
            "/api/transfer/initiate",
            {"call_id": c1.id, "target_agent_id": "dave"},
            409,
        ),
        (
            "a second (cold) transfer of call 1",
            "alice",
            "POST",
            "/api/twilio/transfer",
            {"call_id": c1.id, "to": "+15550001111"},
            409,
        ),
        (
            "carol transfers to herself",
            "carol",
            "POST",
            "/api/transfer/initiate",
            {"call_id": c2.id, "target_agent_id": "carol"},
            400,
        ),
        (
            "carol transfers to busy Bob",
            "carol",
            "POST",
            "/api/transfer/initiate",
            {"call_id": c2.id, "target_agent_id": "bob"},
            409,
        ),
        ("complete before B joined", "alice", "POST", f"/api/transfers/{t1}/complete", {}, 409),
        ("leave before the caller is conferenced", "alice", "POST", f"/api/transfers/{t1}/leave", {}, 409),
        ("carol accepts a transfer offered to Bob", "carol", "POST", f"/api/transfers/{t1}/accept", {}, 409),
        ("dave declines a transfer offered to Bob", "dave", "POST", f"/api/transfers/{t1}/decline", {}, 409),
        ("carol reads Alice's transfer", "carol", "GET", f"/api/transfers/{t1}", None, 403),
        ("carol hangs up Alice's call", "carol", "POST", f"/api/calls/{c1.id}/hangup", {}, 409),
        ("carol accepts Alice's call", "carol", "POST", f"/api/calls/{c1.id}/accept", {}, 409),
        ("carol adds a note to Alice's call", "carol", "POST", f"/api/calls/{c1.id}/notes", {"text": "x"}, 403),
        (
            "carol asks for the summary of Alice's call",
            "carol",
            "POST",
            "/api/summary/generate",
            {"call_id": c1.id},
            403,
        ),
        (
            "carol resends Alice's summary",
            "carol",
            "POST",
            "/api/twilio/sms-summary",
            {"transfer_id": t1, "to": "+15550001111"},
            403,
        ),
        ("dave joins the consult room", "dave", "POST", "/api/rooms/join", {"room": h.transfer1["consult_room"]}, 403),
        (
            "nobody initiates",
            None,
            "POST",
            "/api/transfer/initiate",
            {"call_id": c1.id, "target_agent_id": "dave"},
            401,
        ),
    ]
    with Unchanged(h):
        for name, agent, method, path, body, expected in cases:
            reply = h.api(method, path, agent, body)
            assert reply.status_code == expected, (name, reply.status_code, reply.data)
            assert reply.json.get("error"), name
            tried()
        for bearer in ("alice.forged", "Bearer", "", "alice", h.credentials["alice"] + "x", "x" * 300):
            reply = h.client.post(
                "/api/transfer/initiate",
                json={"call_id": c1.id, "target_agent_id": "dave"},
                headers={"Authorization": f"Bearer {bearer}"},
            )
            assert reply.status_code == 401, bearer
            tried()
    assert len(h.transfers(c1.id)) == 1 and h.transfers(c2.id) == []
