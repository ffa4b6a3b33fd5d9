"""Provider faults injected into the loopback doubles while a warm transfer runs.

Each test: a caller talks to agent A (browser), A starts a warm transfer to B, a fault is
injected into LiveKit, Twilio's REST API, OpenAI, SMS, or the database, and the transfer is
driven on. It ends with ``assert_caller_safe``: the caller was never dropped by the gateway
(no application error, still on the line) and is with an agent or on hold; every transfer is
in a defined state; and the call's timeline says what happened.

B is rung for 10 s here (not the shared World's 2 s), so a fault that delays the hold by a
second or two does not also turn into "B did not answer".
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import select

from gateway.adapters.store.models import Job
from tests.faults._counts import bump
from tests.faults._db import terminate_backends
from tests.faults.helpers import (
    assert_caller_safe,
    connect_call,
    entry,
    finish_phone_target,
    finish_warm,
    join_consult,
    kinds,
    start_warm,
    transfer_state,
)

RING_S = 10.0
# Real time for the Twilio simulator: the hold loop refetches /twilio/hold every ~3 s rather than every
# 60 ms, which keeps the known hold-loop/redirect race (test_a_repeated_bridge_redirect_does_not_drop_the_call)
# rare; assert_caller_safe reports it as an xfail when it does happen.
TIME_SCALE = 1.0
on_postgres = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postg"), reason="needs Postgres (TEST_DATABASE_URL)"
)


@pytest.fixture
def fworld(make_world):
    return make_world(ring_timeout_s=RING_S, time_scale=TIME_SCALE)


def jobs(world, kind: str) -> list[Job]:
    return world.store.read(lambda s: list(s.execute(select(Job).where(Job.kind == kind).order_by(Job.id)).scalars()))


def provider_errors(world, call_id: str, job: str) -> list[dict]:
    return [
        e
        for e in world.services.views.timeline(call_id)
        if e["kind"] == "provider_error" and e["detail"].get("job") == job
    ]


def hang_up_and_check_ended(world, call) -> None:
    call.hangup()
    world.wait(lambda: world.db_call(call.sid)["state"] == "ended", what="call ended")


# --------------------------------------------------------------------- LiveKit
@pytest.mark.parametrize(
    "method, job",
    [
        ("CreateRoom", "create_room"),  # the consult room cannot be created (LiveKit auto-creates it on join)
        ("RemoveParticipant", "remove_participant"),  # A cannot be taken out of the caller's room
        ("DeleteRoom", "delete_room"),  # the caller's old room cannot be closed
    ],
)
def test_livekit_5xx_for_a_whole_transfer(fworld, method, job):
    """Every job that gives up says so on the call's timeline, and the transfer still completes."""
    world = fworld
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    world.livekit.inject_fault(method=method, status=503, code="unavailable", count=None)
    bump("faults_injected")
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    assert finish_warm(world, alice, bob, transfer, call_id) == "completed"
    world.wait(
        lambda: (
            [j for j in jobs(world, job) if j.state == "failed"]
            and all(j.state in ("done", "failed") for j in jobs(world, job))
        ),
        timeout=20,
        what=f"every {job} job given up",
    )
    world.livekit.clear_faults()
    assert_caller_safe(world, call, call_id, allow=("agent",))
    assert world.db_call(call.sid)["agent_id"] == "bob"
    failed = [j for j in jobs(world, job) if j.state == "failed"]
    recorded = provider_errors(world, call_id, job)
    assert len(recorded) >= len(failed), (
        f"{len(failed)} {job} jobs gave up ({[j.payload for j in failed]}), "
        f"{len(recorded)} provider_error entries on the timeline"
    )
    hang_up_and_check_ended(world, call)


@pytest.mark.parametrize(
    "method, job",
    [("CreateRoom", "create_room"), ("RemoveParticipant", "remove_participant"), ("DeleteRoom", "delete_room")],
)
def test_livekit_5xx_once_is_retried(fworld, method, job):
    world = fworld
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    world.livekit.inject_fault(method=method, status=503, code="unavailable", count=1)
    bump("faults_injected")
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    assert finish_warm(world, alice, bob, transfer, call_id) == "completed"
    world.wait(
        lambda: any(j.state == "done" and j.attempts >= 2 for j in jobs(world, job)),
        timeout=10,
        what=f"{job} retried and done",
    )
    assert_caller_safe(world, call, call_id, allow=("agent",))
    assert not provider_errors(world, call_id, job)


@pytest.mark.parametrize(
    "method, job",
    [("CreateRoom", "create_room"), ("RemoveParticipant", "remove_participant"), ("DeleteRoom", "delete_room")],
)
def test_livekit_timeout_is_retried(make_world, method, job):
    world = make_world(provider_timeout_s=1.0, ring_timeout_s=RING_S, time_scale=TIME_SCALE)
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    world.livekit.inject_fault(method=method, hang=True, count=1)
    bump("faults_injected")
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    assert finish_warm(world, alice, bob, transfer, call_id) == "completed"
    world.wait(
        lambda: any(j.state == "done" and j.attempts >= 2 for j in jobs(world, job)),
        timeout=10,
        what=f"{job} timed out once, then done",
    )
    assert_caller_safe(world, call, call_id, allow=("agent",))


