"""The warm-transfer process manager over a unit of work: A hands the caller to B, and every ending
keeps the caller on the line (B fails: back to A; A leaves: to B, or to routing; the caller hangs
up: abandoned). The same tests on the in-memory twin and on the database (conftest.py).

The events come in as the leg services take them (B's console accepts or declines, a ring times
out, A leaves the room) and as the room service reports a join; the providers' side is only
queued, as jobs."""

from __future__ import annotations

import pytest

from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import transfers as T
from gateway.services import job_types as J
from gateway.services.errors import Refusal
from gateway.services.ports import Dest
from gateway.services.transfers import TransferError
from tests.services.conftest import INTRO_S, RING_S

AVAILABLE, BUSY, OFFLINE = agent_rules.AVAILABLE, agent_rules.BUSY, agent_rules.OFFLINE


@pytest.fixture
def held(desk):
    """Alice talks with a caller and starts a warm transfer to Bob; the caller is on hold and Alice
    waits in the consult room while Bob's console rings. (call id, transfer)"""
    desk.agent("alice", status=BUSY)
    desk.agent("bob", idle_min=5)
    desk.agent("carol", idle_min=1)
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id="bob", target_number=None, mode="warm", notes="refund"
    )
    desk.events.on_caller_held(transfer.id)  # Twilio fetched the hold music
    return call, desk.transfer(transfer.id)


def joins(desk, leg_id):
    """LiveKit reports the leg's agent in its room (as RoomEvents records it)."""

    def work(uow):
        leg = uow.legs.get(leg_id, fresh=True)
        uow.transition(leg, L.LEG, "join")
        if leg.transfer_id:
            desk.events.on_target_joined(uow, leg)

    desk.run(work)


def b_accepts_and_joins(desk, call):
    assert desk.agent_legs.browser_accept("bob", call) is not None
    joins(desk, next(leg for agent, leg in desk.offers(call) if agent == "bob"))


def consult_leg(desk, call, agent_id):
    return next(leg.id for leg in desk.units.read(lambda uow: uow.legs.live(call)) if leg.agent_id == agent_id)


def test_starting_a_transfer_holds_the_caller_rings_b_and_moves_a_to_the_consult_room(desk, held):
    call, transfer = held

    assert transfer.state == T.TARGET_RINGING
    assert desk.call_state(call) == (C.ON_HOLD, None)
    room = transfer.consult_room
    assert desk.legs_of(call) == [("bob", room, L.RINGING, None), ("alice", room, L.ACCEPTED, None)]
    assert desk.status("bob") == BUSY
    jobs = [job for job, _ in desk.jobs()]
    assert J.Summarize(transfer.id) in jobs and J.HoldCaller(call, transfer.id) in jobs
    assert J.CreateRoom(call, room, transfer.id) in jobs
    assert J.RemoveParticipant(call, "alice", call) in jobs  # A reconnects to the consult room
    assert desk.kinds(call) == [
        "transfer_initiated",
        "agent_ringing",
        "transfer_target_ringing",
        "caller_on_hold",
        "transfer_consulting" if False else "consult_room_ready",
    ]


def test_b_does_not_answer_and_the_caller_goes_back_to_a(desk, held):
    call, transfer = held

    desk.agent_legs.ring_timeout([transfer.target_leg_id])

    ended = desk.transfer(transfer.id)
    assert (ended.state, ended.end_reason, ended.active_call_id) == (T.NO_ANSWER, "B did not answer", None)
    assert desk.call_state(call) == (C.BRIDGING, None)
    assert desk.legs_of(call) == [("alice", transfer.consult_room, L.ACCEPTED, None)]
    assert desk.status("bob") == AVAILABLE  # a missed transfer offer does not set B offline
    assert (J.RedirectCaller(call, Dest.BRIDGE, 1), 0) in desk.jobs(J.RedirectCaller.kind)
    assert desk.jobs(J.ReturnTimeout.kind) == [
        (J.ReturnTimeout(call, consult_leg(desk, call, "alice"), transfer.id), RING_S)
    ]
    assert ("caller_returning", None, {"to": "agent A", "reason": "B did not answer"}) in desk.timeline(call)


