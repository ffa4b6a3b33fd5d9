"""FakeLiveKit driven by the real livekit.api client, so the double's wire protocol
is checked against the SDK the gateway uses, not against our own assumptions."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import jwt
import pytest
import requests
from livekit import api

from gateway.sandbox.livekit_server import FakeLiveKit

KEY = "devkey"
SECRET = "secret-at-least-32-chars-long-xxxxxxxx"
CALLER = "+15551230000"


# --- helpers ------------------------------------------------------------------


class WebhookSink:
    """A tiny webhook receiver; answers ``fail_status`` to the first ``fail_first`` posts."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500):
        self.received: list[dict] = []
        self.fail_first = fail_first
        self.fail_status = fail_status
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                sink.received.append({"body": body, "headers": dict(self.headers)})
                status = sink.fail_status if len(sink.received) <= sink.fail_first else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/livekit/webhook"

    def events(self) -> list[api.WebhookEvent]:
        """Every delivery, checked the way the gateway checks it."""
        receiver = api.WebhookReceiver(api.TokenVerifier(KEY, SECRET))
        return [receiver.receive(r["body"], r["headers"]["Authorization"]) for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    s = WebhookSink()
    yield s
    s.close()


@pytest.fixture
def lk(sink):
    fake = FakeLiveKit(api_key=KEY, api_secret=SECRET, webhook_url=sink.url, webhook_retry_base=0.01).start()
    yield fake
    fake.stop()


def run(fake: FakeLiveKit, fn, token: str | None = None, **kwargs):
    """Run ``fn(client)`` with a fresh real LiveKitAPI client (key/secret or a fixed token)."""

    async def main():
        client = (
            api.LiveKitAPI.with_token(token, fake.url, **kwargs)
            if token
            else api.LiveKitAPI(fake.url, KEY, SECRET, **kwargs)
        )
        async with client:
            return await fn(client)

    return asyncio.run(main())


def server_error(fake: FakeLiveKit, fn, token: str | None = None, **kwargs) -> api.ServerError:
    with pytest.raises(api.ServerError) as info:
        run(fake, fn, token, **kwargs)
    return info.value


def make_token(identity: str = "", ttl: datetime.timedelta | None = None, secret: str = SECRET, **grants) -> str:
    token = api.AccessToken(KEY, secret).with_identity(identity).with_grants(api.VideoGrants(**grants))
    if ttl is not None:
        token.with_ttl(ttl)
    return token.to_jwt()


def browser_join(fake: FakeLiveKit, token_room: str, identity: str = "agent-1", **body) -> requests.Response:
    token = make_token(identity, room_join=True, room=token_room)
    return requests.post(f"{fake.url}/_sim/rtc/join", json={"token": token, **body}, timeout=5)


def setup_sip(fake: FakeLiveKit, ringing_timeout: float | None = None):
    """Inbound trunk with Twilio's credentials and a Callee rule: call_<called user>."""

    async def go(client: api.LiveKitAPI):
        info = api.SIPInboundTrunkInfo(
            name="twilio",
            auth_username="twilio",
            auth_password="s3cret",
            headers_to_attributes={"X-GW-Leg": "gw.leg"},
        )
        if ringing_timeout is not None:
            info.ringing_timeout.FromNanoseconds(int(ringing_timeout * 1e9))
        trunk = await client.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=info))
        rule = await client.sip.create_dispatch_rule(
            api.CreateSIPDispatchRuleRequest(
                dispatch_rule=api.SIPDispatchRuleInfo(
                    name="calls",
                    trunk_ids=[trunk.sip_trunk_id],
                    rule=api.SIPDispatchRule(
                        dispatch_rule_callee=api.SIPDispatchRuleCallee(room_prefix="call", randomize=False)
                    ),
                )
            )
        )
        return trunk, rule

    return run(fake, go)


def invite(fake: FakeLiveKit, uri: str = "sip:CA123@sip.example;transport=tcp", password: str = "s3cret", **extra):
    body = {
        "uri": uri,
        "username": "twilio",
        "password": password,
        "from": CALLER,
        "headers": {"X-GW-Leg": "customer"},
        "twilio_call_sid": "CAchild",
        "twilio_account_sid": "ACaccount",
        **extra,
    }
    return requests.post(f"{fake.url}/_sim/sip/invite", json=body, timeout=5)


