"""The console's quality bar: accessibility (axe-core, keyboard), and the LiveKit media
mode loading its locally bundled client (no CDN) and explaining a failure."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
CALLER = "+15557654321"


def _axe(page) -> list[dict]:
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("""async () => (await axe.run(document, {
        runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})).violations""")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]} for v in result]


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm ci)")
def test_no_wcag_violations_and_keyboard_only_accept(world, browser):
    from gateway.web.console import init_console
    from tests.browser.conftest import ConsolePage

    init_console(world.app)
    alice = world.add_agent("alice")
    # bypass_csp: axe is injected as an inline script, which the console's CSP rightly refuses.
    page_obj = ConsolePage(browser, world, "alice", bypass_csp=True)
    try:
        page = page_obj.open().page
        assert _axe(page) == [], "sign-in page"
        page_obj.sign_in(alice.credential)
        call = world.call(CALLER)
        expect(page_obj.offer()).to_be_visible()
        assert _axe(page) == [], "console with an incoming call"

        # Keyboard only: Tab reaches Accept in a sensible order, Enter accepts.
        page.locator("#main").focus()
        seen = []
        for _ in range(12):
            page.keyboard.press("Tab")
            label = page.evaluate("document.activeElement.textContent.trim()")
            seen.append(label)
            if label == "Accept":
                break
        assert seen[-1] == "Accept", seen
        page.keyboard.press("Enter")
        expect(page.locator("#call-heading")).to_be_focused()
        call.wait_current("bridged", timeout=8)
        expect(page.locator("#call-state")).to_have_text("Connected")
        assert _axe(page) == [], "console on a call"
    finally:
        page_obj.close()
        world.app.extensions["console"].shutdown()


def test_livekit_mode_loads_the_bundled_client_and_explains_a_failure(world, console):
    """Against the fake (no WebRTC signalling) livekit-client's connect fails: the page says so."""
    alice = world.add_agent("alice")
    a = console.page("alice")
    page = a.page
    a.expected_errors += r"|WebSocket connection to|blocked by CORS policy"  # the fake speaks no signalling
    requested = []
    page.on("request", lambda r: requested.append(r.url))

    def livekit_config(route):
        response = route.fetch()
        config = response.json() | {"media": "livekit"}
        route.fulfill(response=response, body=json.dumps(config))

    page.route("**/console/config", livekit_config)
    a.sign_in(alice.credential)
    call = world.call(CALLER)
    a.offer().get_by_role("button", name="Accept").click()
    expect(page.locator("#media-error")).to_contain_text(
        "Audio failed: could not reach the media server", timeout=20_000
    )
    expect(page.get_by_role("button", name="Reconnect audio")).to_be_visible()
    assert any("/console/assets/vendor/console/chunks/livekit-client" in url for url in requested), requested
    hosts = {urlparse(url).hostname for url in requested if url.startswith(("http", "ws"))}
    assert hosts <= {"127.0.0.1"}, hosts  # everything local: no CDN
    call.hangup()
