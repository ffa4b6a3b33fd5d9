"""Callers the console names and calls back: a withheld number is shown as "Withheld number"
(offer, call panel, today's calls), and an agent waiting in the room for a callback reads and
hears what happens to the dial — no answer and the next try, the caller connected, or missed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_console_a11y import AXE, RECORD_ANNOUNCEMENTS, Audit

FIRST = "+15550900001"
CALLER = "+15550900002"
WITHHELD = "Withheld number"
# What is left of "anonymous" or its keypad spelling when a withheld From is masked like a number.
GARBAGE = re.compile(r"…mous|…6687|anonymous")


def _said(page) -> list[str]:
    return page.evaluate("window.__said")


@pytest.mark.parametrize("from_", ["anonymous", "+266696687"])  # a word, and that word on a keypad
def test_a_withheld_caller_is_shown_as_withheld_on_the_offer_the_call_and_todays_calls(world, console, from_):
    alice = world.add_agent("alice")
    a = console.open(alice)
    page = a.page
    call = world.call(from_)
    offer = a.offer(f"Incoming call from {WITHHELD}")
    expect(offer).to_be_visible()
    expect(page.locator("#announce-urgent")).to_have_text(f"Incoming call from {WITHHELD}.")
    expect(page.locator("#offers")).not_to_contain_text(GARBAGE)

    offer.get_by_role("button", name="Accept").click()
    expect(page.locator("#call-heading")).to_be_focused()
    call.wait_current("bridged", timeout=8)
    expect(page.locator("#call-state")).to_have_text("Connected")
    expect(page.locator("#call-caller")).to_have_text(WITHHELD)
    expect(page.locator("#call-panel")).not_to_contain_text(GARBAGE)
    expect(page.locator("#activity")).to_contain_text(f"Call received from {WITHHELD}")

    page.get_by_role("button", name="Hang up").click()
    call.wait_status("completed", timeout=8)
    expect(page.locator("#outcome-text")).to_contain_text("has ended")
    expect(page.locator("#outcome-text")).to_contain_text(re.compile(WITHHELD, re.I))
    details = page.locator("#history details").first
    expect(details.locator("summary")).to_contain_text(f"— {WITHHELD} —")
    details.locator("summary").click()
    expect(details.locator("ol")).to_contain_text(f"Call received from {WITHHELD}")
    expect(page.locator("#history")).not_to_contain_text(GARBAGE)


@pytest.mark.world(ring_timeout_s=2.0)
def test_a_missed_offer_from_a_withheld_caller_names_no_digits(world, console):
    alice = world.add_agent("alice")
    a = console.open(alice)
    page = a.page
    world.call("anonymous")
    expect(a.offer(f"Incoming call from {WITHHELD}")).to_be_visible()
    expect(a.offer()).to_have_count(0, timeout=8000)  # rang out: Alice is set to Not responding
    notice = page.locator("#not-responding")
    expect(notice).to_contain_text(f"You missed a call from {WITHHELD} at")
    expect(page.locator("#history li.missed")).to_contain_text(f"{WITHHELD} — Missed")
    expect(page.locator("#console-view")).not_to_contain_text(GARBAGE)


def _ask_for_a_callback(world):
    """A second caller waits (Alice is busy), presses 2 and hangs up to be called back."""
    waiting = world.call(CALLER)
    said = lambda c: " | ".join(e[1] for e in c.events if e[0] == "say")  # noqa: E731
    waiting.wait_for(lambda c: "press 2" in said(c) and any(e[0] == "play" for e in c.events), timeout=10)
    waiting.press("2")
    waiting.wait_for(lambda c: c.ended, timeout=10)


def _accept_a_callback(world, console, **context_options):
    """Alice talks to a first caller while the second asks for a callback; she hangs up, is offered
    the callback and accepts it: she waits in the room while we dial the caller."""
    alice = world.add_agent("alice")
    a = console.open(alice, **context_options)
    page = a.page
    page.evaluate(RECORD_ANNOUNCEMENTS)
    first = world.call(FIRST)
    a.offer("Incoming call from " + FIRST).get_by_role("button", name="Accept").click()
    first.wait_current("bridged", timeout=8)
    _ask_for_a_callback(world)
    page.get_by_role("button", name="Hang up").click()
    offer = a.offer(f"Callback for {CALLER}")
    expect(offer).to_be_visible()
    offer.get_by_role("button", name="Accept").click()
    expect(page.locator("#call-heading")).to_be_focused()
    expect(page.locator("#call-caller")).to_have_text(CALLER)
    return a


def _dialled_back(world):
    return [c for c in world.twilio.calls() if c.direction == "outbound-api" and c.to == CALLER]


@pytest.mark.world(callback_retry_s=4.0)
def test_a_callback_not_answered_at_first_is_said_once_then_the_second_try_connects(world, console):
    world.twilio.script_phone(CALLER, answer=False, digits=None)
    a = _accept_a_callback(world, console)
    page = a.page
    retry = "Calling …0002 back — no answer, trying again in 4 s"
    expect(page.locator("#call-state")).to_have_text(retry)
    world.twilio.script_phone(CALLER, answer=True, answer_after=0.2, digits=None)  # picks up next time
    expect(page.locator("#announce-polite")).to_have_text(retry)
    expect(page.locator("#history")).to_contain_text(f"{CALLER} — Waiting in line")  # the callback keeps its place
    expect(page.locator("#activity")).to_contain_text("Offered to Alice from the line")
    a.shot("callback-retry")

    expect(page.locator("#call-state")).to_have_text("Connected", timeout=15_000)
    _dialled_back(world)[1].wait_current("bridged", timeout=10)
    expect(page.locator("#call-caller")).to_have_text(CALLER)
    expect(page.get_by_role("button", name="Hang up")).to_have_attribute("aria-disabled", "false")
    expect(page.locator("#call-heading")).to_be_focused()  # nothing took focus while it waited
    said = _said(page)
    assert said.count(retry) == 1, said
    assert said.count("The caller answered the callback — connecting you.") == 1, said
    assert said.index(retry) < said.index("The caller answered the callback — connecting you.")
    assert len(said) == len(set(said)), said


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm ci)")
@pytest.mark.world(callback_retry_s=8.0)
def test_a_callback_never_answered_ends_as_missed_and_the_agent_is_available_again(world, console):
    world.twilio.script_phone(CALLER, answer=False, digits=None)
    a = _accept_a_callback(world, console, bypass_csp=True)
    page = a.page
    retry = "Calling …0002 back — no answer, trying again in 8 s"
    expect(page.locator("#call-state")).to_have_text(retry)
    audit = Audit()
    audit(a, "callback retry")
    expect(page.locator("#call-state")).to_have_text(retry)  # still the retry state that was audited
    assert not audit.found, audit.report()

    missed = "Callback missed — you are available again."
    expect(page.locator("#outcome-text")).to_have_text(missed, timeout=20_000)
    expect(page.locator("#call-panel")).to_be_hidden()
    expect(page.locator("#outcome-dismiss")).to_be_focused()  # focus was in the call panel: not lost
    expect(page.locator("#presence-text")).to_have_text("You are available.")
    assert world.services.agents.get("alice")["status"] == "available"
    assert len(_dialled_back(world)) == 2
    expect(page.locator("#history details").first.locator("summary")).to_contain_text("callback not answered")
    said = _said(page)
    assert said.count(retry) == 1 and said.count(missed) == 1, said
    assert len(said) == len(set(said)), said
    a.shot("callback-missed")


def test_the_sandbox_places_a_test_call_from_a_withheld_number(world, console):
    alice = world.add_agent("alice")
    a = console.open(alice)
    page = a.page
    page.get_by_label(WITHHELD).check()
    page.get_by_role("button", name="Place a test call").click()
    expect(page.locator("#sandbox-status")).to_contain_text("Test call placed from a withheld number")
    expect(a.offer()).to_contain_text(f"Incoming call from {WITHHELD}")
    a.offer().get_by_role("button", name="Accept").click()
    expect(page.locator("#call-state")).to_have_text("Connected")
    expect(page.locator("#call-caller")).to_have_text(WITHHELD)