def session(fake: FakeLiveKit, session_id: str) -> dict:
    return requests.get(f"{fake.url}/_sim/sip/{session_id}", timeout=5).json()


def wait_for(predicate, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


# --- rooms and auth -------------------------------------------------------------


def test_room_lifecycle_over_protobuf_wire(lk, sink):
    async def go(client: api.LiveKitAPI):
        created = await client.room.create_room(api.CreateRoomRequest(name="r1", empty_timeout=60, metadata="m"))
        again = await client.room.create_room(api.CreateRoomRequest(name="r1", metadata="other"))
        listed = await client.room.list_rooms(api.ListRoomsRequest(names=["r1"]))
        await client.room.delete_room(api.DeleteRoomRequest(room="r1"))
        after = await client.room.list_rooms(api.ListRoomsRequest())
        return created, again, listed, after

    created, again, listed, after = run(lk, go)
    assert created.sid.startswith("RM_") and created.empty_timeout == 60 and created.departure_timeout == 20
    assert (again.sid, again.metadata) == (created.sid, "m")  # existing room returned unchanged
    assert [r.name for r in listed.rooms] == ["r1"]
    assert list(after.rooms) == []

    err = server_error(lk, lambda c: c.room.delete_room(api.DeleteRoomRequest(room="nope")))
    assert (err.code, err.status) == ("not_found", 404)
    assert lk.twirp_log()[0] == {"method": "CreateRoom", "ok": True, "code": None, "status": 200}
    assert lk.wait_webhooks_idle()
    assert [e.event for e in sink.events()] == ["room_started", "room_finished"]


def test_token_without_room_create_is_refused(lk):
    token = make_token(room_list=True)
    err = server_error(lk, lambda c: c.room.create_room(api.CreateRoomRequest(name="r1")), token)
    assert (err.code, err.status) == ("unauthenticated", 401)
    assert run(lk, lambda c: c.room.list_rooms(api.ListRoomsRequest()), token).rooms == []


def test_room_admin_token_cannot_act_on_another_room(lk):
    assert browser_join(lk, "X", "a").ok and browser_join(lk, "Y", "b").ok
    token = make_token(room_admin=True, room="X")
    err = server_error(
        lk, lambda c: c.room.remove_participant(api.RoomParticipantIdentity(room="Y", identity="b")), token
    )
    assert (err.code, err.status) == ("unauthenticated", 401)
    run(lk, lambda c: c.room.remove_participant(api.RoomParticipantIdentity(room="X", identity="a")), token)
    assert lk.participants("X") == [] and [p["identity"] for p in lk.participants("Y")] == ["b"]


@pytest.mark.parametrize(
    "token",
    [
        make_token(room_list=True, ttl=datetime.timedelta(minutes=-10)),
        make_token(room_list=True, secret="another-secret-at-least-32-chars-long"),
        "not-a-jwt",
    ],
    ids=["expired", "wrong-secret", "garbage"],
)
def test_bad_tokens_get_plain_text_401(lk, token):
    err = server_error(lk, lambda c: c.room.list_rooms(api.ListRoomsRequest()), token)
    assert (err.code, err.status) == ("unknown", 401)  # no Twirp JSON to parse
    raw = requests.post(
        f"{lk.url}/twirp/livekit.RoomService/ListRooms",
        data=b"",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/protobuf"},
        timeout=5,
    )
    assert raw.status_code == 401 and raw.headers["Content-Type"].startswith("text/plain")


def test_json_twirp_without_token_is_unauthenticated_and_with_token_answers_json(lk):
    url = f"{lk.url}/twirp/livekit.RoomService/CreateRoom"
    anonymous = requests.post(url, json={"name": "r1"}, timeout=5)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
    ok = requests.post(
        url, json={"name": "r1"}, headers={"Authorization": f"Bearer {make_token(room_create=True)}"}, timeout=5
    )
    assert ok.status_code == 200 and ok.json()["name"] == "r1"


def test_participant_methods_and_sip_admin_methods(lk):
    assert browser_join(lk, "r1", "agent-1").ok

    async def go(client: api.LiveKitAPI):
        updated = await client.room.update_participant(
            api.UpdateParticipantRequest(room="r1", identity="agent-1", attributes={"role": "agent"})
        )
        listed = await client.room.list_participants(api.ListParticipantsRequest(room="r1"))
        trunk = await client.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(name="t", numbers=["+1"]))
        )
        trunk = await client.sip.update_inbound_trunk_fields(trunk.sip_trunk_id, numbers=["+2", "+3"], name="t2")
        rule = await client.sip.create_dispatch_rule(
            api.CreateSIPDispatchRuleRequest(
                rule=api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name="lobby")),
                trunk_ids=[trunk.sip_trunk_id],
            )
        )
        rule = await client.sip.update_dispatch_rule_fields(rule.sip_dispatch_rule_id, name="renamed")
        rules = await client.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest(trunk_ids=[trunk.sip_trunk_id]))
        deleted = await client.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk.sip_trunk_id))
        trunks = await client.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        return updated, listed, trunk, rule, rules, deleted, trunks

    updated, listed, trunk, rule, rules, deleted, trunks = run(lk, go)
    assert dict(updated.attributes) == {"role": "agent"}
    assert [(p.identity, p.kind) for p in listed.participants] == [("agent-1", api.ParticipantInfo.Kind.STANDARD)]
    assert trunk.sip_trunk_id.startswith("ST_") and list(trunk.numbers) == ["+2", "+3"] and trunk.name == "t2"
    assert rule.sip_dispatch_rule_id.startswith("SDR_") and rule.name == "renamed"
    assert rule.rule.dispatch_rule_direct.room_name == "lobby"
    assert [r.sip_dispatch_rule_id for r in rules.items] == [rule.sip_dispatch_rule_id]
    assert deleted.kind == api.SIPTrunkInfo.TRUNK_INBOUND and list(trunks.items) == []


