"""The rules of transfers and calls as the people on them meet them, one ending or refusal at a
time: what the caller hears next, who is rung in which room, which leg ends and why, the jobs
queued for the providers and the timeline the console shows (a transfer's own entries included).
The same tests on the in-memory twin and on the database (conftest.py)."""

from __future__ import annotations

import pytest

from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.domain import transfers as T
from gateway.services import job_types as J
from gateway.services.errors import Refusal
from gateway.services.ports import Dest
from gateway.services.replies import APOLOGY, WHISPER_PROMPT, Apology, Bridge, Menu, Webhook, WhisperAgain
from gateway.services.transfers import TransferError

AVAILABLE, BUSY, OFFLINE = agent_rules.AVAILABLE, agent_rules.BUSY, agent_rules.OFFLINE
OUTSIDE, OUTSIDE_MASKED = "+15550009999", "…9999"
SALES_LINE = "+15550001001"


def queued(desk, kind) -> list:
    """The jobs of this kind waiting to run (when they are due is not the point here)."""
    return [job for job, _ in desk.jobs(kind)]


def warm(desk, **target):
    """Alice talks with a caller and starts a warm transfer; the caller is on hold. (call, transfer)"""
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_number=None, mode="warm", notes=None, **target
    )
    desk.events.on_caller_held(transfer.id)
    return call, desk.transfer(transfer.id)


def joins(desk, leg_id):
    """LiveKit reports the leg's agent in its room (as RoomEvents records it)."""

    def work(uow):
        leg = uow.legs.get(leg_id, fresh=True)
        uow.transition(leg, L.LEG, "join")
        if leg.transfer_id:
            desk.events.on_target_joined(uow, leg)

    desk.run(work)


def leg_of(desk, call, agent_id):
    return next(leg for agent, leg in desk.offers(call) if agent == agent_id)


def transfer_entries(desk, call, transfer_id) -> list[str]:
    """The kinds of the timeline entries the console lists under the transfer."""
    entries = desk.units.read(lambda uow: uow.timeline.of_call(call))
    return [e.kind for e in entries if e.transfer_id == transfer_id]


@pytest.fixture
def people(desk):
    desk.agent("alice", status=BUSY)
    desk.agent("bob", idle_min=5)


# ------------------------------------------------------------------ refusals
def test_a_number_that_is_not_e164_is_refused_with_the_number_quoted(desk, people):
    call, _ = desk.connected_call("alice")

    with pytest.raises(TransferError) as refused:
        desk.transfers.initiate(
            agent_id="alice", call_id=call, target_agent_id=None, target_number="5550009999", mode="warm", notes=None
        )

    assert refused.value.kind == Refusal.INVALID
    assert str(refused.value) == "target_number '5550009999' is not an E.164 number"
    assert desk.call_state(call) == (C.CONNECTED, None)


def test_an_unknown_target_agent_is_refused_as_not_found(desk, people):
    call, _ = desk.connected_call("alice")

    with pytest.raises(TransferError) as refused:
        desk.transfers.initiate(
            agent_id="alice", call_id=call, target_agent_id="zoe", target_number=None, mode="warm", notes=None
        )

    assert (refused.value.kind, str(refused.value)) == (Refusal.NOT_FOUND, "unknown target agent")


def test_a_team_with_nobody_signed_in_is_refused_by_its_name(desk, people):
    desk.agent("dan", teams=["support"], status=OFFLINE)
    call, _ = desk.connected_call("alice")

    with pytest.raises(TransferError) as refused:
        desk.transfers.initiate(
            agent_id="alice", call_id=call, target_agent_id=None, target_number=None, mode="warm", notes=None,
            target_team="support",
        )  # fmt: skip

    assert (refused.value.kind, str(refused.value)) == (Refusal.CONFLICT, "no one in Support is signed in")
    assert desk.call_state(call) == (C.CONNECTED, None)


def test_connecting_a_transfer_that_is_over_is_refused_with_its_state(desk, people):
    call, transfer = warm(desk, target_agent_id="bob")
    joins(desk, leg_of(desk, call, "alice"))
    desk.agent_legs.browser_accept("bob", call)
    joins(desk, leg_of(desk, call, "bob"))
    desk.transfers.complete(transfer.id, "alice")
    desk.transfers.leave(transfer.id, "alice")

    with pytest.raises(TransferError) as refused:
        desk.transfers.complete(transfer.id, "alice")

    assert (refused.value.kind, str(refused.value)) == (Refusal.CONFLICT, "cannot connect now: transfer is completed")


