"""Bad and repeated webhook input: clear errors or graceful TwiML, never a 5xx, never corrupted state."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from gateway import create_app
from gateway.adapters.store.models import Call, Leg
from gateway.bootstrap import build
from gateway.config import Settings

TOKEN = "test-auth-token"
ORIGIN = "https://gw.example.com"


@pytest.fixture
def gateway(database_url):
    # Provider endpoints point at closed ports: nothing here may need a provider synchronously.
    settings = Settings(
        database_url=database_url,
        public_base_url=ORIGIN,
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token=TOKEN,
        twilio_phone_number="+15550100000",
        twilio_api_base_url="http://127.0.0.1:9",
        livekit_url="http://127.0.0.1:9",
        livekit_api_key="k",
        livekit_api_secret="s" * 40,
        livekit_sip_host="sip.example",
        run_jobs=False,
        secret_key="x",
        admin_token="admin",
    )
    services = build(settings)
    app = create_app(services=services)
    yield app, services
    services.stop()
    services.gw.store.engine.dispose()


def signed_post(client, path, form, *, token=TOKEN, url=None):
    url = url or ORIGIN + path
    signature = RequestValidator(token).compute_signature(url, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def count(services, model) -> int:
    return services.gw.store.read(lambda s: s.execute(select(func.count()).select_from(model)).scalar())


def voice_form(sid="CA" + "a" * 32, **extra):
    return {
        "CallSid": sid,
        "From": "+15557654321",
        "To": "+15550100000",
        "CallStatus": "ringing",
        "AccountSid": "AC" + "1" * 32,
        "Direction": "inbound",
        **extra,
    }


def add_available_agent(services, agent_id="alice"):
    services.agents.add(agent_id, agent_id.title(), None, True, "available")


def test_missing_signature_is_refused_and_nothing_stored(gateway):
    app, services = gateway
    reply = app.test_client().post("/twilio/voice", data=voice_form())
    assert reply.status_code == 403 and count(services, Call) == 0


def test_forged_signature_is_refused(gateway):
    app, services = gateway
    reply = signed_post(app.test_client(), "/twilio/voice", voice_form(), token="someone-elses-token")
    assert reply.status_code == 403 and count(services, Call) == 0


def test_signature_for_another_url_is_refused(gateway):
    app, services = gateway
    reply = signed_post(app.test_client(), "/twilio/voice", voice_form(), url="https://evil.example/twilio/voice")
    assert reply.status_code == 403


def test_tampered_body_is_refused(gateway):
    app, services = gateway
    form = voice_form()
    signature = RequestValidator(TOKEN).compute_signature(ORIGIN + "/twilio/voice", form)
    reply = app.test_client().post(
        "/twilio/voice", data={**form, "From": "+15550000001"}, headers={"X-Twilio-Signature": signature}
    )
    assert reply.status_code == 403


def test_voice_answers_bridge_twiml_fast_path(gateway):
    app, services = gateway
    add_available_agent(services)
    reply = signed_post(app.test_client(), "/twilio/voice", voice_form())
    assert reply.status_code == 200 and reply.mimetype == "text/xml"
    root = ET.fromstring(reply.data)
    dial = root.find("Dial")
    assert dial.get("answerOnBridge") == "true" and dial.get("action").startswith(ORIGIN + "/twilio/dial-action")
    sip = dial.find("Sip")
    assert sip.text.startswith("sip:CA" + "a" * 32 + "@sip.example;transport=tcp")
    assert sip.get("statusCallback").startswith(ORIGIN + "/twilio/sip-status")


def test_retried_voice_webhook_gives_same_answer_and_one_call(gateway):
    app, services = gateway
    add_available_agent(services)
    client = app.test_client()
    first = signed_post(client, "/twilio/voice", voice_form())
    second = signed_post(client, "/twilio/voice", voice_form())
    assert first.data == second.data and count(services, Call) == 1 and count(services, Leg) == 1


def test_concurrent_duplicate_voice_webhooks_store_one_call(gateway):
    app, services = gateway
    add_available_agent(services)
    replies = []

    def hit():
        reply = signed_post(app.test_client(), "/twilio/voice", voice_form())
        replies.append((reply.status_code, b"<Dial" in reply.data))

    threads = [threading.Thread(target=hit) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    # Every duplicate gets the same bridge (none the apology), and only one call and one leg exist.
    assert replies == [(200, True)] * 6 and count(services, Call) == 1 and count(services, Leg) == 1


def test_malformed_voice_fields_still_get_graceful_twiml(gateway):
    app, services = gateway
    reply = signed_post(app.test_client(), "/twilio/voice", {"CallSid": "not-a-sid", "To": "+15550100000"})
    assert reply.status_code == 200 and b"<Say" in reply.data and count(services, Call) == 0


def test_no_agent_gets_apology_with_voicemail(gateway):
    app, services = gateway
    reply = signed_post(app.test_client(), "/twilio/voice", voice_form())
    root = ET.fromstring(reply.data)
    assert "no one is available" in root.find("Say").text and root.find("Record") is not None


def test_voice_never_answers_5xx_when_the_store_breaks(gateway):
    app, services = gateway
    add_available_agent(services)
    services.gw.store.engine.dispose()
    with services.gw.store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE legs")
    reply = signed_post(app.test_client(), "/twilio/voice", voice_form(sid="CA" + "b" * 32))
    assert reply.status_code == 200 and b"having trouble" in reply.data


def test_status_for_unknown_call_is_harmless(gateway):
    app, services = gateway
    reply = signed_post(app.test_client(), "/twilio/status", {"CallSid": "CA" + "9" * 32, "CallStatus": "completed"})
    assert reply.status_code == 204 and count(services, Call) == 0


def test_status_without_fields_is_a_clear_400(gateway):
    app, _ = gateway
    reply = signed_post(app.test_client(), "/twilio/status", {"CallSid": "CA" + "9" * 32})
    assert reply.status_code == 400 and b"CallStatus" in reply.data


def test_duplicated_and_out_of_order_status_callbacks(gateway):
    app, services = gateway
    add_available_agent(services)
    client = app.test_client()
    signed_post(client, "/twilio/voice", voice_form())
    sid = "CA" + "a" * 32
    for status in ("completed", "completed", "ringing", "in-progress", "completed"):
        assert signed_post(client, "/twilio/status", {"CallSid": sid, "CallStatus": status}).status_code == 204
    call = services.gw.store.read(lambda s: s.execute(select(Call)).scalar_one())
    assert call.state == "ended"
    timeline = [e["kind"] for e in services.views.timeline(call.id)]
    assert timeline.count("call_ended") == 1


def test_dial_action_for_unknown_call_keeps_caller_informed(gateway):
    app, _ = gateway
    reply = signed_post(
        app.test_client(),
        "/twilio/dial-action?call=nope&room=x",
        {"CallSid": "CA" + "c" * 32, "DialCallStatus": "failed", "CallStatus": "in-progress"},
    )
    assert reply.status_code == 200 and b"<Say" in reply.data


def test_leg_gather_for_unknown_leg_hangs_up_politely(gateway):
    app, _ = gateway
    reply = signed_post(
        app.test_client(), "/twilio/leg/gather?leg=leg_missing", {"CallSid": "CA" + "d" * 32, "Digits": "1"}
    )
    assert reply.status_code == 200 and b"<Hangup" in reply.data


def test_transcription_with_bad_json_is_a_clear_400(gateway):
    app, _ = gateway
    reply = signed_post(
        app.test_client(),
        "/twilio/transcription?call=x",
        {"TranscriptionEvent": "transcription-content", "Final": "true", "TranscriptionData": "{not json"},
    )
    assert reply.status_code == 400


def test_livekit_webhook_without_valid_jwt_is_refused(gateway):
    app, services = gateway
    body = json.dumps({"event": "participant_joined", "room": {"name": "call_CA1"}, "id": "EV_1"})
    assert (
        app.test_client().post("/livekit/webhook", data=body, headers={"Authorization": "garbage"}).status_code == 401
    )
    assert app.test_client().post("/livekit/webhook", data=body).status_code == 401


def test_livekit_webhook_with_body_not_matching_hash_is_refused(gateway):
    import base64
    import hashlib

    from livekit import api

    app, _ = gateway
    body = json.dumps({"event": "room_finished", "room": {"name": "call_CA1"}, "id": "EV_2"})
    token = (
        api.AccessToken("k", "s" * 40)
        .with_sha256(base64.b64encode(hashlib.sha256(b"something else").digest()).decode())
        .to_jwt()
    )
    assert app.test_client().post("/livekit/webhook", data=body, headers={"Authorization": token}).status_code == 401


def test_api_requires_an_agent(gateway):
    app, _ = gateway
    client = app.test_client()
    assert client.get("/api/agents").status_code == 401
    assert client.get("/api/agents", headers={"Authorization": "Bearer alice.wrong"}).status_code == 401
    assert client.post("/api/transfer/initiate", json={}).status_code == 401


def test_admin_api_requires_the_admin_token(gateway):
    app, services = gateway
    client = app.test_client()
    assert client.get("/api/admin/agents").status_code == 401
    reply = client.post(
        "/api/admin/agents",
        json={"id": "bob", "name": "Bob", "phone": "555"},
        headers={"Authorization": "Bearer admin"},
    )
    assert reply.status_code == 400 and "E.164" in reply.json["error"]
    reply = client.post(
        "/api/admin/agents",
        json={"id": "bob", "name": "Bob", "phone": "+15550001111"},
        headers={"Authorization": "Bearer admin"},
    )
    assert reply.status_code == 201 and reply.json["credential"].startswith("bob.")
    agent = client.get("/api/me", headers={"Authorization": f"Bearer {reply.json['credential']}"})
    assert agent.status_code == 200 and agent.json["agent"]["id"] == "bob"


def test_join_token_only_for_rooms_the_agent_is_in(gateway):
    app, services = gateway
    credential = services.agents.add("alice", "Alice", None, True, "available")
    reply = app.test_client().post(
        "/api/rooms/join", json={"room": "call_CAanything"}, headers={"Authorization": f"Bearer {credential}"}
    )
    assert reply.status_code == 403


def test_initiate_transfer_validation(gateway):
    app, services = gateway
    credential = services.agents.add("alice", "Alice", None, True, "available")
    headers = {"Authorization": f"Bearer {credential}"}
    client = app.test_client()
    assert (
        client.post("/api/transfer/initiate", data="nope", headers=headers, content_type="application/json").status_code
        == 400
    )
    assert (
        client.post(
            "/api/transfer/initiate", json={"call_id": "c1", "target_number": "12345"}, headers=headers
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/api/transfer/initiate", json={"call_id": "missing", "target_agent_id": "bob"}, headers=headers
        ).status_code
        == 404
    )
