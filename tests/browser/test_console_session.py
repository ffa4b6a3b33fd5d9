"""Signing in and out of the agent console, and the session ending underneath it."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import expect

from gateway import create_app
from gateway.bootstrap import build


def test_wrong_credential_shows_an_error(world, console):
    world.add_agent("alice")
    page = console.page("anonymous").page
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#console-view")).to_be_hidden()

    page.get_by_label("Agent credential").fill("alice.not-the-right-secret")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").filter(has_text="Sign-in failed")).to_contain_text("not recognised")
    expect(page.get_by_label("Agent credential")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#console-view")).to_be_hidden()

    # Empty: refused in the page, nothing sent.
    page.get_by_label("Agent credential").fill("")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_have_text("Enter your agent credential.")


def test_sign_in_presence_and_sign_out(world, console):
    alice = world.add_agent("alice", status="offline")
    world.add_agent("bob")
    a = console.open(alice)
    page = a.page
    expect(page.locator("#agent-name")).to_have_text("Alice")
    expect(page.locator("#presence-text")).to_have_text("You are offline.")
    expect(page.locator("#team")).to_contain_text("Bob — Available")

    page.get_by_role("button", name="Available", exact=True).click()
    expect(page.locator("#presence-text")).to_have_text("You are available.")
    expect(page.get_by_role("button", name="Available", exact=True)).to_have_attribute("aria-pressed", "true")
    assert world.services.agents.get("alice")["status"] == "available"

    # Another agent's presence changes: the page hears it from the event stream.
    world.services.agents.set_status("bob", "busy")
    expect(page.locator("#team")).to_contain_text("Bob — Busy")
    a.shot("console-idle")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#signin-reason")).to_have_text("You have signed out.")
    assert world.services.agents.get("alice")["status"] == "offline"  # signing out sets you offline
    # The cookie is gone: the API refuses the page now.
    assert page.evaluate("fetch('/api/me').then(r => r.status)") == 401


def test_reset_credential_sends_the_page_back_to_sign_in(world, console):
    alice = world.add_agent("alice")
    page = console.open(alice).page
    world.services.agents.reset_secret("alice")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=8000)
    expect(page.locator("#signin-reason")).to_contain_text(re.compile("sign in again", re.I))
    expect(page.locator("#console-view")).to_be_hidden()
    # The old credential no longer works either.
    page.get_by_label("Agent credential").fill(alice.credential)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("not recognised")


def test_cookie_writes_need_the_console_header(world, console):
    alice = world.add_agent("alice")
    page = console.open(alice).page
    # Same cookie, no X-Requested-With: refused (what a cross-site form post would look like).
    status = page.evaluate("""fetch('/api/agents/me/status', {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({status: 'busy'})}).then(r => r.status)""")
    assert status == 403
    assert world.services.agents.get("alice")["status"] == "available"
    # Bearer requests carry no ambient credential: exempt.
    reply = requests.post(
        world.url + "/api/agents/me/status",
        json={"status": "busy"},
        headers={"Authorization": f"Bearer {alice.credential}"},
        timeout=5,
    )
    assert reply.status_code == 200


def test_sandbox_routes_answer_404_outside_sandbox(world, console):
    """With real providers the sandbox controls are not registered at all (the composition root
    decides): the same database and agent, served by an app built with real-mode settings."""
    alice = world.add_agent("alice")
    services = build(world.settings.with_overrides(sandbox=False, run_jobs=False))
    real = create_app(services=services).test_client()
    bearer = {"Authorization": f"Bearer {alice.credential}"}
    try:
        for path in ("/console/sandbox/call", "/console/sandbox/rtc/join", "/console/sandbox/rtc/leave"):
            reply = real.post(path, json={"token": "x", "room": "r"}, headers=bearer)
            assert reply.status_code == 404, (path, reply.text)
        assert real.get("/console/config", headers=bearer).get_json()["media"] == "livekit"
    finally:
        services.stop()
