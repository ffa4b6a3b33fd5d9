"""The supervisor's board in Chromium: a queued caller appears and leaves, the day's figures move
when calls end, listen-in from the board, an agent refused; axe-clean in both colour schemes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.test_console_a11y import AXE, Audit
from tests.conftest import AgentClient

DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "supervisor-board.png"


def supervisor(world, agent_id: str = "sam") -> AgentClient:
    credential = world.services.agents.add(agent_id, "Sam", None, True, "offline", role="supervisor")
    return AgentClient(world, agent_id, credential)


def open_board(console, agent, **context):
    page = console.open(agent, **context)
    page.page.goto("/board")
    expect(page.page.locator("#stream-status")).to_have_attribute("data-state", "live")
    return page


def calls_row(board, call_id: str):
    return board.page.locator(f'#calls-body tr[data-call-id="{call_id}"]')


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm ci)")
def test_a_supervisor_sees_a_caller_wait_and_leave_and_the_days_figures_change(world, console):
    audit = Audit()
    sam = supervisor(world)
    alice = world.add_agent("alice", status="busy")  # signed in but not free: callers wait in line
    board = open_board(console, sam, bypass_csp=True)
    page = board.page
    expect(page.locator("#tile-offered")).to_have_text("0")
    audit(board, "empty board")

    waiting = world.call("+15557654321")
    call_id = world.wait(lambda: world.services.views.calls_by_twilio_sid(waiting.sid, None), what="call")[0]["id"]
    row = calls_row(board, call_id)
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-state", "queued")
    expect(row).to_contain_text("…4321")
    team = page.locator("#teams-body tr").filter(has_text="default")
    expect(team.locator("td").nth(0)).to_have_text("1")  # waiting
    expect(page.locator("#tile-offered")).to_have_text("1")
    audit(board, "a caller waiting")

    waiting.hangup()
    expect(row).to_have_count(0)
    expect(page.locator("#calls-empty")).to_be_visible()
    expect(page.locator("#tile-abandoned")).to_have_text("1")
    expect(team.locator("td").nth(0)).to_have_text("0")

    # Alice takes the next call; the supervisor listens in from the board, unseen by the caller.
    alice.post("/api/agents/me/status", {"status": "available"})
    answered = world.call("+15550009876")
    offer = alice.wait_offer()
    room = alice.accept_and_join(offer["call_id"])["room"]
    answered.wait_current("bridged", timeout=8)
    row = calls_row(board, offer["call_id"])
    expect(row).to_have_attribute("data-state", "talking")
    expect(row).to_contain_text("Alice")
    audit(board, "a call in progress")
    row.get_by_role("button", name="Listen to the call from …9876 with Alice").click()
    expect(page.locator("#listen-status")).to_contain_text("Listening to the call from …9876")
    world.wait(lambda: "listen:sam" in world.participants(room), what="the supervisor in the room")
    assert world.livekit.seen_by(room, f"sip_{answered.from_}") == ["alice"]
    assert "listen_in" in world.timeline(offer["call_id"])
    expect(page.locator("#tile-offered")).to_have_text("2")  # the figures catch up within seconds
    expect(page.locator("#tile-answered")).to_have_text("1")
    board.shot("supervisor-board")
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):  # the README's picture, made on purpose only
        page.screenshot(path=str(DOCS_SHOT), full_page=True)

    answered.hangup()
    expect(page.locator("#listen-status")).to_contain_text("has ended")
    expect(page.locator("#tile-answered")).to_have_text("1")
    expect(page.locator("#tile-offered")).to_have_text("2")
    expect(page.locator("#tile-service-level")).to_have_text("50%")
    audit(board, "after the calls")
    assert not audit.found, audit.report()


def test_an_agent_is_refused_the_board(world, console):
    alice = world.add_agent("alice")
    page = console.open(alice).page
    response = page.goto("/board")
    assert response.status == 403
    expect(page.get_by_role("heading", name="This board is for supervisors")).to_be_visible()
    expect(page.locator("#refused-reason")).to_contain_text("--supervisor")
    assert page.request.get("/api/supervisor/board").status == 403


def test_the_board_works_under_its_content_security_policy(world, console):
    """Charts, the stream and the styles load with the page's own CSP (no inline script, no CDN):
    the fixture fails the test on any JavaScript or CSP error."""
    board = open_board(console, supervisor(world))
    expect(board.page.locator("#chart-intervals canvas")).to_have_count(1)
    expect(board.page.locator("#chart-waiting canvas")).to_have_count(1)
    expect(board.page.locator("#export-link")).to_have_attribute("href", "/api/supervisor/export.csv")
    assert "connect-src 'self'" in board.page.request.get("/board").headers["content-security-policy"]