# ------------------------------------------------------------------ warm transfers
def test_a_completed_warm_transfer_has_an_end_time_and_its_own_timeline(desk, people):
    call, transfer = warm(desk, target_agent_id="bob")
    joins(desk, leg_of(desk, call, "alice"))
    desk.agent_legs.browser_accept("bob", call)
    joins(desk, leg_of(desk, call, "bob"))
    desk.transfers.complete(transfer.id, "alice")
    desk.transfers.leave(transfer.id, "alice")

    done = desk.transfer(transfer.id)
    assert done.state == T.COMPLETED and done.ended_at is not None
    assert desk.units.read(lambda uow: uow.calls.get(call).room) == transfer.consult_room
    assert J.DeleteRoom(call, call) in queued(desk, J.DeleteRoom.kind)  # the caller's first room is closed
    assert ("call_owner_changed", "bob", {"target": None}) in desk.timeline(call)
    assert transfer_entries(desk, call, transfer.id) == [
        "transfer_initiated",
        "agent_ringing",
        "transfer_target_ringing",
        "caller_on_hold",
        "consult_room_ready",
        "leg_accepted",
        "transfer_target_accepted",
        "transfer_conferenced",
        "caller_bridging",
        "transfer_completed",
        "leg_left",
        "call_owner_changed",
    ]


def test_b_leaves_the_consult_room_before_the_caller_is_connected_and_the_caller_goes_back_to_a(desk, people):
    call, transfer = warm(desk, target_agent_id="bob")
    joins(desk, leg_of(desk, call, "alice"))
    desk.agent_legs.browser_accept("bob", call)
    joins(desk, leg_of(desk, call, "bob"))

    assert desk.agent_legs.agent_leave_room("bob", transfer.consult_room)

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.FAILED, "B left the consult room")
    assert desk.legs_of(call) == [("alice", transfer.consult_room, L.JOINED, None)]
    assert desk.status("bob") == AVAILABLE
    assert J.RedirectCaller(call, Dest.BRIDGE, 1) in queued(desk, J.RedirectCaller.kind)
    assert ("caller_returning", None, {"to": "agent A", "reason": "B left the consult room"}) in desk.timeline(call)


def test_a_who_never_comes_back_is_told_why_and_their_leg_says_so(desk, people):
    desk.agent("carol", idle_min=1)
    call, transfer = warm(desk, target_agent_id="bob")
    desk.agent_legs.ring_timeout([transfer.target_leg_id])
    a_leg = leg_of(desk, call, "alice")

    desk.events.return_timeout(call, a_leg)

    assert desk.leg(a_leg).end_reason == "not back after the transfer"
    why = desk.units.read(lambda uow: uow.agents.get("alice").not_responding)
    assert (why["call_id"], why["reason"]) == (call, "returned")
    assert ("leg_cancelled", "alice") in [(kind, agent) for kind, agent, _ in desk.timeline(call)]


# ------------------------------------------------------------------ cold transfers
def test_b_declines_a_cold_transfer_and_a_is_rung_again_in_the_consult_room(desk, people):
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id="bob", target_number=None, mode="cold", notes=None
    )
    desk.events.on_caller_held(transfer.id)  # A drops once the caller is held
    assert desk.status("alice") == AVAILABLE
    assert desk.leg(transfer.source_leg_id).end_reason == "cold transfer: A drops once the caller is held"

    assert desk.agent_legs.browser_decline("bob", call)

    assert (desk.transfer(transfer.id).state, desk.transfer(transfer.id).end_reason) == (T.DECLINED, "B declined")
    assert desk.legs_of(call) == [("alice", transfer.consult_room, L.RINGING, None)]
    assert desk.units.read(lambda uow: uow.calls.get(call).agent_id) is None  # nobody on the line yet
    assert desk.call_state(call) == (C.ON_HOLD, None)
    assert ("caller_returning", None, {"to": "routing", "reason": "B declined"}) in desk.timeline(call)


# ------------------------------------------------------------------ outside numbers
def test_a_transfer_to_an_outside_number_shows_it_masked(desk, people):
    call, _ = desk.connected_call("alice")

    desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id=None, target_number=OUTSIDE, mode="warm", notes=None
    )

    kind, agent, detail = desk.timeline(call)[0]
    assert (kind, agent, detail["target"], detail["mode"]) == ("transfer_initiated", "alice", OUTSIDE_MASKED, "warm")