def test_b_declines_before_the_caller_is_held_and_the_caller_stays_with_a(desk):
    desk.agent("alice", status=BUSY)
    desk.agent("bob", idle_min=5)
    call, a_leg = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id="bob", target_number=None, mode="warm", notes=None
    )

    assert desk.agent_legs.browser_decline("bob", call)

    assert desk.transfer(transfer.id).state == T.DECLINED
    assert desk.legs_of(call) == [("alice", call, L.JOINED, None)]  # A never left the caller's room
    assert ("caller_returning", None, {"to": "agent A", "reason": "B declined"}) in desk.timeline(call)


def test_a_completes_the_transfer_and_leaves_b_with_the_caller(desk, held):
    call, transfer = held
    joins(desk, consult_leg(desk, call, "alice"))
    b_accepts_and_joins(desk, call)

    desk.transfers.complete(transfer.id, "alice")

    assert desk.transfer(transfer.id).state == T.CONFERENCED
    assert desk.call_state(call) == (C.BRIDGING, None)  # joining the consult room, A and B in it
    assert (J.IntroTimeout(transfer.id), INTRO_S) in desk.jobs(J.IntroTimeout.kind)
    assert (J.RedirectCaller(call, Dest.BRIDGE, 1), 0) in desk.jobs(J.RedirectCaller.kind)

    desk.transfers.leave(transfer.id, "alice")

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.COMPLETED, "left after introduction")
    assert [(agent, state) for agent, _, state, _ in desk.legs_of(call)] == [("bob", L.JOINED)]
    assert desk.units.read(lambda uow: uow.calls.get(call).agent_id) == "bob"
    assert desk.status("alice") == AVAILABLE
    assert desk.jobs(J.IntroTimeout.kind) == []  # withdrawn: the introduction is over
    assert desk.kinds(call)[-3:] == ["transfer_completed", "leg_left", "call_owner_changed"]


def test_a_cannot_connect_the_caller_before_b_is_in_the_consult_room(desk, held):
    call, transfer = held
    desk.agent_legs.browser_accept("bob", call)

    with pytest.raises(TransferError) as refused:
        desk.transfers.complete(transfer.id, "alice")

    assert refused.value.kind == Refusal.CONFLICT
    assert desk.transfer(transfer.id).state == T.TARGET_ACCEPTED
    assert desk.call_state(call) == (C.ON_HOLD, None)


def test_a_second_transfer_of_the_same_call_is_refused(desk, held):
    call, transfer = held

    with pytest.raises(TransferError) as refused:
        desk.transfers.initiate(
            agent_id="alice", call_id=call, target_agent_id="carol", target_number=None, mode="warm", notes=None
        )

    assert refused.value.kind == Refusal.CONFLICT
    assert desk.status("carol") == AVAILABLE


def test_a_hangs_up_after_b_accepted_and_the_caller_goes_to_b(desk, held):
    call, transfer = held
    b_accepts_and_joins(desk, call)

    assert desk.agent_legs.agent_leave_room("alice", transfer.consult_room)

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.COMPLETED, "A hung up after B accepted")
    assert desk.call_state(call) == (C.BRIDGING, None)
    assert (J.RedirectCaller(call, Dest.BRIDGE, 1), 0) in desk.jobs(J.RedirectCaller.kind)
    assert desk.units.read(lambda uow: uow.calls.get(call).agent_id) == "bob"


def test_a_hangs_up_before_b_answers_and_the_caller_is_routed_again(desk, held):
    call, transfer = held

    assert desk.agent_legs.agent_leave_room("alice", transfer.consult_room)

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.CANCELLED, "A hung up before B accepted")
    assert desk.leg(transfer.target_leg_id).end_reason == "offer withdrawn: A hung up"
    # Still on hold, rung to the longest-idle agent not yet tried: neither A (who had the call)
    # nor B (whose withdrawn offer just freed them).
    assert desk.call_state(call) == (C.ON_HOLD, None)
    assert desk.legs_of(call) == [("carol", transfer.consult_room, L.RINGING, None)]
    assert desk.status("bob") == AVAILABLE


def test_the_caller_hangs_up_during_the_transfer(desk, held):
    call, transfer = held

    desk.run(lambda uow: desk.caller.hangup(uow, uow.calls.get(call), "caller hung up"))

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason, done.active_call_id) == (T.ABANDONED, "caller hung up", None)
    assert desk.call_state(call) == (C.ENDED, "caller hung up")
    assert desk.legs_of(call) == []
    assert desk.status("bob") == AVAILABLE and desk.status("alice") == AVAILABLE
    deleted = {job.room for job, _ in desk.jobs(J.DeleteRoom.kind)}
    assert deleted == {call, transfer.consult_room}


