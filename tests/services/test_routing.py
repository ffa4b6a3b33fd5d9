"""Routing over a unit of work: who is offered a new caller, the line when nobody is free, what a
missed offer does, voicemail when nobody is signed in; the same tests on the in-memory twin and
on the database (conftest.py)."""

from __future__ import annotations

import pytest

from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import queues as Q
from gateway.services import job_types as J
from gateway.services.ports import Dest
from tests.services.conftest import MAX_WAIT_S, RING_S

AVAILABLE, BUSY, OFFLINE = agent_rules.AVAILABLE, agent_rules.BUSY, agent_rules.OFFLINE


def ring_out(desk, call_id):
    """The ring timer of the caller's offer fires: the agent rung did not answer."""
    desk.agent_legs.ring_timeout(desk.live_leg_ids(call_id))


def test_the_longest_idle_member_of_the_team_is_offered_the_call(desk):
    desk.agent("alice", teams=["sales"], idle_min=10, phone="+15550002222")
    desk.agent("bob", teams=["sales"], idle_min=30)
    desk.agent("carol", teams=["sales"], idle_min=5)
    desk.agent("dave", teams=["support"], idle_min=60)  # idle longer, but not in the team
    desk.agent("erin", teams=["sales"], status=OFFLINE, idle_min=90)
    call = desk.call(team="sales")

    assert desk.route_new_call(call)

    assert desk.ringing(call) == [("bob", "browser")]
    assert [desk.status(a) for a in ("alice", "bob", "carol", "dave")] == [AVAILABLE, BUSY, AVAILABLE, AVAILABLE]
    (leg,) = desk.live_leg_ids(call)
    assert desk.jobs() == [
        (J.RingTimeout((leg,), call), RING_S),
        (J.QueueTimeout(call), MAX_WAIT_S),
    ]
    assert desk.timeline(call) == [("agent_ringing", "bob", {"channels": ["browser"]})]
    assert desk.call_state(call) == (C.BRIDGING, None)


def test_an_agent_who_never_had_a_call_comes_first_and_a_phone_rings_with_the_console(desk):
    desk.agent("alice", idle_min=60)
    desk.agent("frank", phone="+15550003333")  # never had a call
    call = desk.call()

    assert desk.route_new_call(call)

    assert desk.ringing(call) == [("frank", "browser"), ("frank", "phone")]
    browser, phone = desk.live_leg_ids(call)
    assert desk.jobs(J.DialLeg.kind, J.RingTimeout.kind) == [
        (J.DialLeg(phone, "+15550003333", False), 0),
        (J.RingTimeout((browser, phone), call), RING_S),
    ]


def test_an_agent_who_let_it_ring_is_not_offered_the_same_caller_again(desk):
    desk.agent("alice", idle_min=30)
    desk.agent("bob", idle_min=10)
    call = desk.call()
    desk.route_new_call(call)
    assert desk.ringing(call) == [("alice", "browser")]

    ring_out(desk, call)

    assert desk.ringing(call) == [("bob", "browser")]
    assert desk.status("alice") == OFFLINE  # "not responding": the line stops ringing an empty desk
    assert desk.kinds(call) == ["agent_ringing", "leg_no_answer", "agent_not_responding", "agent_ringing"]

    desk.set_status("alice", AVAILABLE)  # back at the desk: still not rung again by this routing
    ring_out(desk, call)  # bob missed it too: the caller waits in line, hearing its greeting
    assert desk.ringing(call) == []
    assert desk.line(Q.DEFAULT_TEAM, call) == {call: (Q.WAITING, 1)}
    assert desk.jobs(J.RedirectCaller.kind) == [(J.RedirectCaller(call, Dest.QUEUE), 0)]


def test_with_nobody_free_callers_wait_in_line_in_the_order_they_called(desk):
    desk.agent("alice", teams=["sales"], status=BUSY)
    desk.agent("bob", teams=["support"], idle_min=10)  # free, but not in the team
    first, second = desk.call(team="sales", minutes_ago=0.2), desk.call(team="sales", minutes_ago=0.1)

    assert desk.route_new_call(second) and desk.route_new_call(first)

    assert desk.call_state(first) == (C.QUEUED, None)
    assert desk.line("sales", first, second) == {first: (Q.WAITING, 1), second: (Q.WAITING, 2)}
    assert desk.ringing(first) == desk.ringing(second) == []
    assert desk.timeline(second) == [("queued", None, {"team": "sales", "position": 1})]
    assert desk.timeline(first) == [("queued", None, {"team": "sales", "position": 1})]  # ahead: called earlier
    assert desk.jobs(J.DispatchTeam.kind, J.QueueTimeout.kind) == [
        (J.DispatchTeam(("sales",)), 0),  # once committed: an agent freed meanwhile takes the head
        (J.DispatchTeam(("sales",)), 0),
        (J.QueueTimeout(second), MAX_WAIT_S),
        (J.QueueTimeout(first), MAX_WAIT_S),
    ]