def test_an_outside_number_that_hangs_up_before_pressing_a_key_sends_the_caller_back_to_a(desk, people):
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id=None, target_number=OUTSIDE, mode="warm", notes=None
    )
    desk.events.on_caller_held(transfer.id)
    (b_leg,) = [leg for agent, leg in desk.offers(call) if agent is None]

    desk.agent_legs.leg_status(b_leg, "completed", "CA" + "9" * 32)

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.NO_ANSWER, "B: hung up before accepting")
    assert ("caller_returning", None, {"to": "agent A", "reason": "B: hung up before accepting"}) in desk.timeline(call)


def test_an_outside_number_that_presses_1_is_no_longer_timed_for_ringing(desk, people):
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id=None, target_number=OUTSIDE, mode="warm", notes=None
    )
    desk.events.on_caller_held(transfer.id)
    (b_leg,) = [leg for agent, leg in desk.offers(call) if agent is None]
    assert queued(desk, J.RingTimeout.kind) == [J.RingTimeout((b_leg,), call)]

    reply = desk.agent_legs.leg_digits(b_leg, "1")

    assert reply == Bridge.agent(b_leg, transfer.consult_room, OUTSIDE)  # B goes into the consult room
    assert desk.transfer(transfer.id).state == T.TARGET_ACCEPTED
    assert queued(desk, J.RingTimeout.kind) == []


# ------------------------------------------------------------------ team transfers
def test_a_transfer_to_a_team_rings_its_longest_idle_free_member(desk, people):
    desk.agent("carol", teams=["support"], idle_min=3)
    desk.agent("dan", teams=["support"], idle_min=30)
    call, transfer = warm(desk, target_agent_id=None, target_team="support")

    assert transfer.target_agent_id == "dan"
    assert desk.legs_of(call)[0] == ("dan", transfer.consult_room, L.RINGING, None)
    assert desk.timeline(call)[0][2]["target"] == "dan" and desk.timeline(call)[0][2]["team"] == "support"


def test_a_busy_team_lets_a_choose_and_queueing_puts_the_caller_in_its_line_ahead_of_callers(desk, people):
    desk.agent("dan", teams=["support"], status=BUSY)
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id=None, target_number=None, mode="warm", notes=None,
        target_team="support",
    )  # fmt: skip

    busy = desk.transfer(transfer.id)
    assert busy.state == T.TEAM_BUSY and busy.end_reason.startswith("No one free in Support")
    assert desk.call_state(call) == (C.CONNECTED, None)  # the caller never left A
    assert [d["team"] for kind, _, d in desk.timeline(call) if kind == "transfer_team_wait"] == ["support"]

    desk.transfers.queue(transfer.id, "alice")

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.QUEUED, "queued in support")
    assert desk.call_state(call) == (C.QUEUED, None)
    entry = desk.units.read(lambda uow: uow.queue.live(call))
    assert (entry.team_id, entry.kind, entry.priority, entry.transfer_id) == (
        "support",
        "transfer",
        Q.PRIORITY_TRANSFER,
        transfer.id,
    )
    assert desk.status("alice") == AVAILABLE
    assert J.RedirectCaller(call, Dest.QUEUE) in queued(desk, J.RedirectCaller.kind)


# ------------------------------------------------------------------ calls
def test_the_last_agent_leaving_from_the_console_ends_the_call_with_a_goodbye(desk, people):
    call, _ = desk.connected_call("alice")

    assert desk.agent_legs.agent_leave_room("alice", call)

    # One removal: the leg ending by leaving does not ask LiveKit again.
    assert queued(desk, J.RemoveParticipant.kind) == [J.RemoveParticipant(call, "alice", call)]
    assert desk.units.read(lambda uow: uow.calls.get(call).end_reason) == C.AGENT_ENDED
    assert queued(desk, J.RedirectCaller.kind) == [J.RedirectCaller(call, Dest.GOODBYE)]
    assert ("agent_ended_call", "alice", {}) in desk.timeline(call)
    assert desk.status("alice") == AVAILABLE


def test_answering_in_the_console_stops_the_agents_phone_ringing(desk):
    desk.agent("alice", idle_min=5, phone="+15550002222")
    call = desk.call()
    desk.route_new_call(call)
    browser, phone = desk.live_leg_ids(call)
    assert browser.startswith("leg_") and phone.startswith("leg_")  # as the console and webhooks name them

    desk.agent_legs.browser_accept("alice", call)

    assert (desk.leg(phone).state, desk.leg(phone).end_reason) == (L.CANCELLED, "answered elsewhere")
    assert J.HangupLeg(phone) in queued(desk, J.HangupLeg.kind)
    assert queued(desk, J.RingTimeout.kind) == []
    assert desk.legs_of(call) == [("alice", call, L.ACCEPTED, None)]


