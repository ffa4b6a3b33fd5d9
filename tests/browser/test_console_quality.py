"""The LiveKit media mode loading its locally bundled client (no CDN) and explaining a failure.
(Accessibility — axe-core in both colour schemes, keyboard only — is in test_console_a11y.py.)"""

from __future__ import annotations

import json
from urllib.parse import urlparse

from playwright.sync_api import expect

CALLER = "+15557654321"


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
