"""Warm transfers driven from two consoles: A (alice) has the call, B (bob) takes it over."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

CALLER = "+15557654321"


def _alice_on_a_call(world, console):
    """Alice (console) has a connected call; Bob's console is open and he is available."""
    alice = world.add_agent("alice")
    bob = world.add_agent("bob", status="offline")  # so the call rings alice
    a, b = console.open(alice), console.open(bob)
    call = world.call(CALLER)
    a.offer().get_by_role("button", name="Accept").click()
    call.wait_current("bridged", timeout=8)
    expect(a.page.locator("#call-state")).to_have_text("Connected")
    b.page.get_by_role("button", name="Available", exact=True).click()
    expect(b.page.locator("#presence-text")).to_have_text("You are available.")
    expect(a.page.locator("#transfer-agent")).to_have_value("bob")
    call_id = world.db_call(call.sid)["id"]
    return a, b, call, call_id


def _start_warm_transfer(world, a, call_id, notes="Refund approved; needs a supervisor to process it."):
    page = a.page
    page.get_by_label("Agent", exact=True).select_option("bob")
    page.get_by_label("Warm — talk to them first").check()
    page.get_by_label("Notes for the next agent").fill(notes)
    page.get_by_role("button", name="Start transfer").click()
    expect(page.locator("#transfer-progress")).to_be_visible()
    transfer = world.wait(lambda: world.services.views.transfers_of_call(call_id), what="transfer")[-1]
    # A's audio moved to the private consult room with a token the page asked for.
    expect(page.locator("#media-state")).to_have_text("Connected (sandbox: simulated audio)")
    world.wait(lambda: "alice" in world.participants(transfer["consult_room"]), what="alice in consult room")
    return transfer


def _consult_join(world, identity, room):
    return [j for j in world.livekit.join_log() if j["identity"] == identity and j["room"] == room and j["ok"]]


def test_full_warm_transfer_a_to_b(world, console):
    a, b, call, call_id = _alice_on_a_call(world, console)
    world.services.records.transcript_line(call_id, "l1", "caller", "I was charged twice for order 5521.")
    a.page.get_by_label("Add a note").fill("Double charge confirmed on order 5521.")
    a.page.get_by_role("button", name="Add note").click()
    expect(a.page.locator("#transcript")).to_contain_text("Double charge confirmed")

    transfer = _start_warm_transfer(world, a, call_id)
    room = transfer["consult_room"]
    assert _consult_join(world, "alice", room)
    expect(a.page.locator("#transfer-progress-heading")).to_have_text("Transfer to Bob (warm)")
    expect(a.page.locator("#transfer-connect")).to_be_disabled()
    expect(a.page.locator("#transfer-cancel")).to_be_enabled()
    expect(a.page.locator("#transfer-leave")).to_be_disabled()
    expect(a.page.locator("#call-state")).to_have_text("Caller on hold")  # hold music meanwhile
    call.wait_current("play", timeout=8)

    # B sees who transfers, the summary and the transcript before accepting.
    offer = b.offer("Transfer from Alice")
    expect(offer).to_be_visible()
    expect(offer).to_contain_text("caller " + CALLER)
    expect(offer.locator(".preview-summary")).to_contain_text("Reason", timeout=8000)
    offer.locator("summary", has_text="Transcript so far").click()
    expect(offer.locator(".preview-transcript")).to_contain_text("charged twice for order 5521")
    expect(offer.locator(".preview-transcript")).to_contain_text("Double charge confirmed")
    b.shot("transfer-offer-on-b")

    offer.get_by_role("button", name="Accept").click()
    expect(b.page.locator("#media-state")).to_have_text("Connected (sandbox: simulated audio)")
    assert _consult_join(world, "bob", room)
    expect(b.page.locator("#transfer-progress-heading")).to_have_text("Transfer from Alice (warm)")
    expect(b.page.locator("#transfer-connect")).to_be_hidden()  # A's buttons only

    # A: B is in the consult room, summary shown: connect the caller.
    connect = a.page.get_by_role("button", name="Connect caller")
    expect(connect).to_be_enabled()
    expect(a.page.locator("#transfer-hint")).to_contain_text("talking privately")
    expect(a.page.locator("#transfer-summary")).to_contain_text("Next step")
    a.shot("transfer-in-progress")
    connect.click()
    expect(a.page.locator("#transfer-state")).to_have_text("Caller connected to both")
    world.wait(lambda: world.participants(room) == sorted(["alice", "bob", "sip_" + CALLER]), what="all three")
    call.wait_current("bridged", timeout=8)
    # During the introduction B's way out is not Hang up (it would end the call for all three).
    expect(b.page.get_by_role("button", name="Hang up")).to_be_disabled()

    a.page.get_by_role("button", name="Leave").click()
    expect(a.page.locator("#outcome-text")).to_have_text(f"Transfer complete: {CALLER} is now with Bob.")
    expect(a.page.locator("#call-panel")).to_be_hidden()
    expect(b.page.locator("#transfer-hint")).to_have_text("The call is yours now.", timeout=20_000)
    expect(b.page.get_by_role("button", name="Hang up")).to_be_enabled()
    expect(b.page.locator("#transfer-form")).to_be_visible()  # B may transfer it on
    b.shot("after-transfer-on-b")

    world.wait(lambda: world.participants(room) == sorted(["bob", "sip_" + CALLER]), what="caller with bob only")
    assert world.db_call(call.sid)["agent_id"] == "bob"
    kinds = world.timeline(call_id)
    for kind in (
        "transfer_initiated",
        "consult_room_ready",
        "summary_ready",
        "leg_accepted",
        "transfer_target_accepted",
        "transfer_conferenced",
        "caller_connected",
        "transfer_completed",
        "call_owner_changed",
    ):
        assert kind in kinds, (kind, kinds)
    assert kinds.index("transfer_conferenced") < kinds.index("transfer_completed")

    # B ends the call from the console.
    b.page.get_by_role("button", name="Hang up").click()
    call.wait_status("completed", timeout=8)
    expect(b.page.locator("#outcome-text")).to_contain_text("has ended")