# --- simulated SIP ingress ------------------------------------------------------------


def test_sip_invite_lands_in_callee_room_with_attributes(lk):
    trunk, rule = setup_sip(lk)
    answer = invite(lk)
    assert answer.status_code == 200
    call = answer.json()
    assert (call["room"], call["identity"], call["status"]) == ("call_CA123", f"sip_{CALLER}", "ringing")

    participant = run(
        lk, lambda c: c.room.get_participant(api.RoomParticipantIdentity(room="call_CA123", identity=call["identity"]))
    )
    assert participant.kind == api.ParticipantInfo.Kind.SIP and participant.sid == call["participant_sid"]
    assert dict(participant.attributes) == {
        "sip.callID": call["session_id"],
        "sip.trunkID": trunk.sip_trunk_id,
        "sip.ruleID": rule.sip_dispatch_rule_id,
        "sip.phoneNumber": CALLER,
        "sip.trunkPhoneNumber": "CA123",
        "sip.callStatus": "ringing",
        "sip.twilio.callSid": "CAchild",
        "sip.twilio.accountSid": "ACaccount",
        "gw.leg": "customer",
    }

    # URI headers after the user part; header names match case-insensitively.
    second = invite(lk, uri="sip:CA124?x-gw-leg=transfer@sip.example;transport=tcp", headers=None).json()
    assert lk.participants("call_CA124")[0]["attributes"]["gw.leg"] == "transfer"
    assert second["room"] == "call_CA124"


def test_sip_invite_rejections(lk):
    assert invite(lk).status_code == 404  # no trunk yet
    _, rule = setup_sip(lk)
    wrong = invite(lk, password="wrong")
    assert (wrong.status_code, wrong.json()) == (401, {"sip_status_code": 401})
    run(
        lk,
        lambda c: c.sip.delete_dispatch_rule(
            api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule.sip_dispatch_rule_id)
        ),
    )
    no_rule = invite(lk)
    assert (no_rule.status_code, no_rule.json()) == (404, {"sip_status_code": 404})
    assert lk.rooms() == {}