# ---------------------------------------------------------------- Twilio REST
def test_twilio_500_on_hold_redirect_is_retried(fworld):
    world = fworld
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    world.twilio.inject_fault(path_contains="Calls", status=500, code=20500, count=2)
    bump("faults_injected")
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    call.wait_current("play", timeout=10)  # on hold after the retries
    assert finish_warm(world, alice, bob, transfer, call_id) == "completed"
    assert any(j.attempts >= 3 and j.state == "done" for j in jobs(world, "hold_caller"))
    assert_caller_safe(world, call, call_id, allow=("agent",))


def test_twilio_429_with_retry_after_is_honoured(fworld):
    world = fworld
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    world.twilio.inject_fault(path_contains="Calls", status=429, code=20429, count=2, retry_after=0.6)
    bump("faults_injected")
    started = time.monotonic()
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    call.wait_current("play", timeout=10)
    assert time.monotonic() - started >= 1.1  # two Retry-After waits of 0.6 s
    assert [j.attempts for j in jobs(world, "hold_caller")] == [3]
    assert finish_warm(world, alice, bob, transfer, call_id) == "completed"
    assert_caller_safe(world, call, call_id, allow=("agent",))


def test_twilio_timeout_is_retried(make_world):
    world = make_world(provider_timeout_s=1.0, ring_timeout_s=RING_S, time_scale=TIME_SCALE)
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    world.twilio.inject_fault(path_contains="Calls", status=500, code=20500, count=1, hang=True)
    bump("faults_injected")
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    call.wait_current("play", timeout=10)
    assert finish_warm(world, alice, bob, transfer, call_id) == "completed"
    assert_caller_safe(world, call, call_id, allow=("agent",))


def test_twilio_slow_redirect_applied_after_client_timeout(make_world):
    """Twilio did the redirect but answered after our timeout: the retry repeats it harmlessly."""
    world = make_world(provider_timeout_s=1.0, ring_timeout_s=RING_S, time_scale=TIME_SCALE)
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    world.twilio.inject_latency(1.4, path_contains="Calls")
    bump("faults_injected")
    reply = alice.post("/api/transfer/initiate", {"call_id": call_id, "mode": "warm", "target_agent_id": "bob"})
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    call.wait_current("play", timeout=10)  # Twilio applied the redirect our client gave up on
    world.twilio.clear_faults()
    join_consult(alice, transfer)  # the retried redirect answered in time: A may move now
    assert finish_warm(world, alice, bob, transfer, call_id) == "completed"
    assert_caller_safe(world, call, call_id, allow=("agent",))


def test_twilio_down_for_the_whole_transfer(fworld):
    """Twilio's REST API refuses everything: the caller cannot be put on hold, so the transfer fails visibly
    and the caller stays with A (A only leaves once the caller is held; this once left the caller alone)."""
    world = fworld
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    world.twilio.inject_fault(path_contains="Calls", status=500, code=20500, count=10_000)
    bump("faults_injected")
    reply = alice.post("/api/transfer/initiate", {"call_id": call_id, "mode": "warm", "target_agent_id": "bob"})
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    world.wait(lambda: transfer_state(world, transfer["id"]) == "failed", timeout=20, what="transfer failed")
    assert provider_errors(world, call_id, "hold_caller")
    assert "caller_stays_with_agent" in kinds(world, call_id)
    assert "could not hold the caller" in world.services.views.transfer(transfer["id"])["end_reason"]
    assert bob.offers() == []
    world.twilio.clear_faults()
    assert_caller_safe(world, call, call_id, allow=("agent",))
    assert world.db_call(call.sid)["agent_id"] == "alice"
    assert "alice" in world.participants(call.room)


def test_target_phone_cannot_be_dialled(fworld):
    """calls.create for B is refused: B's leg fails before the transfer knew B was dialled; the transfer
    must still end (no_answer) and the caller stay with A (this once stuck the transfer in 'consulting')."""
    world = fworld
    alice = world.add_agent("alice")
    call, call_id = connect_call(world, alice)
    world.twilio.inject_fault(path_contains="Calls.json", status=400, code=21215, count=1)  # calls.create only
    bump("faults_injected")
    reply = alice.post("/api/transfer/initiate", {"call_id": call_id, "mode": "warm", "target_number": "+15550003333"})
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    # A's console joins the consult room if the caller was held before B's leg failed (then the caller
    # comes back to A there); otherwise A never left the caller.
    joined_consult = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not joined_consult:
        join = alice.post("/api/rooms/join", {"room": transfer["consult_room"]})
        if join.status_code == 200:
            alice.join(join.json()["token"])
            joined_consult = True
        elif transfer_state(world, transfer["id"]) in ("failed", "no_answer") and time.monotonic() > deadline - 8:
            break
        time.sleep(0.05)
    world.wait(lambda: provider_errors(world, call_id, "dial_leg"), timeout=10, what="dial_leg given up")
    assert "leg_failed" in kinds(world, call_id)
    world.wait(
        lambda: transfer_state(world, transfer["id"]) in ("failed", "no_answer"),
        timeout=6,
        what="transfer ended after B's leg failed",
    )
    assert entry(world, call_id, "caller_returning", to="agent A")
    assert_caller_safe(world, call, call_id, allow=("agent",))
    assert world.db_call(call.sid)["agent_id"] == "alice"