def test_b_declines_and_the_caller_is_back_with_a(world, console):
    a, b, call, call_id = _alice_on_a_call(world, console)
    transfer = _start_warm_transfer(world, a, call_id)
    b.offer("Transfer from Alice").get_by_role("button", name="Decline").click()
    expect(a.page.locator("#transfer-state")).to_have_text("Declined")
    expect(a.page.locator("#transfer-hint")).to_have_text("Bob declined. The caller is back with you.")
    expect(a.page.locator("#announce-urgent")).to_contain_text("Transfer declined")
    world.wait(
        lambda: world.participants(transfer["consult_room"]) == sorted(["alice", "sip_" + CALLER]),
        what="caller back with alice",
    )
    expect(a.page.locator("#call-state")).to_have_text("Connected")
    expect(a.page.get_by_role("button", name="Start transfer")).to_be_enabled()  # may try again
    expect(b.offer()).to_have_count(0)
    assert "caller_returning" in world.timeline(call_id)


@pytest.mark.world(ring_timeout_s=3.0)
def test_b_does_not_answer_and_a_is_told(world, console):
    a, b, call, call_id = _alice_on_a_call(world, console)
    transfer = _start_warm_transfer(world, a, call_id)
    expect(a.page.locator("#transfer-state")).to_have_text("No answer")
    expect(a.page.locator("#transfer-hint")).to_have_text("Bob did not answer. The caller is back with you.")
    expect(b.offer()).to_have_count(0)
    expect(b.page.locator("#outcome-text")).to_contain_text("Transfer from Alice")
    expect(b.page.locator("#outcome-text")).to_contain_text("no longer offered to you")
    world.wait(
        lambda: world.participants(transfer["consult_room"]) == sorted(["alice", "sip_" + CALLER]),
        what="caller back with alice",
    )


def test_a_cancels_while_b_is_ringing(world, console):
    a, b, call, call_id = _alice_on_a_call(world, console)
    transfer = _start_warm_transfer(world, a, call_id)
    expect(b.offer("Transfer from Alice")).to_be_visible()
    a.page.get_by_role("button", name="Cancel transfer").click()
    expect(a.page.locator("#transfer-state")).to_have_text("Cancelled")
    expect(a.page.locator("#transfer-hint")).to_have_text("Transfer cancelled. The caller is back with you.")
    expect(b.offer()).to_have_count(0)
    world.wait(
        lambda: world.participants(transfer["consult_room"]) == sorted(["alice", "sip_" + CALLER]),
        what="caller back with alice",
    )


def test_transfer_number_is_validated_in_the_page_and_by_the_server(world, console):
    a, b, call, call_id = _alice_on_a_call(world, console)
    page = a.page
    page.get_by_label("A phone number").check()
    page.get_by_label("Phone number", exact=True).fill("555-1234")
    page.get_by_role("button", name="Start transfer").click()
    expect(page.locator("#transfer-error")).to_contain_text("international format")
    expect(page.get_by_label("Phone number", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Phone number", exact=True)).to_be_focused()
    assert world.services.views.transfers_of_call(call_id) == []
    # The server refuses it too (the page is not the only client).
    reply = a.agent.post("/api/transfer/initiate", {"call_id": call_id, "target_number": "5551234", "mode": "cold"})
    assert reply.status_code == 400 and "E.164" in reply.json()["error"]


def test_cold_transfer_frees_a_at_once_and_b_gets_the_caller(world, console):
    a, b, call, call_id = _alice_on_a_call(world, console)
    a.page.get_by_label("Cold — hand over directly").check()
    a.page.get_by_role("button", name="Start transfer").click()
    expect(a.page.locator("#outcome-text")).to_have_text(
        f"Cold transfer of {CALLER} to Bob under way; you are free for the next call."
    )
    expect(a.page.locator("#call-panel")).to_be_hidden()

    offer = b.offer("Transfer from Alice")
    expect(offer).to_be_visible()
    offer.get_by_role("button", name="Accept").click()
    expect(b.page.locator("#transfer-state")).to_have_text("Completed")
    expect(b.page.get_by_role("button", name="Hang up")).to_be_enabled()
    room = world.services.views.transfers_of_call(call_id)[-1]["consult_room"]
    world.wait(lambda: world.participants(room) == sorted(["bob", "sip_" + CALLER]), what="caller with bob")
    assert world.db_call(call.sid)["agent_id"] == "bob"