def test_ringing_call_is_answered_when_browser_joins_and_removal_sends_bye(lk, sink):
    setup_sip(lk)
    call = invite(lk).json()
    assert session(lk, call["session_id"])["status"] == "ringing"

    assert browser_join(lk, "call_CA123").json()["room"] == "call_CA123"
    state = session(lk, call["session_id"])
    assert (state["status"], state["sip_status_code"]) == ("active", 200)
    sip_attrs = next(p for p in lk.participants("call_CA123") if p["kind"] == "sip")["attributes"]
    assert sip_attrs["sip.callStatus"] == "active"

    run(
        lk,
        lambda c: c.room.remove_participant(api.RoomParticipantIdentity(room="call_CA123", identity=call["identity"])),
    )
    state = session(lk, call["session_id"])
    assert (state["status"], state["reason"], state["sip_status_code"]) == ("hangup", "removed", 200)
    assert lk.wait_webhooks_idle()
    left = [e for e in sink.events() if e.event == "participant_left"]
    assert [(e.participant.identity, e.participant.attributes["sip.callStatus"]) for e in left] == [
        (call["identity"], "hangup")
    ]


def test_removing_a_ringing_call_answers_486(lk):
    setup_sip(lk)
    call = invite(lk).json()
    run(
        lk,
        lambda c: c.room.remove_participant(api.RoomParticipantIdentity(room="call_CA123", identity=call["identity"])),
    )
    state = session(lk, call["session_id"])
    assert (state["status"], state["reason"], state["sip_status_code"]) == ("hangup", "removed", 486)


def test_ringing_timeout_ends_the_call_with_486(lk):
    setup_sip(lk, ringing_timeout=0.3)
    call = invite(lk).json()
    wait_for(lambda: session(lk, call["session_id"])["status"] == "hangup")
    state = session(lk, call["session_id"])
    assert (state["reason"], state["sip_status_code"]) == ("ringing_timeout", 486)
    assert lk.participants("call_CA123") == []


def test_bye_from_twilio_is_idempotent(lk):
    setup_sip(lk)
    call = invite(lk).json()
    browser_join(lk, "call_CA123")
    bye_url = f"{lk.url}/_sim/sip/{call['session_id']}/bye"
    first, second = requests.post(bye_url, timeout=5).json(), requests.post(bye_url, timeout=5).json()
    assert first == second and (first["status"], first["reason"]) == ("hangup", "bye")
    assert [p["identity"] for p in lk.participants("call_CA123")] == ["agent-1"]


def test_duplicate_identity_replaces_the_older_participant(lk, sink):
    first = browser_join(lk, "r1", "agent-1").json()
    second = browser_join(lk, "r1", "agent-1").json()
    assert [p["sid"] for p in lk.participants("r1")] == [second["participant_sid"]]
    assert lk.wait_webhooks_idle()
    assert [(e.event, e.participant.sid) for e in sink.events()[1:]] == [
        ("participant_joined", first["participant_sid"]),
        ("participant_left", first["participant_sid"]),
        ("participant_joined", second["participant_sid"]),
    ]


# --- simulated browser joins -------------------------------------------------------------


def test_browser_join_rejections_are_logged_with_grants(lk):
    other_room = browser_join(lk, "other", room="call_CA123")
    no_join = requests.post(
        f"{lk.url}/_sim/rtc/join", json={"token": make_token("agent-1", room="call_CA123", room_admin=True)}, timeout=5
    )
    expired = requests.post(
        f"{lk.url}/_sim/rtc/join",
        json={"token": make_token("agent-1", room="call_CA123", room_join=True, ttl=datetime.timedelta(minutes=-10))},
        timeout=5,
    )
    assert [r.status_code for r in (other_room, no_join, expired)] == [401, 401, 401]
    assert "error" in no_join.json()

    log = requests.get(f"{lk.url}/_sim/log", timeout=5).json()["joins"]
    assert log == lk.join_log()
    assert [(e["ok"], e["room"]) for e in log] == [(False, "other"), (False, "call_CA123"), (False, "call_CA123")]
    assert log[1]["grants"]["video"] == {
        "roomAdmin": True,
        "room": "call_CA123",
        "canPublish": True,
        "canSubscribe": True,
        "canPublishData": True,
    }
    assert "expired" in log[2]["error"].lower()
    assert lk.rooms() == {}


# --- room teardown and webhooks ----------------------------------------------------------