# ------------------------------------------------------------------- OpenAI
@pytest.mark.parametrize("fault", ["500", "429", "hang"])
def test_openai_failure_gives_the_fallback_summary(fworld, fault):
    world = fworld
    if fault == "hang":
        world.openai.hang(True)
    else:
        world.openai.fail_next(status=int(fault), count=3, retry_after=2 if fault == "429" else None)
    bump("faults_injected")
    try:
        alice, bob = world.add_agent("alice"), world.add_agent("bob")
        call, call_id = connect_call(world, alice)
        call.speak("My router keeps rebooting every night.")
        world.wait(lambda: world.services.views.transcript(call_id), what="transcript")
        transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
        summary = world.wait(
            lambda: world.services.views.transfer(transfer["id"])["summary"], timeout=5, what="summary"
        )
        ready = entry(world, call_id, "summary_ready")
        assert ready["detail"]["source"] == "fallback" and ready["detail"].get("openai_error"), ready
        assert ready["detail"]["elapsed_ms"] <= world.settings.summary_deadline_s * 1000 + 600
        assert summary["reason"] == "My router keeps rebooting every night."
        assert finish_warm(world, alice, bob, transfer, call_id) == "completed"
        assert_caller_safe(world, call, call_id, allow=("agent",))
    finally:
        world.openai.hang(False)


# ---------------------------------------------------------------------- SMS
@pytest.mark.parametrize("status, code", [(500, 20500), (400, 21610), (429, 20429)])
def test_sms_failure_is_on_the_timeline_and_the_transfer_goes_on(fworld, status, code):
    world = fworld
    world.twilio.inject_fault(
        path_contains="Messages", status=status, code=code, count=50, retry_after=0.2 if status == 429 else None
    )
    bump("faults_injected")
    world.twilio.script_phone("+15550008888", answer=True, answer_after=0.5, digits="1")
    alice = world.add_agent("alice")
    world.add_agent("bella", phone="+15550008888", browser=False)
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bella"})
    world.wait(lambda: "sms_failed" in kinds(world, call_id), timeout=10, what="sms_failed")
    assert finish_phone_target(world, alice, transfer, call_id, "bella") == "completed"
    assert_caller_safe(world, call, call_id, allow=("agent",))
    assert not [m for m in world.twilio.messages() if m["to"] == "+15550008888"]
    assert world.db_call(call.sid)["agent_id"] == "bella"


# ------------------------------------------------------------------ Postgres
def post_retrying(client, path: str, body: dict, attempts: int = 6):
    """The console retries a request that failed while the database was away."""
    reply = None
    for _ in range(attempts):
        reply = client.post(path, body)
        if reply.status_code < 500:
            return reply
        time.sleep(0.2)
    return reply


@on_postgres
def test_postgres_connections_killed_mid_transfer(fworld, database_url):
    world = fworld
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    stop, killed = threading.Event(), []

    def outage():
        while not stop.wait(0.3):
            killed.append(terminate_backends(database_url))
            bump("faults_injected")

    killer = threading.Thread(target=outage, daemon=True)
    killer.start()
    try:
        reply = post_retrying(
            alice, "/api/transfer/initiate", {"call_id": call_id, "mode": "warm", "target_agent_id": "bob"}
        )
        assert reply.status_code == 202, reply.text
        transfer = reply.json()["transfer"]
        join_consult(alice, transfer)
        bob.wait_offer("transfer", timeout=10)
        accepted = post_retrying(bob, f"/api/transfers/{transfer['id']}/accept", {})
        assert accepted.status_code == 200, accepted.text
        bob.join(accepted.json()["token"])
        time.sleep(1.0)
    finally:
        stop.set()
        killer.join()
    assert sum(killed) > 0
    world.wait(lambda: transfer_state(world, transfer["id"]) == "target_accepted", timeout=10, what="B accepted")
    assert alice.post(f"/api/transfers/{transfer['id']}/complete").status_code == 200
    assert alice.post(f"/api/transfers/{transfer['id']}/leave").status_code == 200
    world.wait(lambda: transfer_state(world, transfer["id"]) == "completed", timeout=10, what="completed")
    assert_caller_safe(world, call, call_id, allow=("agent",))
    hang_up_and_check_ended(world, call)