def test_an_agent_freed_is_offered_the_head_of_the_line_at_once(desk):
    desk.agent("alice", teams=["sales"], status=BUSY)
    first, second = desk.call(team="sales", minutes_ago=0.2), desk.call(team="sales", minutes_ago=0.1)
    desk.route_new_call(first)
    desk.route_new_call(second)

    desk.run(lambda uow: desk.legs.release_agent(uow, "alice"))  # her last call ended

    assert desk.ringing(first) == [("alice", "browser")]
    assert desk.status("alice") == BUSY
    assert desk.line("sales", first, second) == {first: (Q.OFFERED, 1), second: (Q.WAITING, 2)}
    assert desk.timeline(first)[-2:] == [
        ("queue_offered", "alice", {"team": "sales", "offer": 1}),
        ("agent_ringing", "alice", {"channels": ["browser"]}),
    ]


def test_a_missed_offer_puts_the_caller_back_at_the_head_of_the_line(desk):
    desk.agent("alice", teams=["sales"], status=BUSY)
    desk.agent("bob", teams=["sales"], status=BUSY)
    first, second = desk.call(team="sales", minutes_ago=0.2), desk.call(team="sales", minutes_ago=0.1)
    desk.route_new_call(first)
    desk.route_new_call(second)
    desk.run(lambda uow: desk.legs.release_agent(uow, "bob"))
    assert desk.ringing(first) == [("bob", "browser")]

    ring_out(desk, first)  # bob lets it ring; alice is still on a call

    assert desk.status("bob") == OFFLINE
    assert desk.line("sales", first, second) == {first: (Q.WAITING, 1), second: (Q.WAITING, 2)}
    assert desk.call_state(first) == (C.QUEUED, None)
    assert desk.kinds(first)[-3:] == ["leg_no_answer", "agent_not_responding", "queue_offer_failed"]

    desk.run(lambda uow: desk.legs.release_agent(uow, "alice"))
    assert desk.ringing(first) == [("alice", "browser")]  # the first caller still, not the second
    assert desk.line("sales", first, second) == {first: (Q.OFFERED, 1), second: (Q.WAITING, 2)}


def test_voicemail_when_nobody_of_the_team_is_signed_in(desk):
    desk.agent("alice", teams=["sales"], status=OFFLINE)
    desk.agent("bob", teams=["support"], idle_min=5)
    call = desk.call(team="sales")

    assert not desk.route_new_call(call)

    assert desk.call_state(call) == (C.VOICEMAIL, "nobody staffed")
    assert desk.ringing(call) == [] and desk.jobs() == []
    assert desk.status("bob") == AVAILABLE


def test_a_waiting_caller_whose_offer_is_missed_by_the_last_agent_signed_in_goes_to_voicemail(desk):
    desk.agent("alice", teams=["sales"], status=BUSY)
    call = desk.call(team="sales")
    desk.route_new_call(call)
    desk.run(lambda uow: desk.legs.release_agent(uow, "alice"))

    ring_out(desk, call)  # alice, the only one signed in, is now "not responding"

    assert desk.call_state(call) == (C.VOICEMAIL, "nobody staffed")
    assert desk.line("sales", call) == {}
    assert desk.jobs(J.RedirectCaller.kind) == [(J.RedirectCaller(call, Dest.APOLOGY), 0)]
    assert desk.kinds(call)[-3:] == ["queue_offer_failed", "queue_left", "no_agent"]
    assert desk.timeline(call)[-1] == ("no_agent", None, {"reason": "nobody staffed"})


def test_a_unit_of_work_that_fails_leaves_nothing_behind(desk):
    desk.agent("alice", idle_min=5, phone="+15550002222")
    call = desk.call()

    def work(uow):
        desk.routing.route_new_call(uow, uow.calls.get(call))
        raise RuntimeError("the webhook failed after routing")

    with pytest.raises(RuntimeError):
        desk.run(work)

    assert desk.status("alice") == AVAILABLE
    assert desk.ringing(call) == [] and desk.jobs() == [] and desk.timeline(call) == []
    assert desk.route_new_call(call)  # and the next attempt routes as if nothing had happened
    assert desk.ringing(call) == [("alice", "browser"), ("alice", "phone")]


def test_a_caller_whose_offer_is_missed_after_the_longest_wait_goes_to_voicemail(desk):
    desk.agent("alice", teams=["sales"], status=BUSY)
    desk.agent("bob", teams=["sales"], status=BUSY)
    call = desk.call(team="sales", minutes_ago=MAX_WAIT_S / 60 + 1)
    desk.route_new_call(call)
    desk.run(lambda uow: desk.legs.release_agent(uow, "bob"))

    ring_out(desk, call)  # alice is still signed in, but the caller has waited long enough

    assert desk.call_state(call) == (C.VOICEMAIL, "queue timeout")
    assert desk.kinds(call)[-2:] == ["queue_timed_out", "no_agent"]
    assert desk.jobs(J.RedirectCaller.kind) == [(J.RedirectCaller(call, Dest.APOLOGY), 0)]