def test_delete_room_hangs_up_and_sends_signed_webhooks_in_order(lk, sink):
    setup_sip(lk)
    call = invite(lk).json()
    browser_join(lk, "call_CA123")
    run(lk, lambda c: c.room.delete_room(api.DeleteRoomRequest(room="call_CA123")))
    assert (session(lk, call["session_id"])["reason"]) == "room_deleted"

    assert lk.wait_webhooks_idle()
    events = sink.events()  # raises if a signature or body hash is wrong
    assert [(e.event, e.participant.identity) for e in events] == [
        ("room_started", ""),
        ("participant_joined", call["identity"]),
        ("participant_joined", "agent-1"),
        ("participant_left", call["identity"]),
        ("participant_left", "agent-1"),
        ("room_finished", ""),
    ]
    assert all(e.room.name == "call_CA123" and e.id.startswith("EV_") and e.created_at > 0 for e in events)
    headers = sink.received[0]["headers"]
    assert headers["Content-Type"] == "application/webhook+json" and headers["User-Agent"] == "LiveKit"
    assert not headers["Authorization"].startswith("Bearer")
    assert '"createdAt"' in sink.received[0]["body"]


def test_webhook_is_retried_after_a_500():
    sink = WebhookSink(fail_first=1)
    fake = FakeLiveKit(api_key=KEY, api_secret=SECRET, webhook_url=sink.url, webhook_retry_base=0.01).start()
    try:
        run(fake, lambda c: c.room.create_room(api.CreateRoomRequest(name="r1")))
        assert fake.wait_webhooks_idle()
        assert [(w["event"], w["status"], w["attempt"]) for w in fake.webhook_log()] == [
            ("room_started", 500, 1),
            ("room_started", 200, 2),
        ]
        assert [e.event for e in sink.events()] == ["room_started", "room_started"]
    finally:
        fake.stop()
        sink.close()


def test_empty_rooms_close_after_empty_and_departure_timeouts(lk, sink):
    async def go(client: api.LiveKitAPI):
        await client.room.create_room(api.CreateRoomRequest(name="never-joined", empty_timeout=1))
        await client.room.create_room(api.CreateRoomRequest(name="left", empty_timeout=60, departure_timeout=1))

    run(lk, go)
    browser_join(lk, "left")
    requests.post(f"{lk.url}/_sim/rtc/leave", json={"room": "left", "identity": "agent-1"}, timeout=5)
    assert set(lk.rooms()) == {"never-joined", "left"}
    wait_for(lambda: lk.rooms() == {}, timeout=3)
    assert lk.wait_webhooks_idle()
    finished = {e.room.name for e in sink.events() if e.event == "room_finished"}
    assert finished == {"never-joined", "left"}


# --- cloud-only methods and fault injection --------------------------------------------------


def test_move_participant_is_cloud_only(lk, sink):
    browser_join(lk, "a")
    move = api.MoveParticipantRequest(room="a", identity="agent-1", destination_room="b")
    err = server_error(lk, lambda c: c.room.move_participant(move))
    # Self-hosted: a plain "not implemented" error (Twirp internal), not the unimplemented code.
    assert (err.code, err.status, err.message) == ("internal", 500, "not implemented")

    cloud_sink = WebhookSink()
    cloud = FakeLiveKit(api_key=KEY, api_secret=SECRET, cloud=True, webhook_url=cloud_sink.url).start()
    try:
        browser_join(cloud, "a")
        run(cloud, lambda c: c.room.move_participant(move))
        assert cloud.participants("a") == [] and [p["identity"] for p in cloud.participants("b")] == ["agent-1"]
        assert cloud.wait_webhooks_idle()
        assert [(e.event, e.room.name) for e in cloud_sink.events()][-3:] == [
            ("participant_left", "a"),
            ("room_started", "b"),
            ("participant_joined", "b"),
        ]
    finally:
        cloud.stop()
        cloud_sink.close()