def test_a_cancels_and_the_caller_goes_back_to_a(desk, held):
    call, transfer = held

    desk.transfers.cancel(transfer.id, "alice")

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.CANCELLED, "cancelled by agent")
    assert desk.legs_of(call) == [("alice", transfer.consult_room, L.ACCEPTED, None)]
    assert desk.leg(transfer.target_leg_id).end_reason == "transfer cancelled"
    assert ("caller_returning", None, {"to": "agent A", "reason": "cancelled by agent"}) in desk.timeline(call)


def test_the_caller_put_on_hold_fails_and_stays_with_a(desk):
    desk.agent("alice", status=BUSY)
    desk.agent("bob", idle_min=5)
    call, a_leg = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id="bob", target_number=None, mode="warm", notes=None
    )

    desk.events.hold_failed(transfer.id, "Twilio said no")

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.FAILED, "could not hold the caller: Twilio said no")
    assert desk.call_state(call) == (C.CONNECTED, None)
    assert desk.legs_of(call) == [("alice", call, L.JOINED, None)]
    assert desk.status("bob") == AVAILABLE
    assert desk.kinds(call)[-1] == "caller_stays_with_agent"


def test_an_outside_number_whose_voicemail_answers_sends_the_caller_back_to_a(desk):
    desk.agent("alice", status=BUSY)
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id=None, target_number="+15550009999", mode="warm", notes=None
    )
    desk.events.on_caller_held(transfer.id)
    (b_leg,) = [leg for agent, leg in desk.offers(call) if agent is None]
    assert (J.DialLeg(b_leg, "+15550009999", True), 0) in desk.jobs(J.DialLeg.kind)

    desk.agent_legs.leg_answered(b_leg, "machine_end_beep")

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.NO_ANSWER, "B's voicemail answered")
    assert (J.HangupLeg(b_leg), 0) in desk.jobs(J.HangupLeg.kind)
    assert ("caller_returning", None, {"to": "agent A", "reason": "B's voicemail answered"}) in desk.timeline(call)


def test_the_introduction_time_runs_out_and_a_is_dropped(desk, held):
    call, transfer = held
    joins(desk, consult_leg(desk, call, "alice"))
    b_accepts_and_joins(desk, call)
    desk.transfers.complete(transfer.id, "alice")

    desk.events.intro_timeout(transfer.id)

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.COMPLETED, "introduction time over")
    assert [agent for agent, _, _, _ in desk.legs_of(call)] == ["bob"]


def test_b_leaves_during_the_introduction_and_a_keeps_the_caller(desk, held):
    call, transfer = held
    joins(desk, consult_leg(desk, call, "alice"))
    b_accepts_and_joins(desk, call)
    desk.transfers.complete(transfer.id, "alice")

    assert desk.agent_legs.agent_leave_room("bob", transfer.consult_room)

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.FAILED, "B left during the introduction")
    assert desk.units.read(lambda uow: uow.calls.get(call).agent_id) == "alice"
    assert [agent for agent, _, _, _ in desk.legs_of(call)] == ["alice"]


def test_a_who_never_comes_back_is_set_not_responding_and_the_caller_is_routed_again(desk, held):
    call, transfer = held
    desk.agent_legs.ring_timeout([transfer.target_leg_id])  # B does not answer: back to A
    a_leg = consult_leg(desk, call, "alice")

    desk.events.return_timeout(call, a_leg)  # a ring's time later, A is still not in the room

    assert desk.status("alice") == OFFLINE
    assert desk.legs_of(call) == [("carol", transfer.consult_room, L.RINGING, None)]
    assert desk.call_state(call) == (C.ON_HOLD, None)
    assert desk.kinds(call)[-5:] == [
        "agent_not_back",
        "leg_cancelled",
        "agent_not_responding",
        "agent_ringing",
        "caller_rerouted",
    ]
    assert desk.jobs(J.RedirectCaller.kind)[-1] == (J.RedirectCaller(call, Dest.HOLD), 0)