def test_the_longest_wait_ends_while_an_agent_is_rung_and_their_ring_stops(desk):
    desk.agent("alice", idle_min=5)
    call = desk.call()
    desk.route_new_call(call)

    desk.caller.queue_timeout(call)

    assert desk.call_state(call) == (C.VOICEMAIL, "queue timeout")
    assert desk.ringing(call) == []
    assert desk.status("alice") == AVAILABLE
    assert queued(desk, J.RedirectCaller.kind) == [J.RedirectCaller(call, Dest.APOLOGY)]
    assert ("leg_cancelled", "alice") in [(kind, agent) for kind, agent, _ in desk.timeline(call)]


def test_a_bridge_the_provider_reports_busy_sends_the_caller_to_the_apology_with_voicemail(desk):
    desk.agent("alice", idle_min=5)
    call = desk.call()
    desk.route_new_call(call)
    (a_leg,) = desk.live_leg_ids(call)

    reply = desk.caller.dial_ended(call, call, dial_status="busy", call_status="in-progress", sip_code="486")

    assert reply == Apology(message=APOLOGY, voicemail=Webhook.to(Dest.VOICEMAIL, call=call))
    assert desk.call_state(call) == (C.VOICEMAIL, "bridge busy")
    assert ("bridge_failed", None, {"status": "busy", "sip_code": "486"}) in desk.timeline(call)
    assert desk.leg(a_leg).end_reason == "caller sent to voicemail"


def test_a_caller_who_presses_nothing_at_the_menu_is_asked_once_more(desk):
    desk.agent("alice", teams=["sales"], idle_min=10)
    desk.agent("bob", teams=["support"], idle_min=5)
    desk.run(lambda uow: [uow.teams.add_number("+15550001000", t, i) for i, t in enumerate(["sales", "support"], 1)])
    reply = desk.caller.inbound(call_sid="CA" + "1" * 32, from_number="+15557654321", to_number="+15550001000")
    call = desk.units.read(lambda uow: uow.calls.by_sid("CA" + "1" * 32).id)
    assert isinstance(reply, Menu)
    assert desk.kinds(call) == ["call_received", "menu_offered"]

    again = desk.caller.menu_choice(call, digits="", speech="", attempt=1)

    assert isinstance(again, Menu) and again.prompt.startswith("Sorry, I didn't catch that. ")
    assert again.choice == Webhook.to(Dest.MENU, call=call, attempt=2)
    assert desk.ringing(call) == []


def test_queueing_with_a_member_freed_meanwhile_rings_them_at_once(desk, people):
    desk.agent("dan", teams=["support"], status=BUSY)
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id=None, target_number=None, mode="warm", notes=None,
        target_team="support",
    )  # fmt: skip
    desk.set_status("dan", AVAILABLE)  # dan's call ended while A was choosing

    desk.transfers.queue(transfer.id, "alice")

    assert desk.ringing(call) == [("dan", "browser")]
    assert desk.line("support", call) == {call: (Q.OFFERED, 1)}


def test_a_caller_in_a_busy_teams_line_hears_the_team_their_place_and_the_choices(desk):
    desk.agent("alice", teams=["sales"], status=BUSY)
    desk.run(lambda uow: uow.teams.add_number(SALES_LINE, "sales", 1))
    first = desk.caller.inbound(call_sid="CA" + "1" * 32, from_number="+15557654321", to_number=SALES_LINE)
    withheld = desk.caller.inbound(call_sid="CA" + "2" * 32, from_number="anonymous", to_number=SALES_LINE)
    call, second = (desk.units.read(lambda uow, s=s: uow.calls.by_sid("CA" + s * 32).id) for s in "12")

    greeting = (
        "Thank you for calling Sales. All of our agents are helping other callers right now. "
        "Please stay on the line and the next available agent will be with you."
    )
    assert (first.message, first.again) == (
        f"{greeting} You are next in line.",
        Webhook.to(Dest.QUEUE, call=call, loop=1),
    )
    assert first.choices == Webhook.to(Dest.QUEUE_CHOICE, call=call)
    assert first.choices_prompt == (
        "To leave a message instead, press 1 or say voicemail at any time. "
        "To be called back instead, keeping your place in line, press 2 or say call me back."
    )
    # A withheld number cannot be called back: only the message is offered.
    assert (withheld.message, withheld.again) == (
        f"{greeting} You are number 2 in line.",
        Webhook.to(Dest.QUEUE, call=second, loop=1),
    )
    assert withheld.choices_prompt == "To leave a message instead, press 1 or say voicemail at any time."
    assert call.startswith("call_") and second.startswith("call_")