def test_fault_injection_makes_the_real_client_raise(lk):
    create = lambda c: c.room.create_room(api.CreateRoomRequest(name="r1"))  # noqa: E731
    lk.inject_fault("CreateRoom", status=503, code="unavailable", count=1)
    err = server_error(lk, create)
    assert (err.code, err.status) == ("unavailable", 503)
    assert run(lk, create).name == "r1"  # count=1: only the first call fails

    requests.post(
        f"{lk.url}/_sim/faults", json={"method": "*", "status": 500, "code": "internal", "count": None}, timeout=5
    )
    for _ in range(2):
        assert server_error(lk, lambda c: c.room.list_rooms(api.ListRoomsRequest())).code == "internal"
    requests.delete(f"{lk.url}/_sim/faults", timeout=5)

    lk.inject_fault("CreateSIPParticipant", status=429, code="resource_exhausted", meta={"sip_status_code": "486"})
    dial = api.CreateSIPParticipantRequest(sip_trunk_id="ST_x", sip_call_to="+15550001111", room_name="r1")
    with pytest.raises(api.SipCallError) as busy:
        run(lk, lambda c: c.sip.create_sip_participant(dial))
    assert (busy.value.sip_status_code, busy.value.status) == (486, 429)

    lk.inject_latency(0.3, method="ListRooms")
    started = time.monotonic()
    run(lk, lambda c: c.room.list_rooms(api.ListRoomsRequest()))
    assert time.monotonic() - started >= 0.3
    lk.clear_faults()

    lk.inject_fault("ListRooms", hang=True)
    with pytest.raises(asyncio.TimeoutError):  # the caller's own deadline; see the next test
        run(lk, lambda c: asyncio.wait_for(c.room.list_rooms(api.ListRoomsRequest()), 0.3))
    started = time.monotonic()
    lk.stop()  # must not wait for the hung request
    assert time.monotonic() - started < 2


def test_sdk_timeout_does_not_bound_twirp_calls(lk):
    """livekit-api 1.2.2 passes ``timeout=None`` to aiohttp on every call, which aiohttp
    reads as "no timeout": neither LiveKitAPI(timeout=...) nor the 10 s default applies.
    A hung server is only escaped with the caller's own deadline (asyncio.wait_for)."""
    lk.inject_fault("ListRooms", hang=True)
    threading.Timer(1.0, lk.stop).start()  # stop() wakes the hang, which then answers 503
    started = time.monotonic()
    err = server_error(
        lk, lambda c: c.room.list_rooms(api.ListRoomsRequest()), timeout=aiohttp.ClientTimeout(total=0.3)
    )
    assert err.code == "unavailable" and time.monotonic() - started >= 0.9


# --- trunk validation and webhook configuration ------------------------------------------------


def test_an_inbound_trunk_with_no_auth_no_addresses_no_numbers_is_refused(lk):
    err = server_error(
        lk,
        lambda c: c.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(name="x"))),
    )
    assert err.code == "invalid_argument" and err.message.startswith("for security, one of the fields must be set")
    allowed = api.SIPInboundTrunkInfo(name="x", allowed_addresses=["54.172.60.0/30"])
    run(lk, lambda c: c.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=allowed)))


def test_a_second_catch_all_trunk_conflicts_and_two_make_every_invite_fail(lk):
    trunk, _rule = setup_sip(lk)
    other = api.SIPInboundTrunkInfo(name="quickstart", auth_username="u", auth_password="p")
    err = server_error(lk, lambda c: c.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=other)))
    assert err.message.startswith(f'Conflicting inbound SIP Trunks: "<new>" and "{trunk.sip_trunk_id}"')
    assert invite(lk).status_code == 200  # one catch-all: calls go through

    lk.seed_inbound_trunk(other)  # made before the check, or by hand: now two catch-alls exist
    reply = invite(lk, uri="sip:CA456@sip.example;transport=tcp")
    assert (reply.status_code, reply.json()["sip_status_code"]) == (503, 503)


def test_webhooks_not_configured_or_signed_with_another_key(lk, sink):
    lk.webhooks_configured = False
    browser_join(lk, "quiet")
    assert lk.wait_webhooks_idle() and sink.received == []

    lk.webhooks_configured = True
    lk.webhook_signing_key = ("otherkey", "another-secret-at-least-32-chars-xxxx")
    browser_join(lk, "loud", identity="agent-2")
    assert lk.wait_webhooks_idle() and sink.received
    token = sink.received[-1]["headers"]["Authorization"]
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "otherkey"
    with pytest.raises(Exception, match="Signature verification failed"):
        sink.events()
