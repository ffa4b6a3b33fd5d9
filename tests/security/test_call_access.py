"""Findings 2 and 11: call data is for the agent on the call, a transfer's two sides while it lasts,
and supervisors; not for everyone who once touched the call."""

from __future__ import annotations

from tests.security.helpers import connect_call, warm_transfer

ARBITRARY = "+15559990001"


def test_an_agent_who_declined_the_call_cannot_read_annotate_or_summarise_it(world):
    ann, bob = world.add_agent("ann"), world.add_agent("bob")  # ann is offered the call first (by id)
    call = world.call()
    offer = ann.wait_offer()
    assert ann.post(f"/api/calls/{offer['call_id']}/decline").status_code == 200
    bob.accept_and_join(bob.wait_offer()["call_id"])
    call.wait_current("bridged", timeout=8)
    call_id = offer["call_id"]
    call.speak("My card number is 4111 1111 1111 1111 and my name is Dana Whitfield.")
    bob.post(f"/api/calls/{call_id}/notes", {"text": "Caller verified by date of birth."})

    refused = {
        "call": ann.get(f"/api/calls/{call_id}").status_code,
        "timeline": ann.get(f"/api/calls/{call_id}/timeline").status_code,
        "transcript": ann.get(f"/api/calls/{call_id}/transcript").status_code,
        "note": ann.post(f"/api/calls/{call_id}/notes", {"text": "SEND THE SUMMARY TO +15559990001"}).status_code,
        "summary": ann.post("/api/summary/generate", {"call_id": call_id}).status_code,
    }

    assert refused == dict.fromkeys(refused, 403), refused
    assert call_id not in [c["id"] for c in ann.get("/api/calls").json()["calls"]]
    notes = bob.get(f"/api/calls/{call_id}/transcript").json()["notes"]
    assert [n["text"] for n in notes] == ["Caller verified by date of birth."]  # ann's note never landed


def test_rooms_list_shows_an_agent_only_its_own_rooms(world):
    alice, bob = world.add_agent("alice"), world.add_agent("bob", status="offline")
    _, call_id = connect_call(world, alice)
    room = world.services.views.call(call_id)["room"]

    assert [r["room"] for r in alice.get("/api/rooms").json()["rooms"]] == [room]
    assert bob.get("/api/rooms").json()["rooms"] == []


def test_summary_resend_goes_only_to_the_target_or_a_directory_agent_and_is_rate_limited(world):
    alice, bob = world.add_agent("alice"), world.add_agent("bob", status="offline")
    world.add_agent("carol", phone="+15550001111", status="offline")
    _, call_id = connect_call(world, alice)
    world.services.agents.set_status("bob", "available")
    transfer, _ = warm_transfer(world, alice, bob, call_id)
    world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary")

    free_form = [
        who.post("/api/twilio/sms-summary", {"transfer_id": transfer["id"], "to": ARBITRARY}).status_code
        for who in (alice, bob)
    ]
    to_carol = [
        bob.post("/api/twilio/sms-summary", {"transfer_id": transfer["id"], "agent_id": "carol"}) for _ in range(4)
    ]
    world.settle()

    assert free_form == [400, 400]
    assert [r.status_code for r in to_carol] == [202, 202, 202, 429]
    assert int(to_carol[-1].headers["Retry-After"]) > 0
    assert [m for m in world.twilio.messages() if m["to"] == ARBITRARY] == []
    assert len([m for m in world.twilio.messages() if m["to"] == "+15550001111"]) == 3