def test_an_outside_number_that_is_busy_sends_the_caller_back_to_a(desk, people):
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id=None, target_number=OUTSIDE, mode="warm", notes=None
    )
    desk.events.on_caller_held(transfer.id)
    (b_leg,) = [leg for agent, leg in desk.offers(call) if agent is None]

    desk.agent_legs.leg_status(b_leg, "busy", "CA" + "9" * 32)

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.NO_ANSWER, "B was busy")
    assert desk.leg(b_leg).end_reason == "phone busy"


def test_an_agent_pressing_a_key_that_does_nothing_on_the_phone_is_asked_again(desk):
    desk.agent("alice", idle_min=5, phone="+15550002222")
    call = desk.call()
    desk.route_new_call(call)
    _, phone = desk.live_leg_ids(call)

    reply = desk.agent_legs.leg_digits(phone, "5")

    assert isinstance(reply, WhisperAgain)
    assert reply.message == f"Sorry, that key does nothing here. {WHISPER_PROMPT}"
    assert reply.keys == Webhook.to(Dest.LEG_GATHER, leg=phone, again=1)
    assert desk.ringing(call) == [("alice", "browser"), ("alice", "phone")]  # still offered


def test_a_cold_transfer_completes_when_b_joins(desk, people):
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id="bob", target_number=None, mode="cold", notes=None
    )
    desk.events.on_caller_held(transfer.id)
    b_leg = leg_of(desk, call, "bob")

    joins(desk, b_leg)  # B's console joined without a separate accept reaching us first

    done = desk.transfer(transfer.id)
    assert (done.state, done.end_reason) == (T.COMPLETED, "cold transfer")
    assert done.target_leg_id == b_leg
    assert desk.units.read(lambda uow: uow.calls.get(call).agent_id) == "bob"


def test_only_the_transferring_agent_may_cancel(desk, people):
    call, transfer = warm(desk, target_agent_id="bob")

    with pytest.raises(TransferError) as refused:
        desk.transfers.cancel(transfer.id, "bob")

    assert (refused.value.kind, str(refused.value)) == (Refusal.FORBIDDEN, "only the transferring agent may do this")
    assert desk.transfer(transfer.id).state == T.TARGET_RINGING


def test_an_outside_number_that_answered_is_not_cut_off_by_the_ring_timer(desk, people):
    call, _ = desk.connected_call("alice")
    transfer = desk.transfers.initiate(
        agent_id="alice", call_id=call, target_agent_id=None, target_number=OUTSIDE, mode="warm", notes=None
    )
    desk.events.on_caller_held(transfer.id)
    (b_leg,) = [leg for agent, leg in desk.offers(call) if agent is None]

    desk.agent_legs.leg_status(b_leg, "in-progress", "CA" + "9" * 32)
    desk.agent_legs.ring_timeout([b_leg])  # B is listening to the whisper: ringing is over

    assert desk.leg(b_leg).state == L.RINGING and desk.transfer(transfer.id).active_call_id == call
    assert "agent_answered" in desk.kinds(call)
    assert [job.phase for job in queued(desk, J.WhisperTimeout.kind)] == ["answer"]


def test_an_agent_declining_by_key_2_on_the_phone_ends_that_phone_call_only(desk):
    desk.agent("alice", idle_min=30, phone="+15550002222")
    desk.agent("bob", idle_min=5)
    call = desk.call()
    desk.route_new_call(call)
    _, phone = desk.live_leg_ids(call)

    desk.agent_legs.leg_digits(phone, "2")

    assert desk.ringing(call) == [("alice", "browser")]  # the offer stays in her console
    assert desk.leg(phone).end_reason == "declined by key 2"
    assert J.HangupLeg(phone) in queued(desk, J.HangupLeg.kind)


def test_a_caller_who_says_the_teams_name_at_the_menu_is_routed_to_it(desk):
    desk.agent("alice", teams=["sales"], idle_min=10)
    desk.agent("bob", teams=["support"], idle_min=5)
    desk.run(lambda uow: [uow.teams.add_number("+15550001000", t, i) for i, t in enumerate(["sales", "support"], 1)])
    desk.caller.inbound(call_sid="CA" + "1" * 32, from_number="+15557654321", to_number="+15550001000")
    call = desk.units.read(lambda uow: uow.calls.by_sid("CA" + "1" * 32).id)

    desk.caller.menu_choice(call, digits="", speech="Support please", attempt=1)

    assert desk.ringing(call) == [("bob", "browser")]
    assert ("menu_chosen", None, {"team": "support", "by": "speech"}) in desk.timeline(call)
