"""The transfer process manager's decisions, one event at a time, without providers.

An in-process gateway (tests/faults/inproc.py: the Flask test client, SQLite, no job runner, no
reachable provider) is driven through its public entry points — the agents' API, Twilio's and
LiveKit's signed webhooks, and the stored timers, run one by one. After each event the test reads
what the gateway decided: the transfer's state and reason, the agents' legs, the caller's state,
the provider work it queued, and what it answered.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from gateway.adapters.store.models import Job, TimelineEntry, utcnow
from tests.faults.inproc import CALLER, Harness

SID = "CA" + "7" * 32


@pytest.fixture
def h(database_url):
    harness = Harness(database_url)
    harness.add_agent("alice")
    harness.add_agent("bob")
    yield harness
    harness.close()


def queued(h, *kinds) -> list[dict]:
    """Pending jobs (provider work and timers) of these kinds, oldest first."""
    jobs = h.store.read(
        lambda s: [
            (j.kind, dict(j.payload))
            for j in s.execute(select(Job).where(Job.state == "pending").order_by(Job.id)).scalars()
        ]
    )
    return [payload | {"kind": kind} for kind, payload in jobs if not kinds or kind in kinds]


def timeline(h, call_id) -> list[tuple[str, dict]]:
    return h.store.read(
        lambda s: [
            (e.kind, dict(e.detail or {}) | {"agent_id": e.agent_id, "transfer_id": e.transfer_id})
            for e in s.execute(
                select(TimelineEntry).where(TimelineEntry.call_id == call_id).order_by(TimelineEntry.id)
            ).scalars()
        ]
    )


def fire(h, kind: str, **match) -> None:
    """Run the pending job (a timer) of this kind now, as a worker would when it falls due."""
    jobs = h.store.read(
        lambda s: [
            (j.id, dict(j.payload))
            for j in s.execute(select(Job).where(Job.kind == kind, Job.state == "pending")).scalars()
        ]
    )
    ids = [i for i, payload in jobs if all(payload.get(k) == v for k, v in match.items())]
    assert ids, f"no pending {kind} job matching {match}; pending: {[j['kind'] for j in queued(h)]}"
    due = utcnow() - timedelta(seconds=1)  # its time has come
    h.store.run(lambda s: s.execute(update(Job).where(Job.id.in_(ids)).values(run_at=due)))
    for job_id in ids:
        assert h.services.runner.run_job(job_id)


def transfer_row(h, call):
    (transfer,) = h.transfers(call.id)
    return transfer


def legs_of(h, call, agent_id):
    return [(leg.room, leg.state) for leg in h.legs(call.id) if leg.agent_id == agent_id]


@pytest.fixture
def warm(h):
    """Alice is with the caller and has asked for a warm transfer to Bob (browser)."""
    call = h.connected_call(SID, "alice")
    transfer = h.warm_transfer(call, "alice", "bob")
    return call, transfer


def test_initiate_holds_the_caller_rings_b_and_starts_the_summary_at_once(h, warm):
    call, transfer = warm
    row = transfer_row(h, call)
    assert transfer["state"] == row.state == "target_ringing"  # a browser B is offered at once
    assert row.active_call_id == call.id and row.source_agent_id == "alice" and row.target_agent_id == "bob"
    assert h.call_by_sid(SID).state == "on_hold"
    kinds = [j["kind"] for j in queued(h)]
    for kind in ("summarize", "summary_deadline", "hold_caller", "create_room"):
        assert kind in kinds, kinds
    assert kinds.index("summarize") < kinds.index("hold_caller")  # the summary is never behind the hold
    (create,) = queued(h, "create_room")
    assert create["room"] == transfer["consult_room"] != call.room
    assert legs_of(h, call, "bob") == [(transfer["consult_room"], "ringing")]
    assert legs_of(h, call, "alice") == [(call.room, "joined")]  # A stays with the caller until the hold is real
    assert [o["kind"] for o in h.api("GET", "/api/agents/me/offers", "bob").json["offers"]] == ["transfer"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"target_agent_id": "bob", "mode": "hot"}, 400, "mode must be warm or cold"),
        ({"target_agent_id": "bob", "target_number": "+15550001111", "mode": "warm"}, 400, "give exactly one target"),
        ({"mode": "warm"}, 400, "give exactly one target"),
        ({"target_number": "555-0101", "mode": "cold"}, 400, "is not an E.164 number"),
        ({"target_agent_id": "alice", "mode": "warm"}, 400, "cannot transfer to yourself"),
        ({"target_agent_id": "nobody", "mode": "warm"}, 404, "unknown target agent"),
    ],
)
def test_a_refused_initiate_changes_nothing(h, body, status, error):
    call = h.connected_call(SID, "alice")
    before, jobs_before = h.snapshot(), queued(h)
    reply = h.api("POST", "/api/transfer/initiate", "alice", {"call_id": call.id, **body})
    assert reply.status_code == status and error in reply.json["error"], reply.json
    assert h.snapshot() == before and queued(h) == jobs_before


def test_only_the_agent_on_the_call_may_transfer_it_and_only_once(h, warm):
    call, _ = warm
    h.add_agent("carol")
    other = h.api(
        "POST", "/api/transfer/initiate", "bob", {"call_id": call.id, "target_agent_id": "carol", "mode": "warm"}
    )
    assert other.status_code == 403
    again = h.api(
        "POST", "/api/transfer/initiate", "alice", {"call_id": call.id, "target_agent_id": "carol", "mode": "warm"}
    )
    assert again.status_code == 409 and "already in progress" in again.json["error"]
    assert len(h.transfers(call.id)) == 1


def test_b_busy_is_refused(h):
    call = h.connected_call(SID, "alice")
    h.services.agents.set_status("bob", "busy")
    reply = h.api(
        "POST", "/api/transfer/initiate", "alice", {"call_id": call.id, "target_agent_id": "bob", "mode": "warm"}
    )
    assert reply.status_code == 409 and reply.json["error"] == "Bob is busy"
    assert h.transfers(call.id) == []


def test_connect_is_refused_until_b_has_joined(h, warm):
    call, transfer = warm
    early = h.api("POST", f"/api/transfers/{transfer['id']}/complete", "alice")
    assert early.status_code == 409
    assert (
        early.json["error"] == "cannot connect now: transfer is target_ringing, and B has not joined the consult room"
    )
    assert h.api("POST", f"/api/transfers/{transfer['id']}/accept", "bob").status_code == 200
    accepted = h.api("POST", f"/api/transfers/{transfer['id']}/complete", "alice")
    assert accepted.status_code == 409
    assert (
        accepted.json["error"]
        == "cannot connect now: transfer is target_accepted, and B has not joined the consult room"
    )
    assert transfer_row(h, call).state == "target_accepted"


def b_joins(h, call, transfer):
    assert h.api("POST", f"/api/transfers/{transfer['id']}/accept", "bob").status_code == 200
    h.joined(transfer["consult_room"], "bob")
    assert legs_of(h, call, "bob") == [(transfer["consult_room"], "joined")]


def test_connect_bridges_the_caller_into_the_consult_room_and_starts_the_intro_timer(h, warm):
    call, transfer = warm
    b_joins(h, call, transfer)
    reply = h.api("POST", f"/api/transfers/{transfer['id']}/complete", "alice")
    assert reply.status_code == 200 and reply.json["transfer"]["state"] == "conferenced"
    assert transfer_row(h, call).state == "conferenced"
    assert h.call_by_sid(SID).state == "bridging"
    (intro,) = queued(h, "intro_timeout")
    assert intro["transfer_id"] == transfer["id"]
    assert any(j["room"] == call.room for j in queued(h, "delete_room"))  # the caller's old room closes
    # A double click changes nothing.
    jobs = queued(h)
    assert h.api("POST", f"/api/transfers/{transfer['id']}/complete", "alice").status_code == 200
    assert queued(h) == jobs


def test_leave_hands_the_call_to_b(h, warm):
    call, transfer = warm
    early = h.api("POST", f"/api/transfers/{transfer['id']}/leave", "alice")
    assert early.status_code == 409 and early.json["error"] == "cannot leave now: transfer is target_ringing"
    b_joins(h, call, transfer)
    assert h.api("POST", f"/api/transfers/{transfer['id']}/complete", "alice").status_code == 200
    reply = h.api("POST", f"/api/transfers/{transfer['id']}/leave", "alice")
    assert reply.status_code == 200 and reply.json["transfer"]["state"] == "completed"
    row = transfer_row(h, call)
    assert (row.state, row.end_reason, row.active_call_id) == ("completed", "left after introduction", None)
    assert h.call_by_sid(SID).agent_id == "bob"
    owner = [d for k, d in timeline(h, call.id) if k == "call_owner_changed"]
    assert owner and owner[-1]["agent_id"] == "bob"
    assert queued(h, "intro_timeout") == []  # the introduction is over: its timer is withdrawn
    assert h.api("POST", f"/api/transfers/{transfer['id']}/leave", "alice").status_code == 200  # again: no-op


def test_the_intro_timer_drops_a_if_a_forgets_to_leave(h, warm):
    call, transfer = warm
    b_joins(h, call, transfer)
    assert h.api("POST", f"/api/transfers/{transfer['id']}/complete", "alice").status_code == 200
    fire(h, "intro_timeout", transfer_id=transfer["id"])
    row = transfer_row(h, call)
    assert row.state == "completed" and row.end_reason
    assert h.call_by_sid(SID).agent_id == "bob"


def test_a_cancels_while_b_rings_b_is_withdrawn_and_the_caller_returns(h, warm):
    call, transfer = warm
    reply = h.api("POST", f"/api/transfers/{transfer['id']}/cancel", "alice")
    assert reply.status_code == 200 and reply.json["transfer"]["state"] == "cancelled"
    row = transfer_row(h, call)
    assert (row.state, row.end_reason, row.active_call_id) == ("cancelled", "cancelled by agent", None)
    assert legs_of(h, call, "bob") == [(transfer["consult_room"], "cancelled")]
    assert h.api("GET", "/api/agents/me/offers", "bob").json["offers"] == []
    assert h.call_by_sid(SID).agent_id == "alice"
    assert ("transfer_cancelled", {"reason": "cancelled by agent", "transfer_id": transfer["id"]}) in [
        (k, {x: d[x] for x in ("reason", "transfer_id") if x in d}) for k, d in timeline(h, call.id)
    ]
    assert h.api("POST", f"/api/transfers/{transfer['id']}/cancel", "alice").status_code == 200  # again: no-op
    assert h.api("POST", f"/api/transfers/{transfer['id']}/cancel", "bob").status_code == 403
    assert h.api("POST", f"/api/transfers/{transfer['id']}/accept", "bob").status_code == 409


def test_cancel_after_the_caller_met_b_is_refused(h, warm):
    call, transfer = warm
    b_joins(h, call, transfer)
    assert h.api("POST", f"/api/transfers/{transfer['id']}/complete", "alice").status_code == 200
    reply = h.api("POST", f"/api/transfers/{transfer['id']}/cancel", "alice")
    assert reply.status_code == 409 and reply.json["error"] == "cannot cancel now: transfer is conferenced"
    assert transfer_row(h, call).state == "conferenced"


def test_b_declines_and_the_caller_goes_back_to_a(h, warm):
    call, transfer = warm
    assert h.api("POST", f"/api/transfers/{transfer['id']}/decline", "bob").status_code == 200
    row = transfer_row(h, call)
    assert (row.state, row.active_call_id) == ("declined", None)
    assert row.end_reason == "B declined"
    assert h.call_by_sid(SID).agent_id == "alice"


def status_webhook(h, sid, status):
    form = {"CallSid": sid, "CallStatus": status, "AccountSid": "AC" + "1" * 32, "From": CALLER, "To": "+15550100000"}
    return h.twilio("/twilio/status", form)


def test_the_caller_hangs_up_on_hold_the_transfer_is_abandoned_and_b_withdrawn(h, warm):
    call, transfer = warm
    assert status_webhook(h, SID, "completed").status_code in (200, 204)
    row = transfer_row(h, call)
    assert (row.state, row.active_call_id) == ("abandoned", None)
    assert h.call_by_sid(SID).state == "ended"
    assert legs_of(h, call, "bob") == [(transfer["consult_room"], "cancelled")]
    assert h.api("GET", "/api/agents/me/offers", "bob").json["offers"] == []


def test_the_caller_hangs_up_after_meeting_b_the_transfer_is_complete(h, warm):
    call, transfer = warm
    b_joins(h, call, transfer)
    assert h.api("POST", f"/api/transfers/{transfer['id']}/complete", "alice").status_code == 200
    assert status_webhook(h, SID, "completed").status_code in (200, 204)
    assert transfer_row(h, call).state == "completed"


def test_the_summary_deadline_stores_the_local_summary_and_texts_b(h):
    h.add_agent("bella", phone="+15550009999", browser=False)
    call = h.connected_call(SID, "alice")
    h.api("POST", f"/api/calls/{call.id}/notes", "alice", {"text": "Router 7781 replaced last week; still drops."})
    transfer = h.warm_transfer(call, "alice", "bella")
    assert queued(h, "send_sms") == []  # nothing to text before there is a summary
    fire(h, "summary_deadline", transfer_id=transfer["id"])
    row = transfer_row(h, call)
    # A's note leads the local summary: it is the reason B reads.
    assert row.summary_source == "fallback" and row.summary["reason"] == "Router 7781 replaced last week; still drops."
    ready = [d for k, d in timeline(h, call.id) if k == "summary_ready"]
    assert len(ready) == 1 and ready[0]["source"] == "fallback" and ready[0]["openai_error"] == "deadline passed"
    assert [(j["transfer_id"], j["to"]) for j in queued(h, "send_sms")] == [(transfer["id"], "+15550009999")]
    # The OpenAI answer that comes later (or a second deadline) changes nothing: first writer wins.
    fire(h, "summarize", transfer_id=transfer["id"])
    assert transfer_row(h, call).summary == row.summary
    assert len([k for k, _ in timeline(h, call.id) if k == "summary_ready"]) == 1


def test_no_text_for_a_browser_only_b_or_a_transfer_already_over(h, warm):
    call, transfer = warm
    fire(h, "summary_deadline", transfer_id=transfer["id"])
    assert transfer_row(h, call).summary is not None
    assert queued(h, "send_sms") == []  # Bob has no phone
