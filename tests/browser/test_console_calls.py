"""Incoming calls in the console: ring, accept (media joins the room), decline, hang up,
media failure and recovery, and the event stream dropping and catching up."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

CALLER = "+15557654321"


def _joins(world, identity):
    return [j for j in world.livekit.join_log() if j["identity"] == identity]


def test_incoming_call_rings_accept_joins_room_and_bridges_caller(world, console):
    alice = world.add_agent("alice")
    a = console.open(alice)
    page = a.page
    page.get_by_role("button", name="Enable sound").click()
    expect(page.locator("#sound-toggle")).to_have_attribute("aria-pressed", "true")

    call = world.call(CALLER)
    offer = a.offer("Incoming call from " + CALLER)
    expect(offer).to_be_visible()
    expect(page.locator("#announce-urgent")).to_have_text(f"Incoming call from {CALLER}.")
    expect(offer.locator(".wait-time")).not_to_have_text("0:00", timeout=4000)  # the wait counts up
    assert page.evaluate("document.querySelector('#offers').classList.contains('ringing')")
    a.shot("incoming-call-alert")

    offer.get_by_role("button", name="Accept").click()
    expect(page.locator("#call-panel")).to_be_visible()
    expect(page.locator("#call-heading")).to_be_focused()
    expect(page.locator("#media-state")).to_have_text("Connected (sandbox: simulated audio)")
    call.wait_current("bridged", timeout=8)
    expect(page.locator("#call-state")).to_have_text("Connected")
    expect(a.offer()).to_have_count(0)

    # The page's token was validated by LiveKit (the double) for the caller's room.
    room = world.db_call(call.sid)["room"]
    join = _joins(world, "alice")[-1]
    assert join["ok"] and join["room"] == room, join
    assert not join["grants"]["video"].get("roomAdmin")
    assert world.participants(room) == sorted(["alice", "sip_" + CALLER])

    # Mic: the fake device gives the meter a level; mute shows it in text.
    expect(page.locator("#mic-level-text")).to_have_text(re.compile(r"\d+%"))
    page.get_by_role("button", name="Microphone on").click()
    expect(page.locator("#mic-toggle")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#mic-level-text")).to_have_text("Muted")

    # Notes and transcript.
    page.get_by_label("Add a note").fill("Caller wants a refund for order 1234.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#transcript")).to_contain_text("Caller wants a refund for order 1234.")
    world.services.records.transcript_line(world.db_call(call.sid)["id"], "t1", "caller", "My router keeps dropping.")
    expect(page.locator("#transcript")).to_contain_text("caller: My router keeps dropping.")
    a.shot("call-connected")

    page.get_by_role("button", name="Hang up").click()
    call.wait_status("completed", timeout=8)
    expect(page.locator("#outcome-text")).to_contain_text(f"The call with {CALLER} has ended")
    expect(page.locator("#call-panel")).to_be_hidden()
    details = page.locator("#history details").first
    expect(details.locator("summary")).to_contain_text(CALLER)
    details.locator("summary").click()
    expect(details.locator("ol")).to_contain_text("Caller connected")
    expect(details.locator("ol")).to_contain_text("Call ended")


def test_decline_sends_the_call_to_the_next_agent(world, console):
    alice = world.add_agent("alice")
    bob = world.add_agent("bob")
    a = console.open(alice)
    b = console.open(bob)
    call = world.call(CALLER)
    # Whoever is rung first declines; the other gets the call.
    first, second = world.wait(
        lambda: (a, b) if a.offer().count() else (b, a) if b.offer().count() else None, what="an offer on either page"
    )
    first.offer().get_by_role("button", name="Decline").click()
    expect(first.offer()).to_have_count(0)
    expect(second.offer("Incoming call from " + CALLER)).to_be_visible()
    second.offer().get_by_role("button", name="Accept").click()
    call.wait_current("bridged", timeout=8)
    kinds = world.timeline(world.db_call(call.sid)["id"])
    assert "leg_declined" in kinds and kinds.count("agent_ringing") == 2
    expect(second.page.locator("#call-state")).to_have_text("Connected")


def test_media_failure_is_explained_and_reconnect_recovers(world, console):
    alice = world.add_agent("alice")
    a = console.open(alice)
    page = a.page
    page.route(
        "**/console/sandbox/rtc/join",
        lambda route: route.fulfill(
            status=503, content_type="application/json", body='{"error": "media server unavailable"}'
        ),
    )
    call = world.call(CALLER)
    a.offer().get_by_role("button", name="Accept").click()
    expect(page.locator("#media-error")).to_contain_text("Audio failed")
    expect(page.locator("#media-error")).to_contain_text("The caller cannot hear you.")
    expect(page.locator("#media-state")).to_have_text("Failed")
    a.shot("media-failed")

    page.unroute("**/console/sandbox/rtc/join")
    page.get_by_role("button", name="Reconnect audio").click()
    expect(page.locator("#media-state")).to_have_text("Connected (sandbox: simulated audio)")
    expect(page.locator("#media-error")).to_have_text("")
    call.wait_current("bridged", timeout=8)


def test_event_stream_drops_and_the_page_catches_up(world, console):
    alice = world.add_agent("alice")
    a = console.open(alice)
    page = a.page
    streams = world.app.extensions["console"]

    # 1. The stream is cut and refused for a while (a deploy): a call arrives meanwhile.
    streams.drop(refuse_for_s=2.5)
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#stream-status-text")).to_have_text("Live updates: reconnecting…")
    call = world.call(CALLER)
    call_id = world.wait(lambda: world.services.views.offers("alice"), what="offer")[0]["call_id"]
    a.shot("stream-reconnecting")
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live", timeout=10_000)
    expect(a.offer("Incoming call from " + CALLER)).to_be_visible()
    expect(page.locator("#activity")).to_contain_text("Ringing Alice")
    resumed = a.stream_requests[-1]
    # Resumed, not restarted: our own reconnect says ?after=, the browser's says Last-Event-ID.
    assert "after=" in resumed["url"] or resumed["headers"].get("last-event-id"), resumed

    a.offer().get_by_role("button", name="Accept").click()
    call.wait_current("bridged", timeout=8)
    expect(page.locator("#call-state")).to_have_text("Connected")

    # 2. The stream is cut and the browser reconnects by itself (Last-Event-ID); the caller
    #    hangs up in the gap.
    before = len(a.stream_requests)
    streams.drop()
    call.hangup()
    world.wait(lambda: "call_ended" in world.timeline(call_id), what="call ended")
    expect(page.locator("#outcome-text")).to_contain_text("has ended")
    expect(page.locator("#activity li[data-kind=call_ended]")).to_have_count(1)
    resumed = a.stream_requests[before:]
    assert resumed and resumed[0]["headers"].get("last-event-id"), resumed
    # Nothing was delivered twice.
    ids = page.eval_on_selector_all("#activity li", "els => els.map(e => e.dataset.id)")
    assert len(ids) == len(set(ids))


def test_sandbox_place_a_test_call_button(world, console):
    alice = world.add_agent("alice")
    a = console.open(alice)
    a.page.get_by_role("button", name="Place a test call").click()
    expect(a.page.locator("#sandbox-status")).to_contain_text("Test call placed from +1555")
    expect(a.page.locator("#sandbox-status")).to_contain_text("; ringing you.")  # who is rung, not only that
    expect(a.offer()).to_contain_text("Incoming call from +1555")
    a.offer().get_by_role("button", name="Accept").click()
    expect(a.page.locator("#call-state")).to_have_text("Connected")


@pytest.mark.world(ring_timeout_s=2.0)
def test_a_missed_offer_says_so_and_one_click_makes_the_agent_available_again(world, console):
    alice = world.add_agent("alice")
    bob = world.add_agent("bob", status="offline")
    a = console.open(alice)
    b = console.open(bob)
    page = a.page
    call = world.call(CALLER)
    expect(a.offer("Incoming call from " + CALLER)).to_be_visible()

    # Nobody answers: the offer rings out and Alice is told what happened, not just "offline".
    expect(a.offer()).to_have_count(0, timeout=8000)
    notice = page.locator("#not-responding")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(
        re.compile(r"You missed a call from …4321 at \d\d:\d\d( [AP]M)? and were set to Not responding")
    )
    expect(page.locator("#presence-text")).to_have_text("You are not responding (offline).")
    expect(page.locator("#announce-urgent")).to_contain_text("You missed a call from …4321")
    assert world.services.agents.get("alice")["status"] == "offline"
    # Her team sees the reason too.
    expect(b.page.locator("#team")).to_contain_text("Alice — Not responding")
    # Today's calls list the call as missed, not as how it ended for someone else.
    missed = page.locator("#history li.missed")
    expect(missed).to_have_count(1)
    expect(missed).to_contain_text("…4321 — Missed")
    expect(page.locator("#history")).not_to_contain_text("caller completed")
    kinds = world.timeline(world.db_call(call.sid)["id"])
    assert "agent_not_responding" in kinds
    a.shot("missed-offer-notice")

    # One click: available again, the notice goes, focus lands on the incoming list.
    page.get_by_role("button", name="Become available").click()
    expect(notice).to_be_hidden()
    expect(page.locator("#presence-text")).to_have_text("You are available.")
    expect(page.locator("#offers-heading")).to_be_focused()
    assert world.services.agents.get("alice")["status"] == "available"
    assert world.services.agents.get("alice")["not_responding"] is None
    # Her own activity lists both presence changes: the gateway's and hers.
    activity = page.locator("#activity")
    expect(activity).to_contain_text("Alice missed the call and was set to Not responding")
    expect(activity).to_contain_text("Alice set to Available (was Not responding)")
    expect(b.page.locator("#team")).to_contain_text("Alice — Available")

    # And the next caller is offered to her.
    world.call("+15557650000")
    expect(a.offer("Incoming call from +15557650000")).to_be_visible()


def test_a_console_over_the_stream_budget_polls_and_still_rings(world, console):
    """Where a stream must hold a thread and the worker has none left for streams, the console is
    served brief streams (short polling): it still says it is live, still rings, and the agent
    answers the call as usual."""
    streams = world.app.extensions["console"]
    streams.max_open = 0  # every stream is brief
    streams.brief_retry_ms = 600
    alice = world.add_agent("alice")
    a = console.open(alice)
    page = a.page
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")

    call = world.call(CALLER)
    expect(a.offer("Incoming call from " + CALLER)).to_be_visible()
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    assert len(a.stream_requests) >= 2, "the console came back for what was new (polling)"
    resumed = a.stream_requests[-1]
    assert "after=" in resumed["url"] or resumed["headers"].get("last-event-id"), resumed

    a.offer().get_by_role("button", name="Accept").click()
    call.wait_current("bridged", timeout=8)
    expect(page.locator("#call-state")).to_have_text("Connected")
